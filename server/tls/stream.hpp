// tls/stream.hpp: one server-side TLS connection over memory BIOs (no sockets): ciphertext
// from the peer goes in through feed(), plaintext comes out for the session, and whatever
// TLS must send (handshake, tickets, alerts, encrypted data) comes out as wire bytes for
// the transport to write.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

#include "tls/details.hpp"

namespace uvs::tls {

class TlsContext;

// Filled when the handshake completes.
class TlsStream {
 public:
  enum class Status {
    ok,              // nothing special (more input may be needed)
    handshake_done,  // the handshake completed in this call (reported once)
    closed,          // the peer sent close_notify (when that comes in the same input as the
                     // end of the handshake, handshake_done is returned and peer_closed() is set)
    error,           // fatal; error_reason() says why, wire_out may hold an alert
  };

  explicit TlsStream(std::shared_ptr<const TlsContext> ctx);
  ~TlsStream();
  TlsStream(const TlsStream &) = delete;
  TlsStream &operator=(const TlsStream &) = delete;

  // Ciphertext in; plaintext for the session appended to plain_out (records that follow the
  // handshake in the same input included), bytes to send appended to wire_out.
  Status feed(const char *p, size_t n, std::string &plain_out, std::string &wire_out);
  // Encrypts plain into wire_out. 0, -ENOTCONN before the handshake or after close/error,
  // -EIO when OpenSSL fails (error_reason() says why).
  int encrypt(std::string_view plain, std::string &wire_out);
  // Our close_notify (once) into wire_out.
  void close_notify(std::string &wire_out);

  bool handshake_done() const { return done_; }
  bool peer_closed() const { return closed_; }
  const TlsDetails &details() const { return details_; }
  // Bytes allocated by the two memory buffers between the transport and OpenSSL (OpenSSL's
  // own record buffers are released while idle and not counted).
  size_t buffer_capacity() const;
  const std::string &error_reason() const { return reason_; }

 private:
  void drain(std::string &wire_out);
  void fill_details();
  Status fail(int ret, const char *fallback);
  void trim_bios();  // done: large empty buffers replaced

  std::shared_ptr<const TlsContext> ctx_;
  SSL *ssl_ = nullptr;
  bool done_ = false, closed_ = false, failed_ = false, shutdown_sent_ = false;
  TlsDetails details_;
  std::string reason_;
};

}  // namespace uvs::tls
