// config/tls_settings.hpp: the [tls] section of uvsmtpd.toml as a plain struct (parsed in
// settings.cpp, used by tls/context.cpp). Paths are as written, relative to the working
// directory. Defaults follow Mozilla's "intermediate" server profile (TLS 1.2 and 1.3).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace uvs::config {

// One more certificate/key pair, chosen when the client's SNI name matches one of `names`.
struct SniPair {
  std::string certificate;         // PEM chain, leaf first
  std::string key;                 // PEM private key
  std::vector<std::string> names;  // "mail.example.org", "*.example.org"; empty = the SAN DNS names
};

struct TlsSettings {
  std::string certificate;               // PEM chain, leaf first; "" = no TLS
  std::string key;                       // PEM private key
  std::string min_protocol = "TLSv1.2";  // "TLSv1.2" | "TLSv1.3"
  // TLS 1.2 cipher list (OpenSSL syntax): forward-secret AEAD suites only.
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
      "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
  // TLS 1.3 suites.
  std::string ciphersuites =
      "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  std::string groups = "X25519:P-256";
  bool session_tickets = true;
  uint32_t ticket_key_lifetime = 3600;       // seconds a ticket key encrypts new tickets
  std::string client_certificates = "none";  // "none" | "request"
  std::string client_ca;                     // PEM CA bundle for client certificates
  bool watch = true;                         // reload when a file changes
  std::vector<SniPair> sni;

  bool enabled() const { return !certificate.empty(); }
};

}  // namespace uvs::config
