// delivery/engine.cpp: scheduling, grouping, caps, results and bounces (engine.hpp).
#include "delivery/engine.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "delivery/bounce.hpp"
#include "log/log.hpp"
#include "metrics/registry.hpp"
#include "queue/control_notify.hpp"

namespace uvs::delivery {

namespace {

std::string domain_of(const std::string &addr, const std::string &fallback) {
  size_t at = addr.rfind('@');
  std::string d = at == std::string::npos ? fallback : addr.substr(at + 1);
  for (char &c : d)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return d;
}

// A fresh queue id for a bounce: 'B', the time and a counter in base 62 (queue ids are
// [0-9A-Za-z], at most 31 characters).
std::string new_bounce_id() {
  static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  static uint64_t counter = 0;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  auto b62 = [](uint64_t v) {
    std::string s;
    do {
      s.insert(s.begin(), digits[v % 62]);
      v /= 62;
    } while (v);
    return s;
  };
  return "B" + b62(static_cast<uint64_t>(ts.tv_sec)) + b62(static_cast<uint64_t>(ts.tv_nsec)) +
         b62(static_cast<uint64_t>(getpid())) + b62(counter++);
}

// A message of at most kInlineBody bytes is read whole with its envelope (on the pool) and sent
// from memory: no file reads on the way out. In flight at most `concurrency` of them.
constexpr int64_t kInlineBody = 64 * 1024;

// The message file's size bytes when it has exactly that many and they are few; else null (the
// transport then reads the file as it sends).
std::shared_ptr<const std::string> read_small(int fd, int64_t size) {
  if (size < 0 || size > kInlineBody) return nullptr;
  auto body = std::make_shared<std::string>(static_cast<size_t>(size) + 1, '\0');
  size_t got = 0;
  while (got < body->size()) {
    ssize_t n = pread(fd, body->data() + got, body->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got != static_cast<size_t>(size)) return nullptr;  // not the size the envelope says
  body->resize(got);
  return body;
}

std::string reply_text(const RcptResult &r) {
  std::string s = std::to_string(r.code);
  if (!r.enhanced.empty()) s += " " + r.enhanced;
  if (!r.text.empty()) s += " " + r.text;
  return s;
}

}  // namespace

struct Engine::Entry {
  std::string id;
  queue::Envelope env;
  bool held = false;
  int rc = 0;
  int fd = -1;
  std::string err;
  std::vector<size_t> idx;            // recipients tried this time
  std::vector<RcptResult> results;    // their results, same order
  std::vector<std::string> relay_of;  // per tried recipient
  size_t groups_left = 0;
  std::string original;                     // for a bounce: the message's start
  std::shared_ptr<const std::string> body;  // the whole message, when small (kInlineBody)
  ~Entry() {
    if (fd >= 0) close(fd);
  }
};

struct Engine::Group {
  std::shared_ptr<Entry> e;
  std::string domain;
  std::vector<size_t> pos;  // positions in e->idx
  Destination dest;
};

Engine::Engine(uv_loop_t *loop, DnsFn dns)
    : loop_(loop),
      dns_(std::move(dns)),
      rng_(std::random_device{}()),
      control_(loop),
      tick_(loop),
      rescan_timer_(loop),
      discard_timer_(loop),
      grace_(loop) {}

Engine::~Engine() {
  *alive_ = false;
  stop();
}

int64_t Engine::now() const {
  return static_cast<int64_t>(time(nullptr));
}

void Engine::configure(const config::Settings &s) {
  cfg_ = s.delivery;
  hostname_ = cfg_.hostname.empty() ? s.hostname : cfg_.hostname;
  std::string err;
  RouteTable t;
  if (t.load(cfg_.routes, err))
    routes_ = std::move(t);
  else
    log::format(log::err, "", "", "delivery: %s; keeping the previous routes", err.c_str());
  self_.hostname = hostname_;
  if (!custom_bouncer_) bounce_ = make_dsn_bouncer(hostname_, cfg_.postmaster);
  if (transport_) transport_->configure(s);
}

bool Engine::start(const std::string &queue_dir, const config::Settings &s,
                   const std::vector<std::string> &bound, std::string &err) {
  configure(s);
  self_ = self_from_listeners(hostname_, bound);
  dir_ = queue_dir;
  q_ = std::make_unique<queue::QueueDir>(dir_);
  if (!q_->open(true, err) || !q_->lock_shared(err)) return false;
  std::string path = dir_ + "/" + std::string(queue::kControlName);
  if (control_.open(
          path, [this](const ControlCommand &c, std::string_view raw) { on_control(c, raw); },
          err) < 0)
    return false;
  running_ = true;
  log::format(log::info, "", "", "delivery: queue %s, control socket %s, %zu route(s)",
              dir_.c_str(), path.c_str(), cfg_.routes.size());
  rescan(true);
  return true;
}

void Engine::stop() {
  if (!running_) return;
  running_ = false;
  control_.close();
  tick_.stop();
  rescan_timer_.stop();
  discard_now();
  if (transport_) transport_->abort_all();
  waiting_.clear();
}

void Engine::shutdown(double grace, std::function<void()> done) {
  if (!running_) return done();
  running_ = false;
  draining_ = true;
  drained_ = std::move(done);
  control_.close();
  tick_.stop();
  rescan_timer_.stop();
  waiting_.clear();  // not started: they stay pending in their envelopes
  if (active_ == 0) return drain_done();
  log::format(log::notice, "", "", "delivery: %zu connection(s) finishing (grace %.0f s)", active_,
              grace);
  grace_.start(static_cast<uint64_t>(grace * 1000), [this] {
    log::format(log::notice, "", "", "delivery: grace period over: closing %zu connection(s)",
                active_);
    drain_done();
  });
}

void Engine::drain_done() {
  if (!draining_) return;
  draining_ = false;
  grace_.stop();
  discard_now();
  if (transport_) transport_->abort_all();  // the idle ones, and any still sending
  auto done = std::move(drained_);
  if (done) done();
}

struct Engine::Batch {
  uv_work_t req{};
  std::mutex mu;
  bool started = false;  // under mu: set by the pool thread; after it, nothing joins
  std::vector<std::pair<std::function<void()>, std::function<void()>>> jobs;
  std::shared_ptr<bool> alive;
  Engine *engine = nullptr;
};

void Engine::work(std::function<void()> w, std::function<void()> done, bool batch) {
  constexpr size_t kBatchMax = 32;
  if (Batch *b = batch ? pending_batch_ : nullptr) {
    std::lock_guard<std::mutex> lk(b->mu);
    if (!b->started && b->jobs.size() < kBatchMax) {
      b->jobs.emplace_back(std::move(w), std::move(done));
      return;
    }
  }
  auto *b = new Batch;
  b->req.data = b;
  b->alive = alive_;
  b->engine = this;
  b->jobs.emplace_back(std::move(w), std::move(done));
  int rc = uv_queue_work(
      loop_, &b->req,
      [](uv_work_t *r) {
        auto *b = static_cast<Batch *>(r->data);
        {
          std::lock_guard<std::mutex> lk(b->mu);
          b->started = true;
        }
        for (auto &j : b->jobs) j.first();
      },
      [](uv_work_t *r, int) {
        auto *b = static_cast<Batch *>(r->data);
        if (*b->alive) {
          if (b->engine->pending_batch_ == b) b->engine->pending_batch_ = nullptr;
          for (auto &j : b->jobs)
            if (*b->alive) j.second();
        }
        delete b;
      });
  if (rc < 0) {  // cannot happen with a live loop; do it inline rather than lose it
    b->jobs[0].first();
    b->jobs[0].second();
    delete b;
    return;
  }
  if (batch) pending_batch_ = b;  // a lone job takes no companions
}

void Engine::discard_now() {
  discard_timer_.stop();
  if (q_ && q_->retired_count()) q_->discard_retired();  // stopping: a few fsyncs on the loop
}

void Engine::discard_later() {
  auto discard = [this] { work([this] { q_->discard_retired(); }, [] {}, false); };
  if (!running_) return discard();  // stopping: now, not after a second
  if (discard_timer_.active()) return;
  discard_timer_.start(kDiscardMs, discard);
}

void Engine::on_control(const ControlCommand &c, std::string_view raw) {
  if (!running_) return;
  if (c.kind == ControlCommand::invalid) {
    log::format(log::warning, "", "", "delivery: control socket: unknown command \"%s\"",
                log::printable(raw, 80).c_str());
    return;
  }
  if (c.kind == ControlCommand::new_entry || !c.id.empty()) {
    log::format(log::debug, "", "", "delivery: control: %s %s",
                c.kind == ControlCommand::new_entry ? "new" : "flush", c.id.c_str());
    if (in_flight_.count(c.id))
      flush_again_.insert(c.id);
    else
      schedule_.set(c.id, now());
    if (c.kind == ControlCommand::flush)
      log::format(log::info, "", "", "%s: flush requested", c.id.c_str());
  } else {  // flush everything: the tool made them due; read the directory again
    log::format(log::info, "", "", "delivery: flush of the whole queue requested");
    for (const auto &id : in_flight_) flush_again_.insert(id);
    rescan(false);
  }
  pump();
}

void Engine::rescan(bool first) {
  if (!running_) return;
  if (scanning_) {  // the scan under way may predate the change: one more after it
    rescan_again_ = true;
    return;
  }
  scanning_ = true;
  auto res = std::make_shared<queue::ScanResult>();
  work([this, res] { *res = q_->scan(false); },  // alone: the whole queue's directories
       [this, res, first] {
         scanning_ = false;
         if (!running_) return;
         held_ = res->held;
         size_t added = 0;
         for (const auto &ent : res->entries) {
           if (in_flight_.count(ent.id)) continue;
           if (ent.state == queue::EntryState::held) {  // held since: not waiting any more
             schedule_.remove(ent.id);
             continue;
           }
           if (!schedule_.contains(ent.id)) ++added;
           schedule_.set(ent.id, ent.next_try);
         }
         if (first)
           log::format(log::info, "", "", "delivery: %zu entr%s to deliver, %zu held", res->waiting,
                       res->waiting == 1 ? "y" : "ies", res->held);
         rescan_timer_.start(static_cast<uint64_t>(cfg_.rescan_interval * 1000),
                             [this] { rescan(false); });
         (void)added;
         if (rescan_again_) {
           rescan_again_ = false;
           rescan(false);
         }
         pump();
       },
       false);
}

void Engine::arm() {
  int64_t due = schedule_.next_due();
  if (due < 0) return tick_.stop();
  int64_t wait = due - now();
  if (wait < 0) wait = 0;
  if (wait > 3600) wait = 3600;
  tick_.start(static_cast<uint64_t>(wait) * 1000 + (wait ? 0 : 1), [this] { pump(); });
}

void Engine::pump() {
  if (!running_) return;
  if (!transport_) return arm();
  size_t room = cfg_.concurrency > in_flight_.size() ? cfg_.concurrency - in_flight_.size() : 0;
  for (const auto &id : schedule_.take_due(now(), room)) begin(id);
  arm();
}

void Engine::begin(const std::string &id) {
  in_flight_.insert(id);
  // Entries and groups are owned by the callbacks that will still use them (thread-pool jobs,
  // DNS answers, the transport, the wait for a connection slot): whichever is dropped last,
  // also at shutdown when the transport or the queue of waiting groups lets go, frees them.
  auto e = std::make_shared<Entry>();
  e->id = id;
  work(
      [this, e] {
        e->rc = q_->load(e->id, e->env, e->held, e->err);
        if (e->rc == 0 && !e->held) {
          e->fd = open(q_->msg_path(e->id).c_str(), O_RDONLY | O_CLOEXEC);
          if (e->fd < 0) {
            e->rc = -errno;
            e->err = queue::io_error("open", q_->msg_path(e->id), errno);
          } else {
            e->body = read_small(e->fd, e->env.size);
          }
        }
      },
      [this, e] {
        if (e->rc == -ENOENT || (e->rc == 0 && e->held) || !running_) {
          in_flight_.erase(e->id);  // deleted or held meanwhile: nothing to do
          if (flush_again_.erase(e->id) && running_ && e->rc == 0 && !e->held)
            schedule_.set(e->id, now());
          return pump();
        }
        if (e->rc < 0) {
          log::format(log::err, "", "", "%s: cannot read the entry: %s; retried later",
                      e->id.c_str(), e->err.c_str());
          in_flight_.erase(e->id);
          schedule_.set(e->id, now() + static_cast<int64_t>(cfg_.retry_min));
          return pump();
        }
        if (e->env.next_try > now() && !flush_again_.count(e->id)) {
          // Its time changed since the index was made (an update by the tool): not yet due.
          in_flight_.erase(e->id);
          schedule_.set(e->id, e->env.next_try);
          return pump();
        }
        flush_again_.erase(e->id);
        route_entry(e);
      });
}

void Engine::route_entry(const std::shared_ptr<Entry> &e) {
  std::map<std::string, std::shared_ptr<Group>> groups;
  for (size_t i = 0; i < e->env.rcpts.size(); ++i) {
    if (e->env.rcpts[i].state != queue::RcptState::pending) continue;
    std::string d = domain_of(e->env.rcpts[i].address, hostname_);
    std::shared_ptr<Group> &g = groups[d];
    if (!g) {
      g = std::make_shared<Group>();
      g->e = e;
      g->domain = d;
    }
    g->pos.push_back(e->idx.size());
    e->idx.push_back(i);
  }
  e->results.resize(e->idx.size());
  e->relay_of.resize(e->idx.size());
  e->groups_left = groups.size();
  if (groups.empty()) return finish(e);
  for (auto &[d, g] : groups) {
    std::shared_ptr<Group> gp = g;
    resolve(dns_, routes_.lookup(d), d, static_cast<uint16_t>(cfg_.smtp_port), self_, rng_,
            [this, gp, alive = alive_](Destination dest) {
              if (!*alive) return;
              gp->dest = std::move(dest);
              if (gp->dest.code != 0) {
                RcptResult r{gp->dest.code, gp->dest.enhanced, gp->dest.text, ""};
                return group_done(gp, std::vector<RcptResult>(gp->pos.size(), r), "", "");
              }
              acquire(gp->dest.key, [this, gp] { run_group(gp); });
            });
  }
}

void Engine::acquire(const std::string &key, std::function<void()> go) {
  if (!running_) return;  // shutting down: the entry stays as it is
  if (active_ < cfg_.concurrency && active_by_dest_[key] < cfg_.destination_concurrency) {
    ++active_;
    ++active_by_dest_[key];
    return go();
  }
  waiting_.emplace_back(key, std::move(go));
}

void Engine::release(const std::string &key) {
  --active_;
  if (--active_by_dest_[key] == 0) active_by_dest_.erase(key);
  if (draining_ && active_ == 0) return drain_done();
  for (auto it = waiting_.begin(); it != waiting_.end() && active_ < cfg_.concurrency; ++it) {
    if (active_by_dest_[it->first] >= cfg_.destination_concurrency) continue;
    auto go = std::move(it->second);
    ++active_;
    ++active_by_dest_[it->first];
    waiting_.erase(it);
    go();
    return;
  }
}

void Engine::run_group(const std::shared_ptr<Group> &g) {
  const std::shared_ptr<Entry> &e = g->e;
  SendRequest r;
  r.id = e->id;
  r.dest = g->dest;
  r.from = e->env.sender;
  for (size_t p : g->pos) r.rcpts.push_back(e->env.rcpts[e->idx[p]].address);
  r.fd = e->fd;
  r.size = e->env.size;
  r.body = e->body;
  r.eightbit = e->env.body_8bitmime;
  r.smtputf8 = e->env.smtputf8;
  transport_->send(r, [this, g](SendResult res) {
    release(g->dest.key);
    group_done(g, std::move(res.rcpts), res.relay, res.tls);
  });
}

void Engine::group_done(const std::shared_ptr<Group> &g, std::vector<RcptResult> res,
                        const std::string &relay, const std::string &tls) {
  std::shared_ptr<Entry> e = g->e;
  for (size_t k = 0; k < g->pos.size(); ++k) {
    RcptResult r = k < res.size() ? res[k] : RcptResult{451, "4.3.0", "no result", ""};
    e->results[g->pos[k]] = r;
    e->relay_of[g->pos[k]] = relay.empty() ? (g->dest.code ? "none" : g->dest.key) : relay;
  }
  if (!tls.empty() && !relay.empty())
    log::format(log::info, "", "", "%s: TLS to %s: %s", e->id.c_str(), relay.c_str(), tls.c_str());
  if (--e->groups_left == 0) finish(e);
}

void Engine::finish(const std::shared_ptr<Entry> &e) {
  int64_t t = now();
  int64_t scheduled = e->env.next_try;  // when this attempt was due
  int attempts_before = e->env.attempts;
  AttemptOutcome out = apply_attempt(
      e->env, e->idx, e->results, t, static_cast<int64_t>(cfg_.retry_min),
      static_cast<int64_t>(cfg_.retry_max), static_cast<int64_t>(cfg_.max_queue_lifetime));
  double delay = static_cast<double>(t - e->env.arrival);
  for (size_t k = 0; k < e->idx.size(); ++k) {
    const queue::Recipient &r = e->env.rcpts[e->idx[k]];
    const char *status = r.state == queue::RcptState::delivered ? "sent"
                         : r.state == queue::RcptState::failed  ? "bounced"
                                                                : "deferred";
    metrics::inc(metrics::core().deliveries,
                 r.state == queue::RcptState::delivered ? metrics::Delivery::sent
                 : r.state == queue::RcptState::failed  ? metrics::Delivery::bounced
                                                        : metrics::Delivery::deferred);
    log::format_txn(r.state == queue::RcptState::pending ? log::notice : log::info, "", e->id,
                    "%s: to=<%s> relay=%s delay=%.0f status=%s (%s)", e->id.c_str(),
                    log::printable(r.address).c_str(), log::printable(e->relay_of[k]).c_str(),
                    delay, status, log::printable(reply_text(e->results[k]), 300).c_str());
  }
  // Recipients failed this time (including the expired ones): a notice to the sender.
  std::vector<size_t> failed = out.failed;
  auto bounce = std::make_shared<Bounce>();
  auto why = std::make_shared<std::string>();
  int64_t retry_until = 0;
  if (failed.empty() && !out.deferred.empty() && cfg_.delay_warning > 0) {
    // A delay warning once, at the first attempt after delay_warning seconds in the queue:
    // the attempt before this one (its due time less the wait before it) was earlier.
    int64_t dw = static_cast<int64_t>(cfg_.delay_warning);
    int64_t prev =
        attempts_before > 0
            ? scheduled - retry_delay(attempts_before, static_cast<int64_t>(cfg_.retry_min),
                                      static_cast<int64_t>(cfg_.retry_max))
            : e->env.arrival - 1;
    if (t - e->env.arrival >= dw && prev - e->env.arrival < dw) {
      failed = out.deferred;
      retry_until = e->env.arrival + static_cast<int64_t>(cfg_.max_queue_lifetime);
    }
  }
  BounceFn bouncer = failed.empty() ? BounceFn() : bounce_;
  std::string bounce_id = bouncer ? new_bounce_id() : "";
  auto rc = std::make_shared<int>(0);
  auto err = std::make_shared<std::string>();
  std::vector<size_t> changed = e->idx;
  queue::Envelope after = e->env;
  work(
      [this, e, bouncer, bounce, why, bounce_id, rc, err, changed, after, failed, t, out,
       retry_until] {
        if (bouncer) {
          // The original for the notice: the first 128 KiB of the message file (the composer
          // returns the whole message only up to 100 KiB).
          std::string orig(131072, '\0');
          ssize_t n = pread(e->fd, orig.data(), orig.size(), 0);
          orig.resize(n > 0 ? static_cast<size_t>(n) : 0);
          if (!bouncer(after, orig, failed, t, retry_until, bounce_id, *bounce, *why))
            bounce->message.clear();
          if (!bounce->message.empty()) {
            const std::string &m = bounce->message;
            int mfd = memfd_create("bounce", MFD_CLOEXEC);
            if (mfd >= 0 && write(mfd, m.data(), m.size()) == static_cast<ssize_t>(m.size())) {
              std::string berr;
              if (q_->store(bounce->env, mfd, bounce->env.size, berr) < 0) {
                *err = "bounce not stored: " + berr;
                *rc = -EIO;
              }
            } else {
              *err = std::string("bounce not stored: ") + strerror(errno);
              *rc = -EIO;
            }
            if (mfd >= 0) close(mfd);
          }
          if (*rc < 0) return;  // the entry stays as it was: retried (and bounced) later
        }
        if (out.finished) {
          *rc = q_->retire(e->id, *err);
          return;
        }
        *rc = q_->update(
            e->id,
            [&](queue::Envelope &cur) {
              for (size_t i : changed)
                if (i < cur.rcpts.size() && i < after.rcpts.size()) cur.rcpts[i] = after.rcpts[i];
              cur.attempts = after.attempts;
              cur.next_try = after.next_try;
              cur.last_error = after.last_error;
            },
            *err);
      },
      [this, e, rc, err, bounce, why, out, retry_until] {
        if (*rc < 0 && *rc != -ENOENT)
          log::format(log::err, "", "", "%s: %s", e->id.c_str(), err->c_str());
        else if (!bounce->message.empty())
          log::format_txn(log::info, "", e->id, "%s: sender %s notification: %s", e->id.c_str(),
                          retry_until ? "delay" : "non-delivery", bounce->env.id.c_str());
        else if (!why->empty())
          log::format_txn(log::notice, "", e->id, "%s: no non-delivery notification: %s",
                          e->id.c_str(), why->c_str());
        if (!bounce->message.empty() && *rc == 0) schedule_.set(bounce->env.id, now());
        in_flight_.erase(e->id);
        bool again = flush_again_.erase(e->id) > 0;
        if (*rc == 0 && out.finished) {
          log::format_txn(log::info, "", e->id, "%s: removed", e->id.c_str());
          discard_later();
        } else if (*rc != -ENOENT && running_) {
          int64_t next = *rc < 0 ? now() + static_cast<int64_t>(cfg_.retry_min) : e->env.next_try;
          schedule_.set(e->id, again ? now() : next);
        }
        pump();
      },
      out.finished && !bouncer);  // a retire is quick; an update or a notice costs fsyncs
}

}  // namespace uvs::delivery
