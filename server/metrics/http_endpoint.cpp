// metrics/http_endpoint.cpp: the metrics endpoint's HTTP (see http_endpoint.hpp): request
// heads judged by judge_request(), one response per connection, then a half-close and a short
// wait for the client's FIN (so that unread input does not turn the close into a reset).
#include "metrics/http_endpoint.hpp"

#include <cstring>
#include <vector>

#include "metrics/exposition.hpp"
#include "util/sockaddr.hpp"

namespace uvs::metrics {

namespace {

constexpr size_t kMaxHeaders = 100;

bool tchar(char c) {  // RFC 9110 5.6.2 token characters
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!tchar(c)) return false;
  return true;
}

const char *reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

}  // namespace

HttpAnswer judge_request(std::string_view head) {
  HttpAnswer a;
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view l = head.substr(0, nl);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty()) {
      if (lines.empty()) continue;  // empty lines before the request line (RFC 9112 2.2)
      break;                        // the end of the head
    }
    lines.push_back(l);
  }
  a.status = 400;
  if (lines.empty()) return a;
  // request-line = method SP request-target SP HTTP-version (RFC 9112 3)
  std::string_view rl = lines[0];
  size_t sp1 = rl.find(' ');
  if (sp1 == std::string_view::npos) return a;
  size_t sp2 = rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) return a;
  std::string_view method = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = rl.substr(sp2 + 1);
  if (!token(method) || target.empty()) return a;
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return a;
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return a;
  if (lines.size() - 1 > kMaxHeaders) {
    a.status = 431;
    return a;
  }
  for (size_t i = 1; i < lines.size(); ++i) {  // field-name ":" ... (no obsolete folding)
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !token(lines[i].substr(0, colon))) return a;
    for (char c : lines[i])
      if (c == '\0' || c == '\r') return a;
  }
  if (version != "HTTP/1.0" && version != "HTTP/1.1") {
    a.status = 505;
    return a;
  }
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    a.status = 404;
    return a;
  }
  if (method != "GET" && method != "HEAD") {
    a.status = 405;
    return a;
  }
  a.status = 200;
  a.head = method == "HEAD";
  return a;
}

std::string http_response(const HttpAnswer &a, const std::function<std::string()> &render) {
  std::string body;
  std::string_view type = "text/plain; charset=utf-8";
  if (a.status == 200) {
    body = render ? render() : std::string();
    type = kContentType;
  } else {
    body = std::string(reason(a.status)) + "\n";
  }
  std::string r = "HTTP/1.1 " + std::to_string(a.status) + " " + reason(a.status) + "\r\n";
  r += "Content-Type: ";
  r += type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (a.status == 405) r += "Allow: GET, HEAD\r\n";
  r += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!a.head) r += body;
  return r;
}

// ---- the server ---------------------------------------------------------------------------

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
        c->out = http_response(a, ep->render_);
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
        if (rc < 0) ep->finish(c);
      });
}

void HttpEndpoint::finish(Conn *c) {
  if (c->closing) return;
  c->closing = true;
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
