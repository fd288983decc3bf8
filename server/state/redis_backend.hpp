// state/redis_backend.hpp: the Redis back end: one hiredis connection on the server's loop
// (state/redis_uv.*), every operation bounded by [state] timeout. Redis down or slow:
// operations answer -EIO / -ETIMEDOUT at once or within the timeout, one log line when it goes
// down and one when it is back, reconnection with a growing delay (100 ms to 2 s).
#pragma once
#include <deque>
#include <string>
#include <uv.h>

#include "config/settings.hpp"
#include "state/deferred.hpp"
#include "state/request.hpp"

struct redisAsyncContext;
struct redisReply;

namespace uvs::state {

class RedisBackend : public Backend {
 public:
  RedisBackend(uv_loop_t *loop, const config::StateSettings &settings, Deferred &deferred);
  ~RedisBackend() override;
  void submit(Request r) override;
  void stop() override;
  const char *name() const override { return "redis"; }
  bool up() const { return up_; }

  static constexpr uint64_t kBackoffMinMs = 100;
  static constexpr uint64_t kBackoffMaxMs = 2000;
  static constexpr size_t kMaxInFlight = 100000;

 private:
  struct Pending {  // one command sent, until hiredis calls back (always exactly once)
    RedisBackend *owner;
    Request req;
    uint64_t deadline;
    bool answered = false;  // its timeout answered it already
  };
  enum class Link { down, connecting, up };

  void connect();
  void drop(const std::string &why);  // free the connection, count it down, retry later
  void schedule_reconnect();
  void went_down(const std::string &why);
  void came_up();
  void answer(Pending *p, int status, const std::string *value, int64_t number);
  void fail_later(Request r, int status);
  void arm_timeout();
  void on_timeout();
  void on_reply(Pending *p, redisReply *reply);
  uint64_t now() const;
  bool send(Pending *p, int argc, const char **argv, const size_t *lens);

  static void reply_cb(redisAsyncContext *ac, void *reply, void *priv);
  static void hello_cb(redisAsyncContext *ac, void *reply, void *priv);
  static void connect_cb(const redisAsyncContext *ac, int status);
  static void disconnect_cb(const redisAsyncContext *ac, int status);

  uv_loop_t *loop_;
  config::StateSettings cfg_;
  std::string where_;  // as configured, for log lines
  Deferred &deferred_;
  redisAsyncContext *ac_ = nullptr;
  Link link_ = Link::down;
  bool up_ = false;           // the last connection answered its PING
  bool down_logged_ = false;  // "unreachable" was logged and "reachable" not yet
  bool stopped_ = false;
  uint64_t timeout_ms_;
  uint64_t backoff_ms_ = kBackoffMinMs;
  uint64_t last_reply_ = 0;          // when the last reply came (pile-up check)
  std::deque<Pending *> in_flight_;  // in the order sent = the order Redis answers
  size_t timed_out_ = 0;             // how many at the front of in_flight_ timed out already
  uv_timer_t *op_timer_;             // the first waiting operation's deadline
  uv_timer_t *retry_timer_;          // reconnection, and the connect deadline
};

}  // namespace uvs::state
