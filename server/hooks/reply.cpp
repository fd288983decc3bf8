// hooks/reply.cpp: reply formatting and the validation of text handed in by plugins.
#include "hooks/reply.hpp"

#include <cstdio>

namespace uvs {

std::string Reply::wire() const {
  std::string out;
  if (code == 0) return out;
  char codebuf[8];
  snprintf(codebuf, sizeof codebuf, "%03d", code);
  size_t n = lines.empty() ? 1 : lines.size();
  for (size_t i = 0; i < n; ++i) {
    out += codebuf;
    out += (i + 1 < n) ? '-' : ' ';
    if (!enhanced.empty()) {
      out += enhanced;
      if (!lines.empty() && !lines[i].empty()) out += ' ';
    }
    if (!lines.empty()) out += lines[i];
    out += "\r\n";
  }
  return out;
}

Reply make_reply(int code, std::string_view enhanced, std::string_view text) {
  Reply r;
  r.code = code;
  r.enhanced = std::string(enhanced);
  r.lines.emplace_back(text);
  return r;
}

bool reply_text_ok(std::string_view text) {
  if (text.size() > 500) return false;
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool enhanced_ok(std::string_view e) {
  if (e.size() < 5 || (e[0] != '2' && e[0] != '4' && e[0] != '5') || e[1] != '.') return false;
  int dots = 0, digits = 0;
  for (size_t i = 2; i < e.size(); ++i) {
    if (e[i] == '.') {
      if (digits == 0) return false;
      ++dots;
      digits = 0;
    } else if (e[i] >= '0' && e[i] <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

}  // namespace uvs
