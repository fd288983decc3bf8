// fuzz/fuzz_command.cpp: split_command and valid_command_text (server/smtp/command.hpp).
// The whole input is one command line (as LineReader hands it over, without its CRLF).
// Invariants: split_command reassembles the line (verb, run of spaces, arg), the verb is the
// ASCII-lower-cased first word and valid_verb is exactly [A-Za-z0-9_]{1,12}; valid_command_text
// agrees with an independent UTF-8 decoder (no overlongs, surrogates, > U+10FFFF, no C0 controls
// but TAB, no DEL). On a line both accept, the MAIL/RCPT argument parser is run as the session
// would (see fuzz_address for its invariants).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "smtp/address.hpp"
#include "smtp/command.hpp"

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Independent reference: decode code points the textbook way, then judge them.
bool ref_valid_text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp = 0;
    size_t len = 0;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else if ((b & 0xE0) == 0xC0) {
      cp = b & 0x1F;
      len = 2;
    } else if ((b & 0xF0) == 0xE0) {
      cp = b & 0x0F;
      len = 3;
    } else if ((b & 0xF8) == 0xF0) {
      cp = b & 0x07;
      len = 4;
    } else {
      return false;  // continuation byte as lead, or 0xF8..0xFF
    }
    if (s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len]) return false;                // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;         // surrogate
    if (cp > 0x10FFFF) return false;                        // beyond Unicode
    if ((cp < 0x20 && cp != '\t') || cp == 0x7F) return false;  // controls
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view line(reinterpret_cast<const char *>(data), size);

  // ---- split_command ----
  const uvs::smtp::CommandLine cmd = uvs::smtp::split_command(line);
  size_t verb_end = line.find(' ');
  if (verb_end == std::string_view::npos) verb_end = line.size();
  const std::string_view raw_verb = line.substr(0, verb_end);
  FUZZ_CHECK(cmd.verb.size() == raw_verb.size(), "verb length " + fuzz::esc(line));
  for (size_t i = 0; i < raw_verb.size(); ++i)
    FUZZ_CHECK(cmd.verb[i] == lower(raw_verb[i]), "verb not the lower-cased first word");
  bool expect_valid = !raw_verb.empty() && raw_verb.size() <= 12;
  for (char c : raw_verb) expect_valid = expect_valid && word_char(c);
  FUZZ_CHECK(cmd.valid_verb == expect_valid, "valid_verb for " + fuzz::esc(line));
  FUZZ_CHECK(cmd.arg.empty() || cmd.arg.front() != ' ', "arg starts with a space");
  FUZZ_CHECK(cmd.arg.size() <= line.size() - verb_end, "arg too long");
  const size_t spaces = line.size() - verb_end - cmd.arg.size();
  FUZZ_CHECK(line.substr(verb_end, spaces).find_first_not_of(' ') == std::string_view::npos,
             "verb and arg not separated by spaces only");
  FUZZ_CHECK(line.substr(verb_end + spaces) == cmd.arg, "arg is not the rest of the line");

  // ---- valid_command_text ----
  const bool valid = uvs::smtp::valid_command_text(line);
  FUZZ_CHECK(valid == ref_valid_text(line),
             std::string("valid_command_text=") + (valid ? "true" : "false") + " on " +
                 fuzz::esc(line));

  // ---- what the session does next with MAIL / RCPT ----
  if (valid && cmd.valid_verb) {
    if (cmd.verb == "mail") {
      const uvs::smtp::PathParse r = uvs::smtp::parse_mail_arg(cmd.arg);
      FUZZ_CHECK(r.ok || (r.code >= 500 && r.code < 600), "MAIL failure not 5xx");
    } else if (cmd.verb == "rcpt") {
      const uvs::smtp::PathParse r = uvs::smtp::parse_rcpt_arg(cmd.arg);
      FUZZ_CHECK(r.ok || (r.code >= 500 && r.code < 600), "RCPT failure not 5xx");
      FUZZ_CHECK(!r.ok || !r.path.null, "RCPT accepted <>");
    }
  }
  return 0;
}
