// smtp/sasl.cpp: strict base64, the PLAIN message split, and secret wiping (see sasl.hpp).
#include "smtp/sasl.hpp"

#include <cstring>
#include <string.h>

namespace uvs::smtp {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

void wipe(std::string &s) {
  if (!s.empty()) explicit_bzero(s.data(), s.size());
  s.clear();
}

void wipe(PlainMessage &m) {
  wipe(m.authzid);
  wipe(m.authcid);
  wipe(m.passwd);
}

bool base64_decode(std::string_view in, std::string &out) {
  wipe(out);
  if (in.size() % 4 != 0) return false;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return wipe(out), false;  // data after padding
      v[k] = sextet(c);
      if (v[k] < 0) return wipe(out), false;
    }
    unsigned n = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                 (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    // Non-canonical encodings (bits set under the padding) are refused too.
    if ((pad == 1 && (n & 0xff)) || (pad == 2 && (n & 0xffff))) return wipe(out), false;
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
    n = 0;
  }
  return true;
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<unsigned char>(in[i + 2]);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < in.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

bool parse_plain(std::string_view msg, PlainMessage &out) {
  wipe(out);
  size_t a = msg.find('\0');
  if (a == std::string_view::npos) return false;
  size_t b = msg.find('\0', a + 1);
  if (b == std::string_view::npos || msg.find('\0', b + 1) != std::string_view::npos) return false;
  if (b == a + 1 || b + 1 == msg.size()) return false;  // empty user or password
  out.authzid.assign(msg.substr(0, a));
  out.authcid.assign(msg.substr(a + 1, b - a - 1));
  out.passwd.assign(msg.substr(b + 1));
  return true;
}

bool valid_sasl_user(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace uvs::smtp
