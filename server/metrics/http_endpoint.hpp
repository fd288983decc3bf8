// metrics/http_endpoint.hpp: the metrics endpoint: a tiny HTTP/1.0 and 1.1 server on the loop
// that answers GET (and HEAD) /metrics with render()'s text and closes each connection after
// its response. It reads the request line and headers only (bounded), answers 400, 404, 405,
// 431 or 505 to anything else, never blocks, and drops clients that do not finish in time (or
// the oldest such when too many are open).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <uv.h>

#include "metrics/http_request.hpp"

namespace uvs::metrics {

class HttpEndpoint {
 public:
  static constexpr size_t kMaxHead = 8192;  // request line and headers together
  // At once; a connection over it closes the oldest that has not sent its request yet.
  static constexpr size_t kMaxConnections = 64;
  static constexpr uint64_t kRequestTimeoutMs = 10000;  // to send the whole head
  static constexpr uint64_t kLingerMs = 2000;           // after the response, for the client's FIN

  explicit HttpEndpoint(uv_loop_t *loop, std::function<std::string()> render);
  // The text gathered asynchronously instead of render() (the supervisor of worker processes
  // asks every worker): gather is called once per 200 response with a continuation to call,
  // once, with the body (on the loop, later or at once); a connection gone meanwhile is not
  // answered.
  using Gather = std::function<void(std::function<void(std::string)> done)>;
  void set_gather(Gather g) { gather_ = std::move(g); }
  ~HttpEndpoint();  // close() must have run and the loop turned (handles closed) — or never bound
  HttpEndpoint(const HttpEndpoint &) = delete;
  HttpEndpoint &operator=(const HttpEndpoint &) = delete;

  // Binds and listens on host:port (host as config::Listen has it, no brackets); 0 or a
  // negative libuv error. bound() is then "127.0.0.1:PORT" / "[::1]:PORT".
  int listen(const std::string &host, uint16_t port);
  const std::string &bound() const { return bound_; }
  // Stops listening and closes every connection (their handles close on the loop; the
  // endpoint can be deleted once done() reports true).
  void close();
  bool done() const { return open_handles_ == 0; }
  size_t connections() const { return conns_; }

 private:
  struct Conn;
  static void on_connection(uv_stream_t *s, int status);
  void accept_one();
  void finish(Conn *c);  // closes both handles; deletes c when they are closed
  void respond(Conn *c);  // writes c->out, then the half-close and the linger

  uv_loop_t *loop_;
  std::function<std::string()> render_;
  Gather gather_;
  uv_tcp_t tcp_;
  bool listening_ = false;
  bool tcp_inited_ = false;
  std::string bound_;
  size_t conns_ = 0;
  size_t open_handles_ = 0;  // the listener and every connection's handles not closed yet
  Conn *first_ = nullptr;    // the open connections (a list, for close())
};

}  // namespace uvs::metrics
