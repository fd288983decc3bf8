// util/timer.cpp: Timer implementation (libuv rule: free the handle only in the close callback).
#include "util/timer.hpp"

namespace uvs {

Timer::~Timer() {
  if (!h_) return;  // never started: no handle
  uv_timer_stop(&h_->timer);
  h_->cb = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(&h_->timer),
           [](uv_handle_t *h) { delete static_cast<Handle *>(h->data); });
}

void Timer::start(uint64_t ms, std::function<void()> cb) {
  if (!h_) {
    h_ = new Handle;
    uv_timer_init(loop_, &h_->timer);
    h_->timer.data = h_;
  }
  h_->cb = std::move(cb);
  uv_timer_start(
      &h_->timer,
      [](uv_timer_t *t) {
        auto *h = static_cast<Handle *>(t->data);
        auto cb = h->cb;  // copy: the callback may restart or destroy the timer
        if (cb) cb();
      },
      ms, 0);
}

void Timer::stop() {
  if (h_) uv_timer_stop(&h_->timer);
}

bool Timer::active() const {
  return h_ && uv_is_active(reinterpret_cast<uv_handle_t *>(&h_->timer));
}

}  // namespace uvs
