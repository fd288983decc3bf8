// hooks/plugin_timers.cpp: PluginTimers (see plugin_timers.hpp). libuv rule: a handle is freed
// only in its close callback, so the uvs_timer and its uv_timer_t have separate lives.
#include "hooks/plugin_timers.hpp"

#include <algorithm>
#include <cerrno>
#include <new>
#include <uv.h>

struct uvs_timer {
  uvs::PluginTimers *owner = nullptr;
  uv_timer_t *handle = nullptr;  // nullptr once closed (retired)
  uvs_timer_fn cb = nullptr;
  void *ud = nullptr;
  uint64_t repeat_ms = 0;
  bool in_cb = false;
  bool stop_requested = false;  // timer_stop() inside its own callback
  bool retired = false;
};

namespace uvs {
namespace {
void close_handle(uvs_timer *t) {
  if (!t->handle) return;
  uv_timer_stop(t->handle);
  t->handle->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(t->handle),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
  t->handle = nullptr;
}
}  // namespace

PluginTimers::~PluginTimers() {
  for (uvs_timer *t : live_) {
    close_handle(t);
    delete t;
  }
}

uvs_timer *PluginTimers::start(void *loop, uint64_t ms, uint64_t repeat_ms, uvs_timer_fn cb,
                               void *ud) {
  if (!loop || !cb || retired_) return nullptr;
  auto *t = new (std::nothrow) uvs_timer;
  auto *h = new (std::nothrow) uv_timer_t;
  if (!t || !h) {
    delete t;
    delete h;
    return nullptr;
  }
  try {
    live_.push_back(t);
  } catch (const std::bad_alloc &) {
    delete t;
    delete h;
    return nullptr;
  }
  t->owner = this;
  t->handle = h;
  t->cb = cb;
  t->ud = ud;
  t->repeat_ms = repeat_ms;
  uv_timer_init(static_cast<uv_loop_t *>(loop), h);
  h->data = t;
  uv_unref(reinterpret_cast<uv_handle_t *>(h));  // never holds the loop (shutdown)
  uv_timer_start(
      h,
      [](uv_timer_t *th) {
        if (th->data) fire(static_cast<uvs_timer *>(th->data));
      },
      ms, repeat_ms);
  return t;
}

void PluginTimers::fire(uvs_timer *t) {
  t->in_cb = true;
  t->cb(t, t->ud);
  t->in_cb = false;
  if (t->retired) return;  // retired from inside its callback: the destructor frees it
  if (t->stop_requested || t->repeat_ms == 0) t->owner->destroy(t);
}

void PluginTimers::destroy(uvs_timer *t) {
  close_handle(t);
  live_.erase(std::remove(live_.begin(), live_.end(), t), live_.end());
  delete t;
}

int PluginTimers::stop(uvs_timer *t) {
  if (!t) return -EINVAL;
  if (t->retired) return 0;
  if (t->in_cb) {  // fire() frees it when the callback returns
    t->stop_requested = true;
    if (t->handle) uv_timer_stop(t->handle);
    return 0;
  }
  t->owner->destroy(t);
  return 0;
}

void PluginTimers::retire() {
  retired_ = true;
  for (uvs_timer *t : live_) {
    close_handle(t);
    t->retired = true;
  }
}

}  // namespace uvs
