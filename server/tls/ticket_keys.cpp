// tls/ticket_keys.cpp: session-ticket key rotation and the OpenSSL 3 ticket callback
// (AES-256-CBC + HMAC-SHA256, as in SSL_CTX_set_tlsext_ticket_key_evp_cb(3)).
#include "tls/ticket_keys.hpp"

#include <cstring>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace uvs::tls {

namespace {
int ex_index() {
  static int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
}  // namespace

TicketKeys::TicketKeys(uint32_t lifetime_seconds)
    : lifetime_(lifetime_seconds ? lifetime_seconds : 1), clock_([] { return ::time(nullptr); }) {}

void TicketKeys::set_lifetime(uint32_t seconds) {
  std::lock_guard<std::mutex> g(mu_);
  lifetime_ = seconds ? seconds : 1;
}

uint32_t TicketKeys::lifetime() const {
  std::lock_guard<std::mutex> g(mu_);
  return lifetime_;
}

void TicketKeys::set_clock(std::function<time_t()> clock) {
  std::lock_guard<std::mutex> g(mu_);
  clock_ = std::move(clock);
}

bool TicketKeys::make_key(Key &k, time_t now) {
  k.valid = RAND_bytes(k.name, sizeof k.name) == 1 && RAND_priv_bytes(k.aes, sizeof k.aes) == 1 &&
            RAND_priv_bytes(k.hmac, sizeof k.hmac) == 1;
  k.created = now;
  return k.valid;
}

void TicketKeys::rotate() {
  std::lock_guard<std::mutex> g(mu_);
  previous_ = current_;
  make_key(current_, clock_());
}

void TicketKeys::expire(time_t now) {
  if (previous_.valid && now - previous_.created >= 2 * static_cast<time_t>(lifetime_))
    previous_ = Key{};
  if (current_.valid && now - current_.created >= static_cast<time_t>(lifetime_)) {
    previous_ = current_;
    if (now - previous_.created >= 2 * static_cast<time_t>(lifetime_)) previous_ = Key{};
    make_key(current_, now);
  }
}

void TicketKeys::install(SSL_CTX *ctx) {
  SSL_CTX_set_ex_data(ctx, ex_index(), this);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::callback);
}

// AES-256-CBC fetched once: EVP_aes_256_cbc() makes OpenSSL 3 look the implementation up
// again on every ticket.
const EVP_CIPHER *TicketKeys::ticket_cipher() {
  static EVP_CIPHER *fetched = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return fetched ? fetched : EVP_aes_256_cbc();
}

int TicketKeys::callback(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                         EVP_MAC_CTX *hctx, int enc) {
  // OpenSSL calls the callback of the session context (the one the SSL was made from).
  auto *self = static_cast<TicketKeys *>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index()));
  if (!self) return enc ? -1 : 0;
  return self->on_ticket(name, iv, cctx, hctx, enc);
}

int TicketKeys::on_ticket(unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                          EVP_MAC_CTX *hctx, int enc) {
  std::lock_guard<std::mutex> g(mu_);
  time_t now = clock_();
  if (!current_.valid) {
    if (!make_key(current_, now)) return enc ? -1 : 0;
  } else {
    expire(now);
  }
  const Key *k = nullptr;
  if (enc) {
    k = &current_;
    std::memcpy(name, k->name, sizeof k->name);
    if (RAND_bytes(iv, EVP_CIPHER_iv_length(ticket_cipher())) != 1) return -1;
    if (EVP_EncryptInit_ex(cctx, ticket_cipher(), nullptr, k->aes, iv) != 1) return -1;
  } else {
    if (std::memcmp(name, current_.name, sizeof current_.name) == 0)
      k = &current_;
    else if (previous_.valid && std::memcmp(name, previous_.name, sizeof previous_.name) == 0)
      k = &previous_;
    else
      return 0;  // unknown key: full handshake
    if (EVP_DecryptInit_ex(cctx, ticket_cipher(), nullptr, k->aes, iv) != 1) return -1;
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[2];
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
  params[1] = OSSL_PARAM_construct_end();
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  if (EVP_MAC_init(hctx, k->hmac, sizeof k->hmac, nullptr) != 1) return -1;
  if (enc) return 1;
  return k == &previous_ ? 2 : 1;  // 2: accepted, issue a new ticket under the current key
}

}  // namespace uvs::tls
