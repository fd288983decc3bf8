// conn/tcp_connection.hpp: the Connection over a libuv TCP handle: accept, addresses, reads
// on/off, writes and their counters, MSG_PEEK, shutdown + linger + close, and libuv's handle
// lifetime rules: the libuv handle is part of this object (one allocation per connection), so
// the object's memory is freed only in the handle's close callback; deleting it before that only
// detaches it (its destroying operator delete closes the handle and frees it there).
// With TLS (STARTTLS or an implicit-TLS listener) a tls::TlsStream sits between the socket and
// the session: read bytes go through it before on_data, written bytes are encrypted first; that
// state is made by start_tls(), so a plaintext connection does not carry it.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <uv.h>

#include "conn/connection.hpp"
#include "util/timer.hpp"

namespace uvs {

class TcpConnection final : public Connection {
 public:
  static constexpr uint64_t kLingerMs = 2000;  // after the last reply: read and drop, then close
  static constexpr uint64_t kCloseDrainMs = 2000;  // graceful close: time the last writes get

  explicit TcpConnection(uv_loop_t *loop);
  ~TcpConnection() override;
  TcpConnection(const TcpConnection &) = delete;
  TcpConnection &operator=(const TcpConnection &) = delete;
  // `delete`: destroys and frees at once if the handle is closed, else detaches (no more
  // events), closes the handle and does both in its close callback. Always made with new.
  static void operator delete(TcpConnection *c, std::destroying_delete_t);

  // Takes the next connection from the listener; 0 or a libuv error code.
  int accept(uv_stream_t *listener);

  void set_events(ConnectionEvents *ev) override { ev_ = ev; }
  const std::string &peer_ip() const override { return peer_ip_; }
  int peer_port() const override { return peer_port_; }
  const std::string &local_ip() const override { return local_ip_; }
  int local_port() const override { return local_port_; }
  void set_reading(bool on) override;
  bool reading() const override { return reading_; }
  int write(std::string bytes) override;
  size_t writes_in_flight() const override { return writes_in_flight_; }
  size_t write_bytes_in_flight() const override { return write_bytes_in_flight_; }
  bool input_pending() override;
  void close_gracefully() override;
  void close() override;
  bool closed() const override { return closed_; }
  int start_tls(std::shared_ptr<const tls::TlsContext> ctx) override;
  const tls::TlsDetails *tls() const override;

 private:
  struct WriteReq;
  struct TlsSide;  // the TLS filter and its buffers (tcp_connection.cpp), made by start_tls()
  static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
  static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
  static void on_write(uv_write_t *req, int status);
  void handle_read(ssize_t n, const uv_buf_t *buf);
  void write_finished(size_t bytes, int status);
  void shutdown_write();  // graceful close, writes done: shutdown, then linger
  void start_reading();
  int write_wire(std::string bytes);  // to the socket as they are (ciphertext with TLS)
  void uncork();                      // hands what read_tls() gathered to the socket
  void read_tls(const char *p, size_t n);
  void pull_tls(int fd);  // input_pending() under TLS: decrypt what the kernel holds now
  void deliver_stash_soon();
  static void free_now(TcpConnection *c);  // destroy and free (the handle is closed)
  uv_stream_t *stream() { return reinterpret_cast<uv_stream_t *>(&tcp_); }
  uv_handle_t *handle() { return reinterpret_cast<uv_handle_t *>(&tcp_); }

  uv_tcp_t tcp_;  // tcp_.data == this
  ConnectionEvents *ev_ = nullptr;
  std::string peer_ip_, local_ip_;
  int peer_port_ = 0, local_port_ = 0;
  bool reading_ = false;
  bool eof_ = false;
  bool graceful_ = false;    // close_gracefully() called: the connection handles the rest
  bool write_shut_ = false;  // the shutdown has been started
  bool closed_ = false;      // close() has begun (uv_close called)
  bool handle_closed_ = false;  // the close callback ran
  bool detached_ = false;       // deleted while the handle was open: freed by the close callback
  size_t writes_in_flight_ = 0;
  size_t write_bytes_in_flight_ = 0;
  Timer close_timer_;             // graceful close: bounds the last writes, then the linger
  std::unique_ptr<TlsSide> tls_;  // after start_tls()
};

}  // namespace uvs
