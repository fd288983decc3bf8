// hooks/services.cpp: the completion queue and the uvs_pending life cycle (see services.hpp).
#include "hooks/services.hpp"

#include <cerrno>
#include <new>

#include "dns/resolver.hpp"
#include "hooks/runner.hpp"

namespace uvs {

LoopServices::LoopServices(uv_loop_t *loop, double hook_timeout_s)
    : loop_(loop), hook_timeout_s_(hook_timeout_s), async_(new uv_async_t) {
  uv_async_init(loop_, async_, [](uv_async_t *a) { static_cast<LoopServices *>(a->data)->drain(); });
  async_->data = this;
}

LoopServices::~LoopServices() { close(); }

void LoopServices::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
  }
  drain();  // completions already posted still free their handles
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  async_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(async_),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_async_t *>(h); });
}

void LoopServices::post(Completion c) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return;  // shutting down: nobody waits any more
  queue_.push_back(std::move(c));
  uv_async_send(async_);  // coalesces: drain() takes the whole queue
}

void LoopServices::drain() {
  std::vector<Completion> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(queue_);
  }
  for (auto &c : batch) {
    uvs_pending *p = c.pending;
    ChainRun *run = p->run;
    CallHost *host = p->host;
    std::vector<PendingNote> notes;
    {
      std::lock_guard<std::mutex> lock(p->notes_mutex);
      notes.swap(p->notes);
    }
    pending::finish(p);  // detaches p from run, may free p
    if (!run) continue;
    // pending_note_set() (1.3): the notes a worker set, before the verdict is applied
    if (host)
      for (const auto &n : notes) {
        if (n.erase)
          host->notes(n.scope).erase(n.key);
        else
          host->notes(n.scope).set(n.key, n.value);
      }
    run->on_complete(c.verdict, c.code, c.enhanced, c.text);
  }
}

namespace pending {

uvs_pending *create(LoopServices *svc, uvs_call *call) {
  auto *p = new uvs_pending(svc);
  p->call = call;
  p->host = call->host;
  p->keep = call->host->keepalive();
  svc->pending_created();
  return p;
}

// The plugin has called complete() (perhaps not yet drained): no more callbacks for it.
static bool finished(const uvs_pending *p) { return p->completed || p->complete_called.load(); }

static void maybe_free(uvs_pending *p) {
  if (p->completed && p->work_in_flight == 0) {
    p->svc->pending_destroyed();
    delete p;
  }
}

static void end_input_watch(uvs_pending *p) {
  if (!p->input_active) return;
  p->input_active = false;
  if (p->host) p->host->unwatch_input();
  p->input_timer.stop();
}

static void detach(uvs_pending *p) {
  p->run = nullptr;
  p->call = nullptr;
  p->host = nullptr;
  p->waiting = false;
}

void abandon(uvs_pending *p) {
  bool was_waiting = p->waiting.load();
  if (p->input_active) {
    // The plugin still hears back: its input watch ends with EOF, on the loop, soon.
    end_input_watch(p);
    detach(p);
    p->input_timer.start(0, [p] {
      auto cb = p->input_cb;
      p->input_cb = nullptr;
      if (cb && !finished(p)) cb(p, UVS_INPUT_EOF, p->input_ud);
    });
  }
  detach(p);
  // The plugin's cancel callback (1.3): once, and only for a call the plugin has not completed.
  auto cb = p->cancel_cb;
  p->cancel_cb = nullptr;
  if (was_waiting && cb && !finished(p)) cb(p, p->cancel_ud);
}

int note_set(uvs_pending *p, int scope, const char *key, const char *value) {
  if (!p || !key || !*key || (scope != UVS_NOTE_CONNECTION && scope != UVS_NOTE_TRANSACTION))
    return -EINVAL;
  if (p->complete_called.load()) return -EALREADY;
  try {
    PendingNote n{scope, key, value == nullptr, value ? value : ""};
    std::lock_guard<std::mutex> lock(p->notes_mutex);
    if (p->notes.size() >= kMaxPendingNotes) return -E2BIG;
    p->notes.push_back(std::move(n));
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
  return 0;
}

int on_cancel(uvs_pending *p, uvs_pending_fn cb, void *ud) {
  if (!p || !cb) return -EINVAL;
  if (finished(p)) return -EALREADY;
  if (!p->waiting.load()) return -ECANCELED;
  p->cancel_cb = cb;
  p->cancel_ud = ud;
  return 0;
}

void finish(uvs_pending *p) {
  end_input_watch(p);
  detach(p);
  p->completed = true;
  p->timers.clear();
  p->input_timer.stop();
  maybe_free(p);
}

int timer(uvs_pending *p, uint64_t ms, uvs_pending_fn cb, void *ud) {
  if (!p || !cb) return -EINVAL;
  if (p->completed) return -EALREADY;
  auto t = std::make_unique<Timer>(p->svc->loop());
  t->start(ms, [p, cb, ud] {
    if (!finished(p)) cb(p, ud);
  });
  p->timers.push_back(std::move(t));
  return 0;
}

int wait_for_input(uvs_pending *p, uint64_t ms, uvs_input_fn cb, void *ud) {
  if (!p || !cb) return -EINVAL;
  if (p->completed) return -EALREADY;
  if (p->input_active) return -EBUSY;
  p->input_cb = cb;
  p->input_ud = ud;
  p->input_active = true;
  auto fire = [p](int result) {
    if (!p->input_active) return;
    p->input_active = false;
    p->input_timer.stop();
    auto cb = p->input_cb;
    p->input_cb = nullptr;
    if (cb && !finished(p)) cb(p, result, p->input_ud);
  };
  CallHost *host = p->host;
  if (!host) {
    p->input_timer.start(0, [fire] { fire(UVS_INPUT_EOF); });
    return 0;
  }
  int rc = host->watch_input([fire](int result) { fire(result); });
  if (rc < 0) {
    p->input_active = false;
    return rc;
  }
  p->input_timer.start(ms, [p, fire] {
    if (p->host) p->host->unwatch_input();
    fire(UVS_INPUT_TIMEOUT);
  });
  return 0;
}

namespace {
struct Work {
  uv_work_t req;
  uvs_pending *p;
  uvs_work_fn work;
  uvs_pending_fn done;
  void *ud;
};
}  // namespace

int run_blocking(uvs_pending *p, uvs_work_fn work, uvs_pending_fn done, void *ud) {
  if (!p || !work) return -EINVAL;
  if (p->completed) return -EALREADY;
  auto *w = new Work{{}, p, work, done, ud};
  w->req.data = w;
  int rc = uv_queue_work(
      p->svc->loop(), &w->req, [](uv_work_t *r) { auto *w = static_cast<Work *>(r->data); w->work(w->ud); },
      [](uv_work_t *r, int) {
        auto *w = static_cast<Work *>(r->data);
        uvs_pending *p = w->p;
        --p->work_in_flight;
        if (!finished(p) && w->done) w->done(p, w->ud);
        delete w;
        maybe_free(p);
      });
  if (rc < 0) {
    delete w;
    return rc;
  }
  ++p->work_in_flight;
  return 0;
}

int dns_query(uvs_pending *p, const char *name, int type, uint64_t timeout_ms, uvs_dns_fn cb,
              void *ud) {
  if (!p || !name || !cb || type < UVS_DNS_A || type > UVS_DNS_PTR) return -EINVAL;
  if (p->completed) return -EALREADY;
  Resolver *r = p->svc->resolver;
  if (!r) return -ENOSYS;
  double secs = timeout_ms ? static_cast<double>(timeout_ms) / 1000.0 : p->svc->dns_timeout;
  ++p->work_in_flight;
  r->query(name, static_cast<Resolver::Type>(type), secs,
           [p, cb, ud](int status, std::vector<std::string> answers) {
             --p->work_in_flight;
             if (!finished(p)) {
               std::vector<const char *> ptrs;
               for (auto &a : answers) ptrs.push_back(a.c_str());
               ptrs.push_back(nullptr);
               cb(p, status, static_cast<int>(answers.size()), ptrs.data(), ud);
             }
             maybe_free(p);
           });
  return 0;
}

}  // namespace pending
}  // namespace uvs
