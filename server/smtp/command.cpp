// server/smtp/command.cpp: splitting one SMTP command line into verb and argument (pure).
#include "smtp/command.hpp"

namespace uvs::smtp {

namespace {

constexpr size_t kMaxVerb = 12;

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_word(std::string_view s) {
  if (s.empty() || s.size() > kMaxVerb) return false;
  for (char c : s) {
    if (!is_word_char(c)) return false;
  }
  return true;
}

bool is_forbidden_ascii(unsigned char b) {
  return (b < 0x20 && b != '\t') || b == 0x7F;
}

// For a UTF-8 lead byte: the number of continuation bytes and the allowed range of the first
// one (the narrowed ranges exclude overlongs, surrogates and code points above U+10FFFF).
struct LeadInfo {
  int continuation = -1;  // -1: not a valid lead byte
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
};

LeadInfo lead_info(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {};
}

bool is_continuation(unsigned char b) {
  return b >= 0x80 && b <= 0xBF;
}

// Validates the multi-byte sequence starting at s[i]; returns its length, or 0 if malformed.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const LeadInfo info = lead_info(static_cast<unsigned char>(s[i]));
  if (info.continuation < 0) return 0;
  const size_t len = 1 + static_cast<size_t>(info.continuation);
  if (s.size() - i < len) return 0;
  const auto first = static_cast<unsigned char>(s[i + 1]);
  if (first < info.lo || first > info.hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (!is_continuation(static_cast<unsigned char>(s[i + k]))) return 0;
  }
  return len;
}

}  // namespace

CommandLine split_command(std::string_view line) {
  CommandLine out;
  size_t verb_end = line.find(' ');
  if (verb_end == std::string_view::npos) verb_end = line.size();
  const std::string_view verb = line.substr(0, verb_end);
  out.verb.reserve(verb.size());
  for (char c : verb) out.verb.push_back(ascii_lower(c));
  out.valid_verb = is_word(verb);

  size_t arg_start = verb_end;
  while (arg_start < line.size() && line[arg_start] == ' ') ++arg_start;
  out.arg = std::string(line.substr(arg_start));
  return out;
}

bool valid_command_text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (is_forbidden_ascii(b)) return false;
      ++i;
      continue;
    }
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace uvs::smtp
