// server/smtp/address.cpp: RFC 5321 path grammar for MAIL FROM / RCPT TO and ESMTP parameters.
#include <arpa/inet.h>
#include "smtp/address.hpp"

#include <algorithm>
#include <utility>

namespace uvs::smtp {

namespace {

constexpr size_t kNpos = std::string_view::npos;
constexpr size_t kMaxLabel = 63;

// ---- character classes (ASCII only; bytes >= 0x80 are handled separately) ----

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_8bit(char c) {
  return static_cast<unsigned char>(c) >= 0x80;
}
bool is_printable(char c) {
  return c >= 32 && c <= 126;
}
char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// RFC 5322 atext, extended with UTF-8 octets (RFC 6531).
bool is_atext(char c) {
  if (is_alnum(c) || is_8bit(c)) return true;
  constexpr std::string_view specials = "!#$%&'*+-/=?^_`{|}~";
  return specials.find(c) != kNpos;
}

bool is_label_char(char c) {
  return is_alnum(c) || c == '-' || is_8bit(c);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool has_8bit(std::string_view s) {
  for (char c : s) {
    if (is_8bit(c)) return true;
  }
  return false;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char &c : out) c = ascii_upper(c);
  return out;
}

// ---- domain and address literal ----

bool valid_ipv4(std::string_view s) {
  int parts = 0;
  size_t pos = 0;
  while (true) {
    size_t digits = 0;
    int value = 0;
    while (pos < s.size() && is_digit(s[pos]) && digits < 4) {
      value = value * 10 + (s[pos] - '0');
      ++pos;
      ++digits;
    }
    if (digits == 0 || digits > 3 || value > 255) return false;
    ++parts;
    if (pos == s.size()) return parts == 4;
    if (s[pos] != '.' || parts == 4) return false;
    ++pos;
  }
}

// A real IPv6 address (RFC 5321 4.1.3 IPv6-addr), checked by the C library's parser.
bool valid_ipv6(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return false;
  for (char c : s)
    if (!is_hex(c) && c != ':' && c != '.') return false;
  std::string text(s);
  unsigned char buf[16];
  return inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// s[pos] == '['; returns the position after ']' or kNpos.
size_t scan_address_literal(std::string_view s, size_t pos) {
  const size_t close = s.find(']', pos);
  if (close == kNpos) return kNpos;
  const std::string_view inner = s.substr(pos + 1, close - pos - 1);
  constexpr std::string_view v6 = "IPv6:";
  const bool ok = istarts_with(inner, v6) ? valid_ipv6(inner.substr(v6.size())) : valid_ipv4(inner);
  return ok ? close + 1 : kNpos;
}

bool valid_label(std::string_view label) {
  if (label.empty() || label.front() == '-' || label.back() == '-') return false;
  // A U-label's limit applies to its A-label form, which is not computed here.
  return label.size() <= kMaxLabel || has_8bit(label);
}

// Dot-separated labels from pos; returns the position after the last label or kNpos.
size_t scan_labels(std::string_view s, size_t pos) {
  while (true) {
    const size_t start = pos;
    while (pos < s.size() && is_label_char(s[pos])) ++pos;
    if (!valid_label(s.substr(start, pos - start))) return kNpos;
    if (pos == s.size() || s[pos] != '.') return pos;
    ++pos;
  }
}

// Domain or address literal from pos; returns the end position or kNpos.
size_t scan_domain(std::string_view s, size_t pos) {
  if (pos < s.size() && s[pos] == '[') return scan_address_literal(s, pos);
  return scan_labels(s, pos);
}

// Source route "@a,@b:" from pos (s[pos] == '@'); returns the position after ':' or kNpos.
size_t scan_route(std::string_view s, size_t pos) {
  while (true) {
    if (pos >= s.size() || s[pos] != '@') return kNpos;
    pos = scan_domain(s, pos + 1);
    if (pos == kNpos || pos == s.size()) return kNpos;
    if (s[pos] == ':') return pos + 1;
    if (s[pos] != ',') return kNpos;
    ++pos;
  }
}

// ---- local-part ----

// s[pos] == '"'; returns the position after the closing quote or kNpos.
size_t scan_quoted_string(std::string_view s, size_t pos) {
  ++pos;
  while (pos < s.size()) {
    const char c = s[pos];
    if (c == '"') return pos + 1;
    if (c == '\\') {
      if (pos + 1 >= s.size() || !is_printable(s[pos + 1])) return kNpos;
      pos += 2;
      continue;
    }
    if (!is_printable(c) && !is_8bit(c)) return kNpos;
    ++pos;
  }
  return kNpos;
}

size_t scan_dot_string(std::string_view s, size_t pos) {
  while (true) {
    const size_t start = pos;
    while (pos < s.size() && is_atext(s[pos])) ++pos;
    if (pos == start) return kNpos;
    if (pos == s.size() || s[pos] != '.') return pos;
    ++pos;
  }
}

size_t scan_local_part(std::string_view s, size_t pos) {
  if (pos < s.size() && s[pos] == '"') return scan_quoted_string(s, pos);
  return scan_dot_string(s, pos);
}

// ---- path body (the text between '<' and '>') ----

enum class PathError { kNone, kSyntax, kLocalTooLong, kDomainTooLong, kPathTooLong };

PathError parse_mailbox(std::string_view body, bool allow_postmaster, Path &out) {
  size_t pos = 0;
  if (!body.empty() && body[0] == '@') {
    pos = scan_route(body, 0);
    if (pos == kNpos) return PathError::kSyntax;
    out.route = std::string(body.substr(0, pos - 1));
  }
  const size_t local_start = pos;
  pos = scan_local_part(body, pos);
  if (pos == kNpos) return PathError::kSyntax;
  const std::string_view local = body.substr(local_start, pos - local_start);
  if (pos == body.size()) {
    if (!allow_postmaster || local_start != 0 || !iequals(local, "postmaster")) {
      return PathError::kSyntax;
    }
    out.local = out.address = std::string(local);
    return PathError::kNone;
  }
  if (body[pos] != '@') return PathError::kSyntax;
  const size_t domain_start = pos + 1;
  pos = scan_domain(body, domain_start);
  if (pos != body.size()) return PathError::kSyntax;
  const std::string_view domain = body.substr(domain_start);
  if (local.size() > kMaxLocalPart) return PathError::kLocalTooLong;
  if (domain.size() > kMaxDomain) return PathError::kDomainTooLong;
  out.local = std::string(local);
  out.domain = std::string(domain);
  out.address = out.local + "@" + out.domain;
  return PathError::kNone;
}

// Returns the index of the first '>' that is not inside a quoted string, or kNpos.
size_t find_path_end(std::string_view s, size_t pos) {
  bool quoted = false;
  for (; pos < s.size(); ++pos) {
    const char c = s[pos];
    if (quoted && c == '\\') {
      ++pos;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '>') {
      return pos;
    }
  }
  return kNpos;
}

// ---- ESMTP parameters ----

bool valid_keyword(std::string_view k) {
  if (k.empty() || !is_alnum(k[0])) return false;
  for (char c : k) {
    if (!is_alnum(c) && c != '-') return false;
  }
  return true;
}

bool valid_value(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    if ((!is_printable(c) || c == ' ' || c == '=') && !is_8bit(c)) return false;
  }
  return true;
}

bool parse_one_param(std::string_view token, EsmtpParam &out) {
  const size_t eq = token.find('=');
  const std::string_view key = token.substr(0, eq);
  if (!valid_keyword(key)) return false;
  out.key = to_upper(key);
  if (eq == kNpos) return true;
  const std::string_view value = token.substr(eq + 1);
  if (!valid_value(value)) return false;
  out.value = std::string(value);
  return true;
}

// ---- results ----

struct Verb {
  std::string_view prefix;  // "FROM:" / "TO:"
  std::string_view usage;   // usage text for a missing prefix or brackets
  std::string_view bad;     // text for a bad address
  std::string_view bad_enhanced;
  bool is_rcpt;
};

constexpr Verb kMail{"FROM:", "Syntax: MAIL FROM:<address>", "Bad sender address syntax", "5.1.7",
                     false};
constexpr Verb kRcpt{"TO:", "Syntax: RCPT TO:<address>", "Bad recipient address syntax", "5.1.3",
                     true};

PathParse failure(int code, std::string_view enhanced, std::string message) {
  PathParse r;
  r.code = code;
  r.enhanced = std::string(enhanced);
  r.message = std::move(message);
  return r;
}

PathParse path_failure(PathError e, const Verb &verb) {
  switch (e) {
    case PathError::kLocalTooLong:
      return failure(553, "5.1.3", "Local part too long");
    case PathError::kDomainTooLong:
      return failure(501, "5.1.2", "Domain name too long");
    case PathError::kPathTooLong:
      return failure(501, "5.1.7", "Path too long");
    default:
      return failure(501, verb.bad_enhanced, std::string(verb.bad));
  }
}

// Index of the first parameter (in line order) whose keyword repeats an earlier one, or kNpos.
// Sorting (keyword, index) pairs keeps this O(n log n) for any input: a line of thousands of
// parameters must not cost quadratic time on the event loop (and no hash table to flood).
size_t first_duplicate(const std::vector<EsmtpParam> &params) {
  if (params.size() < 2) return kNpos;
  std::vector<std::pair<std::string_view, size_t>> keys;
  keys.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) keys.emplace_back(params[i].key, i);
  std::sort(keys.begin(), keys.end());  // equal keywords end up adjacent, in line order
  size_t first = kNpos;
  for (size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].first == keys[i - 1].first && keys[i].second < first) first = keys[i].second;
  }
  return first;
}

// Parses everything after '>' into result.params; returns false (with result filled) on error.
// The first parameter (in line order) that is malformed or repeats an earlier keyword decides
// the reply.
bool parse_params(std::string_view rest, PathParse &result, const Verb &verb) {
  if (rest.empty()) return true;
  if (rest[0] != ' ') {
    result = failure(501, "5.5.4", std::string(verb.usage));
    return false;
  }
  bool malformed = false;  // the parameter after the last one in result.params is malformed
  size_t pos = 0;
  while (pos < rest.size()) {
    if (rest[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t end = rest.find(' ', pos);
    if (end == kNpos) end = rest.size();
    EsmtpParam param;
    if (!parse_one_param(rest.substr(pos, end - pos), param)) {
      malformed = true;
      break;
    }
    result.params.push_back(std::move(param));
    pos = end;
  }
  // A duplicate found here comes before the malformed parameter, if any, so it is reported.
  const size_t dup = first_duplicate(result.params);
  if (dup != kNpos) {
    result = failure(501, "5.5.4", "Duplicate parameter " + result.params[dup].key);
    return false;
  }
  if (malformed) {
    result = failure(555, "5.5.4", "Syntax error in parameters");
    return false;
  }
  return true;
}

PathParse parse_arg(std::string_view arg, const Verb &verb) {
  if (!istarts_with(arg, verb.prefix)) return failure(501, "5.5.4", std::string(verb.usage));
  size_t pos = verb.prefix.size();
  if (pos < arg.size() && arg[pos] == ' ') ++pos;
  if (pos >= arg.size() || arg[pos] != '<') return failure(501, "5.5.4", std::string(verb.usage));
  const size_t close = find_path_end(arg, pos + 1);
  if (close == kNpos) return failure(501, "5.5.4", std::string(verb.usage));

  PathParse result;
  const std::string_view body = arg.substr(pos + 1, close - pos - 1);
  if (body.empty()) {
    if (verb.is_rcpt) return failure(501, "5.1.3", std::string(verb.bad));
    result.path.null = true;
  } else {
    PathError e = parse_mailbox(body, verb.is_rcpt, result.path);
    if (e == PathError::kNone && body.size() + 2 > kMaxPath) e = PathError::kPathTooLong;
    if (e != PathError::kNone) return path_failure(e, verb);
    result.path.has_8bit = has_8bit(body);
  }
  if (!parse_params(arg.substr(close + 1), result, verb)) return result;
  result.ok = true;
  return result;
}

}  // namespace

PathParse parse_mail_arg(std::string_view arg) {
  return parse_arg(arg, kMail);
}

PathParse parse_rcpt_arg(std::string_view arg) {
  return parse_arg(arg, kRcpt);
}

const EsmtpParam *find_param(const std::vector<EsmtpParam> &params, std::string_view key) {
  for (const EsmtpParam &p : params) {
    if (iequals(p.key, key)) return &p;
  }
  return nullptr;
}

}  // namespace uvs::smtp
