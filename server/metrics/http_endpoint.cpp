// metrics/http_endpoint.cpp: the metrics endpoint's connections (see http_endpoint.hpp): the
// request head read (bounded) and judged by judge_request(), one response per connection, then
// a half-close and a short wait for the client's FIN (so that unread input does not turn the
// close into a reset).
#include "metrics/http_endpoint.hpp"

#include <memory>

#include "metrics/http_request.hpp"
#include "util/sockaddr.hpp"

namespace uvs::metrics {

struct HttpEndpoint::Conn {
  HttpEndpoint *ep;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  std::string in, out;
  char rbuf[4096];
  bool answered = false;
  bool closing = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // false once finish() ran
  int handles = 0;  // not closed yet
  Conn *prev = nullptr, *next = nullptr;
};

HttpEndpoint::HttpEndpoint(uv_loop_t *loop, std::function<std::string()> render)
    : loop_(loop), render_(std::move(render)) {}

HttpEndpoint::~HttpEndpoint() = default;

int HttpEndpoint::listen(const std::string &host, uint16_t port) {
  sockaddr_storage ss{};
  bool v6 = host.find(':') != std::string::npos;
  int rc = v6 ? uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6 *>(&ss))
              : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in *>(&ss));
  if (rc < 0) return rc;
  uv_tcp_init(loop_, &tcp_);
  tcp_.data = this;
  tcp_inited_ = true;
  ++open_handles_;
  rc = uv_tcp_bind(&tcp_, reinterpret_cast<sockaddr *>(&ss), v6 ? UV_TCP_IPV6ONLY : 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t *>(&tcp_), 64, on_connection);
  if (rc < 0) return rc;
  listening_ = true;
  int len = sizeof ss;
  uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr *>(&ss), &len);
  std::string ip;
  int p = 0;
  split_address(ss, ip, p);
  bound_ = (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(p);
  return 0;
}

void HttpEndpoint::close() {
  if (tcp_inited_ && !uv_is_closing(reinterpret_cast<uv_handle_t *>(&tcp_))) {
    listening_ = false;
    uv_close(reinterpret_cast<uv_handle_t *>(&tcp_),
             [](uv_handle_t *h) { --static_cast<HttpEndpoint *>(h->data)->open_handles_; });
  }
  while (first_) {
    Conn *c = first_;
    first_ = c->next;  // finish() unlinks it too; move on first
    finish(c);
  }
}

void HttpEndpoint::on_connection(uv_stream_t *s, int status) {
  auto *ep = static_cast<HttpEndpoint *>(s->data);
  if (status < 0 || !ep->listening_) return;
  ep->accept_one();
}

void HttpEndpoint::accept_one() {
  auto *c = new Conn;
  c->ep = this;
  uv_tcp_init(loop_, &c->tcp);
  uv_timer_init(loop_, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  open_handles_ += 2;
  ++conns_;
  c->next = first_;
  if (first_) first_->prev = c;
  first_ = c;
  if (uv_accept(reinterpret_cast<uv_stream_t *>(&tcp_), reinterpret_cast<uv_stream_t *>(&c->tcp)) <
      0)
    return finish(c);
  if (conns_ > kMaxConnections) {
    // Full: the oldest connection still owing its request goes (clients that connect and say
    // nothing cannot keep a scraper out); if every one is answered already, the newest waits
    // no more than they do and goes instead.
    Conn *oldest = nullptr;
    for (Conn *o = first_; o; o = o->next)
      if (!o->answered && o != c) oldest = o;
    finish(oldest ? oldest : c);
    if (!oldest) return;
  }
  uv_timer_start(
      &c->timer,
      [](uv_timer_t *t) { static_cast<Conn *>(t->data)->ep->finish(static_cast<Conn *>(t->data)); },
      kRequestTimeoutMs, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t *>(&c->tcp),
      [](uv_handle_t *h, size_t, uv_buf_t *b) {
        auto *c = static_cast<Conn *>(h->data);
        *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
      },
      [](uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
        auto *c = static_cast<Conn *>(s->data);
        HttpEndpoint *ep = c->ep;
        if (n < 0) return ep->finish(c);        // EOF or an error: whatever was owed is dropped
        if (c->answered || c->closing) return;  // the rest of what the client sends: ignored
        c->in.append(b->base, static_cast<size_t>(n));
        // The head ends with an empty line; leading empty lines do not count.
        size_t start = c->in.find_first_not_of("\r\n");
        size_t end = start == std::string::npos ? std::string::npos : c->in.find("\n\r\n", start);
        size_t end_lf = start == std::string::npos ? std::string::npos : c->in.find("\n\n", start);
        if (end == std::string::npos || (end_lf != std::string::npos && end_lf < end)) end = end_lf;
        HttpAnswer a;
        if (end != std::string::npos && end < HttpEndpoint::kMaxHead) {
          a = judge_request(std::string_view(c->in).substr(0, end + 1));
        } else if (c->in.size() >= HttpEndpoint::kMaxHead) {
          a.status = 431;
        } else {
          return;  // wait for more
        }
        c->answered = true;
        c->in.clear();
        c->in.shrink_to_fit();
        if (ep->gather_ && a.status == 200) {
          ep->gather_([c, a, alive = c->alive](std::string text) {
            if (!*alive) return;
            c->out = http_response(a, [&text] { return std::move(text); });
            c->ep->respond(c);
          });
          return;
        }
        c->out = http_response(a, ep->render_);
        ep->respond(c);
      });
}

void HttpEndpoint::respond(Conn *c) {
  uv_buf_t wb = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  c->wreq.data = c;
  int rc = uv_write(&c->wreq, reinterpret_cast<uv_stream_t *>(&c->tcp), &wb, 1,
                    [](uv_write_t *w, int status) {
                      auto *c = static_cast<Conn *>(w->data);
                      if (c->closing) return;
                      if (status < 0) return c->ep->finish(c);
                      c->sreq.data = c;
                      if (uv_shutdown(&c->sreq, reinterpret_cast<uv_stream_t *>(&c->tcp),
                                      [](uv_shutdown_t *, int) {}) < 0)
                        return c->ep->finish(c);
                      // Wait a little for the client's FIN (read callback: n < 0).
                      uv_timer_start(
                          &c->timer,
                          [](uv_timer_t *t) {
                            auto *c = static_cast<Conn *>(t->data);
                            c->ep->finish(c);
                          },
                          HttpEndpoint::kLingerMs, 0);
                    });
  if (rc < 0) finish(c);
}

void HttpEndpoint::finish(Conn *c) {
  if (c->closing) return;
  c->closing = true;
  *c->alive = false;
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (first_ == c) first_ = c->next;
  c->prev = c->next = nullptr;
  --conns_;
  auto closed = [](uv_handle_t *h) {
    auto *c = static_cast<Conn *>(h->data);
    --c->ep->open_handles_;
    if (--c->handles == 0) delete c;
  };
  uv_close(reinterpret_cast<uv_handle_t *>(&c->timer), closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&c->tcp), closed);
}

}  // namespace uvs::metrics
