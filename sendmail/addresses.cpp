// sendmail/addresses.cpp: a small RFC 5322 section 3.4 address-list reader (see addresses.hpp).
#include "addresses.hpp"

namespace sm {

namespace {

// s[i] is '(': skips the comment (nested, with quoted-pairs); i ends after its ')'.
void skip_comment(std::string_view s, size_t &i) {
  int depth = 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '(') {
      ++depth;
    } else if (s[i] == ')' && --depth == 0) {
      ++i;
      return;
    }
  }
}

// s[i] is '"': appends the quoted string, quotes and escapes included; i ends after it.
void copy_quoted(std::string_view s, size_t &i, std::string &out) {
  out += s[i++];
  for (; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[++i];
    } else if (s[i] == '"') {
      ++i;
      return;
    }
  }
}

}  // namespace

std::vector<std::string> parse_address_list(std::string_view s) {
  std::vector<std::string> out;
  std::string text, angle;
  bool in_angle = false, have_angle = false;
  auto emit = [&] {
    std::string a = have_angle ? angle : text;
    if (!a.empty() && a[0] == '@') {  // obsolete source route "@r1,@r2:user@host"
      size_t colon = a.find(':');
      a = colon == std::string::npos ? std::string() : a.substr(colon + 1);
    }
    if (!a.empty()) out.push_back(a);
    text.clear();
    angle.clear();
    have_angle = false;
  };
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '(') {
      skip_comment(s, i);
      continue;
    }
    if (c == '"') {
      copy_quoted(s, i, in_angle ? angle : text);
      continue;
    }
    ++i;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (in_angle) {
      if (c == '>') {
        in_angle = false;
        have_angle = true;
      } else {
        angle += c;
      }
    } else if (c == '<') {
      in_angle = true;
      angle.clear();
    } else if (c == ',' || c == ';') {
      emit();
    } else if (c == ':') {
      text.clear();  // a group's display name
    } else {
      text += c;
    }
  }
  emit();
  return out;
}

std::string qualify(const std::string &addr, const std::string &domain) {
  bool quoted = false;
  for (size_t i = 0; i < addr.size(); ++i) {
    if (addr[i] == '\\') {
      ++i;
    } else if (addr[i] == '"') {
      quoted = !quoted;
    } else if (addr[i] == '@' && !quoted) {
      return addr;
    }
  }
  return addr + "@" + domain;
}

bool address_ok(const std::string &addr) {
  if (addr.empty()) return false;
  bool quoted = false;
  for (unsigned char c : addr) {
    if (c < 0x20 || c == 0x7f) return false;
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == ' ' || c == '<' || c == '>')) return false;
  }
  return true;
}

}  // namespace sm
