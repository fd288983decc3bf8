// state/deferred.cpp: Deferred (see deferred.hpp).
#include "state/deferred.hpp"

namespace uvs::state {

Deferred::Deferred(uv_loop_t *loop) : timer_(new uv_timer_t) {
  uv_timer_init(loop, timer_);
  timer_->data = this;
}

Deferred::~Deferred() {
  timer_->data = nullptr;
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t *>(timer_),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
  // The closures go without running: their owners (the plugin instances) are gone by now.
  std::vector<std::function<void()>> left;
  left.swap(queue_);
}

void Deferred::post(std::function<void()> fn) {
  queue_.push_back(std::move(fn));
  if (!uv_is_active(reinterpret_cast<uv_handle_t *>(timer_))) uv_timer_start(timer_, fire, 0, 0);
}

void Deferred::fire(uv_timer_t *t) {
  auto *self = static_cast<Deferred *>(t->data);
  if (!self) return;
  // What the callbacks post now waits for the next turn.
  std::vector<std::function<void()>> batch;
  batch.swap(self->queue_);
  for (auto &fn : batch) fn();
  // fn may have destroyed a plugin set, never this object (it outlives the server).
}

}  // namespace uvs::state
