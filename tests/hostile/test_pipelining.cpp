// tests/hostile/test_pipelining.cpp: RFC 2920 sync (554 5.5.0), STARTTLS injection, non-readers.
#include <doctest/doctest.h>

#include <thread>
#include <unistd.h>

#include "hostile.hpp"

using namespace hostile;

namespace {

const std::string kSync = "554 5.5.0 Error: SMTP protocol synchronization";
const std::string kInjected = "MAIL FROM:<injected@evil.example>\r\n";

Options opts(const MailStore &store, const std::string &more_plugins = "") {
  Options o;
  o.plugins = more_plugins + "verdict rcpt=OK\n" + store.plugin_line();
  o.toml = "max_errors = 0\n";
  return o;
}

// State before the probe command: just greeted, after EHLO, or with an open transaction.
enum class Before { greeted, ehlo, txn };

void prepare(Client &c, Before b) {
  REQUIRE(c.reply().rfind("220 ", 0) == 0);
  if (b == Before::greeted) return;
  REQUIRE(c.cmd("EHLO client.example").rfind("250", 0) == 0);
  if (b == Before::ehlo) return;
  REQUIRE(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
}

}  // namespace

TEST_CASE("pipelining: input behind a group-ending command is refused 554 5.5.0 and never runs") {
  struct Probe {
    const char *cmd;
    Before before;
  };
  // RFC 2920 3.1: EHLO/HELO, DATA, VRFY, EXPN, TURN, QUIT, NOOP end a group, and so does every
  // command not declared pipelinable: unknown verbs, the empty line, STARTTLS, AUTH, BDAT, ETRN.
  const Probe probes[] = {
      {"EHLO evil.example", Before::greeted},
      {"HELO evil.example", Before::greeted},
      {"NOOP", Before::ehlo},
      {"NOOP", Before::txn},
      {"VRFY postmaster", Before::ehlo},
      {"EXPN staff", Before::ehlo},
      {"HELP", Before::ehlo},
      {"QUIT", Before::ehlo},
      {"FOO bar", Before::ehlo},
      {"", Before::ehlo},
      {"DATA", Before::txn},
      {"DATA", Before::ehlo},
      {"STARTTLS", Before::ehlo},
      {"AUTH PLAIN AGFAAGI=", Before::ehlo},
      {"BDAT 10 LAST", Before::txn},
      {"ETRN example.test", Before::ehlo},
      {"TURN", Before::ehlo},
      {"NOOP", Before::greeted},
  };
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  for (const Probe &p : probes) {
    for (const std::string &tail : {kInjected, std::string("RSET\r\n"), std::string("X")}) {
      CAPTURE(p.cmd);
      CAPTURE(static_cast<int>(p.before));
      CAPTURE(tail);
      Client c(s.port());
      prepare(c, p.before);
      c.send(std::string(p.cmd) + "\r\n" + tail);
      CHECK(c.reply() == kSync);
      CHECK(c.closed());
      CHECK(c.drained.empty());  // nothing after the 554: the injected command never ran
    }
  }
  CHECK(s.count_log("from=<injected@evil.example>") == 0);
  CHECK(s.count_log("pipelining violation") == static_cast<int>(std::size(probes) * 3));
  CHECK(store.count() == 0);
  CHECK(alive(s));
}

TEST_CASE("pipelining: the sync check also guards the command after end of data") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  SUBCASE("CRLF.CRLF then NOOP NOOP: the first NOOP is followed by input") {
    Client c(s.port());
    prepare(c, Before::txn);
    REQUIRE(c.cmd("DATA") == "354 go ahead");
    c.send("Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nNOOP\r\n");
    CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(c.reply() == kSync);
    CHECK(c.closed());
    CHECK(store.count() == 1);
  }
  SUBCASE("CRLF.CRLF then QUIT: QUIT may end the group") {
    Client c(s.port());
    prepare(c, Before::txn);
    REQUIRE(c.cmd("DATA") == "354 go ahead");
    c.send("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(c.reply().rfind("221 2.0.0 ", 0) == 0);
    CHECK(c.closed());
    CHECK(store.count() == 1);
  }
  CHECK(alive(s));
}

TEST_CASE("pipelining: RSET, MAIL and RCPT may be pipelined; replies come in order") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  Client c(s.port());
  prepare(c, Before::ehlo);
  c.send(
      "RSET\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<u@example.test>\r\nRCPT "
      "TO:<v@example.test>\r\n"
      "RSET\r\nMAIL FROM:bad\r\nMAIL FROM:<b@client.example>\r\nRCPT TO:<>\r\n"
      "RCPT TO:<w@example.test>\r\nDATA\r\n");
  CHECK(c.reply() == "250 2.0.0 OK");
  CHECK(c.reply().rfind("250 2.1.0 <a@client.example>", 0) == 0);
  CHECK(c.reply() == "250 2.1.5 <u@example.test>, recipient ok");
  CHECK(c.reply() == "250 2.1.5 <v@example.test>, recipient ok");
  CHECK(c.reply() == "250 2.0.0 OK");
  CHECK(c.reply() == "501 5.5.4 Syntax: MAIL FROM:<address>");
  CHECK(c.reply().rfind("250 2.1.0 <b@client.example>", 0) == 0);
  CHECK(c.reply() == "501 5.1.3 Bad recipient address syntax");
  CHECK(c.reply() == "250 2.1.5 <w@example.test>, recipient ok");
  CHECK(c.reply() == "354 go ahead");
  // Content may start a group: end of data, then the next envelope and a final NOOP.
  c.send(
      "Subject: one\r\n\r\none\r\n.\r\nMAIL FROM:<c@client.example>\r\nRCPT "
      "TO:<x@example.test>\r\nNOOP\r\n");
  CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(c.reply().rfind("250 2.1.0 <c@client.example>", 0) == 0);
  CHECK(c.reply() == "250 2.1.5 <x@example.test>, recipient ok");
  CHECK(c.reply() == "250 2.0.0 OK");
  CHECK(c.cmd("DATA") == "354 go ahead");
  c.send("Subject: two\r\n\r\ntwo\r\n.\r\n");
  CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  // Exactly: w got the first message, x the second; the RSET transaction delivered nothing.
  CHECK(store.count() == 2);
  CHECK(store.mailbox("example.test/w").size() == 1);
  CHECK(store.mailbox("example.test/x").size() == 1);
  CHECK(store.mailbox("example.test/u").empty());
  CHECK(store.mailbox("example.test/v").empty());
  CHECK(alive(s));
}

TEST_CASE("pipelining: 1000 pipelined RCPTs with async hooks answer in order") {
  MailStore store;
  Options o;
  o.plugins = "verdict rcpt=OK rcpt.async=timer rcpt.delay=1\nverdict:1 queue=OK\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  prepare(c, Before::ehlo);
  std::string group = "MAIL FROM:<a@client.example>\r\n";
  for (int i = 0; i < 1000; ++i) group += "RCPT TO:<r" + std::to_string(i) + "@example.test>\r\n";
  group += "DATA\r\n";
  c.send(group);
  CHECK(c.reply().rfind("250 2.1.0 ", 0) == 0);
  int in_order = 0;
  for (int i = 0; i < 1000; ++i)
    if (c.reply(10) == "250 2.1.5 <r" + std::to_string(i) + "@example.test>, recipient ok")
      ++in_order;
  CHECK(in_order == 1000);
  CHECK(c.reply() == "354 go ahead");
  c.send("Subject: many\r\n\r\nx\r\n.\r\n");
  CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(s.wait_log(" nrcpt=1000 rcpt=<r0@example.test>,"));
  CHECK(s.wait_log(" queue=verdict:1: 250 2.0.0 Queued as "));
  CHECK(alive(s));
}

TEST_CASE("pipelining: a command pipelined while a group-ending command's hook is still pending") {
  // Fixed core bug (regression test): the sync check ran only when a command was dispatched.
  // Input that arrived after EHLO was dispatched but before its (slow, plugin-delayed) reply
  // was not noticed: here "EHLO x" then, 100 ms later and 200 ms before the 250,
  // "MAIL FROM:<injected@...>" was executed (250 2.1.0). security.md §0.3: a group-ending
  // command "must not be followed by more input before we reply" -> 554 5.5.0 and close. Now
  // the core checks again (buffer and MSG_PEEK) before the reply of a group-ending command
  // whose hook went async (Exim checks when responding).
  MailStore store;
  Server s(opts(store, "verdict:2 ehlo=DECLINED ehlo.async=timer ehlo.delay=300\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply().rfind("220 ", 0) == 0);
  c.send("EHLO client.example\r\n");
  usleep(100000);
  c.send(kInjected);
  CHECK(c.reply() == kSync);
  CHECK(c.closed());
  CHECK(s.count_log("from=<injected@evil.example>") == 0);
  CHECK(alive(s));
}

TEST_CASE("pipelining: input while the hook of any group-ending command is pending is refused") {
  // The same check for the other group-ending commands that run a hook: HELO, NOOP, VRFY, HELP,
  // QUIT and an unknown verb. The injected command never runs and nothing follows the 554.
  struct Probe {
    const char *cmd;
    const char *hook;
    Before before;
  };
  const Probe probes[] = {
      {"HELO client.example", "helo", Before::greeted},
      {"NOOP", "noop", Before::ehlo},
      {"VRFY postmaster", "vrfy", Before::ehlo},
      {"HELP", "help", Before::ehlo},
      {"QUIT", "quit", Before::ehlo},
      {"XYZZY", "unrecognized_command", Before::ehlo},
  };
  MailStore store;
  std::string plugins;
  int instance = 2;
  for (const Probe &p : probes)
    plugins += "verdict:" + std::to_string(instance++) + " " + p.hook + "=DECLINED " + p.hook +
               ".async=timer " + p.hook + ".delay=300\n";
  Server s(opts(store, plugins));
  REQUIRE(s.started());
  for (const Probe &p : probes) {
    CAPTURE(p.cmd);
    Client c(s.port());
    prepare(c, p.before);
    c.send(std::string(p.cmd) + "\r\n");
    usleep(100000);
    c.send(kInjected);
    CHECK(c.reply() == kSync);
    CHECK(c.closed());
    CHECK(c.drained.empty());
  }
  CHECK(s.count_log("from=<injected@evil.example>") == 0);
  CHECK(s.count_log("pipelining violation") == static_cast<int>(std::size(probes)));
  {
    // A client that waits for each slow reply is served.
    Client c(s.port());
    prepare(c, Before::ehlo);
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  }
  CHECK(alive(s));
}

TEST_CASE("pipelining: content sent while DATA's hook is still pending is refused before 354") {
  // The core checks again after the data hook: content that arrived during a slow data hook
  // (the client did not wait for 354) is a sync violation, not message data.
  MailStore store;
  Server s(opts(store, "verdict:2 data=DECLINED data.async=timer data.delay=300\n"));
  REQUIRE(s.started());
  Client c(s.port());
  prepare(c, Before::txn);
  c.send("DATA\r\n");
  usleep(100000);
  c.send("Subject: early\r\n\r\nx\r\n.\r\n");
  CHECK(c.reply() == kSync);
  CHECK(c.closed());
  CHECK(store.count() == 0);
  CHECK(alive(s));
}

TEST_CASE("starttls: not offered; STARTTLS is 500 and injected commands behind it never run") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  SUBCASE("not advertised, 500 when sent alone, the session goes on") {
    Client c(s.port());
    REQUIRE(c.reply().rfind("220 ", 0) == 0);
    std::string ehlo = c.cmd("EHLO client.example");
    CHECK(ehlo.find("STARTTLS") == std::string::npos);
    CHECK(c.cmd("STARTTLS") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  }
  // CVE-2011-0411 shapes (EAST command_injection_tester): plaintext commands in the same segment
  // as STARTTLS.
  const std::vector<std::string> injections = {
      "STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n",
      "STARTTLS\r\nRSET\r\n",
      "STARTTLS\r\nEHLO evil.example\r\n",
      "STARTTLS\r\nQUIT\r\n",
      "STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n",
      // A TLS ClientHello record right behind STARTTLS (as a client that does not wait would).
      std::string("STARTTLS\r\n\x16\x03\x01\x00\x2e\x01\x00\x00\x2a\x03\x03", 21) +
          std::string(32, 'R'),
  };
  for (const std::string &inj : injections) {
    for (Before b : {Before::ehlo, Before::txn}) {
      CAPTURE(inj);
      CAPTURE(static_cast<int>(b));
      Client c(s.port());
      prepare(c, b);
      c.send(inj);
      CHECK(c.reply() == kSync);
      CHECK(c.closed());
      CHECK(c.drained.empty());
    }
  }
  SUBCASE("STARTTLS in the middle of a transaction with the message behind it") {
    Client c(s.port());
    prepare(c, Before::txn);
    c.send("STARTTLS\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n");
    CHECK(c.reply() == kSync);
    CHECK(c.closed());
  }
  SUBCASE("a TLS ClientHello after the 500 is refused as a command; the server stays up") {
    Client c(s.port());
    prepare(c, Before::ehlo);
    CHECK(c.cmd("STARTTLS") == "500 5.5.1 Unrecognized command");
    c.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) +
           std::string(600, '\x9a'));
    std::string r = c.reply();
    CHECK(r == "500 5.5.2 Error: line too long");
    c.send("\r\n");
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  }
  CHECK(s.count_log("from=<injected@evil.example>") == 0);
  CHECK(store.count() == 0);
  CHECK(alive(s));
}

TEST_CASE("pipelining: a client that pipelines 200k commands and does not read stays bounded") {
  // The server stops reading while its replies cannot be written (back-pressure): memory stays
  // bounded, other clients are served, and once the client reads, every reply arrives in order.
  // (max_junk_commands = 0: the junk limit would otherwise end the flood at the 101st RSET.)
  Server s({.toml = "max_junk_commands = 0\n", .plugins = "verdict rcpt=OK queue=OK\n",
            .log_level = "info"});
  REQUIRE(s.started());
  const long base = s.rss_kb();
  Raw r(s.port());
  REQUIRE(r.first_line().rfind("220 ", 0) == 0);
  REQUIRE(r.send("EHLO client.example\r\n"));
  std::string ehlo = r.read_lines(6, 5);
  REQUIRE(ehlo.find("250 SMTPUTF8") != std::string::npos);
  const int n = 200000;
  std::string flood;
  for (int i = 0; i < n; ++i) flood += "RSET\r\n";
  std::atomic<bool> sent{false};
  std::thread writer([&] {
    r.send(flood);
    sent = true;
  });
  usleep(500000);
  // The writer is blocked (both directions' buffers are full) and the server is still serving.
  CHECK(probe_latency(s) < time_limit(s, 2.0));
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 16 * 1024));
  size_t got = 0, other = 0;
  std::string acc;
  double deadline = now() + 30;
  while (got < static_cast<size_t>(n) && now() < deadline) {
    std::string chunk = r.read_lines(1, 2);
    if (chunk.empty()) break;
    acc += chunk;
    size_t end = acc.rfind("\r\n");
    if (end == std::string::npos) continue;
    std::string whole = acc.substr(0, end + 2);
    acc.erase(0, end + 2);
    size_t ok = count(whole, "250 2.0.0 OK\r\n");
    got += ok;
    other += count(whole, "\r\n") - ok;
  }
  CHECK(other == 0);
  writer.join();
  CHECK(sent);
  CHECK(got == static_cast<size_t>(n));
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 16 * 1024));
  CHECK(alive(s));
  CHECK(clean_exit(s));
}
