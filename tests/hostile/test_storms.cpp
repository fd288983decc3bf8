// tests/hostile/test_storms.cpp: unknown-command and junk storms, error limits, transaction
// cycling.
#include <doctest/doctest.h>

#include <random>
#include <thread>

#include "hostile.hpp"

using namespace hostile;

namespace {

const std::string kTooMany = "421 4.7.0 mx.test.invalid Error: too many errors";
const std::string kUnknown = "500 5.5.1 Unrecognized command";

std::string repeat(const std::string &line, int n) {
  std::string out;
  out.reserve(line.size() * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out += line;
  return out;
}

// Junk lines: unknown verbs, then (after the error limit would have struck) a real transaction
// that must never run.
std::string junk_then_mail(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += "JUNK" + std::to_string(i) + " some arguments here\r\n";
  return out + "MAIL FROM:<after@evil.example>\r\nRCPT TO:<u@example.test>\r\n";
}

Options opts(const std::string &toml = "", std::vector<std::string> args = {}) {
  Options o;
  o.plugins = "verdict rcpt=OK queue=OK\n";
  o.toml = toml;
  o.args = std::move(args);
  o.log_level = "info";
  return o;
}

// Reads replies until the connection closes; returns them.
std::vector<std::string> replies_until_close(Client &c, double timeout = 10) {
  std::vector<std::string> out;
  double deadline = now() + timeout;
  while (now() < deadline) {
    std::string r = c.reply(deadline - now());
    if (r.empty()) break;
    out.push_back(r);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "storms: 10k junk lines in one write with the sync check: 554 at the first, nothing runs") {
  Server s(opts());
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  c.send(junk_then_mail(10000));
  CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
  CHECK(c.closed());
  CHECK(c.drained.empty());
  CHECK(s.count_log("from=<after@evil.example>") == 0);
  CHECK(alive(s));
}

TEST_CASE("storms: 10k junk lines in one write without the sync check: 20 x 500, then 421 4.7.0") {
  Server s(opts("", {"--no-sync-check"}));
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  c.send(junk_then_mail(10000));
  auto rs = replies_until_close(c);
  REQUIRE(rs.size() == 21);
  for (int i = 0; i < 20; ++i) CHECK(rs[static_cast<size_t>(i)] == kUnknown);
  CHECK(rs[20] == kTooMany);
  CHECK(c.closed());
  CHECK(s.count_log("from=<after@evil.example>") == 0);
  CHECK(s.count_log("too many errors (20); closing") == 1);
  CHECK(alive(s));
}

TEST_CASE(
    "storms: pipelinable junk (RCPT without MAIL, bad MAIL) hits the error limit with sync on") {
  Server s(opts());
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  std::string junk;
  for (int i = 0; i < 5000; ++i)
    junk += i % 2 ? "RCPT TO:<x@example.test>\r\n" : "MAIL FROM:bad\r\n";
  c.send(junk);
  auto rs = replies_until_close(c);
  REQUIRE(rs.size() == 21);
  for (int i = 0; i < 20; ++i)
    CHECK(rs[static_cast<size_t>(i)] ==
          (i % 2 ? "503 5.5.1 Use MAIL before RCPT" : "501 5.5.4 Syntax: MAIL FROM:<address>"));
  CHECK(rs[20] == kTooMany);
  CHECK(alive(s));
}

TEST_CASE("storms: binary junk, over-long lines and empty lines count as errors") {
  Server s(opts("", {"--no-sync-check"}));
  REQUIRE(s.started());
  SUBCASE("random bytes without CR/LF, split into lines") {
    std::mt19937 rng(6);
    std::string junk;
    for (int i = 0; i < 10000; ++i) {
      std::string l;
      for (int k = 0; k < 40; ++k) {
        char ch = static_cast<char>(rng() % 256);
        if (ch == '\r' || ch == '\n') ch = '\x80';
        l += ch;
      }
      junk += l + "\r\n";
    }
    Client c(s.port());
    greet(c);
    c.send(junk);
    auto rs = replies_until_close(c);
    REQUIRE(rs.size() == 21);
    for (size_t i = 0; i < 20; ++i) CHECK(rs[i].rfind("500 5.5.", 0) == 0);
    CHECK(rs[20] == kTooMany);
  }
  SUBCASE("over-long lines") {
    Client c(s.port());
    greet(c);
    c.send(repeat("NOOP " + std::string(2000, 'a') + "\r\n", 1000));
    auto rs = replies_until_close(c);
    REQUIRE(rs.size() == 21);
    for (size_t i = 0; i < 20; ++i) CHECK(rs[i] == "500 5.5.2 Error: line too long");
    CHECK(rs[20] == kTooMany);
  }
  SUBCASE("empty lines") {
    Client c(s.port());
    greet(c);
    c.send(repeat("\r\n", 10000));
    auto rs = replies_until_close(c);
    REQUIRE(rs.size() == 21);
    for (size_t i = 0; i < 20; ++i) CHECK(rs[i] == kUnknown);
    CHECK(rs[20] == kTooMany);
  }
  CHECK(alive(s));
}

TEST_CASE("storms: with max_errors = 0 all 10k unknown commands are answered, in bounded memory") {
  Server s(opts("max_errors = 0\n", {"--no-sync-check"}));
  REQUIRE(s.started());
  const long base = s.rss_kb();
  Client c(s.port());
  greet(c);
  c.send(repeat("FOO\r\n", 10000));
  int n = 0;
  while (n < 10000 && c.reply() == kUnknown) ++n;
  CHECK(n == 10000);
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 8 * 1024));
  CHECK(alive(s));
}

TEST_CASE("storms: count_unrecognized_commands closes at 4 with 521 before the core's limit") {
  Server s({.plugins = "count_unrecognized_commands 4\nverdict rcpt=OK queue=OK\n",
            .args = {"--no-sync-check"},
            .log_level = "info"});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  c.send(junk_then_mail(10000));
  auto rs = replies_until_close(c);
  REQUIRE(rs.size() == 4);
  for (size_t i = 0; i < 3; ++i) CHECK(rs[i] == kUnknown);
  CHECK(rs[3] ==
        "521 5.5.1 Too many unrecognized commands (4); closing connection");
  CHECK(s.count_log("from=<after@evil.example>") == 0);
  CHECK(alive(s));
}

TEST_CASE("storms: HTTP and header-looking first lines are closed with 221 2.7.0 or 554") {
  Server s(opts());
  REQUIRE(s.started());
  for (std::string req :
       {"GET / HTTP/1.1\r\n", "POST /x HTTP/1.0\r\n", "CONNECT mx:25 HTTP/1.1\r\n",
        "Host: mx.test.invalid\r\n", "User-Agent: curl/8\r\n"}) {
    CAPTURE(req);
    SUBCASE("alone") {
      Client c(s.port());
      c.reply();
      c.send(req);
      CHECK(c.reply() == "221 2.7.0 Error: not an SMTP command; closing connection");
      CHECK(c.closed());
    }
    SUBCASE("with the rest of a request") {
      Client c(s.port());
      c.reply();
      c.send(req + "Host: x\r\nContent-Length: 5\r\n\r\nhello");
      CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
      CHECK(c.closed());
    }
  }
  CHECK(alive(s));
}

TEST_CASE("storms: 20 concurrent junk storms while a polite client delivers") {
  Server s(opts("", {"--no-sync-check"}));
  REQUIRE(s.started());
  const long base = s.rss_kb();
  std::atomic<int> closed_ok{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> storms;
  for (int i = 0; i < 20; ++i)
    storms.emplace_back([&] {
      for (int round = 0; round < 5; ++round) {
        Client c(s.port());
        c.reply(10);
        c.line("EHLO storm.example");
        c.reply(10);
        c.send(junk_then_mail(10000));
        auto rs = replies_until_close(c, 20);
        if (!rs.empty() && rs.back() == kTooMany) ++closed_ok;
      }
    });
  double worst = 0;
  int delivered = 0;
  while (!done) {
    double t = now();
    Client c(s.port());
    greet(c);
    if (itest::send_message(c, "polite@client.example", {"u@example.test"},
                            "Subject: p\r\n\r\np\r\n")
            .rfind("250 2.0.0 Queued", 0) == 0)
      ++delivered;
    c.cmd("QUIT");
    worst = std::max(worst, now() - t);
    if (closed_ok == 100 || delivered > 200) done = true;
    if (closed_ok + delivered == 0 && now() - t > 30) done = true;
  }
  for (auto &t : storms) t.join();
  CHECK(closed_ok == 100);
  CHECK(delivered > 0);
  CHECK(worst < time_limit(s, 3.0));
  CHECK(s.count_log("from=<after@evil.example>") == 0);
  CHECK(s.count_log(": accepted message-id=") == delivered);
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 16 * 1024));
  CHECK(alive(s));
  CHECK(clean_exit(s));
}

TEST_CASE("storms: 30k MAIL/RCPT/RSET cycles and 300 messages in one session: memory flat") {
  // With the junk-command limit off (max_junk_commands = 0; RSET counts toward it), a session
  // may cycle transactions as long as it is active. What it must not do is accumulate.
  Server s(opts("max_junk_commands = 0\n"));
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  auto cycles = [&](int n) {
    std::string group;
    for (int i = 0; i < n; ++i)
      group += "MAIL FROM:<a@client.example>\r\nRCPT TO:<u@example.test>\r\nRSET\r\n";
    std::thread w([&] { c.send(group); });
    int good = 0;
    for (int i = 0; i < n; ++i) {
      good += c.reply(10).rfind("250 2.1.0 ", 0) == 0;
      good += c.reply(10).rfind("250 2.1.5 ", 0) == 0;
      good += c.reply(10) == "250 2.0.0 OK";
    }
    w.join();
    return good;
  };
  CHECK(cycles(1000) == 3000);  // warm up
  const long base = s.rss_kb();
  CHECK(cycles(30000) == 90000);
  int queued = 0;
  for (int i = 0; i < 300; ++i) {
    c.send("MAIL FROM:<a@client.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n");
    c.reply();
    c.reply();
    if (c.reply() != "354 go ahead") break;
    c.send("Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n.\r\n");
    queued += c.reply().rfind("250 2.0.0 Queued as ", 0) == 0;
  }
  CHECK(queued == 300);
  CHECK(s.count_log(": accepted message-id=") == 300);
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 2 * 1024));
  CHECK(alive(s));
}
