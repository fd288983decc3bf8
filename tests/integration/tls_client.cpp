// tests/integration/tls_client.cpp: the TLS-capable SMTP test client and the s_server runner
// (see tls_client.hpp). Non-blocking socket; every wait is a poll() bounded by a deadline.
#include "tls_client.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.hpp"

namespace itest::tls {

namespace {

std::string ssl_errors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// A client context for `o`; nullptr with err set.
SSL_CTX *make_ctx(const TlsOptions &o, std::string &err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    err = "SSL_CTX_new: " + ssl_errors();
    return nullptr;
  }
  if (o.max_version && o.max_version < TLS1_2_VERSION) {
    // OpenSSL 3 refuses to offer TLS < 1.2 at the default security level; the point of such a
    // client is to see the server refuse it, so let it offer.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
  }
  if (o.min_version) SSL_CTX_set_min_proto_version(ctx, o.min_version);
  if (o.max_version) SSL_CTX_set_max_proto_version(ctx, o.max_version);
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1) {
    err = "bad ciphersuites " + o.ciphersuites;
    SSL_CTX_free(ctx);
    return nullptr;
  }
  if (!o.cafile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.cafile.c_str(), nullptr) != 1) {
      err = o.cafile + ": " + ssl_errors();
      SSL_CTX_free(ctx);
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!o.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      err = o.cert + ": " + ssl_errors();
      SSL_CTX_free(ctx);
      return nullptr;
    }
  }
  return ctx;
}

// An SSL for ctx with the per-connection options of o.
SSL *make_ssl(SSL_CTX *ctx, const TlsOptions &o) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl) return nullptr;
  if (!o.sni.empty()) SSL_set_tlsext_host_name(ssl, o.sni.c_str());
  if (!o.cafile.empty() && !o.verify_name.empty()) {
    in_addr a;
    if (inet_pton(AF_INET, o.verify_name.c_str(), &a) == 1)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o.verify_name.c_str());
    else
      SSL_set1_host(ssl, o.verify_name.c_str());
  }
  return ssl;
}

std::string name_entry(X509 *x, int nid) {
  if (!x) return "";
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::string client_hello(const TlsOptions &o) {
  std::string err;
  SSL_CTX *ctx = make_ctx(o, err);
  if (!ctx) return "";
  SSL *ssl = make_ssl(ctx, o);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);  // WANT_READ: the ClientHello is in wbio
  std::string out;
  char buf[4096];
  int n;
  while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return out;
}

TlsClient::TlsClient(int port) {
  fd_ = connect_loopback(port);
  if (fd_ < 0) {
    error_ = std::string("connect: ") + strerror(errno);
    return;
  }
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

TlsClient::~TlsClient() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
}

bool TlsClient::wait_io(bool want_write, double deadline) {
  int left = static_cast<int>((deadline - now()) * 1000);
  if (left <= 0 || fd_ < 0) return false;
  pollfd p{fd_, static_cast<short>(want_write ? POLLOUT : POLLIN), 0};
  return poll(&p, 1, left) > 0;
}

void TlsClient::send_raw(std::string_view bytes) {
  size_t off = 0;
  double deadline = now() + 5;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_io(true, deadline)) return;
    } else {
      return;
    }
  }
}

void TlsClient::send(std::string_view bytes) {
  if (!tls()) return send_raw(bytes);
  size_t off = 0;
  double deadline = now() + 5;
  while (off < bytes.size()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, bytes.data() + off, static_cast<int>(bytes.size() - off));
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    if ((e == SSL_ERROR_WANT_WRITE && wait_io(true, deadline)) ||
        (e == SSL_ERROR_WANT_READ && wait_io(false, deadline)))
      continue;
    error_ = "SSL_write: " + ssl_errors();
    return;
  }
}

bool TlsClient::fill(double deadline) {
  if (fd_ < 0 || eof_) return false;
  char buf[65536];
  if (tls()) {
    for (;;) {
      ERR_clear_error();
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        buf_.append(buf, static_cast<size_t>(n));
        return true;
      }
      int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_WANT_READ) {
        if (!wait_io(false, deadline)) return false;
        continue;
      }
      if (e == SSL_ERROR_WANT_WRITE) {
        if (!wait_io(true, deadline)) return false;
        continue;
      }
      if (e == SSL_ERROR_ZERO_RETURN)
        close_notify = true;
      else
        error_ = "SSL_read: error " + std::to_string(e) + " " + ssl_errors();
      eof_ = true;
      return false;
    }
  }
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      buf_.append(buf, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_io(false, deadline)) return false;
      continue;
    }
    eof_ = true;
    return false;
  }
}

bool TlsClient::handshake(const TlsOptions &o) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  if (ssl_) {
    error_ = "TLS already started";
    return false;
  }
  ctx_ = make_ctx(o, error_);
  if (!ctx_) return false;
  ssl_ = make_ssl(ctx_, o);
  SSL_set_fd(ssl_, fd_);
  buf_.clear();  // plaintext bytes after the 220 would be the server's error; TLS starts here
  double deadline = now() + o.timeout;
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(ssl_);
    if (r == 1) break;
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (wait_io(e == SSL_ERROR_WANT_WRITE, deadline)) continue;
      error_ = "handshake timed out";
      return false;
    }
    error_ = "handshake failed: SSL_get_error " + std::to_string(e);
    std::string q = ssl_errors();
    if (!q.empty()) error_ += ": " + q;
    if (e == SSL_ERROR_SYSCALL) error_ += " (connection closed or reset)";
    long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK) error_ += std::string(" verify: ") + X509_verify_cert_error_string(v);
    return false;
  }
  handshake_ok_ = true;
  eof_ = false;
  return true;
}

bool TlsClient::starttls(const TlsOptions &o, const std::string &helo) {
  banner = reply(o.timeout);
  if (banner.rfind("220", 0) != 0) {
    error_ = "banner: '" + banner + "'";
    return false;
  }
  ehlo_plain = cmd("EHLO " + helo, o.timeout);
  if (ehlo_plain.rfind("250", 0) != 0) {
    error_ = "EHLO: '" + ehlo_plain + "'";
    return false;
  }
  starttls_reply = cmd("STARTTLS", o.timeout);
  if (starttls_reply.rfind("220", 0) != 0) {
    error_ = "STARTTLS: '" + starttls_reply + "'";
    return false;
  }
  return handshake(o);
}

std::string TlsClient::protocol() const {
  return tls() ? SSL_get_version(ssl_) : "";
}

std::string TlsClient::cipher() const {
  return tls() ? SSL_get_cipher_name(ssl_) : "";
}

int TlsClient::cipher_bits() const {
  return tls() ? SSL_get_cipher_bits(ssl_, nullptr) : 0;
}

long TlsClient::verify_result() const {
  return ssl_ ? SSL_get_verify_result(ssl_) : -1;
}

bool TlsClient::session_reused() const {
  return tls() && SSL_session_reused(ssl_);
}

std::string TlsClient::peer_cn() const {
  X509 *x = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  return name_entry(x, NID_commonName);
}

std::string TlsClient::peer_org() const {
  X509 *x = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  return name_entry(x, NID_organizationName);
}

std::vector<std::string> TlsClient::peer_dns() const {
  std::vector<std::string> out;
  X509 *x = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  if (!x) return out;
  auto *names =
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_DNS) continue;
    const ASN1_IA5STRING *s = g->d.dNSName;
    out.emplace_back(reinterpret_cast<const char *>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string TlsClient::peer_fingerprint() const {
  X509 *x = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  if (!x) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(x, EVP_sha256(), md, &n) != 1) return "";
  static const char *hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

bool TlsClient::key_update(bool request) {
  if (!tls()) return false;
  if (SSL_key_update(ssl_, request ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) != 1)
    return false;
  // The message goes out with the next write or handshake call; a few bytes on a fresh
  // socket buffer, so one call on the non-blocking socket sends it.
  int rc = SSL_do_handshake(ssl_);
  ERR_clear_error();
  return rc == 1;
}

bool TlsClient::send_close_notify() {
  if (!ssl_ || !handshake_ok_) return false;
  double deadline = now() + 5;
  for (;;) {
    int rc = SSL_shutdown(ssl_);  // 0: our close_notify is out (the peer's is not awaited)
    if (rc >= 0) return true;
    int err = SSL_get_error(ssl_, rc);
    if (err != SSL_ERROR_WANT_WRITE || !wait_io(true, deadline)) return false;
  }
}

void TlsClient::abort_now() {
  if (fd_ < 0) return;
  linger l{1, 0};  // RST, as a client that crashed
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd_);
  fd_ = -1;
}

// ---- openssl s_server ----------------------------------------------------------------------

SServer::SServer(const std::vector<std::string> &args) {
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return;
  out_path_ = tmpl;
  for (int attempt = 0; attempt < 3 && port_ == 0; ++attempt) {
    int port = free_port(SOCK_STREAM);
    std::vector<std::string> full = {"openssl", "s_server", "-accept",
                                     "127.0.0.1:" + std::to_string(port)};
    full.insert(full.end(), args.begin(), args.end());
    if (ftruncate(fd, 0) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(open("/dev/null", O_RDONLY), 0);
      exec_program(fd, full);
    }
    double deadline = now() + 5;
    while (now() < deadline) {
      if (output().find("ACCEPT") != std::string::npos) {
        port_ = port;
        break;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;  // e.g. the port was taken in between: try another
      }
      usleep(10000);
    }
    if (port_ == 0 && pid_ > 0) {  // never ready: stop this one before the next attempt
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  close(fd);
}

SServer::~SServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  if (!out_path_.empty()) unlink(out_path_.c_str());
}

std::string SServer::output() const {
  return slurp(out_path_);
}

}  // namespace itest::tls
