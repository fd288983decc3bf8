// tests/integration/tls_client.hpp: an SMTP test client that can switch to TLS: plain TCP with
// the harness SmtpClient's reply reading, STARTTLS or implicit TLS through OpenSSL on the same
// socket (non-blocking, every wait bounded), the peer's certificate and session details, and
// raw access for the hostile cases (bytes outside TLS, a ClientHello to a plain port).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace itest::tls {

struct TlsOptions {
  std::string sni;           // server name sent in the ClientHello; "" = none
  std::string cafile;        // verify the server against this bundle; "" = no verification
  std::string verify_name;   // with cafile: the host name (or IP) the certificate must match
  std::string cert, key;     // client certificate and key; "" = none
  int min_version = 0;       // TLS1_2_VERSION etc.; 0 = OpenSSL's default
  int max_version = 0;       // 0 = OpenSSL's default (TLS 1.3)
  std::string ciphersuites;  // TLS 1.3 suites the client offers; "" = OpenSSL's default
  double timeout = 5;        // seconds for the handshake
};

// A ClientHello as a client with `o` would send it (the first flight's bytes).
std::string client_hello(const TlsOptions &o = {});

// The SMTP helpers (reply, cmd, closed, read_some, read_until, ...) are the harness's
// SmtpClient; this class supplies the transport: the plain socket, then TLS once it is up.
class TlsClient : public SmtpClient {
 public:
  explicit TlsClient(int port);  // TCP connect to 127.0.0.1:port (plain)
  ~TlsClient() override;

  bool tls() const { return ssl_ != nullptr && handshake_ok_; }

  // ---- SMTP, over TLS once it is up ----
  void send(std::string_view bytes) override;
  // closed(): over TLS `close_notify` says whether the close came with a TLS close_notify
  // (SSL_ERROR_ZERO_RETURN). read_some() returns plaintext.

  // ---- TLS ----
  // Handshake on the socket as it is now; false with error() set.
  bool handshake(const TlsOptions &o);
  // Banner, "EHLO <helo>", "STARTTLS" (expects 220), handshake. The replies are kept in
  // banner / ehlo_plain / starttls_reply; false with error() set at the first step that failed.
  bool starttls(const TlsOptions &o = {}, const std::string &helo = "client.example");
  const std::string &error() const { return error_; }
  std::string protocol() const;  // "TLSv1.3"
  std::string cipher() const;    // "TLS_AES_256_GCM_SHA384"
  int cipher_bits() const;
  std::string peer_cn() const;                // subject CN of the server's certificate
  std::string peer_org() const;               // subject O
  std::vector<std::string> peer_dns() const;  // its DNS subjectAltNames
  std::string peer_fingerprint() const;       // SHA-256, lower-case hex without colons
  long verify_result() const;                 // X509_V_OK = 0
  bool session_reused() const;

  // ---- raw ----
  void send_raw(std::string_view bytes);  // on the socket, bypassing TLS
  // TLS 1.3: a KeyUpdate (RFC 8446 4.6.3) on its own, asking the peer to update too if
  // `request`; false if it could not be sent.
  bool key_update(bool request);
  void abort_now();  // close the socket at once (no close_notify)
  bool send_close_notify();  // a TLS close_notify alone; the socket stays open (no FIN)
  int fd() const { return fd_; }

  std::string banner, ehlo_plain, starttls_reply;
  bool close_notify = false;

 private:
  bool fill(double deadline) override;  // one read (plain or TLS) into buf_
  bool wait_io(bool want_write, double deadline);
  SSL_CTX *ctx_ = nullptr;
  SSL *ssl_ = nullptr;
  bool handshake_ok_ = false;
  std::string error_;
};

// Runs `openssl s_server` on 127.0.0.1 and a free port in the background (stdout/stderr in a
// file), for checking the client helper itself; stopped by PID in the destructor.
class SServer {
 public:
  explicit SServer(const std::vector<std::string> &args);
  ~SServer();
  SServer(const SServer &) = delete;
  SServer &operator=(const SServer &) = delete;
  bool started() const { return port_ > 0; }
  int port() const { return port_; }
  std::string output() const;

 private:
  int pid_ = -1;
  int port_ = 0;
  std::string out_path_;
};

}  // namespace itest::tls
