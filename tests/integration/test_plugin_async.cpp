// tests/integration/test_plugin_async.cpp: the ABI 1.3 async members through the real binary and
// tests/plugins/async_probe: plugin-level timers (shutdown, retirement before fini, stop inside the
// callback), notes from a worker thread, the cancel callback, complete() inside the hook, lifetimes
// after complete(), logv/set_errorfv, hook_timeout_ms; a client that goes away (FIN, reset)
// while a call is pending, a half-close behind more commands, and input pipelined meanwhile.
#include <cerrno>
#include <csignal>
#include <doctest/doctest.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.hpp"

using namespace itest;

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}
std::string num(int v) {
  return std::to_string(v);
}

Options opts(const std::string &plugins, const std::string &toml = "") {
  Options o;
  o.plugins = plugins;
  o.toml = toml;
  return o;
}

bool up(const Server &s) {
  return s.started() && s.wait_log(" started (pid", 15);
}

// Greets, then sends a VRFY whose call async_probe never completes (it registers a cancel
// callback); returns once the call is pending.
void leave_pending(Server &s, Client &c) {
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("HELO client.example").rfind("250 ", 0) == 0);
  c.line("VRFY never");
  REQUIRE(s.wait_log("async_probe: vrfy never on_cancel=0"));
}

// The value of the first "async_probe: <what>=" line, or of the first " <what>=" word in a
// line of async_probe (the value ends at a blank or the line end).
std::string probe(const std::string &log, const std::string &what) {
  std::string needle = "async_probe: " + what + "=";
  size_t pos = log.find(needle);
  if (pos == std::string::npos) {
    needle = " " + what + "=";
    for (pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) {
      size_t bol = log.rfind('\n', pos);
      bol = bol == std::string::npos ? 0 : bol + 1;
      if (log.substr(bol, pos - bol).find("async_probe: ") != std::string::npos) break;
    }
  }
  if (pos == std::string::npos) return "<missing>";
  pos += needle.size();
  return log.substr(pos, log.find_first_of(" \n", pos) - pos);
}

}  // namespace

TEST_CASE("plugin_async: init sees hook_timeout_ms, logv, and the new members' argument checks") {
  Server s(opts("async_probe\n", "hook_timeout = 0.3\n"));
  REQUIRE(up(s));
  std::string log = s.log();
  CHECK(probe(log, "init hook_timeout_ms") == "300");
  CHECK(probe(log, "init hook_timeout_ms_null") == num(-EINVAL));
  CHECK(probe(log, "init timer_start_nullcb") == "NULL");
  CHECK(probe(log, "timer_start_nullp") == "NULL");
  CHECK(probe(log, "timer_stop_null") == num(-EINVAL));
  CHECK(has(log, "async_probe: logv 7 seven\n"));
}

TEST_CASE("plugin_async: set_errorfv fails init with the formatted message") {
  std::string dir = make_tree(opts("async_probe failv=1\n"));
  RunResult r =
      run_uvsmtpd({"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
  remove_tree(dir);
  CHECK(r.status != 0);
  CHECK(has(r.output, "plugin 'async_probe' failed to initialise: failv 42 forty-two"));
}

TEST_CASE("plugin_async: a repeating timer does not hold SIGTERM; it is stopped before fini") {
  Server s(opts("async_probe tick=20\n"));
  REQUIRE(up(s));
  REQUIRE(s.wait_log("async_probe: tick 5\n"));
  double t0 = now();
  s.signal(SIGTERM);
  CHECK(s.wait_exit(5) == 0);  // an active, referenced timer would keep the loop running
  CHECK(now() - t0 < 2);
  std::string log = s.log();
  CHECK(has(log, "async_probe: fini timer_stop=0 ticks="));
  CHECK(has(log, "async_probe: fini timer_start=NULL"));  // none started during fini
  CHECK(!has(log, "tick after fini"));
  // every tick line comes before fini
  CHECK(log.rfind("async_probe: tick ") < log.find("async_probe: fini"));
}

TEST_CASE("plugin_async: a reload retires the instance: its timer is stopped before its fini") {
  Server s(opts("async_probe tick=10\n"));
  REQUIRE(up(s));
  REQUIRE(s.wait_log("async_probe: tick 3\n"));
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  REQUIRE(s.wait_log("async_probe: fini timer_stop=0"));    // no session: retired at once
  CHECK(s.wait_log("async_probe: fini timer_start=NULL"));  // the instance's timers are over
  usleep(200 * 1000);                                       // ~20 periods of the timer
  CHECK(s.count_log("tick after fini") == 0);
  CHECK(s.count_log("async_probe: init hook_timeout_ms=") == 2);  // the new instance ticks on
  s.signal(SIGTERM);
  CHECK(s.wait_exit(5) == 0);
  CHECK(s.count_log("async_probe: fini timer_stop=0") == 2);
  CHECK(s.count_log("tick after fini") == 0);
}

TEST_CASE("plugin_async: a timer stopped inside its own callback; a one-shot timer fires once") {
  Server s(opts("async_probe tick=10 stop_at=3 once=30\n"));
  REQUIRE(up(s));
  REQUIRE(s.wait_log("async_probe: tick 3 stop=0\n"));
  REQUIRE(s.wait_log("async_probe: once fired\n"));
  usleep(200 * 1000);
  CHECK(s.count_log("async_probe: tick 4") == 0);
  CHECK(s.count_log("async_probe: once fired") == 1);
  s.signal(SIGTERM);
  CHECK(s.wait_exit(5) == 0);
  CHECK(s.count_log("async_probe: fini timer_stop=0 ticks=3") == 1);
}

TEST_CASE(
    "plugin_async: notes set on a worker thread are there before the verdict and in later hooks") {
  Server s(opts("async_probe\n"));
  REQUIRE(up(s));
  Client c(s.port());
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("HELO worker").rfind("250 ", 0) == 0);  // OK: the core's own HELO reply
  REQUIRE(s.wait_log("async_probe: worker complete="));
  std::string log = s.log();
  CHECK(probe(log, "worker note_set") == "0");
  CHECK(probe(log, "worker complete") == "0");
  // the ok observer runs right after the verdict: the worker's note is already applied
  CHECK(probe(log, "ok worker.result") == "computed-6");
  CHECK(has(log, "helo note_set_bad scope=" + num(-EINVAL) + " key=" + num(-EINVAL) +
                     " empty=" + num(-EINVAL) + " null=" + num(-EINVAL)));
  CHECK(c.cmd("MAIL FROM:<a@example.org>").rfind("250 ", 0) == 0);
  REQUIRE(s.wait_log("async_probe: mail worker.result="));
  log = s.log();
  CHECK(probe(log, "mail worker.result") == "computed-6");
  CHECK(probe(log, "worker.erase") == "(null)");  // deleted by the worker (value NULL)
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
}

TEST_CASE(
    "plugin_async: a work function may log through the instance after complete(); fini waits") {
  Server s(opts("async_probe\n"));
  REQUIRE(up(s));
  {
    Client c(s.port());
    CHECK(c.reply().rfind("220 ", 0) == 0);
    CHECK(c.cmd("HELO worker").rfind("250 ", 0) == 0);  // OK: the core's own HELO reply
    CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
    CHECK(c.closed());
  }
  // the session is over, the work function still sleeps 150 ms: a reload retires the instance
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  REQUIRE(s.wait_log("async_probe: worker after complete"));
  REQUIRE(s.wait_log("async_probe: fini timer_stop="));
  std::string log = s.log();
  CHECK(log.find("async_probe: worker after complete") < log.find("async_probe: fini timer_stop="));
}

TEST_CASE(
    "plugin_async: the cancel callback runs once at the hook timeout, never after a completion") {
  Server s(opts("async_probe\n", "hook_timeout = 0.3\n"));
  REQUIRE(up(s));
  Client c(s.port());
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("HELO client.example").rfind("250 ", 0) == 0);
  // normal completion from a timer, and complete() inside the hook: no cancel
  CHECK(c.cmd("VRFY quick") == "252 quick done");
  CHECK(c.cmd("VRFY inhook") == "252 inhook done");
  std::string log = s.log();
  CHECK(probe(log, "vrfy quick on_cancel") == "0");
  CHECK(probe(log, "inhook complete") == "0");
  CHECK(has(log, "on_cancel=0 null=" + num(-EINVAL) + " nullcb=" + num(-EINVAL)));
  // never completed: the hook timeout answers, and the plugin hears of it
  CHECK(c.cmd("VRFY never") == "451 4.3.0 Temporary failure, please try again later");
  REQUIRE(s.wait_log("async_probe: cancel complete="));
  log = s.log();
  CHECK(probe(log, "cancel never pending_call") == "(null)");
  CHECK(has(log, " again=" + num(-ECANCELED)));  // the core has let go: nothing registered
  CHECK(probe(log, "cancel complete") == num(-ECANCELED));
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  usleep(100 * 1000);
  CHECK(s.count_log("async_probe: cancel never") == 1);  // once; not for quick or inhook
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
}

TEST_CASE(
    "plugin_async: a client gone during a pending call: the cancel callback runs (at the EOF)") {
  Server s(opts("async_probe\n", "hook_timeout = 0.3\n"));
  REQUIRE(up(s));
  {
    Client c(s.port());
    leave_pending(s, c);
  }  // the client leaves while the call is pending
  REQUIRE(s.wait_log("async_probe: cancel complete=", 3));
  CHECK(probe(s.log(), "cancel complete") == num(-ECANCELED));
  usleep(100 * 1000);
  CHECK(s.count_log("async_probe: cancel never") == 1);
  CHECK(s.running());
}

TEST_CASE(
    "plugin_async: the session closed under a pending call (shutdown) runs the cancel callback") {
  // hook_timeout far away: only the end of the shutdown grace lets go of the call
  Server s(opts("async_probe\n", "hook_timeout = 30\nshutdown_grace = 0.3\n"));
  REQUIRE(up(s));
  Client c(s.port());
  leave_pending(s, c);
  double t0 = now();
  s.signal(SIGTERM);
  CHECK(s.wait_exit(5) == 0);
  CHECK(now() - t0 < 3);
  std::string log = s.log();
  CHECK(probe(log, "cancel never pending_call") == "(null)");
  CHECK(probe(log, "cancel complete") == num(-ECANCELED));
  CHECK(s.count_log("async_probe: cancel never") == 1);
  CHECK(log.find("async_probe: cancel complete=") < log.find("async_probe: fini"));
}

// ---- the client goes away while a call is pending (the session reads while it waits) ----------

namespace {

// A client that can leave with a TCP reset (SO_LINGER 0) instead of a FIN.
struct ResetClient : Client {
  using Client::Client;
  void reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }
};

// Greets, opens a transaction and leaves RCPT TO:<late@...> pending (async_probe registers a
// cancel callback there and completes by itself only after 1.5 s).
void rcpt_pending(Server &s, Client &c) {
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("EHLO client.example").rfind("250", 0) == 0);  // PIPELINING
  CHECK(c.cmd("MAIL FROM:<a@example.org>").rfind("250 ", 0) == 0);
  c.line("RCPT TO:<late@example.org>");
  REQUIRE(s.wait_log("async_probe: rcpt late on_cancel=0"));
}

// After the client left at t0 (nothing sent after the RCPT): the cancel callback ran at once
// (hook_timeout is 10 s, the plugin's own completion 1.5 s away), then the disconnect hook, once;
// the late complete() gets -ECANCELED.
void check_cancelled_at_once(Server &s, double t0, const std::string &lost_line) {
  REQUIRE(s.wait_log("async_probe: cancel rcpt pending_call=(null)", 3));
  CHECK(now() - t0 < 0.8);
  REQUIRE(s.wait_log("async_probe: disconnect", 3));
  REQUIRE(s.wait_log("async_probe: rcpt late complete=", 4));
  std::string log = s.log();
  CHECK(has(log, lost_line));
  CHECK(probe(log, "rcpt late complete") == num(-ECANCELED));
  CHECK(log.find("async_probe: cancel rcpt") < log.find("async_probe: disconnect"));
  CHECK(log.find("async_probe: disconnect") < log.find("async_probe: rcpt late complete="));
  CHECK(s.count_log("async_probe: cancel rcpt") == 1);
  CHECK(s.count_log("async_probe: disconnect\n") == 1);
  CHECK(!has(log, "did not complete within"));
  CHECK(s.running());
}

}  // namespace

TEST_CASE("plugin_async: a client that closes during a pending rcpt: cancel at once, disconnect") {
  Server s(opts("async_probe\n", "hook_timeout = 10\n"));
  REQUIRE(up(s));
  double t0 = 0;
  {
    Client c(s.port());
    rcpt_pending(s, c);
    t0 = now();
  }  // FIN
  check_cancelled_at_once(s, t0, "lost connection while the rcpt hook of async_probe was pending");
}

TEST_CASE("plugin_async: a client that resets during a pending rcpt: cancel at once, disconnect") {
  Server s(opts("async_probe\n", "hook_timeout = 10\n"));
  REQUIRE(up(s));
  ResetClient c(s.port());
  rcpt_pending(s, c);
  c.send("RSET\r\n");  // buffered behind the pending call: a reset drops it all the same
  usleep(50 * 1000);
  double t0 = now();
  c.reset();
  check_cancelled_at_once(s, t0,
                          "lost connection: connection reset by peer while the rcpt hook of "
                          "async_probe was pending; buffered input dropped");
}

TEST_CASE("plugin_async: a half-close behind more commands: the call finishes, all are answered") {
  // The client sends its last commands, then FIN, and still reads: as Postfix serves what it
  // has read, the pending call is not given up; its verdict and the buffered commands are
  // answered in order, then the session closes (docs/plugins.md 2.5, point 6).
  Server s(opts("async_probe\n", "hook_timeout = 10\n"));
  REQUIRE(up(s));
  Client c(s.port());
  rcpt_pending(s, c);
  c.send("RSET\r\nQUIT\r\n");
  c.shutdown_write();
  CHECK(c.reply(4).rfind("250 ", 0) == 0);  // RCPT: the plugin's own completion at 1.5 s
  CHECK(c.reply().rfind("250 ", 0) == 0);   // RSET
  CHECK(c.reply().rfind("221 ", 0) == 0);   // QUIT
  CHECK(c.closed(3));
  REQUIRE(s.wait_log("async_probe: disconnect\n"));
  std::string log = s.log();
  CHECK(probe(log, "rcpt late complete") == "0");
  CHECK(!has(log, "async_probe: cancel rcpt"));
  CHECK(!has(log, "lost connection"));
}

TEST_CASE("plugin_async: input pipelined while a call is pending is answered in order after it") {
  Server s(opts("async_probe\n", "hook_timeout = 10\n"));
  REQUIRE(up(s));
  Client c(s.port());
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("EHLO client.example").rfind("250", 0) == 0);
  c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<slow@example.org>\r\n");
  usleep(100 * 1000);  // the rcpt call is pending (300 ms): the rest arrives meanwhile
  c.send("RCPT TO:<slow@example.org>\r\nRCPT TO:<" + std::string(600, 'x') +
         "@example.org>\r\nRSET\r\nMAIL FROM:<b@example.org>\r\n");
  CHECK(c.reply().rfind("250 ", 0) == 0);  // MAIL
  CHECK(c.reply() == "250 2.1.5 slow ok");
  CHECK(c.reply() == "250 2.1.5 slow ok");
  CHECK(c.reply() == "500 5.5.2 Error: line too long");  // buffered, judged after the verdicts
  CHECK(c.reply().rfind("250 ", 0) == 0);                // RSET
  CHECK(c.reply().rfind("250 ", 0) == 0);                // MAIL
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  CHECK(!has(s.log(), "lost connection"));
}
