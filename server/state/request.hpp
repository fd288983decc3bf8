// state/request.hpp: one key-value operation as the back ends see it (the full key, already
// namespaced and checked by plugin_host/api_kv.cpp) and the answer it gets.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace uvs::state {

enum class Op { get, set, incr, del };

// status 0, -ENOENT (get: no such key), -EINVAL (incr: not an integer), -EIO, -ETIMEDOUT,
// -ECANCELED; value: get's value (else nullptr); number: incr's new value.
using Done = std::function<void(int status, const std::string *value, int64_t number)>;

struct Request {
  Op op = Op::get;
  std::string key;    // "uvsmtpd:<plugin>:<key>"
  std::string value;  // set
  int64_t delta = 0;  // incr
  uint64_t ttl_ms = 0;
  Done done;
};

// What a back end does with requests. Answers always come later on the loop, never from
// inside submit().
class Backend {
 public:
  virtual ~Backend() = default;
  virtual void submit(Request r) = 0;
  // The server stops: answer what waits with -ECANCELED, close connections and timers.
  virtual void stop() = 0;
  virtual const char *name() const = 0;  // "embedded", "redis"
};

}  // namespace uvs::state
