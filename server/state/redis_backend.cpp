// state/redis_backend.cpp: RedisBackend (see redis_backend.hpp). hiredis calls every command's
// callback exactly once: with the reply, or with NULL when the connection is freed or lost;
// the operation's own deadline may have answered it (-ETIMEDOUT) before that.
#include "state/redis_backend.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "log/log.hpp"
#include "state/redis_uv.hpp"

namespace uvs::state {

namespace {
// kv_incr with a TTL on create, atomic: the key gets its expiry only when this call made it.
const char kIncrScript[] =
    "local created = redis.call('EXISTS', KEYS[1]) == 0\n"
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return v\n";

// The connection's hello commands, told apart by their callback's private pointer.
char kTagAuth, kTagSelect, kTagScript, kTagPing;

// The script's SHA-1 as Redis names it (EVALSHA): lower-case hex.
std::string script_sha1() {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char *>(kIncrScript), sizeof kIncrScript - 1, md);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : md) out += hex[b >> 4], out += hex[b & 15];
  return out;
}

void close_timer(uv_timer_t *&t) {
  if (!t) return;
  uv_timer_stop(t);
  t->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(t),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
  t = nullptr;
}
}  // namespace

RedisBackend::RedisBackend(uv_loop_t *loop, const config::StateSettings &settings,
                           Deferred &deferred)
    : loop_(loop),
      cfg_(settings),
      where_(settings.redis),
      deferred_(deferred),
      timeout_ms_(static_cast<uint64_t>(settings.timeout * 1000 + 0.5)),
      op_timer_(new uv_timer_t),
      retry_timer_(new uv_timer_t) {
  if (timeout_ms_ == 0) timeout_ms_ = 1;
  uv_timer_init(loop_, op_timer_);
  uv_timer_init(loop_, retry_timer_);
  op_timer_->data = retry_timer_->data = this;
  connect();
}

RedisBackend::~RedisBackend() {
  stop();
}

uint64_t RedisBackend::now() const {
  return uv_hrtime() / 1000000;
}

void RedisBackend::connect() {
  if (stopped_) return;
  link_ = Link::connecting;
  redisAsyncContext *ac =
      cfg_.redis.rfind("unix:", 0) == 0 ? redisAsyncConnectUnix(cfg_.redis.c_str() + 5) : nullptr;
  if (cfg_.redis.rfind("unix:", 0) != 0) {
    config::Listen l;
    config::parse_listen(cfg_.redis, l);
    ac = redisAsyncConnect(l.host.c_str(), l.port);
  }
  if (!ac || ac->err) {
    std::string why = ac ? ac->errstr : "out of memory";
    if (ac) redisAsyncFree(ac);
    link_ = Link::down;
    went_down(why);
    return schedule_reconnect();
  }
  ac->data = this;
  if (redis_uv_attach(ac, loop_) != 0) {
    redisAsyncFree(ac);
    link_ = Link::down;
    went_down("cannot watch its socket");
    return schedule_reconnect();
  }
  redisAsyncSetConnectCallback(ac, connect_cb);
  redisAsyncSetDisconnectCallback(ac, disconnect_cb);
  ac_ = ac;
  // Sent as soon as the socket connects, before any operation queued after them.
  if (!cfg_.password.empty()) {
    const char *argv[] = {"AUTH", cfg_.password.c_str()};
    size_t lens[] = {4, cfg_.password.size()};
    redisAsyncCommandArgv(ac, hello_cb, &kTagAuth, 2, argv, lens);
  }
  if (cfg_.db != 0) {
    std::string db = std::to_string(cfg_.db);
    const char *argv[] = {"SELECT", db.c_str()};
    size_t lens[] = {6, db.size()};
    redisAsyncCommandArgv(ac, hello_cb, &kTagSelect, 2, argv, lens);
  }
  {  // kv_incr's script, so that operations send only its SHA-1 (EVALSHA)
    const char *argv[] = {"SCRIPT", "LOAD", kIncrScript};
    size_t lens[] = {6, 4, sizeof kIncrScript - 1};
    redisAsyncCommandArgv(ac, hello_cb, &kTagScript, 3, argv, lens);
  }
  const char *argv[] = {"PING"};
  size_t lens[] = {4};
  redisAsyncCommandArgv(ac, hello_cb, &kTagPing, 1, argv, lens);
  // The connect deadline: no PONG within the timeout (a filtered port, a hung server).
  uv_timer_start(
      retry_timer_,
      [](uv_timer_t *t) {
        auto *self = static_cast<RedisBackend *>(t->data);
        if (!self) return;
        if (self->link_ == Link::connecting)
          self->drop("no answer within " + std::to_string(self->timeout_ms_) + " ms");
        else if (self->link_ == Link::down)
          self->connect();
      },
      std::max<uint64_t>(timeout_ms_, 100), 0);
}

void RedisBackend::schedule_reconnect() {
  if (stopped_) return;
  uv_timer_start(
      retry_timer_,
      [](uv_timer_t *t) {
        auto *self = static_cast<RedisBackend *>(t->data);
        if (self && self->link_ == Link::down) self->connect();
      },
      backoff_ms_, 0);
  backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
}

// Never called from inside hiredis's connect callback (hiredis still uses the context then).
void RedisBackend::drop(const std::string &why) {
  link_ = Link::down;
  went_down(why);
  if (ac_) {
    redisAsyncContext *ac = ac_;
    ac_ = nullptr;
    redisAsyncFree(ac);  // what waits is answered (-EIO) by its callback, now or after the
                         // callback hiredis is running
  }
  schedule_reconnect();
}

void RedisBackend::went_down(const std::string &why) {
  up_ = false;
  if (down_logged_ || stopped_) return;
  down_logged_ = true;
  log::format(log::err, "", "",
              "state: Redis at %s is unavailable (%s): shared-state operations fail (each "
              "plugin applies its fail-open or fail-closed setting) until it is back; retrying",
              where_.c_str(), why.c_str());
}

void RedisBackend::came_up() {
  link_ = Link::up;
  up_ = true;
  backoff_ms_ = kBackoffMinMs;
  last_reply_ = now();
  uv_timer_stop(retry_timer_);
  if (down_logged_) {
    down_logged_ = false;
    log::format(log::notice, "", "", "state: Redis at %s is reachable again", where_.c_str());
  } else {
    log::format(log::info, "", "", "state: connected to Redis at %s", where_.c_str());
  }
}

void RedisBackend::connect_cb(const redisAsyncContext *ac, int status) {
  auto *self = static_cast<RedisBackend *>(ac->data);
  if (!self || status == REDIS_OK || ac != self->ac_) return;
  // hiredis frees the context after this callback (answering what waits with NULL).
  self->ac_ = nullptr;
  self->link_ = Link::down;
  uv_timer_stop(self->retry_timer_);
  self->went_down(ac->errstr[0] ? ac->errstr : "connection failed");
  self->schedule_reconnect();
}

void RedisBackend::disconnect_cb(const redisAsyncContext *ac, int status) {
  auto *self = static_cast<RedisBackend *>(ac->data);
  if (!self || ac != self->ac_) return;  // we freed it ourselves (drop, stop)
  self->ac_ = nullptr;
  self->link_ = Link::down;
  uv_timer_stop(self->retry_timer_);
  self->went_down(status == REDIS_OK ? "the connection was closed"
                                     : (ac->errstr[0] ? ac->errstr : "connection lost"));
  self->schedule_reconnect();
}

void RedisBackend::hello_cb(redisAsyncContext *ac, void *r, void *priv) {
  auto *self = static_cast<RedisBackend *>(ac->data);
  auto *reply = static_cast<redisReply *>(r);
  if (!self || !reply || ac != self->ac_) return;  // lost: the disconnect path tells
  if (reply->type == REDIS_REPLY_ERROR) {
    std::string what = priv == &kTagAuth     ? "AUTH"
                       : priv == &kTagSelect ? "SELECT " + std::to_string(self->cfg_.db)
                       : priv == &kTagScript ? "SCRIPT LOAD"
                                             : "PING";
    return self->drop("it refused " + what + ": " + std::string(reply->str, reply->len));
  }
  if (priv == &kTagPing) self->came_up();
}

bool RedisBackend::send(Pending *p, int argc, const char **argv, const size_t *lens) {
  return redisAsyncCommandArgv(ac_, reply_cb, p, argc, argv, lens) == REDIS_OK;
}

void RedisBackend::fail_later(Request r, int status) {
  deferred_.post([done = std::move(r.done), status] {
    if (done) done(status, nullptr, 0);
  });
}

void RedisBackend::submit(Request r) {
  if (stopped_) return fail_later(std::move(r), -ECANCELED);
  // Known down (also while a reconnection is being tried): fail now, do not queue.
  if (!ac_ || link_ == Link::down || (link_ == Link::connecting && down_logged_) ||
      in_flight_.size() >= kMaxInFlight)
    return fail_later(std::move(r), -EIO);
  // The arguments point into the request: build them from where it lives from now on.
  auto *p = new Pending{this, std::move(r), now() + timeout_ms_};
  const Request &q = p->req;
  std::string a, b;
  const char *argv[6];
  size_t lens[6];
  int argc = 0;
  auto arg = [&](const std::string &s) {
    argv[argc] = s.data();
    lens[argc++] = s.size();
  };
  static const std::string kGet = "GET", kSet = "SET", kPx = "PX", kDel = "DEL", kIncrBy = "INCRBY",
                           kEvalSha = "EVALSHA", kOne = "1", kSha = script_sha1();
  switch (q.op) {
    case Op::get:
      arg(kGet), arg(q.key);
      break;
    case Op::set:
      arg(kSet), arg(q.key), arg(q.value);
      if (q.ttl_ms) a = std::to_string(q.ttl_ms), arg(kPx), arg(a);
      break;
    case Op::incr:
      a = std::to_string(q.delta);
      if (q.ttl_ms)
        b = std::to_string(q.ttl_ms), arg(kEvalSha), arg(kSha), arg(kOne), arg(q.key), arg(a),
        arg(b);
      else
        arg(kIncrBy), arg(q.key), arg(a);
      break;
    case Op::del:
      arg(kDel), arg(q.key);
      break;
  }
  if (!send(p, argc, argv, lens)) {
    Request back = std::move(p->req);
    delete p;
    return fail_later(std::move(back), -EIO);
  }
  in_flight_.push_back(p);
  arm_timeout();
}

void RedisBackend::answer(Pending *p, int status, const std::string *value, int64_t number) {
  Done done = std::move(p->req.done);
  p->req.done = nullptr;
  if (done) done(status, value, number);
}

void RedisBackend::reply_cb(redisAsyncContext *, void *r, void *priv) {
  auto *p = static_cast<Pending *>(priv);
  p->owner->on_reply(p, static_cast<redisReply *>(r));
}

void RedisBackend::on_reply(Pending *p, redisReply *reply) {
  auto it = std::find(in_flight_.begin(), in_flight_.end(), p);
  if (it != in_flight_.end()) {
    if (p->answered && timed_out_ > 0) --timed_out_;
    in_flight_.erase(it);
  }
  if (reply) last_reply_ = now();
  if (!p->answered) {
    int status = -EIO;
    std::string value;
    const std::string *vp = nullptr;
    int64_t number = 0;
    if (!reply) {
      status = stopped_ ? -ECANCELED : -EIO;
    } else if (reply->type == REDIS_REPLY_ERROR) {
      std::string e(reply->str, reply->len);
      if (e.rfind("NOSCRIPT", 0) == 0) {
        // The script was flushed (SCRIPT FLUSH) since this connection loaded it: a new
        // connection loads it again.
        answer(p, -EIO, nullptr, 0);
        delete p;
        if (ac_ && link_ == Link::up) drop("its script cache was flushed");
        return;
      }
      if (p->req.op == Op::incr && (e.find("not an integer") != std::string::npos ||
                                    e.find("overflow") != std::string::npos))
        status = -EINVAL;
      else
        log::format(log::warning, "", "", "state: Redis at %s answered an error: %s",
                    where_.c_str(), e.c_str());
    } else {
      switch (p->req.op) {
        case Op::get:
          if (reply->type == REDIS_REPLY_NIL) {
            status = -ENOENT;
          } else if (reply->type == REDIS_REPLY_STRING) {
            value.assign(reply->str, reply->len);
            vp = &value;
            status = 0;
          }
          break;
        case Op::set:
          if (reply->type == REDIS_REPLY_STATUS) status = 0;
          break;
        case Op::incr:
          if (reply->type == REDIS_REPLY_INTEGER) status = 0, number = reply->integer;
          break;
        case Op::del:
          if (reply->type == REDIS_REPLY_INTEGER) status = 0;
          break;
      }
    }
    answer(p, status, vp, number);
  }
  delete p;
}

void RedisBackend::arm_timeout() {
  if (!op_timer_ || uv_is_active(reinterpret_cast<uv_handle_t *>(op_timer_))) return;
  if (timed_out_ >= in_flight_.size()) return;
  uint64_t t = now(), d = in_flight_[timed_out_]->deadline;
  uv_timer_start(
      op_timer_,
      [](uv_timer_t *h) {
        if (h->data) static_cast<RedisBackend *>(h->data)->on_timeout();
      },
      d > t ? d - t : 0, 0);
}

void RedisBackend::on_timeout() {
  uint64_t t = now();
  bool any = false;
  while (timed_out_ < in_flight_.size() && in_flight_[timed_out_]->deadline <= t) {
    Pending *p = in_flight_[timed_out_++];
    p->answered = true;
    any = true;
    answer(p, -ETIMEDOUT, nullptr, 0);
    if (stopped_) return;
  }
  // Nothing at all came back for a whole timeout: the server hangs. Drop the connection, so
  // that operations fail at once instead of piling up behind it.
  if (any && link_ != Link::down && t - last_reply_ >= timeout_ms_)
    drop("no answer within " + std::to_string(timeout_ms_) + " ms");
  arm_timeout();
}

void RedisBackend::stop() {
  if (stopped_) return;
  stopped_ = true;
  close_timer(op_timer_);
  close_timer(retry_timer_);
  // What the last sessions queued (karma's disconnect records) goes out before the close;
  // a write error frees the context, and disconnect_cb clears ac_.
  if (ac_ && link_ == Link::up) redisAsyncHandleWrite(ac_);
  if (ac_) {
    redisAsyncContext *ac = ac_;
    ac_ = nullptr;
    redisAsyncFree(ac);  // every waiting operation: -ECANCELED
  }
  // Timed-out commands still waiting for hiredis were freed with the context.
}

}  // namespace uvs::state
