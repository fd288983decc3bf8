// workers/supervisor.cpp: starting, watching and signalling the worker processes
// (supervisor.hpp).
#include "workers/supervisor.hpp"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "log/log.hpp"
#include "log/setup.hpp"
#include "metrics/exposition.hpp"
#include "metrics/http_endpoint.hpp"
#include "net/listen_socket.hpp"
#include "util/timer.hpp"
#include "uvs_build_config.h"
#include "workers/role.hpp"

namespace uvs::workers {

namespace {

// A worker that dies this soon after its start, kFastDeathsBeforeBackoff times in a row, is
// started again only after a wait: 1 s, doubled each time, at most kMaxBackoffMs.
constexpr uint64_t kFastDeathMs = 1000;
constexpr int kFastDeathsBeforeBackoff = 5;
constexpr uint64_t kMaxBackoffMs = 60000;
// After a stop, workers get shutdown_grace (and their plugins' draining time) plus this
// before they are killed.
constexpr double kStopSlackSeconds = 15;
// A scrape waits this long for the workers' counters, then serves the sum of those it has.
constexpr uint64_t kGatherTimeoutMs = 2000;

class Supervisor;

struct Slot {
  Supervisor *sup = nullptr;
  int index = 0;
  uv_process_t *proc = nullptr;
  uv_pipe_t *chan = nullptr;
  pid_t pid = 0;
  uint64_t started_ms = 0;
  bool alive = false;
  bool ready = false;
  bool hup_pending = false;  // a SIGHUP came while it was starting: sent once it is ready
  int fast_deaths = 0;
  std::string in;             // the channel's partial line
  size_t body_left = 0;       // bytes of a "metrics N" answer still to come
  std::string body;           // ... and those that came
  std::deque<uint64_t> asks;  // the scrapes waiting for its counters, oldest first
  std::unique_ptr<Timer> restart;
};

// One scrape of the metrics endpoint: the workers' answers as they come.
struct Gather {
  std::vector<std::string> parts;
  int pending = 0;
  std::function<void(std::string)> done;
  std::unique_ptr<Timer> timeout;
};

class Supervisor {
 public:
  Supervisor(uv_loop_t *loop, const SupervisorConfig &c) : loop_(loop), c_(c) {}

  int run() {
    if (!bind_all()) return 1;
    if (!listen_metrics()) {
      close_fds();
      return 1;
    }
    int n = static_cast<int>(c_.settings.workers);
    slots_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      slots_[i] = std::make_unique<Slot>();
      slots_[i]->sup = this;
      slots_[i]->index = i + 1;
      slots_[i]->restart = std::make_unique<Timer>(loop_);
    }
    watch_signals();
    // Worker 1 first, the others once it serves: plugins that set up shared state at init
    // (queue/outbound creates and cleans its queue directory when no other process holds it)
    // then find it made, never half made by a sibling starting at the same moment.
    start_first(0, 1);
    uv_run(loop_, UV_RUN_DEFAULT);
    return rc_;
  }

 private:
  // [metrics] listen: the endpoint, bound here (before any worker starts, as root if started
  // so); each scrape asks every serving worker for its counters and serves their sum.
  bool listen_metrics() {
    const config::MetricsSettings &m = c_.settings.metrics;
    if (m.listen.empty()) return true;
    http_ = std::make_unique<metrics::HttpEndpoint>(loop_, nullptr);
    int rc = http_->listen(m.address.host, m.address.port);
    if (rc < 0) {
      fprintf(stderr, "uvsmtpd: %s%s\n", c_.metrics_where.c_str(),
              net::bind_error(m.listen, m.address.port, rc, " for the metrics",
                              "change [metrics] listen")
                  .c_str());
      http_->close();
      uv_run(loop_, UV_RUN_NOWAIT);  // its handle closes before the endpoint goes
      http_.reset();
      return false;
    }
    http_->set_gather([this](std::function<void(std::string)> done) { gather(std::move(done)); });
    return true;
  }

  void gather(std::function<void(std::string)> done) {
    retired_timers_.clear();  // (not from inside one of their callbacks: this is a read's)
    uint64_t id = ++gather_serial_;
    Gather &g = gathers_[id];
    g.done = std::move(done);
    static const char kAsk[] = "metrics\n";
    for (auto &s : slots_) {
      if (!s->ready || !s->chan) continue;
      uv_buf_t b = uv_buf_init(const_cast<char *>(kAsk), sizeof kAsk - 1);
      if (uv_try_write(reinterpret_cast<uv_stream_t *>(s->chan), &b, 1) !=
          static_cast<int>(sizeof kAsk - 1))
        continue;
      s->asks.push_back(id);
      ++g.pending;
    }
    if (g.pending == 0) return finish_gather(id);
    g.timeout = std::make_unique<Timer>(loop_);
    g.timeout->start(kGatherTimeoutMs, [this, id] { finish_gather(id); });
  }

  // A worker's answer (or its absence: part empty, when it died) for scrape id.
  void gathered(uint64_t id, std::string part) {
    auto it = gathers_.find(id);
    if (it == gathers_.end()) return;  // timed out already
    if (!part.empty()) it->second.parts.push_back(std::move(part));
    if (--it->second.pending <= 0) finish_gather(id);
  }

  void finish_gather(uint64_t id) {
    auto it = gathers_.find(id);
    if (it == gathers_.end()) return;
    Gather g = std::move(it->second);
    gathers_.erase(it);
    size_t answered = g.parts.size();
    int serving = 0;
    for (auto &s : slots_) serving += s->ready ? 1 : 0;
    std::string own;
    metrics::family_head(own, "uvsmtpd_workers", "gauge", "Worker processes serving now.");
    metrics::sample(own, "uvsmtpd_workers", "", static_cast<uint64_t>(serving));
    metrics::family_head(own, "uvsmtpd_workers_scraped", "gauge",
                         "Worker processes whose counters are in this scrape.");
    metrics::sample(own, "uvsmtpd_workers_scraped", "", static_cast<uint64_t>(answered));
    metrics::family_head(own, "uvsmtpd_worker_restarts_total", "counter",
                         "Worker processes started again after they died.");
    metrics::sample(own, "uvsmtpd_worker_restarts_total", "", restarts_);
    g.parts.push_back(std::move(own));
    if (g.timeout) g.timeout->stop();
    std::string text = metrics::sum(g.parts);
    // The timer may be the caller: it goes with the loop's next turn, not now.
    if (g.timeout) retired_timers_.push_back(std::move(g.timeout));
    g.done(std::move(text));
  }

  // The channel's bytes: lines ("ready", "metrics N") and the N bytes after "metrics N".
  void feed(Slot &s, const char *p, size_t n) {
    while (n > 0) {
      if (s.body_left > 0) {
        size_t k = std::min(n, s.body_left);
        s.body.append(p, k);
        p += k;
        n -= k;
        s.body_left -= k;
        if (s.body_left == 0 && !s.asks.empty()) {
          uint64_t id = s.asks.front();
          s.asks.pop_front();
          std::string part = std::move(s.body);
          s.body.clear();
          gathered(id, std::move(part));
        }
        continue;
      }
      const char *nl = static_cast<const char *>(memchr(p, '\n', n));
      if (!nl) {
        s.in.append(p, n);
        return;
      }
      s.in.append(p, static_cast<size_t>(nl - p));
      n -= static_cast<size_t>(nl - p) + 1;
      p = nl + 1;
      std::string line = std::move(s.in);
      s.in.clear();
      if (line.rfind("metrics ", 0) == 0) {
        s.body_left = strtoull(line.c_str() + 8, nullptr, 10);
        s.body.clear();
        if (s.body_left == 0 && !s.asks.empty()) {
          uint64_t id = s.asks.front();
          s.asks.pop_front();
          gathered(id, "");
        }
        continue;
      }
      on_line(s, line);
    }
  }

  // The first start of slots [from, to): a worker that cannot be started fails the start.
  void start_first(size_t from, size_t to) {
    for (size_t i = from; i < to && i < slots_.size() && !stopping_; ++i) {
      if (!spawn(*slots_[i])) {
        fprintf(stderr, "uvsmtpd: cannot start worker %d: %s\n", slots_[i]->index,
                spawn_error_.c_str());
        rc_ = 1;
        stop("startup failure", SIGTERM);
      }
    }
  }

  bool bind_all() {
    for (const auto &l : c_.settings.listen) {
      int fd = net::bind_listen_socket(l);
      if (fd < 0) {
        fprintf(stderr, "uvsmtpd: %s%s\n", c_.listen_where.c_str(),
                net::listen_error(l, fd).c_str());
        close_fds();
        return false;
      }
      fds_.push_back(fd);
    }
    return true;
  }

  void close_fds() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }

  void watch_signals() {
    for (int signum : {SIGTERM, SIGINT, SIGHUP}) {
      auto *h = new uv_signal_t;
      uv_signal_init(loop_, h);
      h->data = this;
      uv_signal_start(
          h,
          [](uv_signal_t *h, int signum) {
            auto *self = static_cast<Supervisor *>(h->data);
            if (signum == SIGHUP)
              self->reload();
            else
              self->stop(signum == SIGTERM ? "SIGTERM" : "SIGINT", signum);
          },
          signum);
      signals_.push_back(h);
    }
  }

  bool spawn(Slot &s) {
    spawn_error_.clear();
    if (fds_.empty()) {
      spawn_error_ = "the listening sockets are closed";
      return false;
    }
    int nfd = static_cast<int>(fds_.size());
    std::vector<int> child_fds;
    for (int i = 0; i < nfd; ++i) child_fds.push_back(3 + i);
    std::vector<std::string> args = c_.args;
    for (auto &a : role_args(s.index, 3 + nfd, child_fds, c_.settings.listen)) args.push_back(a);
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    s.chan = new uv_pipe_t;
    uv_pipe_init(loop_, s.chan, 0);
    s.chan->data = &s;
    std::vector<uv_stdio_container_t> stdio(static_cast<size_t>(3 + nfd + 1));
    for (int i = 0; i < 3; ++i) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    }
    for (int i = 0; i < nfd; ++i) {
      stdio[3 + i].flags = UV_INHERIT_FD;
      stdio[3 + i].data.fd = fds_[i];
    }
    stdio[3 + nfd].flags =
        static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE);
    stdio[3 + nfd].data.stream = reinterpret_cast<uv_stream_t *>(s.chan);

    uv_process_options_t o{};
    o.file = "/proc/self/exe";  // this very binary, even if a newer one was installed meanwhile
    o.args = argv.data();
    o.exit_cb = on_exit;
    o.stdio_count = static_cast<int>(stdio.size());
    o.stdio = stdio.data();
    s.proc = new uv_process_t;
    s.proc->data = &s;
    s.started_ms = uv_now(loop_);
    int rc = uv_spawn(loop_, s.proc, &o);
    if (rc < 0) {
      spawn_error_ = uv_strerror(rc);
      uv_close(reinterpret_cast<uv_handle_t *>(s.proc),
               [](uv_handle_t *h) { delete reinterpret_cast<uv_process_t *>(h); });
      s.proc = nullptr;
      close_chan(s);
      return false;
    }
    s.pid = s.proc->pid;
    s.alive = true;
    s.ready = false;
    s.in.clear();
    s.body.clear();
    s.body_left = 0;
    uv_read_start(
        reinterpret_cast<uv_stream_t *>(s.chan),
        [](uv_handle_t *, size_t, uv_buf_t *b) {
          static char buf[65536];  // read callbacks run one at a time, on the loop
          *b = uv_buf_init(buf, sizeof buf);
        },
        [](uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
          auto *slot = static_cast<Slot *>(st->data);
          if (n < 0) {  // the worker is gone or going: its exit callback follows
            slot->sup->close_chan(*slot);
            return;
          }
          slot->sup->feed(*slot, b->base, static_cast<size_t>(n));
        });
    return true;
  }

  void close_chan(Slot &s) {
    if (!s.chan) return;
    uv_close(reinterpret_cast<uv_handle_t *>(s.chan),
             [](uv_handle_t *h) { delete reinterpret_cast<uv_pipe_t *>(h); });
    s.chan = nullptr;
  }

  void on_line(Slot &s, const std::string &line) {
    if (line != "ready" || s.ready) return;
    s.ready = true;
    if (stopping_) {  // started while a stop began: it got its signal already, or gets it now
      kill(s.pid, SIGTERM);
      return;
    }
    if (s.hup_pending) {
      s.hup_pending = false;
      kill(s.pid, SIGHUP);
    }
    if (!started_) {
      if (s.index == 1) start_first(1, slots_.size());
      for (auto &o : slots_)
        if (!o->ready) return;
      started_ = true;
      announce();
      return;
    }
    log::format(log::notice, "", "", "worker %d (pid %d) started again and serving", s.index,
                static_cast<int>(s.pid));
  }

  void announce() {
    for (size_t i = 0; i < fds_.size(); ++i) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      getsockname(fds_[i], reinterpret_cast<sockaddr *>(&ss), &len);
      log::format(log::notice, "", "", "listening on %s",
                  net::listen_label(c_.settings.listen[i], ss, c_.settings.tls.enabled()).c_str());
    }
    if (http_)
      log::format(log::notice, "", "",
                  "metrics endpoint on http://%s/metrics (the sum of %zu "
                  "worker processes)",
                  http_->bound().c_str(), slots_.size());
    log::format(log::notice, "", "", "uvsmtpd %s started (pid %d, %zu worker processes)",
                UVS_VERSION, static_cast<int>(getpid()), slots_.size());
  }

  static void on_exit(uv_process_t *p, int64_t status, int term_signal) {
    auto *s = static_cast<Slot *>(p->data);
    uv_close(reinterpret_cast<uv_handle_t *>(p),
             [](uv_handle_t *h) { delete reinterpret_cast<uv_process_t *>(h); });
    s->proc = nullptr;
    s->sup->exited(*s, status, term_signal);
  }

  void exited(Slot &s, int64_t status, int term_signal) {
    s.alive = false;
    std::deque<uint64_t> asks = std::move(s.asks);
    s.asks.clear();
    for (uint64_t id : asks) gathered(id, "");  // its counters are gone with it
    bool was_ready = s.ready;
    s.ready = false;
    s.hup_pending = false;
    close_chan(s);
    std::string how = term_signal ? "killed by signal " + std::to_string(term_signal) + " (" +
                                        strsignal(term_signal) + ")"
                                  : "exited with status " + std::to_string(status);
    if (stopping_) {
      log::format(term_signal || status ? log::warning : log::info, "", "", "worker %d (pid %d) %s",
                  s.index, static_cast<int>(s.pid), how.c_str());
      return maybe_finish();
    }
    if (!started_ && !was_ready) {
      // The first start failed (its error is on stderr): a start of the whole server fails.
      fprintf(stderr, "uvsmtpd: worker %d (pid %d) %s while starting; stopping\n", s.index,
              static_cast<int>(s.pid), how.c_str());
      rc_ = 1;
      return stop("startup failure", SIGTERM);
    }
    uint64_t lived = uv_now(loop_) - s.started_ms;
    s.fast_deaths = lived < kFastDeathMs ? s.fast_deaths + 1 : 0;
    uint64_t wait = 0;
    if (s.fast_deaths >= kFastDeathsBeforeBackoff) {
      int shift = s.fast_deaths - kFastDeathsBeforeBackoff;
      wait = shift >= 6 ? kMaxBackoffMs : std::min<uint64_t>(kMaxBackoffMs, 1000ULL << shift);
      log::format(log::err, "", "",
                  "worker %d (pid %d) %s, within 1 s of its start %d times in a "
                  "row: next start in %llu s (see the lines above for why it dies)",
                  s.index, static_cast<int>(s.pid), how.c_str(), s.fast_deaths,
                  static_cast<unsigned long long>(wait / 1000));
    } else {
      log::format(log::err, "", "", "worker %d (pid %d) %s; starting it again", s.index,
                  static_cast<int>(s.pid), how.c_str());
    }
    Slot *sp = &s;
    s.restart->start(wait, [this, sp] { start_again(*sp); });
  }

  void start_again(Slot &s) {
    if (stopping_ || s.alive) return;
    ++restarts_;
    if (!spawn(s)) {
      log::format(log::err, "", "", "cannot start worker %d: %s", s.index, spawn_error_.c_str());
      s.started_ms = uv_now(loop_);
      exited_spawn_failure(s);
    }
  }

  // A spawn that failed counts as a death right at the start (and backs off the same way).
  void exited_spawn_failure(Slot &s) {
    s.fast_deaths += 1;
    int shift = std::max(0, s.fast_deaths - kFastDeathsBeforeBackoff);
    uint64_t wait =
        shift >= 6 ? kMaxBackoffMs : std::min<uint64_t>(kMaxBackoffMs, 1000ULL << shift);
    Slot *sp = &s;
    s.restart->start(wait, [this, sp] { start_again(*sp); });
  }

  void reload() {
    if (stopping_) return;
    log::reopen();
    config::Settings fresh;
    std::string err;
    if (c_.reload && c_.reload(fresh, err)) {
      log::reload(fresh);
      if (fresh.workers != c_.settings.workers)
        log::format(log::warning, "", "",
                    "SIGHUP: 'workers' changed (now %u); a change of workers needs a restart: "
                    "still running %u",
                    fresh.workers, c_.settings.workers);
    }
    // A bad configuration is each worker's to report (and to keep its running one).
    int sent = 0;
    for (auto &s : slots_) {
      if (!s->alive) continue;
      if (s->ready) {
        kill(s->pid, SIGHUP);
        ++sent;
      } else {
        s->hup_pending = true;
      }
    }
    log::format(log::info, "", "", "SIGHUP: passed on to %d worker(s)", sent);
  }

  void stop(const char *why, int signum) {
    if (stopping_) return;
    stopping_ = true;
    close_fds();  // the workers hold their own copies until they stop listening
    int alive = 0;
    for (auto &s : slots_) alive += s->alive ? 1 : 0;
    log::format(log::notice, "", "", "%s: stopping %d worker(s)", why, alive);
    for (auto &s : slots_) {
      s->restart->stop();
      // A worker still starting has no handler yet: SIGTERM ends it (it has no sessions).
      if (s->alive) kill(s->pid, s->ready ? signum : SIGTERM);
    }
    kill_timer_ = std::make_unique<Timer>(loop_);
    kill_timer_->start(
        static_cast<uint64_t>((c_.settings.shutdown_grace + kStopSlackSeconds) * 1000), [this] {
          for (auto &s : slots_)
            if (s->alive) {
              log::format(log::warning, "", "",
                          "worker %d (pid %d) still running after the grace "
                          "period: killing it",
                          s->index, static_cast<int>(s->pid));
              kill(s->pid, SIGKILL);
            }
        });
    maybe_finish();
  }

  void maybe_finish() {
    if (!stopping_ || finished_) return;
    for (auto &s : slots_)
      if (s->alive) return;
    finished_ = true;
    kill_timer_.reset();
    while (!gathers_.empty()) finish_gather(gathers_.begin()->first);
    retired_timers_.clear();
    if (http_) http_->close();  // its handles close as the loop ends
    for (auto &s : slots_) s->restart.reset();
    for (auto *h : signals_)
      uv_close(reinterpret_cast<uv_handle_t *>(h),
               [](uv_handle_t *x) { delete reinterpret_cast<uv_signal_t *>(x); });
    signals_.clear();
    if (rc_ == 0) log::format(log::notice, "", "", "all workers have exited; exiting");
  }

  uv_loop_t *loop_;
  const SupervisorConfig &c_;
  std::vector<int> fds_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<uv_signal_t *> signals_;
  std::unique_ptr<Timer> kill_timer_;
  std::unique_ptr<metrics::HttpEndpoint> http_;
  std::map<uint64_t, Gather> gathers_;
  uint64_t gather_serial_ = 0;
  std::vector<std::unique_ptr<Timer>> retired_timers_;  // gather timers done with
  uint64_t restarts_ = 0;
  std::string spawn_error_;
  bool started_ = false;  // every worker reported ready once
  bool stopping_ = false;
  bool finished_ = false;
  int rc_ = 0;
};

}  // namespace

int run_supervisor(const SupervisorConfig &c) {
  uv_loop_t *loop = uv_default_loop();
  int rc;
  {
    Supervisor s(loop, c);
    rc = s.run();
  }
  uv_run(loop, UV_RUN_DEFAULT);  // the last close callbacks
  uv_loop_close(loop);
  return rc;
}

}  // namespace uvs::workers
