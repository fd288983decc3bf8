// session/data_clock.cpp: DataClock (see data_clock.hpp).
#include "session/data_clock.hpp"

#include <algorithm>
#include <cmath>

namespace uvs {

void DataClock::reset(double full_ms) {
  running_ = false;
  left_ = full_ms;
}

void DataClock::pause() {
  if (!running_) return;
  running_ = false;
  left_ = std::max(0.0, deadline_ - static_cast<double>(uv_now(loop_)));
  timer_.stop();
}

void DataClock::resume() {
  if (running_) return;
  running_ = true;
  deadline_ = static_cast<double>(uv_now(loop_)) + left_;
  arm(left_);
}

void DataClock::credit(size_t n, double full_ms, double rate) {
  const double now = static_cast<double>(uv_now(loop_));
  double left = running_ ? std::max(0.0, deadline_ - now) : left_;
  if (rate == 0)
    left = full_ms;
  else
    left = std::min(full_ms, left + static_cast<double>(n) * 1000 / rate);
  if (!running_) {
    left_ = left;
    return;
  }
  deadline_ = now + left;
  arm(left);
}

void DataClock::arm(double ms) {
  timer_.start(static_cast<uint64_t>(std::ceil(ms)), [this] { expired_(); });
}

}  // namespace uvs
