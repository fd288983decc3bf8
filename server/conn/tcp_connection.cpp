// conn/tcp_connection.cpp: TcpConnection (see tcp_connection.hpp).
#include "conn/tcp_connection.hpp"

#include <cerrno>
#include <sys/socket.h>

#include "tls/stream.hpp"
#include "util/sockaddr.hpp"

namespace uvs {

namespace {
constexpr size_t kReadChunk = 64 * 1024;
}

struct TcpConnection::WriteReq {
  uv_write_t req;
  std::string data;
};

struct TcpConnection::TlsSide {
  explicit TlsSide(std::shared_ptr<const tls::TlsContext> ctx) : stream(std::move(ctx)) {}
  tls::TlsStream stream;
  bool corked = false;  // inside read_tls(): writes gather in cork
  std::string cork;
  // input_pending() under TLS decrypts what the kernel holds (a record may carry no data: a
  // TLS 1.3 KeyUpdate, an alert); the plaintext, or the error or close_notify it met, waits
  // here and goes to the session ahead of anything read later, once reading is on.
  std::string stash;
  bool stash_due = false;
  std::unique_ptr<Timer> stash_timer;
  std::string pending;  // plaintext written before the handshake finished
};

TcpConnection::TcpConnection(uv_loop_t *loop) : close_timer_(loop) {
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
}

// Runs from operator delete (or the close callback of a detached connection): the handle is
// closed by then, so nothing of libuv's refers to this object any more.
TcpConnection::~TcpConnection() = default;

void TcpConnection::free_now(TcpConnection *c) {
  c->~TcpConnection();
  ::operator delete(c);
}

void TcpConnection::operator delete(TcpConnection *c, std::destroying_delete_t) {
  if (c->handle_closed_) return free_now(c);
  // The handle is open or closing: libuv still holds it (and this object around it). Detach:
  // no more events; callbacks still to come (cancelled writes, the close) find the flags.
  c->detached_ = true;
  c->ev_ = nullptr;
  c->close();  // no-op if closing already; the close callback frees
}

const tls::TlsDetails *TcpConnection::tls() const {
  return tls_ && tls_->stream.handshake_done() ? &tls_->stream.details() : nullptr;
}

int TcpConnection::accept(uv_stream_t *listener) {
  int rc = uv_accept(listener, stream());
  if (rc < 0) return rc;
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
    split_address(ss, peer_ip_, peer_port_);
  len = sizeof ss;
  if (uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
    split_address(ss, local_ip_, local_port_);
  return 0;
}

// ---- reading ----------------------------------------------------------------------------

// One read buffer per thread (so per loop): libuv calls on_read right after on_alloc, and what
// a read brings is copied (session input, TLS BIO) before on_read returns. No allocation per
// read, and no idle connection holds a buffer.
void TcpConnection::on_alloc(uv_handle_t *, size_t, uv_buf_t *buf) {
  thread_local std::unique_ptr<char[]> chunk(new char[kReadChunk]);
  buf->base = chunk.get();
  buf->len = kReadChunk;
}

void TcpConnection::on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  auto *c = static_cast<TcpConnection *>(s->data);
  if (!c->detached_) c->handle_read(n, buf);
}

void TcpConnection::start_reading() {
  if (reading_ || closed_) return;
  reading_ = true;
  uv_read_start(stream(), on_alloc, on_read);
}

void TcpConnection::set_reading(bool on) {
  if (graceful_ || closed_ || on == reading_) return;  // lingering: the connection reads
  if (on) {
    start_reading();
    // What input_pending() decrypted: delivered from the loop, never inside the caller.
    if (tls_ && tls_->stash_due) deliver_stash_soon();
    return;
  }
  reading_ = false;
  uv_read_stop(stream());
}

void TcpConnection::handle_read(ssize_t n, const uv_buf_t *buf) {
  if (n == 0 || closed_) return;
  if (n < 0) {
    // What input_pending() decrypted comes before the EOF.
    if (!graceful_ && tls_ && tls_->stash_due && reading_) read_tls(nullptr, 0);
    if (closed_) return;
    bool reported = eof_;  // a close_notify already gave on_eof
    eof_ = true;
    if (graceful_) {
      // Closing: nothing more to read; close once the last writes are out (or at once).
      if (writes_in_flight_ == 0) close();
      return;
    }
    if (reading_) {
      uv_read_stop(stream());
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
  tls_ = std::make_unique<TlsSide>(std::move(ctx));
  if (!tls_->stream.error_reason().empty()) {
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
    explicit Cork(TcpConnection *conn) : c(conn) { c->tls_->corked = true; }
    ~Cork() { c->uncork(); }
  } cork(this);
  TlsSide &t = *tls_;
  std::string plain, wire;
  plain.swap(t.stash);  // decrypted earlier by input_pending(): it comes first
  t.stash_due = false;
  bool was_done = t.stream.handshake_done();
  tls::TlsStream::Status st = t.stream.feed(p, n, plain, wire);
  if (!wire.empty()) write_wire(std::move(wire));  // handshake, tickets, alerts
  if (closed_) return;
  if (st == tls::TlsStream::Status::error) {
    if (ev_) ev_->on_tls_failed(t.stream.error_reason());  // the owner closes
    return;
  }
  if (!was_done && t.stream.handshake_done()) {
    if (!t.pending.empty()) {
      std::string early;
      early.swap(t.pending);
      write(std::move(early));
    }
    if (ev_) ev_->on_tls_ready();
    if (closed_ || graceful_) return;
  }
  if (!plain.empty() && ev_) ev_->on_data(plain.data(), plain.size());
  if (closed_ || graceful_ || !t.stream.peer_closed() || eof_) return;
  // close_notify: the peer sends nothing more (its TCP FIN may follow later).
  eof_ = true;
  if (reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
  if (ev_) ev_->on_eof(UV_EOF);
}

bool TcpConnection::input_pending() {
  if (eof_ || closed_) return false;
  if (tls_ && !tls_->stash.empty()) return true;
  uv_os_fd_t fd;
  if (uv_fileno(handle(), &fd) != 0) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return false;
  if (!tls_ || !tls_->stream.handshake_done() || graceful_) return true;
  // Under TLS a byte in the kernel is not yet a byte of input: the record may be a KeyUpdate
  // or another message with nothing for the session. Decrypt and look.
  pull_tls(fd);
  return !tls_->stash.empty();
}

void TcpConnection::pull_tls(int fd) {
  TlsSide &t = *tls_;
  char buf[16384];
  while (t.stash.empty()) {  // one piece of plaintext answers the question
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;  // nothing more now; EOF and errors come with libuv's next read
    std::string wire;
    tls::TlsStream::Status st = t.stream.feed(buf, static_cast<size_t>(n), t.stash, wire);
    if (!wire.empty()) write_wire(std::move(wire));  // our KeyUpdate, an alert
    if (st == tls::TlsStream::Status::error || t.stream.peer_closed()) {
      t.stash_due = true;  // read_tls() reports it (feed() repeats the error or the close)
      break;
    }
  }
  if (!t.stash.empty()) t.stash_due = true;
  if (t.stash_due) deliver_stash_soon();
}

void TcpConnection::deliver_stash_soon() {
  // From the loop, never inside the caller (the session is in the middle of a command), and
  // only while the session reads (set_reading(true) calls this again).
  TlsSide &t = *tls_;
  if (!t.stash_timer) t.stash_timer = std::make_unique<Timer>(tcp_.loop);
  t.stash_timer->start(0, [this] {
    if (tls_->stash_due && reading_ && !closed_ && !graceful_) read_tls(nullptr, 0);
  });
}

// ---- writing ----------------------------------------------------------------------------

int TcpConnection::write(std::string bytes) {
  if (closed_) return UV_ECANCELED;
  if (bytes.empty() || !tls_) return write_wire(std::move(bytes));
  if (!tls_->stream.handshake_done()) {
    tls_->pending += bytes;  // sent once the handshake is done
    return 0;
  }
  std::string wire;
  if (tls_->stream.encrypt(bytes, wire) < 0) return UV_EIO;
  return write_wire(std::move(wire));
}

int TcpConnection::write_wire(std::string bytes) {
  if (closed_) return UV_ECANCELED;
  if (bytes.empty()) return 0;
  if (tls_ && tls_->corked) {
    tls_->cork += bytes;
    return 0;
  }
  auto *w = new WriteReq;
  w->data = std::move(bytes);
  w->req.data = this;
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, stream(), &b, 1, on_write);
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
  auto *c = static_cast<TcpConnection *>(req->data);
  size_t bytes = w->data.size();
  delete w;
  if (!c->detached_) c->write_finished(bytes, status);
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
  if (!tls_) return;
  tls_->corked = false;
  if (tls_->cork.empty()) return;
  std::string bytes;
  bytes.swap(tls_->cork);
  int rc = write_wire(std::move(bytes));
  if (rc < 0 && !closed_ && ev_) ev_->on_write_error(rc);
}

void TcpConnection::close_gracefully() {
  if (graceful_ || closed_) return;
  if (tls_ && tls_->stream.handshake_done()) {  // RFC 8446 6.1: close_notify before the TCP FIN
    std::string wire;
    tls_->stream.close_notify(wire);
    write_wire(std::move(wire));
  }
  uncork();  // the last reply and the close_notify in one write, before the shutdown
  if (tls_) tls_->pending.clear();
  graceful_ = true;
  if (writes_in_flight_ == 0) return shutdown_write();
  // A peer that does not read would hold the connection forever: the last writes get
  // kCloseDrainMs, then the handle is closed (pending writes end with UV_ECANCELED).
  close_timer_.start(kCloseDrainMs, [this] {
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
  req->data = this;
  int rc = uv_shutdown(req, stream(), [](uv_shutdown_t *req, int) {
    auto *c = static_cast<TcpConnection *>(req->data);
    delete req;
    if (c->closed_) return;  // UV_ECANCELED: closed meanwhile (or detached)
    if (c->eof_) return c->close();
    c->close_timer_.start(kLingerMs, [c] { c->close(); });
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
  close_timer_.stop();
  if (tls_) tls_->stash_timer.reset();
  reading_ = false;
  uv_close(handle(), [](uv_handle_t *uh) {
    // libuv is done with the handle: nothing of it runs after this callback.
    auto *c = static_cast<TcpConnection *>(uh->data);
    c->handle_closed_ = true;
    if (c->detached_) return free_now(c);
    if (c->ev_) c->ev_->on_closed();  // may delete c (freed at once then)
  });
}

}  // namespace uvs
