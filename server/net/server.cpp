// net/server.cpp: listeners, accept and limits, signals, reload and shutdown (see server.hpp).
#include "net/server.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>

#include "config/plugin_lines.hpp"
#include "delivery/engine.hpp"
#include "delivery/smtpc_transport.hpp"
#include "log/log.hpp"
#include "log/setup.hpp"
#include "net/listen_socket.hpp"
#include "metrics/http_endpoint.hpp"
#include "metrics/registry.hpp"
#include "session/session.hpp"
#include "state/service.hpp"
#include "conn/tcp_connection.hpp"
#include "util/sockaddr.hpp"
#include "workers/link.hpp"

namespace uvs {

Server::Server(uv_loop_t *loop, std::shared_ptr<Generation> gen, Reloader reloader)
    : loop_(loop), services_(loop, gen->settings.hook_timeout), tls_(loop), resolver_(loop),
      gen_(std::move(gen)), reloader_(std::move(reloader)) {
  std::string err;
  if (resolver_.init(gen_->settings.dns_servers, gen_->settings.dns_timeout, err) == 0) {
    resolver_ok_ = true;
    services_.resolver = &resolver_;
    services_.dns_timeout = gen_->settings.dns_timeout;
  } else {
    log::format(log::err, "", "", "DNS resolver unavailable: %s", err.c_str());
  }
  session_ctx_.loop = loop_;
  session_ctx_.services = &services_;
  session_ctx_.resolver = resolver();
  session_ctx_.auth_lockout = &auth_lockout_;
  session_ctx_.closed = [this](Session *s) { session_closed(s); };
  session_ctx_.tls = [this] { return tls_.current(); };
  uv_signal_init(loop_, &sig_term_);
  uv_signal_init(loop_, &sig_int_);
  uv_signal_init(loop_, &sig_hup_);
  sig_term_.data = sig_int_.data = sig_hup_.data = this;
  uv_signal_start(&sig_term_, [](uv_signal_t *s, int) {
    static_cast<Server *>(s->data)->begin_shutdown("SIGTERM");
  }, SIGTERM);
  uv_signal_start(&sig_int_, [](uv_signal_t *s, int) {
    static_cast<Server *>(s->data)->begin_shutdown("SIGINT");
  }, SIGINT);
  uv_signal_start(&sig_hup_, [](uv_signal_t *s, int) { static_cast<Server *>(s->data)->reload(); },
                  SIGHUP);
}

Server::~Server() {
  metrics::core().queue = nullptr;
  // Handles still closing (the loop did not turn since close()): their callbacks use it.
  if (metrics_http_ && !metrics_http_->done()) (void)metrics_http_.release();
}

bool Server::listen_metrics(std::string &err, bool serve) {
  const config::MetricsSettings &m = gen_->settings.metrics;
  bound_metrics_ = m;
  if (m.listen.empty() || !serve) return true;
  metrics_http_ = std::make_unique<metrics::HttpEndpoint>(loop_, [] { return metrics::render(); });
  int rc = metrics_http_->listen(m.address.host, m.address.port);
  if (rc < 0) {
    err = net::bind_error(m.listen, m.address.port, rc, " for the metrics",
                          "change [metrics] listen");
    return false;
  }
  return true;
}

bool Server::start_delivery(std::string &err) {
  const auto &d = gen_->settings.delivery;
  if (!d.enabled) return true;
  std::string dir = d.queue_dir;
  if (dir.empty()) {
    std::vector<config::PluginLine> lines;
    std::string perr;
    if (config::parse_plugins_file(gen_->config_dir + "/plugins", lines, perr))
      for (const auto &l : lines)
        if (l.module == "queue/outbound" && l.args.size() == 1) {
          dir = l.args[0];
          break;
        }
  }
  if (dir.empty()) return true;  // no outbound queue: nothing to deliver
  delivery::DnsFn dns = [this](const std::string &name, Resolver::Type t, Resolver::Callback cb) {
    if (!resolver_ok_) return cb(-EIO, {});
    resolver_.query(name, t, gen_->settings.dns_timeout, std::move(cb));
  };
  delivery_ = std::make_unique<delivery::Engine>(loop_, dns);
  delivery_->set_transport(delivery::make_smtpc_transport(loop_, gen_->settings));
  if (!delivery_->start(dir, gen_->settings, bound_endpoints_, err)) {
    delivery_.reset();
    err = "delivery: " + err;
    return false;
  }
  metrics::core().queue = [this] {
    metrics::QueueGauges q;
    if (delivery_) {
      q.active = delivery_->active_entries();
      q.deferred = delivery_->waiting_entries();
      q.held = delivery_->held_entries();
    }
    return q;
  };
  return true;
}

namespace {

std::string listen_text(const std::vector<config::Listen> &list) {
  std::string out;
  for (const auto &l : list) {
    bool v6 = l.host.find(':') != std::string::npos;
    out += (out.empty() ? "" : ", ") + (v6 ? "[" + l.host + "]" : l.host) + ":" +
           std::to_string(l.port) + (l.sync_check ? "" : " (sync_check off)") +
           (l.tls == "starttls" ? "" : " (tls " + l.tls + ")") + (l.require_tls ? " (require_tls)" : "");
  }
  return out;
}

bool same_listen(const std::vector<config::Listen> &a, const std::vector<config::Listen> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].host != b[i].host || a[i].port != b[i].port || a[i].sync_check != b[i].sync_check ||
        a[i].tls != b[i].tls || a[i].require_tls != b[i].require_tls)
      return false;
  return true;
}

}  // namespace

bool Server::load_tls(std::string &err) {
  if (!gen_->settings.tls.enabled()) return true;
  if (tls_.reload(gen_->settings.tls, false)) return true;  // main prints the error
  err = tls_.last_error();
  return false;
}

bool Server::listen(std::string &err) {
  bound_listen_ = gen_->settings.listen;
  for (const auto &l : gen_->settings.listen) {
    auto *lst = new Listener;
    lst->server = this;
    lst->cfg = l;
    uv_tcp_init(loop_, &lst->tcp);
    lst->tcp.data = lst;
    listeners_.push_back(lst);
    sockaddr_storage ss;
    bool v6 = l.host.find(':') != std::string::npos;
    int rc = v6 ? uv_ip6_addr(l.host.c_str(), l.port, reinterpret_cast<sockaddr_in6 *>(&ss))
                : uv_ip4_addr(l.host.c_str(), l.port, reinterpret_cast<sockaddr_in *>(&ss));
    if (rc == 0) rc = uv_tcp_bind(&lst->tcp, reinterpret_cast<sockaddr *>(&ss), v6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t *>(&lst->tcp), 1024, on_connection);
    if (rc < 0) {
      err = net::listen_error(l, rc);
      return false;
    }
    note_bound(lst);
  }
  return true;
}

bool Server::adopt(const std::vector<int> &fds, std::string &err) {
  bound_listen_ = gen_->settings.listen;
  if (fds.size() != bound_listen_.size()) {
    err = "worker: " + std::to_string(fds.size()) + " listening socket(s) for " +
          std::to_string(bound_listen_.size()) + " listener(s)";
    return false;
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    auto *lst = new Listener;
    lst->server = this;
    lst->cfg = bound_listen_[i];
    uv_tcp_init(loop_, &lst->tcp);
    lst->tcp.data = lst;
    listeners_.push_back(lst);
    int rc = uv_tcp_open(&lst->tcp, fds[i]);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t *>(&lst->tcp), 1024, on_connection);
    if (rc < 0) {
      err = net::listen_error(lst->cfg, rc);
      return false;
    }
    note_bound(lst);
  }
  return true;
}

void Server::note_bound(Listener *lst) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getsockname(&lst->tcp, reinterpret_cast<sockaddr *>(&ss), &len);
  bound_endpoints_.push_back(net::bound_endpoint(lst->cfg, ss));
  bound_.push_back(net::listen_label(lst->cfg, ss, gen_->settings.tls.enabled()));
}

// Plugins may still owe completions (work on the thread pool that outlived the grace period):
// keep the completion queue open while any pending call lives, for a bounded time, so their
// handles are freed; then close it so the loop can end.
void Server::close_services() {
  if (services_.live_pending() == 0) return services_.close();
  double deadline = uv_now(loop_) / 1000.0 + kPendingDrainSeconds;
  drain_timer_ = std::make_unique<Timer>(loop_);
  std::function<void()> check = [this, deadline]() {
    if (services_.live_pending() == 0 || uv_now(loop_) / 1000.0 >= deadline) {
      if (services_.live_pending() > 0)
        log::format(log::warning, "", "", "exiting with %zu plugin call(s) never completed",
                    services_.live_pending());
      services_.close();
      drain_timer_.reset();
      return;
    }
    drain_timer_->start(20, drain_check_);
  };
  drain_check_ = check;
  drain_timer_->start(20, drain_check_);
}

void Server::announce() {
  for (const auto &b : bound_) log::format(log::notice, "", "", "listening on %s", b.c_str());
  if (metrics_http_)
    log::format(log::notice, "", "", "metrics endpoint on http://%s/metrics",
                metrics_http_->bound().c_str());
}

int Server::run() {
  uv_run(loop_, UV_RUN_DEFAULT);
  return 0;
}

void Server::on_connection(uv_stream_t *stream, int status) {
  auto *l = static_cast<Listener *>(stream->data);
  if (status < 0) {
    log::format(log::err, "", "", "accept: %s", uv_strerror(status));
    return;
  }
  l->server->accept_one(l);
}

void Server::accept_one(Listener *l) {
  uint64_t serial = ++serial_;
  auto conn = std::make_unique<TcpConnection>(loop_);
  if (conn->accept(reinterpret_cast<uv_stream_t *>(&l->tcp)) < 0) return;  // nothing accepted
  auto *s = new Session(session_ctx_, gen_, std::move(conn), l->cfg, serial);
  sessions_.insert(s);
  auto &m = metrics::core();
  ++m.connections;
  const auto &cfg = gen_->settings;
  const std::string &ip = s->peer_ip();
  uint32_t &count = per_ip_[ip];
  ++count;
  if (shutting_down_) {
    metrics::inc(m.refused, metrics::Refused::shutdown);
    s->refuse(make_reply(421, "4.3.2", cfg.hostname + " Service shutting down"),
              log::EndReason::shutdown);
  } else if (cfg.max_connections && sessions_.size() > cfg.max_connections) {
    metrics::inc(m.refused, metrics::Refused::max_connections);
    s->refuse(make_reply(421, "4.7.0", cfg.hostname + " Error: too many connections"),
              log::EndReason::limit);
  } else if (cfg.max_connections_per_ip && count > cfg.max_connections_per_ip) {
    metrics::inc(m.refused, metrics::Refused::max_connections_per_ip);
    s->refuse(make_reply(421, "4.7.0", cfg.hostname + " Error: too many connections from " + ip),
              log::EndReason::limit);
  } else {
    s->start();
  }
}

void Server::session_closed(Session *s) {
  // The address is the connection's, fixed at accept and kept until the session is deleted.
  if (sessions_.erase(s)) {
    auto pit = per_ip_.find(s->peer_ip());
    if (pit != per_ip_.end() && --pit->second == 0) per_ip_.erase(pit);
  }
  delete s;
  ++metrics::core().closed;
  maybe_finish();
}

void Server::begin_shutdown(const char *why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  log::format(log::notice, "", "", "%s: shutting down, %zu session(s) open", why, sessions_.size());
  for (auto *l : listeners_)
    uv_close(reinterpret_cast<uv_handle_t *>(&l->tcp),
             [](uv_handle_t *h) { delete static_cast<Listener *>(h->data); });
  listeners_.clear();
  if (metrics_http_) metrics_http_->close();
  std::vector<Session *> snapshot(sessions_.begin(), sessions_.end());
  for (auto *s : snapshot)
    if (sessions_.count(s)) s->shutdown_notice();
  grace_timer_ = std::make_unique<Timer>(loop_);
  grace_timer_->start(static_cast<uint64_t>(gen_->settings.shutdown_grace * 1000), [this] {
    log::format(log::notice, "", "", "grace period over: closing %zu session(s)", sessions_.size());
    std::vector<Session *> left(sessions_.begin(), sessions_.end());
    for (auto *s : left)
      if (sessions_.count(s)) s->force_close();
  });
  // Delivery: transactions in progress get the same grace; envelopes of what did not finish
  // stay pending (sent again after the restart).
  if (delivery_) {
    delivery_busy_ = true;
    delivery_->shutdown(gen_->settings.shutdown_grace, [this] {
      delivery_busy_ = false;
      maybe_finish();
    });
  }
  maybe_finish();
}

void Server::maybe_finish() {
  if (!shutting_down_ || finished_ || !sessions_.empty() || delivery_busy_) return;
  finished_ = true;
  grace_timer_.reset();
  uv_close(reinterpret_cast<uv_handle_t *>(&sig_term_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t *>(&sig_int_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t *>(&sig_hup_), nullptr);
  tls_.stop();           // the certificate watchers
  if (link_) link_->close();
  resolver_.shutdown();  // cancelled lookups complete their pending calls...
  close_services();      // ...and the completion queue drains what is still outstanding
  state::stop_current();  // shared-state operations still waiting: -ECANCELED
  log::format(log::notice, "", "", "all sessions closed; exiting");
}

bool Server::attach_supervisor(int fd, std::string &err) {
  link_ = std::make_unique<workers::Link>(loop_);
  // The supervisor serves the metrics endpoint: it asks each worker for its counters.
  return link_->open(
      fd, [this] { begin_shutdown("supervisor gone"); },
      [this](std::string_view line) {
        if (line == "metrics") link_->send_block("metrics", metrics::render());
      },
      err);
}

void Server::tell_supervisor(std::string_view line) {
  if (link_) link_->send(line);
}

void Server::set_generation(std::shared_ptr<Generation> gen) {
  services_.set_hook_timeout(gen->settings.hook_timeout);
  gen_ = std::move(gen);
}

void Server::reload() {
  if (shutting_down_) return;
  log::reopen();  // logrotate renamed the log file: open the path again, whatever the reload
  std::string err;
  auto gen = reloader_(err);
  if (!gen) {
    log::format(log::err, "", "", "SIGHUP: reload failed, keeping the running configuration: %s",
                err.c_str());
    return;
  }
  if (!same_listen(gen->settings.listen, bound_listen_)) {
    log::format(log::warning, "", "",
                "SIGHUP: 'listen' changed (now %s); a listen change needs a restart: still "
                "listening on %s",
                listen_text(gen->settings.listen).c_str(), listen_text(bound_listen_).c_str());
    gen->settings.listen = bound_listen_;
  }
  const config::MetricsSettings &nm = gen->settings.metrics;
  if (nm.listen != bound_metrics_.listen || nm.allow_remote != bound_metrics_.allow_remote) {
    log::format(log::warning, "", "",
                "SIGHUP: [metrics] changed (now listen = \"%s\"); it needs a restart: the metrics "
                "are still served %s%s",
                nm.listen.c_str(), bound_metrics_.listen.empty() ? "nowhere" : "on ",
                bound_metrics_.listen.c_str());
    gen->settings.metrics = bound_metrics_;
  }
  set_generation(std::move(gen));
  log::reload(gen_->settings);
  state::reload_settings(gen_->settings.state);  // the back end stays (its tables too)
  if (delivery_) delivery_->configure(gen_->settings);
  // New handshakes take the new certificates; sessions in TLS keep theirs. A pair that does
  // not load keeps the running one (the store logs why).
  if (gen_->settings.tls.enabled() || tls_.current()) tls_.reload(gen_->settings.tls);
  log::format(log::notice, "", "", "SIGHUP: configuration and plugins reloaded (%zu plugin instance(s)); "
              "listeners unchanged", gen_->plugins->instances.size());
}

}  // namespace uvs
