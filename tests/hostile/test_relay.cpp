// tests/hostile/test_relay.cpp: open-relay address tricks against the default conf/plugins.
#include <doctest/doctest.h>


#include "hostile.hpp"

using namespace hostile;

namespace {

const std::string kDenied = "550 5.7.1 Relaying denied";

// The shipped conf/plugins with the Maildir moved into the test's store and a shorter
// earlytalker wait (the default 1 s per connection would only cost time here).
Options default_like(const MailStore &store) {
  Options o = itest::shipped_options(store.root);
  REQUIRE(o.plugins.find("rcpt_ok") != std::string::npos);
  REQUIRE(o.plugins.find("queue/maildir " + store.root) != std::string::npos);
  // not a relay client here; the shipped users, and the two mailboxes these tests deliver to
  o.files["relayclients"] = "10.0.0.0/8\n";
  o.files["local_recipients"] += "u\nv\n";
  return o;
}

enum class Want { denied, syntax, local };

struct Probe {
  std::string from;  // MAIL FROM path
  std::string rcpt;  // RCPT TO path
  Want want;
  std::string shown = "";  // the accepted address when the core strips a route
  bool utf8 = false;       // MAIL with SMTPUTF8
};

// nmap smtp-open-relay's 16 combinations: D = other.example, S = mx.test.invalid, IP = 127.0.0.1.
std::vector<Probe> nmap_probes() {
  const std::string D = "other.example", S = "mx.test.invalid", IP = "[127.0.0.1]";
  const std::string from = "antispam@" + IP;
  return {
      {"", "relaytest@" + D, Want::denied},
      {"antispam@" + D, "relaytest@" + D, Want::denied},
      {"antispam@" + S, "relaytest@" + D, Want::denied},
      {from, "relaytest@" + D, Want::denied},
      {from, "relaytest%" + D + "@" + IP, Want::denied},
      {from, "relaytest%" + D + "@" + S, Want::denied},
      {from, "\"relaytest@" + D + "\"", Want::syntax},
      {from, "\"relaytest%" + D + "\"", Want::syntax},
      {from, "relaytest@" + D + "@" + IP, Want::syntax},
      {from, "\"relaytest@" + D + "\"@" + IP, Want::denied},
      {from, "relaytest@" + D + "@" + S, Want::syntax},
      {from, "@" + IP + ":relaytest@" + D, Want::denied},
      {from, "@" + S + ":relaytest@" + D, Want::denied},
      {from, D + "!relaytest", Want::syntax},
      {from, D + "!relaytest@" + IP, Want::denied},
      {from, D + "!relaytest@" + S, Want::denied},
  };
}

std::vector<Probe> more_probes() {
  const std::string from = "someone@example.test";  // a local sender grants nothing
  return {
      {from, "victim@OTHER.EXAMPLE", Want::denied},
      {from, "victim@other.example.", Want::syntax},
      {from, "victim@example.test.other.example", Want::denied},
      {from, "victim@sub.example.test", Want::denied},
      {from, "victim@localhost.other.example", Want::denied},
      {from, "victim@[10.0.0.1]", Want::denied},
      {from, "victim@[IPv6:::1]", Want::denied},
      {from, "victim@[IPv6:::ffff:127.0.0.1]", Want::denied},
      {from, "postmaster@other.example", Want::denied},
      {"", "victim%other.example@example.test", Want::denied},
      {"", "other.example!victim@example.test", Want::denied},
      {"", "\"victim@other.example\"@example.test", Want::denied},
      {"", "\"victim\\@other.example\"@example.test", Want::denied},
      {"", "\"victim%other.example\"@localhost", Want::denied},
      {"", "victim@other.example@example.test", Want::syntax},
      {"", "@example.test:victim@other.example", Want::denied},
      {"", "@example.test,@localhost:victim@other.example", Want::denied},
      {"", "victim@other.example%example.test", Want::syntax},
      {"", "victim@example.test\\@other.example", Want::syntax},
      {"", "<victim@other.example>", Want::syntax},
      {"postmaster@localhost", "victim@ex\xc3\xa4mple.test", Want::denied, "", true},
      {"postmaster@localhost", "victim@example\xef\xbc\x8etest", Want::denied, "", true},
      {"postmaster@localhost", "victim@xn--exmple-cua.test", Want::denied},
      {"postmaster@localhost", "Postmaster", Want::local},
      {"postmaster@localhost", "u@EXAMPLE.TEST", Want::local},
      {"postmaster@localhost", "@other.example:u@example.test", Want::local, "u@example.test"},
  };
}

// Runs probes in sessions of at most 8 (refusals count towards max_errors = 20), each session
// ending with one message to u@example.test. Returns the number of messages sent.
int run_probes(Server &s, const std::vector<Probe> &probes) {
  int sessions = 0;
  for (size_t start = 0; start < probes.size();) {
    Client c(s.port());
    REQUIRE(c.reply(5).rfind("220 ", 0) == 0);
    REQUIRE(c.cmd("EHLO [10.0.0.1]").rfind("250", 0) == 0);  // claiming a relay address: nothing
    size_t n = 0;
    for (; start < probes.size() && n < 8; ++start, ++n) {
      const Probe &p = probes[start];
      CAPTURE(p.from);
      CAPTURE(p.rcpt);
      std::string mail = c.cmd("MAIL FROM:<" + p.from + ">" + (p.utf8 ? " SMTPUTF8" : ""));
      CHECK(mail.rfind("250 2.1.0", 0) == 0);
      std::string r = c.cmd("RCPT TO:<" + p.rcpt + ">");
      if (p.want == Want::denied) CHECK(r == kDenied);
      if (p.want == Want::syntax) CHECK(r.rfind("501 5.1.3 ", 0) == 0);
      if (p.want == Want::local)
        CHECK(r == "250 2.1.5 <" + (p.shown.empty() ? p.rcpt : p.shown) + ">, recipient ok");
      CHECK(c.cmd("RSET") == "250 2.0.0 OK");
    }
    REQUIRE(envelope(c, "sender@client.example", {"u@example.test"}));
    CHECK(c.cmd("DATA") == "354 go ahead");
    c.send("Subject: relay probes\r\n\r\nx\r\n.\r\n");
    CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
    ++sessions;
  }
  return sessions;
}

// Every delivered file is in a local mailbox; returns false if any other directory got mail.
bool only_local(const MailStore &store) {
  for (const std::string &f : store.delivered())
    if (f.rfind("example.test/", 0) != 0 && f.rfind("localhost/", 0) != 0 &&
        f.rfind("mx.test.invalid/", 0) != 0)
      return false;
  return true;
}

}  // namespace

TEST_CASE("relay: nmap smtp-open-relay's 16 probes are refused; only u@example.test gets mail") {
  MailStore store;
  Server s(default_like(store));
  REQUIRE(s.started());
  int sessions = run_probes(s, nmap_probes());
  CHECK(store.count() == static_cast<size_t>(sessions));
  CHECK(store.mailbox("mx.test.invalid/u").size() == static_cast<size_t>(sessions));
  CHECK(only_local(store));
  CHECK(s.count_log("relay: skip, not a relay client") == sessions);
  CHECK(s.count_log("rcpt_ok: pass, relay client") == 0);
  CHECK(alive(s));
}

TEST_CASE("relay: case, trailing dots, subdomains, literals, routing and IDN look-alikes") {
  MailStore store;
  Server s(default_like(store));
  REQUIRE(s.started());
  int sessions = run_probes(s, more_probes());
  // Postmaster (bare) and u@EXAMPLE.TEST were accepted but their transactions were reset; the
  // messages are the one per session to u@example.test.
  CHECK(store.count() == static_cast<size_t>(sessions));
  CHECK(store.mailbox("mx.test.invalid/u").size() == static_cast<size_t>(sessions));
  CHECK(only_local(store));
  CHECK(alive(s));
}

TEST_CASE("relay: pretending to be a relay client (XCLIENT, PROXY, HELO) grants nothing") {
  MailStore store;
  Server s(default_like(store));
  REQUIRE(s.started());
  SUBCASE("PROXY protocol line and XCLIENT") {
    Client c(s.port());
    REQUIRE(c.reply(5).rfind("220 ", 0) == 0);
    CHECK(c.cmd("PROXY TCP4 10.0.0.1 127.0.0.1 40000 25") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("EHLO relay.example").rfind("250", 0) == 0);
    CHECK(c.cmd("XCLIENT ADDR=10.0.0.1 NAME=relay.example") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
    CHECK(c.cmd("RCPT TO:<victim@other.example>") == kDenied);
  }
  SUBCASE("foreign recipients hidden in a pipelined group of local ones") {
    Client c(s.port());
    REQUIRE(c.reply(5).rfind("220 ", 0) == 0);
    CHECK(c.cmd("EHLO relay.example").rfind("250", 0) == 0);
    c.send(
        "MAIL FROM:<a@client.example>\r\nRCPT TO:<u@example.test>\r\nRCPT "
        "TO:<victim@other.example>\r\n"
        "RCPT TO:<v@example.test>\r\nRCPT TO:<victim%other.example@example.test>\r\nDATA\r\n");
    CHECK(c.reply().rfind("250 2.1.0 ", 0) == 0);
    CHECK(c.reply() == "250 2.1.5 <u@example.test>, recipient ok");
    CHECK(c.reply() == kDenied);
    CHECK(c.reply() == "250 2.1.5 <v@example.test>, recipient ok");
    CHECK(c.reply() == kDenied);
    CHECK(c.reply() == "354 go ahead");
    c.send("Subject: mixed\r\n\r\nx\r\n.\r\n");
    CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(store.count() == 2);
    CHECK(store.mailbox("mx.test.invalid/u").size() == 1);
    CHECK(store.mailbox("mx.test.invalid/v").size() == 1);
  }
  CHECK(only_local(store));
  CHECK(s.count_log("rcpt_ok: pass, relay client") == 0);
  CHECK(alive(s));
  CHECK(clean_exit(s));
}

TEST_CASE("relay: a relay dictionary attack is ended by the error limit") {
  MailStore store;
  Server s(default_like(store));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply(5).rfind("220 ", 0) == 0);
  CHECK(c.cmd("EHLO relay.example").rfind("250", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  std::string group;
  for (int i = 0; i < 200; ++i)
    group += "RCPT TO:<v" + std::to_string(i) + "@other" + std::to_string(i) + ".example>\r\n";
  c.send(group);
  int denied = 0;
  for (int i = 0; i < 20; ++i) denied += c.reply() == kDenied;
  CHECK(denied == 20);
  CHECK(c.reply() == "421 4.7.0 mx.test.invalid Error: too many errors");
  CHECK(c.closed());
  CHECK(store.count() == 0);
  CHECK(alive_soon(s));
}
