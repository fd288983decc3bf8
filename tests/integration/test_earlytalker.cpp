// tests/integration/test_earlytalker.cpp: earlytalker.so against the real server (issue 4).
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "harness.hpp"

using namespace itest;

namespace {

// Accepts recipients and queues; listed AFTER earlytalker (order only matters per hook).
const std::string kAccept = "verdict:9 rcpt=OK queue=OK\n";
const std::string kBanner = "220 mx.test.invalid ESMTP uvsmtpd";
const std::string kTeaser = "220-mx.test.invalid ESMTP uvsmtpd";
const std::string kConnText = "Connecting host started transmitting before SMTP greeting";
const std::string kDataText = "Client started transmitting message data before the 354 reply";
// libuv's loop clock has millisecond granularity, so a timer may fire up to ~1 ms before the
// client's clock says `wait` has passed (measured: 0.9993 s for wait 1).
constexpr double kEarly = 0.005;
// "Well before wait + 0.5 s".
constexpr double kSlack = 0.5;

std::vector<std::string> plugin_dir_args(const std::string &tree) {
  return {"--plugin-dir", tree + "/plugins"};
}

Options opts(const std::string &plugins, const std::string &toml = "",
             std::vector<std::string> args = {}) {
  Options o;
  o.plugins = plugins;
  o.toml = toml;
  o.args = std::move(args);
  return o;
}

double since(const Client &c) {
  return now() - c.connected_at();
}

// A polite client: waits for the greeting; returns it and when it came.
struct Timed {
  std::string reply;
  double t = 0;
};
Timed greeting(Client &c, double timeout = 5) {
  Timed r;
  r.reply = c.reply(timeout);
  r.t = since(c);
  return r;
}

// A client that talks at t=0; the first reply, when it came, and whether the server closed.
struct Early {
  std::string reply;
  double t = 0;
  bool closed = false;
};
Early talk_first(int port, const std::string &bytes = "EHLO early.example\r\n") {
  Client c(port);
  c.send(bytes);
  Early e;
  e.reply = c.reply(5);
  e.t = since(c);
  if (e.reply.rfind("220", 0) != 0) e.closed = c.closed(3);  // a greeted client stays connected
  return e;
}

// EHLO + MAIL + RCPT, each checked; leaves the session ready for DATA.
void envelope(Client &c) {
  REQUIRE(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  REQUIRE(c.cmd("MAIL FROM:<a@sender.example>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
}

const char kBody[] = "Subject: t\r\n\r\nhello\r\n";

// EHLO and a whole message; the reply to the end of data.
std::string ehlo_and_message(Client &c) {
  std::string r = c.cmd("EHLO client.example");
  if (r.rfind("250-", 0) != 0) return r;
  return send_message(c, "a@sender.example", {"u@example.com"}, kBody);
}

}  // namespace

// ---- qpsmtpd.md §4.4 rows ------------------------------------------------------------------

TEST_CASE(
    "earlytalker: defaults (wait 1): polite banner after 1 s; early talker 550 at once, then "
    "close") {
  Server s(opts("earlytalker\n" + kAccept));
  REQUIRE(s.started());
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t >= 1.0 - kEarly);
    CHECK(g.t < 1.0 + kSlack);
    CHECK(ehlo_and_message(c).rfind("250 ", 0) == 0);
    CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  }
  Early e = talk_first(s.port());
  CHECK(e.reply == "550 5.5.0 " + kConnText);
  CHECK(e.t < 0.5);  // at once, not after the timer
  CHECK(e.closed);   // graceful: the reply was read before the close
  CHECK(s.wait_log("earlytalker: pass, not spontaneous"));
  CHECK(s.wait_log("earlytalker: fail, remote started talking before we said hello"));
  CHECK(s.wait_log("earlytalker: karma -1 (-1)"));
}

TEST_CASE("earlytalker: each reject_type at CONNECT") {
  struct Row {
    const char *type;
    std::string reply;
  };
  const Row rows[] = {
      {"perm", "550 5.5.0 " + kConnText},       {"hard", "550 5.5.0 " + kConnText},
      {"temp", "450 4.5.0 " + kConnText},       {"soft", "450 4.5.0 " + kConnText},
      {"disconnect", "550 5.5.0 " + kConnText}, {"temp_disconnect", "450 4.5.0 " + kConnText},
      {"TEMP", "450 4.5.0 " + kConnText},
  };
  for (const Row &row : rows) {
    CAPTURE(row.type);
    Server s(opts(std::string("earlytalker wait 1 reject_type ") + row.type + "\n"));
    REQUIRE(s.started());
    Early e = talk_first(s.port());
    CHECK(e.reply == row.reply);
    CHECK(e.t < 0.5);
    CHECK(e.closed);  // every connect denial closes
  }
}

TEST_CASE("earlytalker: EOF (half-close) before the greeting counts as early talk") {
  Server s(opts("earlytalker wait 1\n"));
  REQUIRE(s.started());
  Client c(s.port());
  c.shutdown_write();
  std::string r = c.reply(3);
  CHECK(r == "550 5.5.0 " + kConnText);
  CHECK(since(c) < 0.5);
  CHECK(c.closed());
  CHECK(s.wait_log("fail, remote started talking before we said hello (then closed)"));
}

TEST_CASE("earlytalker: reject 0 and action log tolerate: banner at once, session proceeds") {
  for (const char *arg : {"reject 0", "action log"}) {
    CAPTURE(arg);
    Server s(opts(std::string("earlytalker wait 0.5 ") + arg + "\n" + kAccept));
    REQUIRE(s.started());
    {
      Client polite(s.port());
      Timed g = greeting(polite);
      CHECK(g.reply == kBanner);
      CHECK(g.t >= 0.5 - kEarly);
      CHECK(g.t < 0.5 + kSlack);
    }
    Client c(s.port());
    c.send("EHLO early.example\r\n");
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t < 0.25);                                      // early talkers get the banner at once
    CHECK(c.reply().rfind("250-mx.test.invalid", 0) == 0);  // the EHLO sent early is answered
    CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
    CHECK(s.wait_log("earlytalker: fail, tolerated, remote started talking before we said hello"));
    CHECK(s.wait_log("karma -1 (-1)"));
  }
}

TEST_CASE("earlytalker: legacy action deny gives 550, action denysoft gives 450 (qpsmtpd: 550)") {
  {
    Server s(opts("earlytalker wait 1 action deny\n"));
    REQUIRE(s.started());
    Early e = talk_first(s.port());
    CHECK(e.reply == "550 5.5.0 " + kConnText);
    CHECK(e.closed);
  }
  {
    Server s(opts("earlytalker wait 1 action denysoft\n"));
    REQUIRE(s.started());
    Early e = talk_first(s.port());
    CHECK(e.reply == "450 4.5.0 " + kConnText);
    CHECK(e.closed);
  }
  {  // reject given: action is ignored
    Server s(opts("earlytalker wait 1 reject 1 action log\n"));
    REQUIRE(s.started());
    CHECK(talk_first(s.port()).reply == "550 5.5.0 " + kConnText);
    CHECK(s.wait_log("'action log' ignored"));
  }
}

TEST_CASE(
    "earlytalker: defer-reject 1: banner at once, MAIL 550 (perm default), RCPT 503, QUIT 221") {
  Server s(opts("earlytalker wait 1 defer-reject 1\n" + kAccept));
  REQUIRE(s.started());
  {
    Client polite(s.port());
    Timed g = greeting(polite);
    CHECK(g.reply == kBanner);
    CHECK(g.t >= 1.0 - kEarly);
    CHECK(ehlo_and_message(polite).rfind("250 ", 0) == 0);
  }
  Client c(s.port());
  c.send("EHLO early.example\r\n");
  Timed g = greeting(c);
  CHECK(g.reply == kBanner);
  CHECK(g.t < 0.5);
  CHECK(c.reply().rfind("250-", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@sender.example>") == "550 5.5.0 " + kConnText);
  CHECK(c.cmd("RCPT TO:<u@example.com>") == "503 5.5.1 Use MAIL before RCPT");
  CHECK(c.cmd("DATA").rfind("503 ", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<b@sender.example>") == "550 5.5.0 " + kConnText);  // every MAIL
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  CHECK(c.closed());
  CHECK(s.wait_log("fail, remote started talking before we said hello (deferred reject at MAIL)", 5,
                   2));
  // karma -1 once per connection, not again on every MAIL (qpsmtpd: -1, -2, ...)
  CHECK(s.count_log("karma -1") == 1);
}

TEST_CASE("earlytalker: defer-reject with each reject_type at MAIL") {
  struct Row {
    const char *type;
    std::string reply;
    bool closes;
  };
  const Row rows[] = {
      {"perm", "550 5.5.0 " + kConnText, false},
      {"temp", "450 4.5.0 " + kConnText, false},
      {"disconnect", "550 5.5.0 " + kConnText, true},
      {"temp_disconnect", "421 4.5.0 " + kConnText, true},
  };
  for (const Row &row : rows) {
    CAPTURE(row.type);
    Server s(opts(std::string("earlytalker wait 1 defer-reject 1 reject_type ") + row.type + "\n" +
                  kAccept));
    REQUIRE(s.started());
    Client c(s.port());
    c.send("EHLO early.example\r\n");
    CHECK(c.reply() == kBanner);
    CHECK(c.reply().rfind("250-", 0) == 0);
    CHECK(c.cmd("MAIL FROM:<a@sender.example>") == row.reply);
    if (row.closes) {
      CHECK(c.closed());
    } else {
      CHECK(c.cmd("NOOP").rfind("250 ", 0) == 0);
    }
  }
}

TEST_CASE("earlytalker: defer-reject 0 rejects at connect with 550 (qpsmtpd: 450 by a bug)") {
  Server s(opts("earlytalker wait 1 defer-reject 0\n"));
  REQUIRE(s.started());
  Early e = talk_first(s.port());
  CHECK(e.reply == "550 5.5.0 " + kConnText);
  CHECK(e.closed);
}

TEST_CASE("earlytalker: defer-reject refuses RCPT too (MAIL accepted by an earlier plugin)") {
  // verdict:0 answers OK at MAIL, so the chain stops before earlytalker's mail hook; the RCPT
  // then reaches earlytalker's rcpt hook.
  Server s(opts("verdict:0 mail=OK\nearlytalker wait 1 defer-reject 1\n" + kAccept));
  REQUIRE(s.started());
  Client c(s.port());
  c.send("EHLO early.example\r\n");
  CHECK(c.reply() == kBanner);
  CHECK(c.reply().rfind("250-", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@sender.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.5.0 " + kConnText);
  CHECK(c.cmd("RCPT TO:<v@example.com>") == "550 5.5.0 " + kConnText);
  CHECK(c.cmd("DATA").rfind("503 ", 0) == 0);
  CHECK(s.wait_log("(deferred reject at RCPT)", 5, 2));
}

TEST_CASE("earlytalker: defer-reject spares a session that became immune by MAIL") {
  // verdict:0 sets whitelisthost at MAIL, before earlytalker runs in the mail chain.
  Server s(opts(
      "verdict:0 mail=DECLINED mail.note=whitelisthost:1\nearlytalker wait 1 defer-reject 1\n" +
      kAccept));
  REQUIRE(s.started());
  Client c(s.port());
  c.send("EHLO early.example\r\n");
  CHECK(c.reply() == kBanner);
  CHECK(c.reply().rfind("250-", 0) == 0);
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  CHECK(s.wait_log("skip, whitelisted host (early talker, deferred reject waived)"));
}

TEST_CASE("earlytalker: check-at DATA: banner at once, 354 after wait; early EHLO not checked") {
  Server s(opts("earlytalker check-at DATA wait 0.4\n" + kAccept));
  REQUIRE(s.started());
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t < 0.25);
    envelope(c);
    double t0 = now();
    CHECK(c.cmd("DATA") == "354 go ahead");
    CHECK(now() - t0 >= 0.4 - kEarly);
    CHECK(now() - t0 < 0.4 + kSlack);
    c.send(std::string(kBody) + ".\r\n");
    CHECK(c.reply().rfind("250 ", 0) == 0);
  }
  {  // client talks first: not checked at connect
    Client c(s.port());
    c.send("EHLO early.example\r\n");
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t < 0.25);
    CHECK(c.reply().rfind("250-", 0) == 0);
  }
  CHECK(s.count_log("earlytalker: fail") == 0);
}

TEST_CASE("earlytalker: check-at DATA: body sent before the 354 -> 554/451 and close") {
  struct Row {
    const char *args;
    std::string reply;
  };
  const Row rows[] = {
      {"check-at DATA wait 1", "554 5.5.0 " + kDataText},
      {"check-at data wait 1", "554 5.5.0 " + kDataText},  // case-insensitive
      {"check-at DATA wait 1 reject_type temp", "451 4.5.0 " + kDataText},
      {"check-at DATA wait 1 reject_type disconnect", "554 5.5.0 " + kDataText},
      {"check-at DATA wait 1 reject_type temp_disconnect", "451 4.5.0 " + kDataText},
  };
  for (const Row &row : rows) {
    CAPTURE(row.args);
    Server s(opts(std::string("earlytalker ") + row.args + "\n" + kAccept));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    c.line("DATA");
    double t0 = now();
    usleep(150 * 1000);  // qpsmtpd's "data_early" scenario (0.3 s there)
    c.send(std::string(kBody) + ".\r\nQUIT\r\n");
    CHECK(c.reply() == row.reply);
    CHECK(now() - t0 < 0.5);  // at once, not after the wait
    CHECK(c.closed());        // the body is not read as commands
    CHECK(c.drained.find("500") == std::string::npos);
    CHECK(s.wait_log("fail, remote started sending data before the 354 reply"));
  }
  {  // reject 0 at DATA: tolerated, the early bytes are the message
    Server s(
        opts("earlytalker check-at DATA wait 1 reject 0\n" + kAccept, "", {"--no-sync-check"}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    c.line("DATA");
    usleep(100 * 1000);
    c.send(std::string(kBody) + ".\r\n");
    CHECK(c.reply() == "354 go ahead");
    CHECK(c.reply().rfind("250 ", 0) == 0);
    CHECK(s.wait_log("fail, tolerated, remote started sending data before the 354 reply"));
  }
}

TEST_CASE(
    "earlytalker: same-packet body with the core's sync check on: the core's 554 comes first") {
  Server s(opts("earlytalker check-at DATA wait 1\n" + kAccept));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  c.send("MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n" +
         std::string(kBody) + ".\r\nQUIT\r\n");
  CHECK(c.reply().rfind("250 ", 0) == 0);
  CHECK(c.reply().rfind("250 ", 0) == 0);
  double t0 = now();
  CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
  CHECK(now() - t0 < 0.5);
  CHECK(c.closed());
  CHECK(s.count_log("earlytalker: fail") == 0);  // the data hook never ran
}

TEST_CASE(
    "earlytalker: same-packet body with the sync check off: earlytalker catches it (qpsmtpd misses "
    "it)") {
  Server s(opts("earlytalker check-at DATA wait 1\n" + kAccept, "", {"--no-sync-check"}));
  REQUIRE(s.started());
  CHECK(s.wait_log("(sync_check off)"));
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  c.send("MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n" +
         std::string(kBody) + ".\r\nQUIT\r\n");
  CHECK(c.reply().rfind("250 ", 0) == 0);
  CHECK(c.reply().rfind("250 ", 0) == 0);
  double t0 = now();
  CHECK(c.reply() == "554 5.5.0 " + kDataText);
  CHECK(now() - t0 < 0.5);
  CHECK(c.closed());
  CHECK(c.drained.find("250") == std::string::npos);  // nothing queued, QUIT not answered
  CHECK(s.wait_log("fail, remote started sending data before the 354 reply"));
}

TEST_CASE("earlytalker: check-at DATA skips immune sessions and DATA without recipients") {
  Server s(
      opts("verdict:0 connect=DECLINED connect.note=whitelisthost:1\n"
           "earlytalker check-at DATA wait 1\n" +
           kAccept));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  double t0 = now();
  CHECK(c.cmd("DATA").rfind("503 ", 0) == 0);  // no transaction: no wait before the 503
  CHECK(now() - t0 < 0.5);
  CHECK(c.cmd("MAIL FROM:<a@sender.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
  t0 = now();
  CHECK(c.cmd("DATA") == "354 go ahead");
  CHECK(now() - t0 < 0.5);
  CHECK(s.wait_log("earlytalker: skip, whitelisted host"));
}

TEST_CASE("earlytalker: check-at CONNECT and DATA together") {
  Server s(opts("earlytalker check-at CONNECT check-at DATA wait 0.3\n" + kAccept));
  REQUIRE(s.started());
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t >= 0.3 - kEarly);
    CHECK(g.t < 0.3 + kSlack);
    envelope(c);
    double t0 = now();
    CHECK(c.cmd("DATA") == "354 go ahead");
    CHECK(now() - t0 >= 0.3 - kEarly);
    CHECK(now() - t0 < 0.3 + kSlack);
    c.send(std::string(kBody) + ".\r\n");
    CHECK(c.reply().rfind("250 ", 0) == 0);
  }
  Early e = talk_first(s.port());
  CHECK(e.reply == "550 5.5.0 " + kConnText);
  CHECK(e.closed);
  CHECK(s.wait_log("earlytalker: pass, not spontaneous", 5, 2));  // connect and DATA
}

TEST_CASE("earlytalker: wait 0.5: banner at ~0.5 s, early reject at once") {
  Server s(opts("earlytalker wait 0.5\n"));
  REQUIRE(s.started());
  Client c(s.port());
  Timed g = greeting(c);
  CHECK(g.reply == kBanner);
  CHECK(g.t >= 0.5 - kEarly);
  CHECK(g.t < 0.5 + kSlack);
  Early e = talk_first(s.port());
  CHECK(e.reply == "550 5.5.0 " + kConnText);
  CHECK(e.t < 0.25);
}

TEST_CASE("earlytalker: the wait override notes earlytalker_wait and relayclient_wait") {
  for (const char *key : {"earlytalker_wait", "relayclient_wait"}) {
    CAPTURE(key);
    Server s(opts(std::string("verdict:0 connect=DECLINED connect.note=") + key +
                  ":0.3\nearlytalker wait 2\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t >= 0.3 - kEarly);
    CHECK(g.t < 0.3 + kSlack);
  }
  {  // "0" (false) falls back to the configured wait, as in qpsmtpd
    Server s(
        opts("verdict:0 connect=DECLINED connect.note=earlytalker_wait:0\nearlytalker wait 0.4\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.t >= 0.4 - kEarly);
    CHECK(g.t < 0.4 + kSlack);
  }
  {  // garbage is ignored with a warning
    Server s(opts(
        "verdict:0 connect=DECLINED connect.note=earlytalker_wait:soon\nearlytalker wait 0.3\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.t >= 0.3 - kEarly);
    CHECK(g.t < 0.3 + kSlack);
    CHECK(s.wait_log("ignoring note earlytalker_wait='soon'"));
  }
}

TEST_CASE("earlytalker: karma_history > 5 and immune sessions skip the delay") {
  {
    Server s(opts("verdict:0 connect=DECLINED connect.note=karma_history:9\nearlytalker wait 1\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t < 0.25);
    CHECK(s.wait_log("earlytalker: skip, karma 9"));
  }
  {
    Server s(
        opts("verdict:0 connect=DECLINED connect.note=karma_history:5\nearlytalker wait 0.3\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.t >= 0.3 - kEarly);
  }
  {
    Server s(opts("verdict:0 connect=DECLINED connect.note=whitelisthost:1\nearlytalker wait 1\n"));
    REQUIRE(s.started());
    Early e = talk_first(s.port());  // immune: even a talker is greeted at once
    CHECK(e.reply == kBanner);
    CHECK(e.t < 0.25);
    CHECK(s.wait_log("earlytalker: skip, whitelisted host"));
  }
}

TEST_CASE(
    "earlytalker: banner-teaser: 220- at once, final 220 after wait; talking after the teaser is "
    "early") {
  Server s(opts("earlytalker wait 0.5 banner-teaser 1\n" + kAccept));
  REQUIRE(s.started());
  {
    Client c(s.port());
    std::string first = c.read_some(0.2);
    CHECK(first == kTeaser + "\r\n");  // only the teaser so far
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);  // the rest of the same multi-line reply
    CHECK(g.t >= 0.5 - kEarly);
    CHECK(g.t < 0.5 + kSlack);
    CHECK(ehlo_and_message(c).rfind("250 ", 0) == 0);
  }
  {  // what a line-by-line reader gets: one ordinary multi-line greeting
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kTeaser + "\n" + kBanner);
    CHECK(c.last_crlf_ok);
  }
  {  // a bot that answers the teaser
    Client c(s.port());
    std::string first = c.read_some(0.1);
    CHECK(first == kTeaser + "\r\n");
    c.line("EHLO bot.example");
    double t0 = now();
    CHECK(c.reply() == "550 5.5.0 " + kConnText);
    CHECK(now() - t0 < 0.25);
    CHECK(c.closed());
  }
}

TEST_CASE("earlytalker: allow: listed networks are never delayed") {
  // A CIDR, qpsmtpd's IPv4 prefix form, an IPv4-mapped network (= 127.0.0.0/8): the syntax of
  // relay's files (plugins/common/ipnet.c).
  for (const char *allow : {"127.0.0.1/8", "127.", "::ffff:127.0.0.0/104"}) {
    CAPTURE(allow);
    Server s(opts(std::string("earlytalker wait 1 allow ") + allow + "\n"));
    REQUIRE(s.started());
    Early e = talk_first(s.port());  // not even checked
    CHECK(e.reply == kBanner);
    CHECK(e.t < 0.25);
    CHECK(s.wait_log("earlytalker: skip, allow"));
  }
  {
    Server s(
        opts("earlytalker wait 1 allow 10.0.0.0/8,::1/128,127.0.0.0/8 check-at DATA\n" + kAccept));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    double t0 = now();
    CHECK(c.cmd("DATA") == "354 go ahead");
    CHECK(now() - t0 < 0.5);
  }
  {  // not listed: delayed
    Server s(opts("earlytalker wait 0.3 allow 10.0.0.0/8,2001:db8::/32 allow 192.168.0.1\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.t >= 0.3 - kEarly);
  }
}

TEST_CASE("earlytalker: pass-ttl: an IP that passed is not delayed again until the ttl ends") {
  Server s(opts("earlytalker wait 0.3 pass-ttl 0.9\n"));
  REQUIRE(s.started());
  double start = now();
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.t >= 0.3 - kEarly);
  }
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t < 0.2);
    CHECK(s.wait_log("earlytalker: skip, passed within pass-ttl"));
  }
  double left = start + 0.3 + 0.9 + 0.1 - now();  // past the ttl
  if (left > 0) usleep(static_cast<useconds_t>(left * 1e6));
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.t >= 0.3 - kEarly);
  }
  {  // without pass-ttl every connection waits
    Server s2(opts("earlytalker wait 0.3\n"));
    REQUIRE(s2.started());
    for (int i = 0; i < 2; ++i) {
      Client c(s2.port());
      CHECK(greeting(c).t >= 0.3 - kEarly);
    }
  }
}

TEST_CASE("earlytalker: odd, unknown and bad arguments refuse startup naming conf/plugins:LINE") {
  struct Row {
    const char *line;
    const char *message;
  };
  const Row rows[] = {
      {"earlytalker 2", "odd number of arguments (1)"},
      {"earlytalker wait 1 reject", "odd number of arguments (3)"},
      {"earlytalker wiat 1", "unknown argument 'wiat'"},
      {"earlytalker wait soon", "bad value 'soon' for 'wait'"},
      {"earlytalker wait -1", "bad value '-1' for 'wait'"},
      {"earlytalker reject naughty", "bad value 'naughty' for 'reject'"},
      {"earlytalker reject_type tempfail", "bad value 'tempfail' for 'reject_type'"},
      {"earlytalker check-at HELO", "bad value 'HELO' for 'check-at'"},
      {"earlytalker action accept", "bad value 'accept' for 'action'"},
      {"earlytalker loglevel 9", "bad value '9' for 'loglevel'"},
      {"earlytalker banner-teaser yes", "bad value 'yes' for 'banner-teaser'"},
      {"earlytalker allow 10.0.0.0/33", "'10.0.0.0/33' is not an IPv4/IPv6 address or CIDR"},
      {"earlytalker allow example.com", "'example.com' is not an IPv4/IPv6 address or CIDR"},
      {"earlytalker pass-ttl forever", "bad value 'forever' for 'pass-ttl'"},
      {"earlytalker wait 1 wait 2", "argument 'wait' given twice"},
  };
  for (const Row &row : rows) {
    CAPTURE(row.line);
    std::string dir = make_tree(opts(std::string("# line 1 is a comment\n") + row.line + "\n"));
    std::vector<std::string> args = {"--config", dir + "/conf", "--check-config"};
    for (const auto &a : plugin_dir_args(dir)) args.push_back(a);
    RunResult r = run_uvsmtpd(args);
    CHECK(r.status == 1);
    CHECK(r.output.find("conf/plugins:2: plugin 'earlytalker' failed to initialise") !=
          std::string::npos);
    CHECK(r.output.find(row.message) != std::string::npos);
    // and the server does not start either
    args = {"--config", dir + "/conf", "--listen", "127.0.0.1:0"};
    for (const auto &a : plugin_dir_args(dir)) args.push_back(a);
    RunResult r2 = run_uvsmtpd(args);
    CHECK(r2.status == 1);
    remove_tree(dir);
  }
  std::string good =
      make_tree(opts("earlytalker wait 0.5 reject 1 reject_type soft defer-reject 1 check-at "
                     "connect check-at DATA "
                     "loglevel -1 banner-teaser 1 allow 10.0.0.0/8,fe80::/10 pass-ttl 3600\n"
                     "earlytalker:1 action denysoft loglevel 6\n"));
  std::vector<std::string> args = {"--config", good + "/conf", "--check-config"};
  for (const auto &a : plugin_dir_args(good)) args.push_back(a);
  RunResult ok = run_uvsmtpd(args);
  CHECK(ok.status == 0);
  CHECK(ok.output.find("configuration OK") != std::string::npos);
  remove_tree(good);
}

TEST_CASE("earlytalker: earlytalker:0 plus earlytalker:1 (separate state per instance)") {
  Server s(opts("earlytalker:0 wait 0.3\nearlytalker:1 check-at DATA wait 0.3 reject_type temp\n" +
                kAccept));
  REQUIRE(s.started());
  {
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply == kBanner);
    CHECK(g.t >= 0.3 - kEarly);
    CHECK(g.t < 0.3 + kSlack);
    envelope(c);
    double t0 = now();
    CHECK(c.cmd("DATA") == "354 go ahead");
    CHECK(now() - t0 >= 0.3 - kEarly);
    CHECK(now() - t0 < 0.3 + kSlack);
    c.send(std::string(kBody) + ".\r\n");
    CHECK(c.reply().rfind("250 ", 0) == 0);
  }
  CHECK(s.wait_log("earlytalker:0: pass, not spontaneous"));
  CHECK(s.wait_log("earlytalker:1: pass, not spontaneous"));
  {  // instance 1 refuses at DATA with its own reject_type
    Client c(s.port());
    CHECK(c.reply(3) == kBanner);
    envelope(c);
    c.line("DATA");
    usleep(100 * 1000);
    c.send(kBody);
    CHECK(c.reply() == "451 4.5.0 " + kDataText);
    CHECK(c.closed());
  }
  Early e = talk_first(s.port());  // instance 0 at connect with its perm default
  CHECK(e.reply == "550 5.5.0 " + kConnText);
  s.signal(SIGTERM);
  CHECK(s.wait_exit() == 0);
  CHECK(s.count_log("earlytalker:0: checked 3, passed 2, early 1, skipped 0") == 1);
  CHECK(s.count_log("earlytalker:1: checked 2, passed 1, early 1, skipped 0") == 1);
}

TEST_CASE("earlytalker: counters and loglevel") {
  Server s(opts("earlytalker wait 0.2 allow 10.0.0.0/8\n"));
  REQUIRE(s.started());
  {
    Client c(s.port());
    CHECK(c.reply() == kBanner);
  }
  {
    Client c(s.port());
    CHECK(c.reply() == kBanner);
  }
  CHECK(talk_first(s.port()).reply == "550 5.5.0 " + kConnText);
  s.signal(SIGTERM);
  CHECK(s.wait_exit() == 0);
  CHECK(s.count_log("notice earlytalker: checked 3, passed 2, early 1, skipped 0") == 1);

  Server q(opts("earlytalker wait 0.2 loglevel 3\n"));  // every line at err
  REQUIRE(q.started());
  {
    Client c(q.port());
    CHECK(c.reply() == kBanner);
  }
  CHECK(q.wait_log("earlytalker: pass, not spontaneous"));
  std::string l = q.log();
  size_t at = l.find("earlytalker: pass, not spontaneous");
  REQUIRE(at != std::string::npos);
  size_t bol = l.rfind('\n', at);
  CHECK(l.substr(bol + 1, at - bol - 1).find(" err ") != std::string::npos);
}

TEST_CASE("earlytalker: a wait cut short by the core (hook_timeout, shutdown) ends cleanly") {
  {  // wait above the core's hook_timeout: the core answers, the plugin's handle is released
    Server s(opts("earlytalker wait 2\n", "hook_timeout = 0.3\n"));
    REQUIRE(s.started());
    Client c(s.port());
    Timed g = greeting(c);
    CHECK(g.reply.rfind("451 4.3.0 ", 0) == 0);
    CHECK(g.t >= 0.3 - kEarly);
    CHECK(g.t < 1.0);
    CHECK(c.closed());
    s.signal(SIGTERM);
    CHECK(s.wait_exit() == 0);
    CHECK(s.count_log("earlytalker: checked 1, passed 0, early 0, skipped 0") == 1);
  }
  {  // SIGTERM while a client waits for the banner: the grace period ends it
    Server s(opts("earlytalker wait 5\n", "shutdown_grace = 0.3\n"));
    REQUIRE(s.started());
    Client c(s.port());
    usleep(100 * 1000);
    s.signal(SIGTERM);
    std::string r = c.reply(3);
    CHECK(r.rfind("421 4.3.2 ", 0) == 0);
    CHECK(c.closed());
    CHECK(s.wait_exit() == 0);
    CHECK(s.count_log("earlytalker: checked 1, passed 0, early 0, skipped 0") == 1);
  }
}

TEST_CASE("earlytalker: 1,000 concurrent polite connections wait together, memory bounded") {
  constexpr int kN = 1000;
  constexpr double kWait = 1.0;
  Server s(opts("earlytalker wait 1\n", "max_connections_per_ip = 0\n", {}));
  REQUIRE(s.started());
  // warm up once so the loop, the plugin and the allocator are in their steady state
  {
    Client c(s.port());
    CHECK(c.reply() == kBanner);
  }
  long rss_before = s.rss_kb();
  std::vector<std::unique_ptr<Client>> clients;
  clients.reserve(kN);
  double t_first = now();
  for (int i = 0; i < kN; ++i) {
    clients.push_back(std::make_unique<Client>(s.port()));
    REQUIRE(clients.back()->connected());
  }
  double t_connect = now() - t_first;
  // all accepted and waiting: wait until the server has started every check
  usleep(static_cast<useconds_t>(std::max(0.0, t_first + 0.6 - now()) * 1e6));
  long rss_during = s.rss_kb();
  int early = 0;
  for (auto &c : clients)
    if (!c->read_some(0).empty()) ++early;
  CHECK(early == 0);  // nobody greeted before the wait
  double tmin = 1e9, tmax = 0;
  int ok = 0;
  for (auto &c : clients) {
    std::string r = c->reply(5);
    double t = since(*c);
    if (r == kBanner) ++ok;
    tmin = std::min(tmin, t);
    tmax = std::max(tmax, t);
  }
  CHECK(ok == kN);
  CHECK(tmin >= kWait - kEarly);
  CHECK(tmax <= 3.5);
  clients.clear();
  long rss_after = s.rss_kb();
  MESSAGE("1000 sessions: connect loop " << t_connect << " s; greeting after min " << tmin
                                         << " s, max " << tmax << " s; RSS before " << rss_before
                                         << " KiB, during " << rss_during << " KiB, after "
                                         << rss_after << " KiB");
  CHECK(rss_during > 0);
  CHECK(rss_during - rss_before < 64 * 1024);  // < 64 MiB for 1000 waiting sessions
}
