// session/auth_lockout.hpp: the per-client-IP memory of failed SMTP AUTH attempts ([auth]
// lockout_failures within lockout_window seconds): shared by every session of the server, kept
// in memory only (a restart forgets it). Times are the loop's milliseconds (uv_now).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

namespace uvs {

class AuthLockout {
 public:
  // One failed attempt from ip at now_ms.
  void record_failure(const std::string &ip, uint64_t now_ms, uint64_t window_ms);
  // True if ip has `limit` or more failures within the window ending at now_ms (limit 0: never).
  bool locked(const std::string &ip, uint64_t now_ms, uint32_t limit, uint64_t window_ms);
  size_t tracked() const { return by_ip_.size(); }

 private:
  static void expire(std::deque<uint64_t> &times, uint64_t now_ms, uint64_t window_ms);
  void sweep(uint64_t now_ms, uint64_t window_ms);  // drops IPs whose failures all expired
  std::unordered_map<std::string, std::deque<uint64_t>> by_ip_;
  size_t sweep_at_ = 1024;  // sweep when this many IPs are tracked
};

}  // namespace uvs
