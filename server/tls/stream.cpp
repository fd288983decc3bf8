// tls/stream.cpp: the server side of one TLS connection over a pair of memory BIOs.
#include "tls/stream.hpp"

#include <algorithm>
#include <cerrno>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls/context.hpp"
#include "tls/ssl_error.hpp"

namespace uvs::tls {

namespace {

// Memory BIOs keep their largest buffer; ones that held more than this are replaced once
// empty, so an idle connection holds little (with SSL_MODE_RELEASE_BUFFERS for the records).
constexpr size_t kTrimAbove = 4096;

BIO *new_mem_bio() {
  BIO *b = BIO_new(BIO_s_mem());
  if (b) BIO_set_mem_eof_return(b, -1);  // empty = "want more", not end of file
  return b;
}

std::string hex(const unsigned char *p, unsigned n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (unsigned i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

}  // namespace

TlsStream::TlsStream(std::shared_ptr<const TlsContext> ctx) : ctx_(std::move(ctx)) {
  ERR_clear_error();
  BIO *r = nullptr, *w = nullptr;
  if (ctx_) ssl_ = SSL_new(ctx_->ssl_ctx());
  if (ssl_) {
    r = new_mem_bio();
    w = new_mem_bio();
  }
  if (!ssl_ || !r || !w) {
    BIO_free(r);
    BIO_free(w);
    if (ssl_) SSL_free(ssl_);
    ssl_ = nullptr;
    failed_ = true;
    reason_ = ctx_ ? "cannot create the TLS state" : "no TLS context";
    ERR_clear_error();
    return;
  }
  SSL_set_bio(ssl_, r, w);
  SSL_set_accept_state(ssl_);
}

TlsStream::~TlsStream() {
  if (ssl_) SSL_free(ssl_);
}

void TlsStream::drain(std::string &wire_out) {
  BIO *w = SSL_get_wbio(ssl_);
  for (;;) {
    size_t pend = BIO_ctrl_pending(w);
    if (pend == 0) break;
    size_t old = wire_out.size();
    wire_out.resize(old + pend);
    int got = BIO_read(w, wire_out.data() + old, static_cast<int>(pend));
    wire_out.resize(old + (got > 0 ? static_cast<size_t>(got) : 0));
    if (got <= 0) break;
  }
  if (done_) trim_bios();
}

// Once the handshake is done, an empty memory BIO whose buffer grew past kTrimAbove (the
// certificate flight, a client certificate, a large record) is replaced by a fresh one, so an
// idle connection keeps no large buffer.
void TlsStream::trim_bios() {
  auto big_and_empty = [](BIO *b) {
    BUF_MEM *m = nullptr;
    return b && BIO_ctrl_pending(b) == 0 && BIO_get_mem_ptr(b, &m) == 1 && m && m->max > kTrimAbove;
  };
  if (big_and_empty(SSL_get_wbio(ssl_)))
    if (BIO *fresh = new_mem_bio()) SSL_set0_wbio(ssl_, fresh);
  if (big_and_empty(SSL_get_rbio(ssl_)))
    if (BIO *fresh = new_mem_bio()) SSL_set0_rbio(ssl_, fresh);
}

TlsStream::Status TlsStream::fail(int ret, const char *fallback) {
  int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
    reason_ = fallback;
  else
    reason_ = take_ssl_error(fallback);
  failed_ = true;
  ERR_clear_error();
  return Status::error;
}

TlsStream::Status TlsStream::feed(const char *p, size_t n, std::string &plain_out,
                                  std::string &wire_out) {
  if (failed_) return Status::error;
  if (closed_) return Status::closed;
  ERR_clear_error();
  BIO *r = SSL_get_rbio(ssl_);
  for (size_t off = 0; off < n;) {
    size_t chunk = std::min<size_t>(n - off, 1u << 30);
    int put = BIO_write(r, p + off, static_cast<int>(chunk));
    if (put <= 0) {
      reason_ = "out of memory";
      failed_ = true;
      return Status::error;
    }
    off += static_cast<size_t>(put);
  }
  Status st = Status::ok;
  if (!done_) {
    int ret = SSL_do_handshake(ssl_);
    if (ret == 1) {
      done_ = true;
      fill_details();
      st = Status::handshake_done;
    } else {
      int e = SSL_get_error(ssl_, ret);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        st = fail(ret, "handshake failed");
        drain(wire_out);  // the alert, if any
        return st;
      }
      drain(wire_out);
      return Status::ok;
    }
  }
  // Application data, including records that came in the same input as the client's
  // Finished message.
  char buf[16384];
  for (;;) {
    size_t got = 0;
    int ret = SSL_read_ex(ssl_, buf, sizeof buf, &got);
    if (ret == 1) {
      plain_out.append(buf, got);
      continue;
    }
    int e = SSL_get_error(ssl_, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      closed_ = true;
      if (st == Status::ok) st = Status::closed;
      break;
    }
    st = fail(ret, "protocol error");
    break;
  }
  ERR_clear_error();
  drain(wire_out);
  if (!failed_ && done_) trim_bios();
  return st;
}

int TlsStream::encrypt(std::string_view plain, std::string &wire_out) {
  if (!done_ || failed_ || shutdown_sent_ || !ssl_) return -ENOTCONN;
  ERR_clear_error();
  size_t off = 0;
  while (off < plain.size()) {
    size_t wrote = 0;
    int ret = SSL_write_ex(ssl_, plain.data() + off, plain.size() - off, &wrote);
    if (ret != 1) {
      fail(ret, "write failed");
      drain(wire_out);
      return -EIO;
    }
    off += wrote;
  }
  drain(wire_out);
  return 0;
}

void TlsStream::close_notify(std::string &wire_out) {
  if (!ssl_ || shutdown_sent_ || failed_ || !done_) return;
  shutdown_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  drain(wire_out);
}

size_t TlsStream::buffer_capacity() const {
  if (!ssl_) return 0;
  size_t total = 0;
  for (BIO *b : {SSL_get_rbio(ssl_), SSL_get_wbio(ssl_)}) {
    BUF_MEM *m = nullptr;
    if (b && BIO_get_mem_ptr(b, &m) == 1 && m) total += m->max;
  }
  return total;
}

void TlsStream::fill_details() {
  details_.protocol = SSL_get_version(ssl_);
  const SSL_CIPHER *c = SSL_get_current_cipher(ssl_);
  if (c) {
    details_.cipher = SSL_CIPHER_get_name(c);
    details_.bits = SSL_CIPHER_get_bits(c, nullptr);
  }
  const char *sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  details_.sni = sni ? sni : "";
  details_.resumed = SSL_session_reused(ssl_) == 1;
  X509 *peer = SSL_get0_peer_certificate(ssl_);
  details_.client_cert_presented = peer != nullptr;
  if (!peer) return;
  details_.client_cert_verified = SSL_get_verify_result(ssl_) == X509_V_OK;
  BIO *b = BIO_new(BIO_s_mem());
  if (b) {
    if (X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
      char *data = nullptr;
      long len = BIO_get_mem_data(b, &data);
      if (data && len > 0) details_.client_subject.assign(data, static_cast<size_t>(len));
    }
    BIO_free(b);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (X509_digest(peer, EVP_sha256(), md, &len) == 1)
    details_.client_fingerprint_sha256 = hex(md, len);
  ERR_clear_error();
}

}  // namespace uvs::tls
