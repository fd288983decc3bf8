// delivery/engine.hpp: the outbound delivery engine (docs/queue.md, "Delivery"). It belongs to
// the Server (one per process, kept across SIGHUP): it indexes the queue directory (scan at
// start and every rescan_interval), listens on the control socket, takes due entries, groups
// their pending recipients by destination, resolves each destination (route.hpp), holds the
// global and per-destination connection caps, sends through a Transport, records each
// recipient's result in the envelope (QueueDir::update), stores bounces as new entries with the
// null sender, and removes finished entries. All file I/O runs on the thread pool.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <uv.h>

#include "config/settings.hpp"
#include "delivery/control.hpp"
#include "delivery/route.hpp"
#include "delivery/schedule.hpp"
#include "delivery/transport.hpp"
#include "queue/queue_dir.hpp"
#include "util/timer.hpp"

namespace uvs::delivery {

// A composed notice and the envelope it is stored with (a new entry, null sender).
struct Bounce {
  std::string message;
  queue::Envelope env;
};
// Composes the notice about env's recipients at `rcpts` (indexes) from the original message's
// start: a bounce (they failed) or, with retry_until > 0, a delay warning (they are still
// being retried until then). Runs on the thread pool. false when no notice is to be sent (the
// null sender without a postmaster, NOTIFY=NEVER...; `why` says so for the log).
using BounceFn = std::function<bool(
    const queue::Envelope &env, const std::string &original, const std::vector<size_t> &rcpts,
    int64_t now, int64_t retry_until, const std::string &id, Bounce &out, std::string &why)>;

class Engine {
 public:
  Engine(uv_loop_t *loop, DnsFn dns);
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  // Opens the queue directory and the control socket, starts the scan. bound: the server's
  // listening "ip:port" (the loop check). false with err.
  bool start(const std::string &queue_dir, const config::Settings &s,
             const std::vector<std::string> &bound, std::string &err);
  // SIGHUP: new [delivery] settings and routes (the queue directory stays).
  void configure(const config::Settings &s);
  void set_transport(std::unique_ptr<Transport> t) { transport_ = std::move(t); }
  void set_bouncer(BounceFn b) {  // instead of make_dsn_bouncer (bounce.hpp)
    bounce_ = std::move(b);
    custom_bouncer_ = true;
  }
  // Stops taking entries, closes the socket and timers, closes connections (envelopes stay
  // pending: a message in flight now is sent again after the restart).
  void stop();
  // SIGTERM: stops taking entries; the transactions in progress may finish within `grace`
  // seconds (their results are recorded), then the rest is closed as stop() does. done()
  // runs once nothing is sending any more (possibly before shutdown returns).
  void shutdown(double grace, std::function<void()> done);
  bool running() const { return running_; }
  // For the metrics: entries being delivered now, waiting in the schedule (for their next try
  // or a free connection), and held at the last scan of the directory.
  size_t active_entries() const { return in_flight_.size(); }
  size_t waiting_entries() const { return schedule_.size(); }
  size_t held_entries() const { return held_; }
  const std::string &queue_dir() const { return dir_; }

 private:
  struct Entry;
  struct Group;
  void on_control(const ControlCommand &c, std::string_view raw);
  void rescan(bool first);
  void pump();
  void arm();
  void begin(const std::string &id);
  void route_entry(const std::shared_ptr<Entry> &e);
  void run_group(const std::shared_ptr<Group> &g);
  void acquire(const std::string &key, std::function<void()> go);
  void release(const std::string &key);
  void group_done(const std::shared_ptr<Group> &g, std::vector<RcptResult> res,
                  const std::string &relay, const std::string &tls);
  void finish(const std::shared_ptr<Entry> &e);
  // Runs w on libuv's thread pool, then done on the loop (unless the engine is gone by then).
  // With batch, a job joins the batch that is queued but not started yet (at most 32), so while
  // the pool is busy the loads and removals of many entries share one wakeup; a batch runs in
  // order. Long jobs (the scan, fsync-bound updates and notices, discards) go alone.
  void work(std::function<void()> w, std::function<void()> done, bool batch = true);
  struct Batch;
  // Retired entries' messages are discarded every kDiscardMs, so one directory fsync
  // covers all the entries of a bucket retired in that time (QueueDir::retire()).
  static constexpr uint64_t kDiscardMs = 1000;
  void discard_later();
  void discard_now();  // stopping: the retired entries finished on the loop
  int64_t now() const;

  uv_loop_t *loop_;
  DnsFn dns_;
  std::string dir_;
  std::unique_ptr<queue::QueueDir> q_;
  config::DeliverySettings cfg_;
  std::string hostname_;
  RouteTable routes_;
  Self self_;
  std::mt19937 rng_;
  Schedule schedule_;
  std::set<std::string> in_flight_;
  std::set<std::string> flush_again_;  // "new"/"flush" for an entry in flight: due when done
  ControlSocket control_;
  Timer tick_, rescan_timer_, discard_timer_;
  Batch *pending_batch_ = nullptr;  // the batch new jobs join, until a pool thread starts it
  std::unique_ptr<Transport> transport_;
  BounceFn bounce_;
  bool custom_bouncer_ = false;
  size_t active_ = 0;  // connections (groups sending) in total
  std::map<std::string, size_t> active_by_dest_;
  std::deque<std::pair<std::string, std::function<void()>>> waiting_;
  bool running_ = false;
  bool draining_ = false;
  std::function<void()> drained_;
  Timer grace_;
  void drain_done();
  size_t held_ = 0;  // held entries at the last scan
  bool scanning_ = false;
  bool rescan_again_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace uvs::delivery
