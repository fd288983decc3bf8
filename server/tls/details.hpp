// tls/details.hpp: what a finished TLS handshake tells about the session (filled by the TLS
// stream, read by the session, logs and the plugin ABI's tls_info()).
#pragma once
#include <string>

namespace uvs::tls {

struct TlsDetails {
  std::string protocol;                   // "TLSv1.3"
  std::string cipher;                     // "TLS_AES_256_GCM_SHA384"
  int bits = 0;                           // the cipher's secret bits: 256
  std::string sni;                        // the client's SNI name; "" if none
  bool client_cert_presented = false;     // the client sent a certificate
  bool client_cert_verified = false;      // and it verified against tls.client_ca
  std::string client_subject;             // one line (RFC 2253); "" without a certificate
  std::string client_fingerprint_sha256;  // SHA-256 of the DER, lower-case hex, no colons
  bool resumed = false;                   // the session was resumed from a ticket
};

}  // namespace uvs::tls
