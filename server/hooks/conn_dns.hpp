// hooks/conn_dns.hpp: the DNS lookups a plugin starts on a session with dns_query_conn() (ABI
// 1.3): no suspended call holds them; they belong to the session and are cancelled when it ends.
#pragma once
#include <cstdint>
#include <map>

#include "uvsmtpd/plugin.h"

namespace uvs {

class Resolver;

class ConnDns {
 public:
  static constexpr size_t kMaxOpen = 64;
  ConnDns() = default;
  ~ConnDns() { close(); }
  ConnDns(const ConnDns &) = delete;
  ConnDns &operator=(const ConnDns &) = delete;

  // resolver may be null (no DNS: -ENOSYS). default_timeout_s is used for timeout_ms 0.
  void set_resolver(Resolver *r, double default_timeout_s) {
    resolver_ = r;
    default_timeout_s_ = default_timeout_s;
  }
  // The id (> 0) or -EINVAL, -ENOSYS, -ECANCELED (closed), -E2BIG.
  int64_t start(const char *name, int type, uint64_t timeout_ms, uvs_dns_conn_fn cb, void *ud);
  int cancel(int64_t id);  // 0 or -ENOENT
  // The session ends: every open lookup is cancelled (no callback) and no new one starts.
  void close();
  size_t open_count() const { return open_.size(); }

 private:
  Resolver *resolver_ = nullptr;
  double default_timeout_s_ = 5;
  bool closed_ = false;
  std::map<int64_t, uint64_t> open_;  // our id -> the resolver's id
};

}  // namespace uvs
