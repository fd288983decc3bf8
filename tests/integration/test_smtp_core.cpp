// tests/integration/test_smtp_core.cpp: the engine through the real binary: greeting, EHLO,
// grammar and sequencing replies, bare CR/LF policy and smuggling, pipelining order and
// synchronisation, limits, timeouts, connection limits, error limit and graceful shutdown.
#include <csignal>
#include <doctest/doctest.h>

#include "harness.hpp"

using namespace itest;

namespace {
// Accepts every recipient and queues every message (log: "<qid>: accepted message-id=... size=N").
const char *kAcceptAll = "verdict rcpt=OK queue=OK\n";

std::string greet(Client &c, const char *verb = "EHLO") {
  c.reply();
  return c.cmd(std::string(verb) + " client.example");
}

const std::string kBody = "Subject: test\r\n\r\nhello\r\n";
}  // namespace

TEST_CASE("smtp_core: greeting and EHLO capabilities") {
  Server s;
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == "220 mx.test.invalid ESMTP uvsmtpd");
  std::string ehlo = c.cmd("EHLO client.example");
  CHECK(ehlo.find("250-mx.test.invalid Hello [127.0.0.1]") == 0);
  for (const char *cap : {"PIPELINING", "SIZE 26214400", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"})
    CHECK(ehlo.find(cap) != std::string::npos);
  CHECK(c.cmd("QUIT") == "221 2.0.0 mx.test.invalid Service closing transmission channel");
  CHECK(c.closed());
  CHECK(c.last_crlf_ok);
}

TEST_CASE("smtp_core: sequencing and grammar replies") {
  Server s({.plugins = kAcceptAll});
  REQUIRE(s.started());
  Client c(s.port());
  c.reply();
  CHECK(c.cmd("MAIL FROM:<a@b.example>") == "503 5.5.1 Error: send HELO/EHLO first");
  CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");
  CHECK(c.cmd("DATA") == "503 5.5.1 MAIL first");
  CHECK(c.cmd("HELO") == "501 5.5.4 Syntax: HELO hostname");
  CHECK(c.cmd("HELO client.example") ==
        "250 mx.test.invalid Hello [127.0.0.1]");
  CHECK(c.cmd("HELO client.example") == "250 mx.test.invalid Hello [127.0.0.1]");  // again: fine
  CHECK(c.cmd("MAIL FROM:<a@b.example> SIZE=10") == "555 5.5.4 Unsupported option: SIZE");
  CHECK(c.cmd("MAIL FROM:a@b.example") == "501 5.5.4 Syntax: MAIL FROM:<address>");
  CHECK(c.cmd("MAIL FROM:<>") == "250 2.1.0 <>, sender OK");
  CHECK(c.cmd("MAIL FROM:<x@y.example>") == "503 5.5.1 Error: nested MAIL command");
  CHECK(c.cmd("DATA") == "503 5.5.1 RCPT first");
  CHECK(c.cmd("RCPT TO:<>") == "501 5.1.3 Bad recipient address syntax");
  CHECK(c.cmd("RCPT TO:<Postmaster>") == "250 2.1.5 <Postmaster>, recipient ok");
  CHECK(c.cmd("RSET") == "250 2.0.0 OK");
  CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(c.cmd("VRFY someone") == "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery");
  CHECK(c.cmd("HELP").find("214-2.0.0 This is uvsmtpd") == 0);
  CHECK(c.cmd("FOO bar") == "500 5.5.1 Unrecognized command");
  CHECK(c.cmd("") == "500 5.5.1 Unrecognized command");
  CHECK(c.cmd("MAIL FROM:<\xc3\xa9@b.example>") == "550 5.6.7 Must declare SMTPUTF8 to send unicode address");
}

TEST_CASE("smtp_core: ESMTP parameters, SMTPUTF8 and SIZE") {
  Server s({.toml = "max_message_size = 100\n", .plugins = kAcceptAll});
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(greet(c).find("250-SIZE 100") != std::string::npos);
  CHECK(c.cmd("MAIL FROM:<a@b.example> SIZE=101") ==
        "552 5.3.4 Message size exceeds fixed maximum message size");
  CHECK(c.cmd("MAIL FROM:<a@b.example> SIZE=99999999999999999999") ==
        "552 5.3.4 Message size exceeds fixed maximum message size");
  CHECK(c.cmd("MAIL FROM:<a@b.example> FOO=BAR") == "555 5.5.4 Unsupported option: FOO");
  CHECK(c.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME") == "501 5.5.4 Unsupported BODY parameter");
  CHECK(c.cmd("MAIL FROM:<\xc3\xa9t\xc3\xa9@b.example>") ==
        "550 5.6.7 Must declare SMTPUTF8 to send unicode address");
  CHECK(c.cmd("MAIL FROM:<\xc3\xa9t\xc3\xa9@b.example> SMTPUTF8 BODY=8BITMIME SIZE=50").rfind("250 2.1.0", 0) == 0);
  CHECK(c.cmd("RCPT TO:<u@example.test> NOTIFY=NEVER") == "555 5.5.4 Unsupported option: NOTIFY");
  CHECK(c.cmd("RCPT TO:<\xc3\xbc@example.test>").rfind("250 2.1.5", 0) == 0);
  CHECK(c.cmd("DATA") == "354 go ahead");
  c.send(std::string(200, 'x') + "\r\n.\r\n");
  CHECK(c.reply() == "552 5.3.4 Message size exceeds fixed maximum message size");
  CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");  // reset
}

TEST_CASE("smtp_core: a message is queued; without a queue plugin it is refused with 451") {
  SUBCASE("queued") {
    Server s({.plugins = kAcceptAll});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    std::string r = send_message(c, "a@b.example", {"u@example.test", "v@example.test"}, kBody);
    CHECK(r.rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(s.wait_log(": accepted message-id=none size="));
    CHECK(s.wait_log(" nrcpt=2 rcpt=<u@example.test>,<v@example.test> "));
    CHECK(s.wait_log(" queue=verdict: 250 2.0.0 Queued as "));
  }
  SUBCASE("no queue plugin") {
    Server s({.plugins = "verdict rcpt=OK\n"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(send_message(c, "a@b.example", {"u@example.test"}, kBody) ==
          "451 4.3.0 Queuing declined or disabled; try again later");
    CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");
  }
}

TEST_CASE("smtp_core: command line limits and bad bytes") {
  Server s({.toml = "max_errors = 0\n", .plugins = kAcceptAll});
  REQUIRE(s.started());
  SUBCASE("too long: 500 and the rest of the line is discarded") {
    Client c(s.port());
    greet(c);
    c.line("NOOP " + std::string(600, 'a'));
    CHECK(c.reply() == "500 5.5.2 Error: line too long");
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    c.line("NOOP " + std::string(505, 'a'));  // exactly 512 with CRLF: accepted
    CHECK(c.reply() == "250 2.0.0 OK");
  }
  SUBCASE("bad UTF-8 and control bytes") {
    Client c(s.port());
    greet(c);
    CHECK(c.cmd("NOOP \xff\xfe").rfind("500 5.5.2", 0) == 0);
    CHECK(c.cmd(std::string("NOOP a\x01", 7)).rfind("500 5.5.2", 0) == 0);
    CHECK(c.cmd(std::string("NOOP a\0b", 8)).rfind("500 5.5.2", 0) == 0);
  }
  SUBCASE("bare LF in a command: 550 and close") {
    Client c(s.port());
    greet(c);
    c.send("NOOP\n");
    CHECK(c.reply() == "550 5.5.2 Bare LF received; lines must end with CRLF (RFC 5321 2.3.8)");
    CHECK(c.closed());
  }
  SUBCASE("bare CR in a command: 550 and close") {
    Client c(s.port());
    greet(c);
    c.send("NOOP\rX\r\n");
    CHECK(c.reply() == "550 5.5.2 Bare CR received; lines must end with CRLF (RFC 5321 2.3.8)");
    CHECK(c.closed());
  }
}

TEST_CASE("smtp_core: bare newline normalize policy for listed networks") {
  Server s({.toml = "[bare_newline]\npolicy = \"reject\"\nnormalize_networks = [\"127.0.0.0/8\"]\n",
            .plugins = kAcceptAll});
  REQUIRE(s.started());
  Client c(s.port());
  c.reply();
  c.send("EHLO lf.example\n");
  CHECK(c.reply().rfind("250-", 0) == 0);
  c.send("MAIL FROM:<a@b.example>\nRCPT TO:<u@example.test>\n");
  CHECK(c.reply().rfind("250 2.1.0", 0) == 0);
  CHECK(c.reply().rfind("250 2.1.5", 0) == 0);
  c.send("DATA\n");
  CHECK(c.reply() == "354 go ahead");
  // bare LF lines are content, "\n.\n" does not end the data, only CRLF.CRLF does
  c.send("Subject: x\n\nline\n.\nMAIL FROM:<smuggled@evil.example>\n\r\n.\r\n");
  CHECK(c.reply().rfind("250 2.0.0", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  CHECK(s.count_log(": accepted message-id=") == 1);
  CHECK(s.count_log("smuggled") == 0);  // never seen as a command
}

TEST_CASE("smtp_core: SMTP smuggling end-of-data variants never end the data") {
  // Each variant, then a smuggled transaction, then a real end. Under the default (reject)
  // policy the session is refused at the bare CR/LF; nothing is queued.
  const std::vector<std::string> variants = {"\n.\n",   "\n.\r\n", "\r\n.\n",   "\r.\n",
                                             "\n.\r",   "\r.\r",   "\r.\r\n",   "\r\n.\r",
                                             "\r\n.\r\r\n", "\r\r\n.\r\r\n"};
  Server s({.plugins = kAcceptAll});
  REQUIRE(s.started());
  for (const auto &v : variants) {
    CAPTURE(v);
    for (bool split : {false, true}) {
      Client c(s.port());
      greet(c);
      c.cmd("MAIL FROM:<a@b.example>");
      c.cmd("RCPT TO:<u@example.test>");
      REQUIRE(c.cmd("DATA") == "354 go ahead");
      std::string payload = "Subject: x\r\n\r\nbody" + v +
                            "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<u@example.test>\r\n"
                            "DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n";
      if (split) {
        for (char ch : payload) c.send(std::string(1, ch));
      } else {
        c.send(payload);
      }
      std::string r = c.reply();
      CHECK(r.rfind("550 5.5.2 Bare ", 0) == 0);
      CHECK(c.closed());
    }
  }
  CHECK(s.count_log(": accepted message-id=") == 0);
  CHECK(s.count_log("from=<smuggled@evil.example>") == 0);
}

TEST_CASE("smtp_core: NUL variants are content; exactly one message") {
  Server s({.plugins = kAcceptAll});
  REQUIRE(s.started());
  for (std::string v : {std::string("\r\n\0.\r\n", 6), std::string("\r\n.\0\r\n", 6)}) {
    Client c(s.port());
    greet(c);
    c.cmd("MAIL FROM:<a@b.example>");
    c.cmd("RCPT TO:<u@example.test>");
    REQUIRE(c.cmd("DATA") == "354 go ahead");
    c.send("Subject: x\r\n\r\nbody" + v + "MAIL FROM:<smuggled@evil.example>\r\n.\r\n");
    CHECK(c.reply().rfind("250 2.0.0", 0) == 0);
    CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  }
  CHECK(s.count_log(": accepted message-id=") == 2);
  CHECK(s.count_log("from=<smuggled") == 0);
}

TEST_CASE("smtp_core: pipelining replies in order; synchronisation violations close") {
  Server s({.plugins = kAcceptAll});
  REQUIRE(s.started());
  SUBCASE("MAIL RCPT RCPT DATA in one write") {
    Client c(s.port());
    greet(c);
    c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.test>\r\nRCPT TO:<bad>\r\nDATA\r\n");
    CHECK(c.reply().rfind("250 2.1.0", 0) == 0);
    CHECK(c.reply().rfind("250 2.1.5 <u@example.test>", 0) == 0);
    CHECK(c.reply().rfind("501", 0) == 0);
    CHECK(c.reply() == "354 go ahead");
    c.send(kBody + ".\r\nMAIL FROM:<c@d.example>\r\nRCPT TO:<v@example.test>\r\nQUIT\r\n");
    CHECK(c.reply().rfind("250 2.0.0 Queued", 0) == 0);
    CHECK(c.reply().rfind("250 2.1.0 <c@d.example>", 0) == 0);
    CHECK(c.reply().rfind("250 2.1.5 <v@example.test>", 0) == 0);
    CHECK(c.reply().rfind("221", 0) == 0);
    CHECK(c.closed());
  }
  SUBCASE("input after EHLO before its reply") {
    Client c(s.port());
    c.reply();
    c.send("EHLO x.example\r\nMAIL FROM:<a@b.example>\r\n");
    CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
    CHECK(c.closed());
  }
  SUBCASE("message data in the same write as DATA") {
    Client c(s.port());
    greet(c);
    c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n" + kBody + ".\r\n");
    CHECK(c.reply().rfind("250", 0) == 0);
    CHECK(c.reply().rfind("250", 0) == 0);
    CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
    CHECK(c.closed());
    CHECK(s.count_log(": accepted message-id=") == 0);
  }
}

TEST_CASE("smtp_core: synchronisation check can be switched off") {
  Server s({.plugins = kAcceptAll, .args = {"--no-sync-check"}});
  REQUIRE(s.started());
  Client c(s.port());
  c.reply();
  c.send("EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n" + kBody +
         ".\r\nQUIT\r\n");
  CHECK(c.reply().rfind("250-", 0) == 0);
  CHECK(c.reply().rfind("250 2.1.0", 0) == 0);
  CHECK(c.reply().rfind("250 2.1.5", 0) == 0);
  CHECK(c.reply() == "354 go ahead");
  CHECK(c.reply().rfind("250 2.0.0", 0) == 0);
  CHECK(c.reply().rfind("221", 0) == 0);
}

TEST_CASE("smtp_core: recipient limit") {
  Server s({.toml = "max_recipients = 2\n", .plugins = kAcceptAll});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  c.cmd("MAIL FROM:<a@b.example>");
  CHECK(c.cmd("RCPT TO:<a@example.test>").rfind("250", 0) == 0);
  CHECK(c.cmd("RCPT TO:<b@example.test>").rfind("250", 0) == 0);
  CHECK(c.cmd("RCPT TO:<c@example.test>") == "452 4.5.3 Error: too many recipients");
  CHECK(c.cmd("DATA") == "354 go ahead");  // the accepted ones stay valid
}

TEST_CASE("smtp_core: timeouts send 421 4.4.2 with CRLF, then close") {
  Server s({.toml = "[timeouts]\ncommand = 0.4\ndata = 0.4\n", .plugins = kAcceptAll});
  REQUIRE(s.started());
  SUBCASE("command") {
    Client c(s.port());
    greet(c);
    double t = now();
    CHECK(c.reply(3) == "421 4.4.2 mx.test.invalid Error: timeout exceeded");
    CHECK(now() - t >= 0.3);
    CHECK(c.last_crlf_ok);
    CHECK(c.closed());
  }
  SUBCASE("data") {
    Client c(s.port());
    greet(c);
    c.cmd("MAIL FROM:<a@b.example>");
    c.cmd("RCPT TO:<u@example.test>");
    REQUIRE(c.cmd("DATA") == "354 go ahead");
    c.send("Subject: partial\r\n");
    CHECK(c.reply(3) == "421 4.4.2 mx.test.invalid Error: timeout exceeded");
    CHECK(c.closed());
    CHECK(s.count_log(": accepted message-id=") == 0);
  }
}

TEST_CASE("smtp_core: connection limits") {
  SUBCASE("max_connections") {
    Server s({.toml = "max_connections = 2\n"});
    REQUIRE(s.started());
    Client a(s.port()), b(s.port());
    CHECK(a.code() == 220);
    CHECK(b.code() == 220);
    Client c(s.port());
    CHECK(c.reply() == "421 4.7.0 mx.test.invalid Error: too many connections");
    CHECK(c.closed());
    a.cmd("QUIT");
    CHECK(a.closed());
    CHECK(s.wait_log("client closed the connection") + s.wait_log("221") >= 0);
    double deadline = now() + 3;
    bool ok = false;
    while (!ok && now() < deadline) {  // the slot frees once the first session is gone
      Client d(s.port());
      ok = d.code() == 220;
    }
    CHECK(ok);
  }
  SUBCASE("max_connections_per_ip") {
    Server s({.toml = "max_connections_per_ip = 1\n"});
    REQUIRE(s.started());
    Client a(s.port());
    CHECK(a.code() == 220);
    Client b(s.port());
    CHECK(b.reply() == "421 4.7.0 mx.test.invalid Error: too many connections from 127.0.0.1");
    CHECK(b.closed());
  }
}

TEST_CASE("smtp_core: error limit and non-SMTP commands") {
  Server s({.toml = "max_errors = 3\n"});
  REQUIRE(s.started());
  SUBCASE("too many errors") {
    Client c(s.port());
    greet(c);
    CHECK(c.cmd("FOO").rfind("500", 0) == 0);
    CHECK(c.cmd("BAR").rfind("500", 0) == 0);
    c.line("BAZ");
    CHECK(c.reply().rfind("500", 0) == 0);
    CHECK(c.reply() == "421 4.7.0 mx.test.invalid Error: too many errors");
    CHECK(c.closed());
  }
  SUBCASE("HTTP request") {
    Client c(s.port());
    c.reply();
    c.line("GET / HTTP/1.0");
    CHECK(c.reply() == "221 2.7.0 Error: not an SMTP command; closing connection");
    CHECK(c.closed());
  }
}

TEST_CASE("smtp_core: graceful shutdown") {
  Server s({.toml = "shutdown_grace = 5\n", .plugins = kAcceptAll});
  REQUIRE(s.started());
  Client idle(s.port());
  greet(idle);
  Client busy(s.port());
  greet(busy);
  busy.cmd("MAIL FROM:<a@b.example>");
  busy.cmd("RCPT TO:<u@example.test>");
  REQUIRE(busy.cmd("DATA") == "354 go ahead");
  busy.send("Subject: in flight\r\n\r\n");
  s.signal(SIGTERM);
  CHECK(idle.reply() == "421 4.3.2 mx.test.invalid Service shutting down");
  CHECK(idle.closed());
  Client late(s.port());
  CHECK(!late.connected());  // no longer listening
  busy.send("body\r\n.\r\n");
  CHECK(busy.reply().rfind("250 2.0.0 Queued", 0) == 0);
  CHECK(busy.reply() == "421 4.3.2 mx.test.invalid Service shutting down");
  CHECK(busy.closed());
  CHECK(s.wait_exit(5) == 0);
}

TEST_CASE("smtp_core: shutdown grace period ends stuck sessions") {
  Server s({.toml = "shutdown_grace = 0.5\n", .plugins = kAcceptAll});
  REQUIRE(s.started());
  Client busy(s.port());
  greet(busy);
  busy.cmd("MAIL FROM:<a@b.example>");
  busy.cmd("RCPT TO:<u@example.test>");
  REQUIRE(busy.cmd("DATA") == "354 go ahead");
  s.signal(SIGTERM);
  CHECK(busy.reply(3) == "421 4.3.2 mx.test.invalid Service shutting down");
  CHECK(s.wait_exit(5) == 0);
  CHECK(s.count_log(": accepted message-id=") == 0);
}

TEST_CASE("smtp_core: command line: --version, --check-config, config errors") {
  RunResult v = run_uvsmtpd({"--version"});
  CHECK(v.status == 0);
  CHECK(v.output.find("uvsmtpd ") == 0);
  std::string good = make_tree({.plugins = kAcceptAll});
  RunResult ok = run_uvsmtpd({"--config", good + "/conf", "--plugin-dir", good + "/plugins", "--check-config"});
  CHECK(ok.status == 0);
  CHECK(ok.output.find("configuration OK") != std::string::npos);
  std::string bad = make_tree({.toml = "max_connections = \"many\"\n"});
  RunResult b = run_uvsmtpd({"--config", bad + "/conf", "--plugin-dir", bad + "/plugins", "--check-config"});
  CHECK(b.status == 1);
  CHECK(b.output.find("uvsmtpd.toml:3:") != std::string::npos);
  CHECK(b.output.find("max_connections") != std::string::npos);
  RunResult b2 = run_uvsmtpd({"--config", bad + "/conf", "--plugin-dir", bad + "/plugins", "--listen", "127.0.0.1:0"});
  CHECK(b2.status == 1);  // does not start either
  RunResult u = run_uvsmtpd({"--bogus"});
  CHECK(u.status == 2);
  remove_tree(good);
  remove_tree(bad);
}
