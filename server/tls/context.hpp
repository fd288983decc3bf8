// tls/context.hpp: one loaded TLS configuration: the server SSL_CTX for the default
// certificate/key pair, one more SSL_CTX per [[tls.sni]] pair (chosen by the client's SNI
// name), the protocol/cipher policy and the session-ticket keys. Immutable once loaded;
// connections hold it by shared_ptr, so a reload never disturbs a session already in TLS.
#pragma once
#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/ssl.h>

#include "config/tls_settings.hpp"

namespace uvs::tls {

class TicketKeys;

class TlsContext {
 public:
  // Builds the context, or returns nullptr with err set to one line naming the file:
  // "tls: /etc/uvsmtpd/key.pem: key does not match certificate /etc/uvsmtpd/cert.pem".
  // `keys`: ticket keys to keep using (a reload passes the old context's); null = new ones.
  static std::shared_ptr<TlsContext> load(const config::TlsSettings &settings, std::string &err,
                                          std::shared_ptr<TicketKeys> keys = nullptr);
  ~TlsContext();
  TlsContext(const TlsContext &) = delete;
  TlsContext &operator=(const TlsContext &) = delete;

  // The context new server SSL objects are made from (the default pair).
  SSL_CTX *ssl_ctx() const { return default_.ctx; }
  // The context whose certificate serves `sni` (the default one when no name matches).
  // Exact names win over wildcards; "*.example.org" matches exactly one more label.
  SSL_CTX *ctx_for_name(const std::string &sni) const;
  // Names each pair answers for: [0] = default pair (informational; SNI falls back to it).
  std::vector<std::vector<std::string>> names() const;
  const std::shared_ptr<TicketKeys> &ticket_keys() const { return keys_; }
  const config::TlsSettings &settings() const { return settings_; }
  // Each pair's certificate file and the end of its leaf's validity (notAfter, UTC), default
  // pair first: the store warns about certificates that have expired or soon will.
  std::vector<std::pair<std::string, time_t>> expiries() const;

 private:
  TlsContext() = default;
  struct Pair {
    SSL_CTX *ctx = nullptr;
    std::vector<std::string> names;  // lower case
  };
  static int servername_cb(SSL *ssl, int *alert, void *arg);

  config::TlsSettings settings_;
  Pair default_;
  std::vector<Pair> sni_;
  std::shared_ptr<TicketKeys> keys_;
};

}  // namespace uvs::tls
