// tls/ticket_keys.hpp: the rotating session-ticket keys (RFC 5077, RFC 8446 4.6.1): a current
// key encrypts new tickets and is replaced after `lifetime` seconds; the previous key still
// decrypts (the ticket is then renewed under the current key). Shared between the contexts
// built by successive reloads so tickets survive a certificate reload.
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>

#include <openssl/ssl.h>

namespace uvs::tls {

class TicketKeys {
 public:
  explicit TicketKeys(uint32_t lifetime_seconds);
  TicketKeys(const TicketKeys &) = delete;
  TicketKeys &operator=(const TicketKeys &) = delete;

  void set_lifetime(uint32_t seconds);
  uint32_t lifetime() const;
  // Makes a new current key now; the current one becomes the previous one.
  void rotate();
  // The clock (seconds); tests replace it.
  void set_clock(std::function<time_t()> clock);

  // Installs the OpenSSL ticket callback on ctx (ctx's ex_data points at this object, which
  // must outlive ctx: TlsContext holds a shared_ptr).
  void install(SSL_CTX *ctx);

 private:
  static const EVP_CIPHER *ticket_cipher();
  struct Key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t created = 0;
    bool valid = false;
  };
  static int callback(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                      EVP_MAC_CTX *hctx, int enc);
  int on_ticket(unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                int enc);
  bool make_key(Key &k, time_t now);
  void expire(time_t now);  // rotates / drops keys past their time (mu_ held)

  mutable std::mutex mu_;
  uint32_t lifetime_;
  Key current_{}, previous_{};
  std::function<time_t()> clock_;
};

}  // namespace uvs::tls
