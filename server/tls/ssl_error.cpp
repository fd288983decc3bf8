// tls/ssl_error.cpp: OpenSSL's error queue as one short line.
#include "tls/ssl_error.hpp"

#include <openssl/err.h>

namespace uvs::tls {

std::string take_ssl_error(const char *fallback) {
  std::string reason;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    if (!reason.empty()) continue;
    const char *r = ERR_reason_error_string(e);
    if (r) {
      reason = r;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      reason = buf;
    }
  }
  if (reason.empty()) reason = fallback;
  for (char &c : reason)
    if (c == '\r' || c == '\n') c = ' ';
  return reason;
}

}  // namespace uvs::tls
