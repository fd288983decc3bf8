// config/tls_settings.hpp: the [tls] table of uvsmtpd.toml (certificates, protocol, ciphers,
// tickets, client certificates), alone so the TLS engine can include it without the rest.
#pragma once
#include <string>
#include <vector>

namespace uvs::config {

// A [[tls.sni]] entry: one more certificate/key pair, chosen by the client's SNI name.
struct SniPair {
  std::string certificate;         // PEM chain, leaf first
  std::string key;                 // PEM private key
  std::vector<std::string> names;  // empty: the certificate's DNS names
};

struct TlsSettings {
  std::string certificate;  // PEM chain, leaf first; "" = no TLS (STARTTLS not advertised)
  std::string key;          // PEM private key
  std::string min_protocol = "TLSv1.2";  // "TLSv1.2" | "TLSv1.3"
  // TLS 1.2 cipher list: Mozilla's "intermediate" configuration (OpenSSL names).
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
  double ticket_key_lifetime = 3600;  // seconds a ticket key encrypts new tickets (then rotated)
  std::string client_certificates = "none";  // "none" | "request" (verified, never required)
  std::string client_ca;                     // PEM CA bundle for client certificates
  bool watch = true;  // reload the pairs when a file changes (SIGHUP always reloads)
  std::vector<SniPair> sni;
};

}  // namespace uvs::config
