// conn/tcp_connection.cpp: TcpConnection (see tcp_connection.hpp).
#include "conn/tcp_connection.hpp"

#include <cerrno>
#include <cstdlib>
#include <sys/socket.h>

#include "util/sockaddr.hpp"

namespace uvs {

namespace {
constexpr size_t kReadChunk = 64 * 1024;
}

struct TcpConnection::Handle {
  uv_tcp_t tcp;
  TcpConnection *owner;
  uv_stream_t *stream() { return reinterpret_cast<uv_stream_t *>(&tcp); }
  uv_handle_t *handle() { return reinterpret_cast<uv_handle_t *>(&tcp); }
};

struct TcpConnection::WriteReq {
  uv_write_t req;
  std::string data;
};

TcpConnection::TcpConnection(uv_loop_t *loop) : loop_(loop), h_(new Handle) {
  uv_tcp_init(loop, &h_->tcp);
  h_->owner = this;
  h_->tcp.data = h_;
}

TcpConnection::~TcpConnection() {
  if (!h_) return;      // closed, and the handle freed in its close callback
  h_->owner = nullptr;  // callbacks still to come (cancelled writes, close) find no owner
  if (!closed_)
    uv_close(h_->handle(), [](uv_handle_t *h) { delete static_cast<Handle *>(h->data); });
  // else the close callback already queued frees the handle
}

int TcpConnection::accept(uv_stream_t *listener) {
  int rc = uv_accept(listener, h_->stream());
  if (rc < 0) return rc;
  uv_tcp_nodelay(&h_->tcp, 1);
  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&h_->tcp, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
    split_address(ss, peer_ip_, peer_port_);
  len = sizeof ss;
  if (uv_tcp_getsockname(&h_->tcp, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
    split_address(ss, local_ip_, local_port_);
  return 0;
}

// ---- reading ----------------------------------------------------------------------------

void TcpConnection::on_alloc(uv_handle_t *, size_t, uv_buf_t *buf) {
  buf->base = static_cast<char *>(malloc(kReadChunk));
  buf->len = buf->base ? kReadChunk : 0;
}

void TcpConnection::on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  auto *h = static_cast<Handle *>(s->data);
  if (h->owner) h->owner->handle_read(n, buf);
  free(buf->base);
}

void TcpConnection::start_reading() {
  if (reading_ || closed_) return;
  reading_ = true;
  uv_read_start(h_->stream(), on_alloc, on_read);
}

void TcpConnection::set_reading(bool on) {
  if (graceful_ || closed_ || on == reading_) return;  // lingering: the connection reads
  if (on) {
    start_reading();
    // What input_pending() decrypted: delivered from the loop, never inside the caller.
    if (tls_stash_due_) deliver_stash_soon();
    return;
  }
  reading_ = false;
  uv_read_stop(h_->stream());
}

void TcpConnection::handle_read(ssize_t n, const uv_buf_t *buf) {
  if (n == 0 || closed_) return;
  if (n < 0) {
    // What input_pending() decrypted comes before the EOF.
    if (!graceful_ && tls_stash_due_ && reading_) read_tls(nullptr, 0);
    if (closed_) return;
    bool reported = eof_;  // a close_notify already gave on_eof
    eof_ = true;
    if (graceful_) {
      // Closing: nothing more to read; close once the last writes are out (or at once).
      if (writes_in_flight_ == 0) close();
      return;
    }
    if (reading_) {
      uv_read_stop(h_->stream());
      reading_ = false;
    }
    if (ev_ && !reported) ev_->on_eof(static_cast<int>(n));
    return;
  }
  if (graceful_) return;  // lingering: drop input
  if (tls_) return read_tls(buf->base, static_cast<size_t>(n));
  if (ev_) ev_->on_data(buf->base, static_cast<size_t>(n));
}

// ---- TLS --------------------------------------------------------------------------------

int TcpConnection::start_tls(std::shared_ptr<const tls::TlsContext> ctx) {
  if (closed_ || graceful_) return UV_ECANCELED;
  if (!ctx) return -EINVAL;
  if (tls_) return -EALREADY;
  // Writes already handed to libuv (the 220 to STARTTLS) go out in plaintext; what is read
  // from now on is the client's side of the handshake.
  tls_ = std::make_unique<tls::TlsStream>(std::move(ctx));
  if (!tls_->error_reason().empty()) {
    tls_.reset();
    return -ENOMEM;
  }
  return 0;
}

void TcpConnection::read_tls(const char *p, size_t n) {
  // What TLS and the session write while this input is handled (a ticket and the reply to a
  // command that came with the client's Finished; a last reply and the close_notify) goes out
  // in one write: fewer syscalls and segments on both sides.
  struct Cork {
    TcpConnection *c;
    explicit Cork(TcpConnection *conn) : c(conn) { c->corked_ = true; }
    ~Cork() { c->uncork(); }
  } cork(this);
  std::string plain, wire;
  plain.swap(tls_stash_);  // decrypted earlier by input_pending(): it comes first
  tls_stash_due_ = false;
  bool was_done = tls_->handshake_done();
  tls::TlsStream::Status st = tls_->feed(p, n, plain, wire);
  if (!wire.empty()) write_wire(std::move(wire));  // handshake, tickets, alerts
  if (closed_) return;
  if (st == tls::TlsStream::Status::error) {
    if (ev_) ev_->on_tls_failed(tls_->error_reason());  // the owner closes
    return;
  }
  if (!was_done && tls_->handshake_done()) {
    if (!tls_pending_.empty()) {
      std::string early;
      early.swap(tls_pending_);
      write(std::move(early));
    }
    if (ev_) ev_->on_tls_ready();
    if (closed_ || graceful_) return;
  }
  if (!plain.empty() && ev_) ev_->on_data(plain.data(), plain.size());
  if (closed_ || graceful_ || !tls_->peer_closed() || eof_) return;
  // close_notify: the peer sends nothing more (its TCP FIN may follow later).
  eof_ = true;
  if (reading_) {
    uv_read_stop(h_->stream());
    reading_ = false;
  }
  if (ev_) ev_->on_eof(UV_EOF);
}

bool TcpConnection::input_pending() {
  if (eof_ || closed_) return false;
  if (!tls_stash_.empty()) return true;
  uv_os_fd_t fd;
  if (uv_fileno(h_->handle(), &fd) != 0) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return false;
  if (!tls_ || !tls_->handshake_done() || graceful_) return true;
  // Under TLS a byte in the kernel is not yet a byte of input: the record may be a KeyUpdate
  // or another message with nothing for the session. Decrypt and look.
  pull_tls(fd);
  return !tls_stash_.empty();
}

void TcpConnection::pull_tls(int fd) {
  char buf[16384];
  while (tls_stash_.empty()) {  // one piece of plaintext answers the question
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;  // nothing more now; EOF and errors come with libuv's next read
    std::string wire;
    tls::TlsStream::Status st = tls_->feed(buf, static_cast<size_t>(n), tls_stash_, wire);
    if (!wire.empty()) write_wire(std::move(wire));  // our KeyUpdate, an alert
    if (st == tls::TlsStream::Status::error || tls_->peer_closed()) {
      tls_stash_due_ = true;  // read_tls() reports it (feed() repeats the error or the close)
      break;
    }
  }
  if (!tls_stash_.empty()) tls_stash_due_ = true;
  if (tls_stash_due_) deliver_stash_soon();
}

void TcpConnection::deliver_stash_soon() {
  // From the loop, never inside the caller (the session is in the middle of a command), and
  // only while the session reads (set_reading(true) calls this again).
  if (!tls_stash_timer_) tls_stash_timer_ = std::make_unique<Timer>(loop_);
  tls_stash_timer_->start(0, [this] {
    if (tls_stash_due_ && reading_ && !closed_ && !graceful_) read_tls(nullptr, 0);
  });
}

// ---- writing ----------------------------------------------------------------------------

int TcpConnection::write(std::string bytes) {
  if (closed_) return UV_ECANCELED;
  if (bytes.empty() || !tls_) return write_wire(std::move(bytes));
  if (!tls_->handshake_done()) {
    tls_pending_ += bytes;  // sent once the handshake is done
    return 0;
  }
  std::string wire;
  if (tls_->encrypt(bytes, wire) < 0) return UV_EIO;
  return write_wire(std::move(wire));
}

int TcpConnection::write_wire(std::string bytes) {
  if (closed_) return UV_ECANCELED;
  if (bytes.empty()) return 0;
  if (corked_) {
    cork_ += bytes;
    return 0;
  }
  auto *w = new WriteReq;
  w->data = std::move(bytes);
  w->req.data = h_;
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, h_->stream(), &b, 1, on_write);
  if (rc < 0) {
    delete w;
    return rc;
  }
  ++writes_in_flight_;
  write_bytes_in_flight_ += b.len;
  return 0;
}

void TcpConnection::on_write(uv_write_t *req, int status) {
  auto *w = reinterpret_cast<WriteReq *>(req);
  auto *h = static_cast<Handle *>(req->data);
  size_t bytes = w->data.size();
  delete w;
  if (h->owner) h->owner->write_finished(bytes, status);
}

void TcpConnection::write_finished(size_t bytes, int status) {
  --writes_in_flight_;
  write_bytes_in_flight_ -= bytes;
  if (closed_) return;
  if (status < 0) {
    if (ev_) ev_->on_write_error(status);
    return;
  }
  if (graceful_) {
    if (writes_in_flight_ == 0) shutdown_write();
    return;
  }
  if (ev_) ev_->on_write_done();
}

// ---- closing ----------------------------------------------------------------------------

void TcpConnection::uncork() {
  corked_ = false;
  if (cork_.empty()) return;
  std::string bytes;
  bytes.swap(cork_);
  int rc = write_wire(std::move(bytes));
  if (rc < 0 && !closed_ && ev_) ev_->on_write_error(rc);
}

void TcpConnection::close_gracefully() {
  if (graceful_ || closed_) return;
  if (tls_ && tls_->handshake_done()) {  // RFC 8446 6.1: close_notify before the TCP FIN
    std::string wire;
    tls_->close_notify(wire);
    write_wire(std::move(wire));
  }
  uncork();  // the last reply and the close_notify in one write, before the shutdown
  tls_pending_.clear();
  graceful_ = true;
  if (writes_in_flight_ == 0) return shutdown_write();
  // A peer that does not read would hold the connection forever: the last writes get
  // kCloseDrainMs, then the handle is closed (pending writes end with UV_ECANCELED).
  close_timer_ = std::make_unique<Timer>(loop_);
  close_timer_->start(kCloseDrainMs, [this] {
    if (ev_) ev_->on_drain_timeout();
    close();
  });
}

void TcpConnection::shutdown_write() {
  // All writes are done: shut down the write side, then read (and drop) what the peer still
  // sends for a moment, so it reads the last reply instead of a TCP reset.
  if (closed_ || write_shut_) return;
  write_shut_ = true;
  // The request is allocated only now: an idle connection does not carry it. libuv ends it
  // (UV_ECANCELED) before the handle's close callback frees the Handle.
  auto *req = new uv_shutdown_t;
  req->data = h_;
  int rc = uv_shutdown(req, h_->stream(), [](uv_shutdown_t *req, int) {
    auto *h = static_cast<Handle *>(req->data);
    delete req;
    TcpConnection *c = h->owner;
    if (!c || c->closed_) return;  // UV_ECANCELED: closed meanwhile
    if (c->eof_) return c->close();
    c->close_timer_ = std::make_unique<Timer>(c->loop_);
    c->close_timer_->start(kLingerMs, [c] { c->close(); });
    c->start_reading();
  });
  if (rc < 0) {
    delete req;
    close();
  }
}

void TcpConnection::close() {
  if (closed_) return;
  closed_ = true;
  close_timer_.reset();
  tls_stash_timer_.reset();
  reading_ = false;
  uv_close(h_->handle(), [](uv_handle_t *uh) {
    auto *h = static_cast<Handle *>(uh->data);
    TcpConnection *c = h->owner;
    if (c) {
      c->h_ = nullptr;  // freed below; the destructor must not touch it
      h->owner = nullptr;
    }
    delete h;
    if (c && c->ev_) c->ev_->on_closed();  // may destroy c
  });
}

}  // namespace uvs
