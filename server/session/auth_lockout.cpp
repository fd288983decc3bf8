// session/auth_lockout.cpp: failed AUTH attempts per client IP in a sliding window.
#include "session/auth_lockout.hpp"

#include <algorithm>

namespace uvs {

namespace {
// A client cannot be locked out by more failures than this: the window keeps at most this many
// times per IP (the limit is at most this, see config/settings.cpp).
constexpr size_t kMaxTimesPerIp = 100000;
}  // namespace

void AuthLockout::expire(std::deque<uint64_t> &times, uint64_t now_ms, uint64_t window_ms) {
  while (!times.empty() && now_ms - times.front() >= window_ms) times.pop_front();
}

void AuthLockout::sweep(uint64_t now_ms, uint64_t window_ms) {
  for (auto it = by_ip_.begin(); it != by_ip_.end();) {
    expire(it->second, now_ms, window_ms);
    it = it->second.empty() ? by_ip_.erase(it) : std::next(it);
  }
  sweep_at_ = std::max<size_t>(1024, by_ip_.size() * 2);
}

void AuthLockout::record_failure(const std::string &ip, uint64_t now_ms, uint64_t window_ms) {
  if (window_ms == 0) return;
  auto &times = by_ip_[ip];
  expire(times, now_ms, window_ms);
  if (times.size() >= kMaxTimesPerIp) times.pop_front();
  times.push_back(now_ms);
  if (by_ip_.size() >= sweep_at_) sweep(now_ms, window_ms);
}

bool AuthLockout::locked(const std::string &ip, uint64_t now_ms, uint32_t limit,
                         uint64_t window_ms) {
  if (limit == 0) return false;
  auto it = by_ip_.find(ip);
  if (it == by_ip_.end()) return false;
  expire(it->second, now_ms, window_ms);
  if (it->second.empty()) {
    by_ip_.erase(it);
    return false;
  }
  return it->second.size() >= limit;
}

}  // namespace uvs
