// hooks/reply.hpp: an SMTP reply (code, enhanced code, lines) and its wire formatting/validation.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace uvs {

struct Reply {
  int code = 0;               // 0 = no reply
  std::string enhanced;       // "2.1.0" or "" (banner, HELO/EHLO, 354 carry none)
  std::vector<std::string> lines;

  bool empty() const { return code == 0; }
  // Wire form: "250-2.1.0 a\r\n250 2.1.0 b\r\n".
  std::string wire() const;
};

Reply make_reply(int code, std::string_view enhanced, std::string_view text);

// Checks one plugin-supplied line: no CR, LF or other control bytes, at most 500 bytes.
bool reply_text_ok(std::string_view text);
// Checks "x.y.z" with class digit 2, 4 or 5, subject 0-999, detail 0-999.
bool enhanced_ok(std::string_view enh);

}  // namespace uvs
