// state/embedded.cpp: EmbeddedBackend (see embedded.hpp).
#include "state/embedded.hpp"

#include "log/log.hpp"

namespace uvs::state {

EmbeddedBackend::EmbeddedBackend(uv_loop_t *loop, size_t max_entries, Deferred &deferred)
    : loop_(loop), deferred_(deferred), table_(max_entries), sweep_timer_(new uv_timer_t) {
  uv_timer_init(loop_, sweep_timer_);
  sweep_timer_->data = this;
  uv_timer_start(
      sweep_timer_,
      [](uv_timer_t *t) {
        if (t->data) static_cast<EmbeddedBackend *>(t->data)->sweep();
      },
      kSweepMs, kSweepMs);
  uv_unref(reinterpret_cast<uv_handle_t *>(sweep_timer_));  // never holds the loop
}

EmbeddedBackend::~EmbeddedBackend() {
  stop();
}

void EmbeddedBackend::stop() {
  if (!sweep_timer_) return;
  sweep_timer_->data = nullptr;
  uv_timer_stop(sweep_timer_);
  uv_close(reinterpret_cast<uv_handle_t *>(sweep_timer_),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
  sweep_timer_ = nullptr;
}

// A monotonic clock: expiry does not move when the wall clock does.
uint64_t EmbeddedBackend::now() const {
  return uv_hrtime() / 1000000;
}

void EmbeddedBackend::sweep() {
  table_.sweep(now());
  if (table_.evictions() != evictions_logged_) {
    log::format(log::warning, "", "",
                "state: the embedded store is full (%zu entries, [state] "
                "max_entries): %llu entries that expire soonest were dropped to make room",
                table_.max_entries(),
                static_cast<unsigned long long>(table_.evictions() - evictions_logged_));
    evictions_logged_ = table_.evictions();
  }
}

void EmbeddedBackend::submit(Request r) {
  int status = 0;
  int64_t number = 0;
  std::string value;
  bool has_value = false;
  uint64_t t = now();
  switch (r.op) {
    case Op::get:
      status = table_.get(r.key, t, &value);
      has_value = status == 0;
      break;
    case Op::set:
      status = table_.set(r.key, std::move(r.value), r.ttl_ms, t);
      break;
    case Op::incr:
      status = table_.incr(r.key, r.delta, r.ttl_ms, t, &number);
      break;
    case Op::del:
      status = table_.del(r.key);
      break;
  }
  deferred_.post([done = std::move(r.done), status, number, value = std::move(value), has_value] {
    if (done) done(status, has_value ? &value : nullptr, number);
  });
}

}  // namespace uvs::state
