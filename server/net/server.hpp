// net/server.hpp: the process's listeners and sessions: accept with connection limits, the
// current Generation (swapped on SIGHUP), and graceful shutdown on SIGTERM/SIGINT.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <uv.h>

#include "dns/resolver.hpp"
#include "hooks/services.hpp"
#include "session/auth_lockout.hpp"
#include "tls/store.hpp"
#include "session/session_context.hpp"
#include "config/generation.hpp"
#include "util/timer.hpp"

namespace uvs {

class Session;
namespace delivery {
class Engine;
}
namespace workers {
class Link;
}
namespace metrics {
class HttpEndpoint;
}

class Server {
 public:
  using Reloader = std::function<std::shared_ptr<Generation>(std::string &err)>;
  Server(uv_loop_t *loop, std::shared_ptr<Generation> gen, Reloader reloader);
  ~Server();

  // Loads the [tls] certificates (before the privilege drop: keys are often root's only);
  // false with err naming the file when they do not load.
  bool load_tls(std::string &err);
  // Binds every listener of the generation.
  bool listen(std::string &err);
  // A worker process (server/workers/): listens on the sockets the supervisor bound, one per
  // listener of the generation, in order, instead of binding.
  bool adopt(const std::vector<int> &fds, std::string &err);
  // Binds the metrics endpoint ([metrics] listen; nothing when it is off).
  // serve = false (a worker process: its supervisor serves the endpoint): only notes the
  // settings, so that a reload compares with them.
  bool listen_metrics(std::string &err, bool serve = true);
  // Logs "listening on ADDR:PORT" for each listener: the server is ready (plugins loaded).
  void announce();
  // Runs until shutdown completes; returns the exit code.
  int run();

  uv_loop_t *loop() const { return loop_; }
  LoopServices &services() { return services_; }
  Resolver *resolver() { return resolver_ok_ ? &resolver_ : nullptr; }
  void begin_shutdown(const char *why);
  void reload();
  // Installs a new generation for new connections (after the privilege drop, and on reload).
  void set_generation(std::shared_ptr<Generation> gen);
  size_t session_count() const { return sessions_.size(); }
  // Starts the outbound delivery engine when [delivery] is enabled and there is a queue
  // directory ([delivery] queue_dir, else the plugins file's queue/outbound line). It lives as
  // long as the server (reloads re-read [delivery]). false with err when it cannot start.
  bool start_delivery(std::string &err);
  delivery::Engine *delivery() { return delivery_.get(); }
  // A worker process: the channel to its supervisor (workers/link.hpp). Its end (the
  // supervisor is gone) starts the graceful shutdown; it closes when the server finishes.
  bool attach_supervisor(int fd, std::string &err);
  // Tells the supervisor this worker serves (after the plugins are loaded).
  void tell_supervisor(std::string_view line);

 private:
  struct Listener {
    uv_tcp_t tcp;
    Server *server;
    config::Listen cfg;  // sync_check and TLS mode
  };
  static void on_connection(uv_stream_t *l, int status);
  void accept_one(Listener *l);
  void note_bound(Listener *l);  // bound_ and bound_endpoints_ from the socket's address
  void session_closed(Session *s);
  void maybe_finish();
  void close_services();
  static constexpr double kPendingDrainSeconds = 10;

  uv_loop_t *loop_;
  // Declared before gen_: destroyed after it, so plugins' fini can still reach them.
  LoopServices services_;
  tls::TlsStore tls_;  // the certificates in force (reloaded on SIGHUP and file changes)
  Resolver resolver_;
  bool resolver_ok_ = false;
  AuthLockout auth_lockout_;    // failed AUTH attempts per client IP (session_ctx_ points here)
  SessionContext session_ctx_;  // what every session gets (loop, services, resolver, closed)
  std::shared_ptr<Generation> gen_;
  Reloader reloader_;
  std::vector<Listener *> listeners_;
  std::unordered_set<Session *> sessions_;
  std::unordered_map<std::string, uint32_t> per_ip_;  // keyed by Session::peer_ip()
  uv_signal_t sig_term_, sig_int_, sig_hup_;
  std::unique_ptr<Timer> grace_timer_;
  std::unique_ptr<Timer> drain_timer_;
  std::function<void()> drain_check_;
  bool shutting_down_ = false;
  bool finished_ = false;
  uint64_t serial_ = 0;
  std::vector<std::string> bound_;  // "ADDR:PORT ..." per listener, for announce()
  std::vector<std::string> bound_endpoints_;  // "ip:port" per listener (delivery's loop check)
  std::unique_ptr<delivery::Engine> delivery_;
  bool delivery_busy_ = false;  // shutting down: the engine's transactions still finishing
  std::vector<config::Listen> bound_listen_;  // as configured at start (reload keeps these)
  std::unique_ptr<workers::Link> link_;       // a worker's channel to the supervisor
  config::MetricsSettings bound_metrics_;     // likewise
  std::unique_ptr<metrics::HttpEndpoint> metrics_http_;
};

}  // namespace uvs
