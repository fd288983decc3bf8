// dns/resolver.hpp: asynchronous DNS on the loop with c-ares (A, AAAA, MX, TXT, PTR), each query
// with its own deadline. c-ares' sockets are watched with uv_poll, its timers with a uv_timer.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <uv.h>

namespace uvs {

class Resolver {
 public:
  enum Type { A = 1, AAAA = 2, MX = 3, TXT = 4, PTR = 5 };
  // status: 0 (answers filled), -ENOENT (no such name / no data), -ETIMEDOUT, -ECANCELED
  // (shutting down) or -EIO. Called once, on the loop, never from inside query().
  using Callback = std::function<void(int status, std::vector<std::string> answers)>;

  explicit Resolver(uv_loop_t *loop);
  ~Resolver();
  Resolver(const Resolver &) = delete;
  Resolver &operator=(const Resolver &) = delete;

  // servers: "ip:port" / "[ipv6]:port"; empty = the system's resolv.conf. 0 or -errno.
  int init(const std::vector<std::string> &servers, double timeout_s, std::string &err);
  // name: a domain, or for PTR an IPv4/IPv6 address. Returns an id for cancel().
  uint64_t query(const std::string &name, Type type, double timeout_s, Callback cb);
  void cancel(uint64_t id);  // cb is not called
  void shutdown();           // every open query ends with -ECANCELED; handles close

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "192.0.2.1" -> "1.2.0.192.in-addr.arpa"; IPv6 -> nibble form under ip6.arpa. "" if not an IP.
std::string reverse_name(const std::string &ip);

}  // namespace uvs
