// tests/integration/test_state.cpp: shared state (uvs_api.kv_*, [state]) end to end: a real
// redis-server shared by three uvsmtpd instances (greylist, ratelimit, karma, earlytalker's
// shared pass cache), Redis killed and restarted under them, and the embedded store across a
// SIGHUP reload.
#include <csignal>
#include <doctest/doctest.h>
#include <memory>
#include <unistd.h>
#include <vector>

#include "harness.hpp"
#include "redis_fixture.hpp"

using namespace itest;

namespace {

const std::map<std::string, std::string> kFiles = {{"rcpthosts", "example.test\n"}};

Options opts(const std::string &toml, const std::string &plugins) {
  return Options{.toml = toml, .plugins = plugins, .files = kFiles};
}

// A started server that has connected to the Redis server its toml names.
void require_connected(const Server &s) {
  REQUIRE(s.started());
  REQUIRE(s.wait_log("state: connected to Redis"));
}

// Three servers with the same options, sharing the Redis server the toml names, all connected.
std::vector<std::unique_ptr<Server>> three_connected(const Options &o) {
  std::vector<std::unique_ptr<Server>> v;
  for (int i = 0; i < 3; ++i) v.push_back(std::make_unique<Server>(o));
  for (auto &x : v) require_connected(*x);
  return v;
}

// Greeting, EHLO, MAIL FROM, then the reply to RCPT TO.
std::string rcpt_reply(const Server &s, const std::string &from, const std::string &to) {
  Client c(s.port());
  if (c.reply().rfind("220 ", 0) != 0) return "no greeting";
  if (c.cmd("EHLO client.example").rfind("250", 0) != 0) return "EHLO refused";
  std::string m = c.cmd("MAIL FROM:<" + from + ">");
  if (m.rfind("250", 0) != 0) return m;
  std::string r = c.cmd("RCPT TO:<" + to + ">");
  c.cmd("QUIT");
  return r;
}

bool starts(const std::string &s, const std::string &prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

TEST_CASE("state: a greylist pass on one instance is honoured by the others (Redis)") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  auto s = three_connected(opts(redis.toml(), "greylist delay 1 window 60\nrcpt_ok\n"));
  std::string r = rcpt_reply(*s[0], "alice@remote.example", "bob@example.test");
  CHECK(starts(r, "451 4.7.1 Greylisted"));
  // Too early on another instance: it sees the first attempt made on the first one.
  CHECK(starts(rcpt_reply(*s[1], "alice@remote.example", "bob@example.test"), "451 4.7.1"));
  CHECK(s[1]->wait_log("greylisted (retried too early)"));
  usleep(1200000);
  CHECK(starts(rcpt_reply(*s[2], "alice@remote.example", "bob@example.test"), "250 "));
  CHECK(s[2]->wait_log("passed after"));
  // Whitelisted now, on every instance; another triplet is still greylisted.
  CHECK(starts(rcpt_reply(*s[0], "alice@remote.example", "bob@example.test"), "250 "));
  CHECK(starts(rcpt_reply(*s[1], "ALICE@remote.example", "bob@EXAMPLE.test"), "250 "));
  CHECK(starts(rcpt_reply(*s[1], "carol@remote.example", "bob@example.test"), "451 4.7.1"));
  // Keys are the plugin's name space in Redis, with the whitelist's time to live.
  CHECK(redis.cli("GET 'uvsmtpd:greylist:t:127.0.0.0/24:alice@remote.example:bob@example.test'") ==
        "pass");
  CHECK(std::stol(redis.cli(
            "TTL 'uvsmtpd:greylist:t:127.0.0.0/24:alice@remote.example:bob@example.test'")) >
        34 * 86400);
}

TEST_CASE("state: greylist skips relay clients and authenticated users; client exact") {
  Server s(opts("", "relay\ngreylist delay 1 client exact\nrcpt_ok\n"));
  REQUIRE(s.started());
  // Not a relay client yet (no relayclients file): greylisted with its exact address.
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1"));
  CHECK(s.wait_log("t:127.0.0.1:a@remote.example:b@example.test"));
  Server r(Options{.plugins = "relay\ngreylist delay 1\nrcpt_ok\n",
                   .files = {{"rcpthosts", "example.test\n"}, {"relayclients", "127.0.0.1\n"}}});
  REQUIRE(r.started());
  CHECK(starts(rcpt_reply(r, "a@remote.example", "b@example.test"), "250 "));
  CHECK(r.wait_log("greylist: skip, relay client"));
}

TEST_CASE("state: a connection rate limit holds exactly across three instances (Redis)") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  auto s = three_connected(opts(redis.toml(), "ratelimit connections 10 window 60\nrcpt_ok\n"));
  // 30 connections at once, spread over the three: exactly 10 are greeted.
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 30; ++i) clients.push_back(std::make_unique<Client>(s[i % 3]->port()));
  int greeted = 0, refused = 0;
  for (auto &c : clients) {
    std::string g = c->reply();
    if (starts(g, "220 ")) ++greeted;
    if (starts(g, "421 4.7.0 Too many connections from 127.0.0.1")) {
      ++refused;
      CHECK(c->closed());
    }
  }
  CHECK(greeted == 10);
  CHECK(refused == 20);
  CHECK(redis.cli("GET uvsmtpd:ratelimit:conn:127.0.0.1") == "30");
  int ttl = std::stoi(redis.cli("TTL uvsmtpd:ratelimit:conn:127.0.0.1"));
  CHECK(ttl > 50);
  CHECK(ttl <= 60);
}

TEST_CASE("state: a message rate limit per sender, counted at MAIL (embedded)") {
  Server s(opts("", "ratelimit messages 2 messages-by sender window 60\nrcpt_ok\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(starts(c.reply(), "220 "));
  c.cmd("EHLO client.example");
  CHECK(starts(c.cmd("MAIL FROM:<x@remote.example>"), "250"));
  c.cmd("RSET");
  CHECK(starts(c.cmd("MAIL FROM:<X@remote.example>"), "250"));
  c.cmd("RSET");
  CHECK(starts(c.cmd("MAIL FROM:<x@remote.example>"), "451 4.7.1 Message rate limit exceeded"));
  CHECK(starts(c.cmd("MAIL FROM:<y@remote.example>"), "250"));
}

TEST_CASE(
    "state: Redis killed mid-run: declared fail-open/closed, one log line each way, recovery") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  Server open_(opts(redis.toml(), "greylist delay 1 state-fail open\nrcpt_ok\n"));
  Server closed_(opts(redis.toml(), "greylist delay 1 state-fail closed\nrcpt_ok\n"));
  Server limit(opts(redis.toml(), "ratelimit connections 100 state-fail closed\nrcpt_ok\n"));
  for (Server *x : {&open_, &closed_, &limit}) require_connected(*x);
  CHECK(starts(rcpt_reply(open_, "a@remote.example", "b@example.test"), "451 4.7.1"));
  redis.kill_now();
  // Noticed at once (the socket closes), one line per server, however many operations fail.
  for (Server *x : {&open_, &closed_, &limit}) CHECK(x->wait_log("is unavailable"));
  for (int i = 0; i < 3; ++i) {
    double t0 = now();
    CHECK(starts(rcpt_reply(open_, "new" + std::to_string(i) + "@remote.example", "b@example.test"),
                 "250 "));
    CHECK(now() - t0 < 0.5);  // failed fast, not after a timeout per operation
    CHECK(starts(rcpt_reply(closed_, "a@remote.example", "b@example.test"), "451 4.3.0"));
  }
  Client refused(limit.port());
  CHECK(starts(refused.reply(), "421 4.3.0"));
  CHECK(open_.wait_log("passed (state-fail open)"));
  CHECK(closed_.wait_log("deferred (state-fail closed)"));
  usleep(500000);  // reconnection attempts meanwhile log nothing more
  for (Server *x : {&open_, &closed_, &limit}) {
    CHECK(x->count_log("is unavailable") == 1);
    CHECK(x->running());
  }
  REQUIRE(redis.start());
  for (Server *x : {&open_, &closed_, &limit}) CHECK(x->wait_log("is reachable again", 5));
  // Greylisting works again (the restarted Redis is empty: a first attempt).
  CHECK(starts(rcpt_reply(open_, "a@remote.example", "b@example.test"), "451 4.7.1"));
  CHECK(starts(rcpt_reply(closed_, "c@remote.example", "b@example.test"), "451 4.7.1"));
  Client greeted(limit.port());
  CHECK(starts(greeted.reply(), "220 "));
  for (Server *x : {&open_, &closed_, &limit}) CHECK(x->count_log("is reachable again") == 1);
}

TEST_CASE(
    "state: Redis hung (SIGSTOP): operations time out, the connection is dropped, no pile-up") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  Server s(opts(redis.toml(0.2), "greylist delay 1 state-fail open\nrcpt_ok\n"));
  require_connected(s);
  pid_t rpid = redis.pid();
  REQUIRE(rpid > 0);
  kill(rpid, SIGSTOP);
  double t0 = now();
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "250 "));
  double took = now() - t0;
  CHECK(took >= 0.15);
  CHECK(took < 1.0);
  CHECK(s.wait_log("error -110"));  // -ETIMEDOUT
  CHECK(s.wait_log("is unavailable (no answer within 200 ms)"));
  t0 = now();
  CHECK(starts(rcpt_reply(s, "c@remote.example", "b@example.test"), "250 "));
  CHECK(now() - t0 < 0.5);
  kill(rpid, SIGCONT);
  CHECK(s.wait_log("is reachable again", 5));
  CHECK(starts(rcpt_reply(s, "d@remote.example", "b@example.test"), "451 4.7.1"));
}

TEST_CASE("state: the embedded store survives a SIGHUP reload (greylist pass kept)") {
  Server s(opts("max_errors = 20\n", "greylist delay 1\nrcpt_ok\n"));
  REQUIRE(s.started());
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1"));
  usleep(1200000);
  REQUIRE(s.reload_toml("max_errors = 20", "max_errors = 21"));
  // The new greylist instance finds the first attempt the old one recorded.
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "250 "));
  CHECK(s.wait_log("passed after"));
  REQUIRE(s.reload_toml("max_errors = 21", "max_errors = 22"));
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "250 "));
  CHECK(s.wait_log("whitelisted: t:127.0.0.0/24:a@remote.example:b@example.test"));
}

TEST_CASE("state: a [state] change on SIGHUP is logged as needing a restart") {
  Server s(opts("[state]\nmax_entries = 1000\n", "greylist\nrcpt_ok\n"));
  REQUIRE(s.started());
  REQUIRE(s.reload_toml("max_entries = 1000", "max_entries = 2000"));
  CHECK(s.wait_log("[state] changed; the shared-state back end needs a restart"));
}

TEST_CASE("state: karma kept across connections and instances: a naughty IP is refused") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  const std::string plugins = "karma penalty 60\nearlytalker wait 0.3\nrcpt_ok\n";
  Server a(opts(redis.toml(), plugins)), b(opts(redis.toml(), plugins));
  require_connected(a);
  require_connected(b);
  {
    Client c(a.port());
    c.line("EHLO early.example");  // before the greeting: an early talker, karma -1
    CHECK(starts(c.reply(), "550 5.5.0"));
    c.closed();
  }
  CHECK(a.wait_log("karma: naughty (karma -1): 127.0.0.1 refused for 60 s"));
  for (Server *x : {&a, &b}) {
    Client c(x->port());
    CHECK(starts(c.reply(), "421 4.7.0 Your address is refused for now"));
    CHECK(c.closed());
    CHECK(x->wait_log("refused: 127.0.0.1 is naughty"));
  }
  CHECK(redis.cli("GET uvsmtpd:karma:history:127.0.0.1") == "-1");
}

TEST_CASE(
    "state: earlytalker's shared pass cache: a pass on one instance skips the wait on another") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  const std::string plugins = "earlytalker wait 0.5 pass-ttl 60 pass-shared 1\nrcpt_ok\n";
  Server a(opts(redis.toml(), plugins)), b(opts(redis.toml(), plugins));
  require_connected(a);
  require_connected(b);
  {
    Client c(a.port());
    double t0 = now();
    CHECK(starts(c.reply(), "220 "));
    CHECK(now() - t0 >= 0.45);
    c.cmd("QUIT");
  }
  CHECK(a.wait_log("pass, not spontaneous"));
  Client c(b.port());
  double t0 = now();
  CHECK(starts(c.reply(), "220 "));
  CHECK(now() - t0 < 0.3);
  CHECK(b.wait_log("skip, passed within pass-ttl (shared)"));
}

TEST_CASE(
    "state: earlytalker pass-shared off keeps today's behaviour; bad arguments name the key") {
  Server s(opts("", "earlytalker wait 0.3 pass-ttl 60\nrcpt_ok\n"));
  REQUIRE(s.started());
  CHECK(s.wait_log("pass-ttl 60"));
  CHECK(s.count_log("(shared)") == 0);
  std::string dir = make_tree(opts("", "earlytalker pass-shared 1\n"));
  RunResult bad =
      run_uvsmtpd({"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
  remove_tree(dir);
  CHECK(bad.status == 1);
  CHECK(bad.output.find("'pass-shared 1' needs 'pass-ttl'") != std::string::npos);
}

TEST_CASE("state: [state] errors name the file and line; plugin arguments are checked") {
  struct Bad {
    std::string toml, plugins, want;
  };
  const Bad cases[] = {
      {"[state]\nredis = \"localhost\"\n", "", "uvsmtpd.toml:4: 'state.redis' must be"},
      {"[state]\nredis = \"unix:relative\"\n", "", "uvsmtpd.toml:4: 'state.redis' must be"},
      {"[state]\ntimeout = 0\n", "", "uvsmtpd.toml:4: 'state.timeout'"},
      {"[state]\nmax_entries = 0\n", "", "uvsmtpd.toml:4: 'state.max_entries' must be between"},
      {"[state]\nredis_db = 1\n", "", "unknown key 'state.redis_db'"},
      {"", "greylist delay x\n", "bad value 'x' for 'delay'"},
      {"", "greylist state-fail maybe\n", "bad value 'maybe' for 'state-fail'"},
      {"", "greylist cache soon\n", "bad value 'soon' for 'cache'"},
      {"", "ratelimit window 60\n", "nothing to limit"},
      {"", "ratelimit connections -1\n", "bad value '-1' for 'connections'"},
      {"", "karma penalty 0\n", "bad value '0' for 'penalty'"},
  };
  for (const auto &b : cases) {
    CAPTURE(b.want);
    std::string dir = make_tree(opts(b.toml, b.plugins));
    RunResult r = run_uvsmtpd(
        {"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
    remove_tree(dir);
    CHECK(r.status == 1);
    CHECK(r.output.find(b.want) != std::string::npos);
  }
}

TEST_CASE("state: Redis unavailable at start: the server starts, says so once, and recovers") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  redis.stop();
  Server s(opts(redis.toml(), "greylist delay 1 state-fail closed\nrcpt_ok\n"));
  REQUIRE(s.started());
  CHECK(s.wait_log("is unavailable"));
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.3.0"));
  REQUIRE(redis.start());
  CHECK(s.wait_log("is reachable again", 5));
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1 Greylisted"));
  CHECK(s.count_log("is unavailable") == 1);
}

TEST_CASE("state: shutdown with a Redis operation pending: it is cancelled and the server exits") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  // A 10-second operation timeout: only the cancellation at shutdown ends it sooner (and the
  // Redis connection, left open, would keep the server running for ever).
  Server s(opts("shutdown_grace = 1\n" + redis.toml(10), "greylist delay 1\nrcpt_ok\n"));
  require_connected(s);
  kill(redis.pid(), SIGSTOP);
  Client c(s.port());
  REQUIRE(starts(c.reply(), "220 "));
  c.cmd("EHLO client.example");
  REQUIRE(starts(c.cmd("MAIL FROM:<a@remote.example>"), "250"));
  c.line("RCPT TO:<b@example.test>");  // its lookup waits on the stopped Redis
  usleep(300000);
  double t0 = now();
  s.signal(SIGTERM);
  CHECK(s.wait_exit(6) == 0);
  CHECK(now() - t0 < 5);  // the grace second, the session's close; not the 10 s timeout
  CHECK(s.wait_log("all sessions closed; exiting"));
  kill(redis.pid(), SIGCONT);
}

TEST_CASE("state: Redis over TCP (127.0.0.1:port)") {
  if (!RedisServer::available()) return;
  RedisServer redis(true);
  REQUIRE(redis.started());
  Server s(opts(redis.toml(), "ratelimit messages 1\ngreylist delay 1\nrcpt_ok\n"));
  REQUIRE(s.started());
  REQUIRE(s.wait_log("state: connected to Redis at 127.0.0.1:"));
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1 Greylisted"));
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1 Message rate"));
  CHECK(redis.cli("GET uvsmtpd:ratelimit:msg:ip:127.0.0.1") == "2");
}

TEST_CASE(
    "state: Redis's script cache flushed: that operation fails, the reconnection reloads it") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  Server s(opts(redis.toml(), "ratelimit connections 100 state-fail closed\nrcpt_ok\n"));
  require_connected(s);
  {
    Client c(s.port());
    CHECK(starts(c.reply(), "220 "));
  }
  CHECK(redis.cli("SCRIPT FLUSH") == "OK");
  {
    Client c(s.port());
    CHECK(starts(c.reply(), "421 4.3.0"));
  }
  CHECK(s.wait_log("is unavailable (its script cache was flushed)"));
  CHECK(s.wait_log("is reachable again", 5));
  Client c(s.port());
  CHECK(starts(c.reply(), "220 "));
}

TEST_CASE("state: authenticated users skip greylist and the message limit") {
  Options o = opts(
      "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"none\"\nauth_plaintext = true\n"
      "auth_relay = false\n",
      "auth_static alice s3cret\nratelimit messages 1\ngreylist delay 60\nrcpt_ok\n");
  o.cli_listen = false;
  Server s(o);
  REQUIRE(s.started());
  std::vector<int> ports = s.ports();
  REQUIRE(ports.size() == 1);
  Client c(ports[0]);
  REQUIRE(starts(c.reply(), "220 "));
  c.cmd("EHLO client.example");
  // "\0alice\0s3cret" in base64 (RFC 4616)
  REQUIRE(starts(c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA=="), "235 "));
  for (int i = 0; i < 2; ++i) {
    CHECK(starts(c.cmd("MAIL FROM:<alice@remote.example>"), "250"));
    CHECK(starts(c.cmd("RCPT TO:<b@example.test>"), "250 "));
    c.cmd("RSET");
  }
  CHECK(s.wait_log("greylist: skip, authenticated"));
  CHECK(s.wait_log("ratelimit: skip, authenticated"));
}

TEST_CASE("state: greylist window: a retry after delay + window starts over") {
  Server s(opts("", "greylist delay 0.5 window 0.5\nrcpt_ok\n"));
  REQUIRE(s.started());
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1"));
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1"));
  CHECK(s.wait_log("greylisted (retried too early)"));
  usleep(1300000);  // past 0.5 + 0.5 s: forgotten
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "451 4.7.1"));
  CHECK(s.count_log("greylisted (first attempt)") == 2);
  usleep(700000);  // within the window of the new first attempt
  CHECK(starts(rcpt_reply(s, "a@remote.example", "b@example.test"), "250 "));
}

TEST_CASE("state: karma history reaches the connection note karma_history (earlytalker skips)") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  CHECK(redis.cli("SET uvsmtpd:karma:history:127.0.0.1 6") == "OK");
  Server s(opts(redis.toml(), "karma\nearlytalker wait 1\nrcpt_ok\n"));
  require_connected(s);
  Client c(s.port());
  double t0 = now();
  CHECK(starts(c.reply(), "220 "));
  CHECK(now() - t0 < 0.5);
  CHECK(s.wait_log("karma: history 6"));
  CHECK(s.wait_log("earlytalker: skip, karma 6"));
}

TEST_CASE("state: what the last sessions store at shutdown still reaches Redis") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  Server s(opts("shutdown_grace = 1\n" + redis.toml(),
                "karma penalty 60\nearlytalker wait 0.3 defer-reject 1\nrcpt_ok\n"));
  require_connected(s);
  Client c(s.port());
  c.line("EHLO early.example");  // an early talker (karma -1), greeted all the same
  CHECK(starts(c.reply(), "220 "));
  CHECK(starts(c.reply(), "250"));
  s.signal(SIGTERM);  // the session closes, karma records the penalty, the server stops
  CHECK(s.wait_exit(5) == 0);
  CHECK(s.wait_log("karma: naughty (karma -1)"));
  CHECK(redis.cli("EXISTS uvsmtpd:karma:penalty:127.0.0.1") == "1");
}

TEST_CASE("state: --print-config shows [state] without the Redis password") {
  std::string dir =
      make_tree(opts("[state]\nredis = \"127.0.0.1:6379\"\npassword = \"Secr3t-pw\"\n"
                     "db = 3\ntimeout = 0.5\n",
                     ""));
  RunResult r = run_uvsmtpd({"--print-config", "--config", dir + "/conf"});
  remove_tree(dir);
  CHECK(r.status == 0);
  CHECK(r.output.find("[state]\nredis = \"127.0.0.1:6379\"\ntimeout = 0.5\n") != std::string::npos);
  CHECK(r.output.find("# password: set (not shown)") != std::string::npos);
  CHECK(r.output.find("db = 3") != std::string::npos);
  CHECK(r.output.find("Secr3t-pw") == std::string::npos);
  RunResult d = run_uvsmtpd({"--print-defaults"});
  CHECK(d.output.find("[state]\nredis = \"\"\ntimeout = 0.2\npassword = \"\"\ndb = 0\n"
                      "max_entries = 1000000\n") != std::string::npos);
}

TEST_CASE("state: Redis password and database; a wrong password is reported once") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  CHECK(redis.cli("CONFIG SET requirepass Secr3t-pw") == "OK");
  const std::string plugins = "ratelimit connections 100\nrcpt_ok\n";
  Server good(opts(redis.toml() + "password = \"Secr3t-pw\"\ndb = 2\n", plugins));
  Server bad(opts(redis.toml() + "password = \"wrong\"\n", plugins));
  REQUIRE(good.started());
  REQUIRE(bad.started());
  CHECK(good.wait_log("state: connected to Redis"));
  {
    Client c(good.port());
    CHECK(starts(c.reply(), "220 "));
  }
  CHECK(redis.cli("-a Secr3t-pw --no-auth-warning -n 2 GET uvsmtpd:ratelimit:conn:127.0.0.1") ==
        "1");
  CHECK(bad.wait_log("is unavailable (it refused AUTH: "));
  {
    Client c(bad.port());  // state-fail open: let in, not counted
    CHECK(starts(c.reply(), "220 "));
  }
  usleep(500000);  // retries meanwhile log nothing more
  CHECK(bad.count_log("is unavailable") == 1);
  CHECK(bad.count_log("Secr3t-pw") == 0);
}

TEST_CASE("state: greylist: a triplet too long for a key is hashed") {
  const std::string label(58, 'b');
  const std::string far = label + "." + label + "." + label + ".";
  const std::string from = std::string(64, 'a') + "@" + far + "example";  // 249 bytes
  const std::string to = std::string(64, 'c') + "@" + far + "test";       // 246 bytes
  Options o = opts("", "greylist delay 0.3\nrcpt_ok\n");
  o.files["rcpthosts"] = "example.test\n" + far + "test\n";
  Server s(o);
  REQUIRE(s.started());
  CHECK(starts(rcpt_reply(s, from, to), "451 4.7.1 Greylisted"));
  CHECK(s.wait_log("greylisted (first attempt): t:127.0.0.0/24:h"));
  usleep(400000);
  CHECK(starts(rcpt_reply(s, from, to), "250 "));
}

TEST_CASE("state: greylist remembers a whitelisted triplet locally for `cache` seconds") {
  if (!RedisServer::available()) return;
  RedisServer redis;
  REQUIRE(redis.started());
  Server cached(opts(redis.toml(), "greylist delay 1 window 60 state-fail closed\nrcpt_ok\n"));
  Server uncached(
      opts(redis.toml(), "greylist delay 1 window 60 cache 0 state-fail closed\nrcpt_ok\n"));
  require_connected(cached);
  require_connected(uncached);
  CHECK(starts(rcpt_reply(cached, "alice@remote.example", "bob@example.test"), "451 4.7.1"));
  usleep(1200000);
  CHECK(starts(rcpt_reply(cached, "alice@remote.example", "bob@example.test"), "250 "));
  CHECK(starts(rcpt_reply(uncached, "alice@remote.example", "bob@example.test"), "250 "));
  CHECK(starts(rcpt_reply(cached, "alice@remote.example", "bob@example.test"), "250 "));
  // With Redis gone, the triplet this server found whitelisted still passes here without a
  // lookup; the server without the cache must ask and fails closed, as does a new triplet.
  redis.kill_now();
  for (Server *x : {&cached, &uncached}) CHECK(x->wait_log("is unavailable"));
  CHECK(starts(rcpt_reply(cached, "ALICE@remote.example", "bob@example.test"), "250 "));
  CHECK(starts(rcpt_reply(uncached, "alice@remote.example", "bob@example.test"), "451 4.3.0"));
  CHECK(starts(rcpt_reply(cached, "carol@remote.example", "bob@example.test"), "451 4.3.0"));
  CHECK(cached.count_log("deferred (state-fail closed)") == 1);
}
