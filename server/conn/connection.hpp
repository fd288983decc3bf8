// conn/connection.hpp: the transport under one SMTP session. `Connection` is what the session
// calls (reads on/off, writes with in-flight counters, input_pending, graceful and hard close,
// and the TLS seams); `ConnectionEvents` is what the session implements (bytes, EOF, write
// completion, close). The real one is conn/tcp_connection.hpp; tests use a fake.
#pragma once
#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>

namespace uvs::tls {
class TlsContext;
struct TlsDetails;
}  // namespace uvs::tls

namespace uvs {

class ConnectionEvents {
 public:
  // Bytes from the peer (plaintext once TLS is on), only while reading is on. After
  // close_gracefully() the connection reads and drops input itself: nothing is delivered.
  virtual void on_data(const char *p, size_t n) = 0;
  // No more bytes will come: UV_EOF, or a read error (< 0, a libuv error code). Not delivered
  // once close_gracefully() was called (the connection handles EOF itself then).
  virtual void on_eof(int status) = 0;
  // A write finished (the in-flight counters already count it out). Not delivered once
  // close_gracefully() was called.
  virtual void on_write_done() = 0;
  // A write failed (status < 0). The owner decides (it closes).
  virtual void on_write_error(int status) = 0;
  // close_gracefully(): the peer did not take the last writes in time; the connection closes
  // right after this returns.
  virtual void on_drain_timeout() = 0;
  // The handle is closed: the last event; the owner may destroy the connection now.
  virtual void on_closed() = 0;
  // The TLS handshake started by start_tls() finished / failed (OpenSSL's reason). After a
  // failure the owner closes; a TLS error later in the session is reported as a failure too.
  virtual void on_tls_ready() = 0;
  virtual void on_tls_failed(const std::string &reason) = 0;

 protected:
  ~ConnectionEvents() = default;
};

class Connection {
 public:
  virtual ~Connection() = default;

  // The receiver of the events (set once, before reading or writing).
  virtual void set_events(ConnectionEvents *ev) = 0;

  virtual const std::string &peer_ip() const = 0;
  virtual int peer_port() const = 0;
  virtual const std::string &local_ip() const = 0;
  virtual int local_port() const = 0;

  // The session decides when it wants input; bytes come through on_data.
  virtual void set_reading(bool on) = 0;
  virtual bool reading() const = 0;
  // Queues bytes for the peer; 0 or a libuv error code (nothing was queued then).
  virtual int write(std::string bytes) = 0;
  virtual size_t writes_in_flight() const = 0;
  virtual size_t write_bytes_in_flight() const = 0;
  // Bytes are waiting that have not been delivered yet (the kernel's buffer, MSG_PEEK);
  // false after EOF.
  virtual bool input_pending() = 0;

  // Graceful close: when the writes in flight are done (bounded by a drain time), shut the
  // write side down, read and drop what the peer still sends for a linger time (so it reads
  // the last reply instead of a reset), then close. Idempotent.
  virtual void close_gracefully() = 0;
  // Hard close now (pending writes end with UV_ECANCELED). on_closed() follows. Idempotent.
  virtual void close() = 0;
  virtual bool closed() const = 0;  // close() has begun

  // TLS: start a server-side handshake on this connection (TcpConnection puts its TLS filter
  // between the socket and the session; this default, kept for test fakes, answers -ENOTSUP),
  // and the details once the handshake is done (nullptr: plaintext or still handshaking).
  virtual int start_tls(std::shared_ptr<const tls::TlsContext> ctx) {
    (void)ctx;
    return -ENOTSUP;
  }
  virtual const tls::TlsDetails *tls() const { return nullptr; }
};

}  // namespace uvs
