// tests/hostile/test_abrupt.cpp: half-open and abrupt clients (RST/EOF mid-line, DATA, hooks).
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <thread>
#include <unistd.h>

#include "hostile.hpp"

using namespace hostile;

namespace {

Options opts(const MailStore &store, const std::string &more_plugins = "") {
  Options o;
  o.plugins =
      "hosts_allow max-from-ip 20\n" + more_plugins + "verdict rcpt=OK\n" + store.plugin_line();
  o.toml = "shutdown_grace = 2\n";
  o.log_level = "info";
  return o;
}

// Greeting, EHLO, MAIL, RCPT and DATA over a Raw socket; true at the 354.
bool raw_open_data(Raw &r, const std::string &rcpt = "u@example.test") {
  if (r.reply().rfind("220 ", 0) != 0) return false;
  if (r.cmd("EHLO abrupt.example").rfind("250", 0) != 0) return false;
  if (r.cmd("MAIL FROM:<abrupt@client.example>").rfind("250 ", 0) != 0) return false;
  if (r.cmd("RCPT TO:<" + rcpt + ">").rfind("250 ", 0) != 0) return false;
  return r.cmd("DATA") == "354 go ahead";
}

// Waits until the server has logged `needle` n times.
bool logged(Server &s, const char *needle, int n = 1) {
  return s.wait_log(needle, 5, n);
}

}  // namespace

TEST_CASE("abrupt: RST in the middle of DATA: nothing delivered, nothing left behind") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  for (size_t half : {0ul, 10ul, 1000ul, 300000ul}) {  // in memory and spilled to disk
    CAPTURE(half);
    Raw r(s.port());
    REQUIRE(raw_open_data(r));
    std::string body = "Subject: cut\r\n\r\n" + std::string(half, 'h');
    r.send(body);
    usleep(50000);
    r.reset();
  }
  CHECK(logged(s, "client closed during DATA; message discarded", 4));
  CHECK(store.count() == 0);
  CHECK(store.tmp_leftovers() == 0);
  CHECK(files_in(s.dir() + "/spool") == 0);
  CHECK(alive(s));
  CHECK(clean_exit(s));
}

TEST_CASE("abrupt: EOF in the middle of a command line: the partial line never runs") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  for (std::string partial :
       {"MAIL FROM:<partial@evil.example>", "MAIL FROM:<partial@evil.example>\r", "QUIT", "N"}) {
    CAPTURE(partial);
    Client c(s.port());
    greet(c);
    c.send(partial);
    c.shutdown_write();
    CHECK(c.closed());
    CHECK(c.drained.empty());  // no reply to half a line
  }
  CHECK(logged(s, "client closed the connection (after an incomplete line)", 4));
  CHECK(s.count_log("from=<partial@evil.example>") == 0);
  CHECK(alive(s));
}

TEST_CASE("abrupt: EOF in the middle of DATA discards the message; after CRLF.CRLF it is kept") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  SUBCASE("EOF before the end of data") {
    for (std::string tail : {"", "body", "body\r\n", "body\r\n.", "body\r\n.\r"}) {
      CAPTURE(tail);
      Client c(s.port());
      greet(c);
      REQUIRE(envelope(c, "a@client.example", {"u@example.test"}));
      REQUIRE(c.cmd("DATA") == "354 go ahead");
      c.send("Subject: half\r\n\r\n" + tail);
      c.shutdown_write();
      CHECK(c.closed());
      CHECK(c.drained.empty());
    }
    CHECK(logged(s, "client closed during DATA; message discarded", 5));
    CHECK(store.count() == 0);
  }
  SUBCASE("EOF right behind the end of data and a pipelined envelope") {
    Client c(s.port());
    greet(c);
    REQUIRE(envelope(c, "a@client.example", {"u@example.test"}));
    REQUIRE(c.cmd("DATA") == "354 go ahead");
    c.send(
        "Subject: whole\r\n\r\nwhole\r\n.\r\nMAIL FROM:<b@client.example>\r\nRCPT "
        "TO:<v@example.test>\r\n");
    c.shutdown_write();
    CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(c.reply().rfind("250 2.1.0 <b@client.example>", 0) == 0);
    CHECK(c.reply() == "250 2.1.5 <v@example.test>, recipient ok");
    CHECK(c.closed());
    CHECK(store.count() == 1);
    CHECK(store.mailbox("example.test/u").size() == 1);
  }
  CHECK(store.tmp_leftovers() == 0);
  CHECK(alive(s));
}

TEST_CASE("abrupt: RST right after the end of data: at most one copy, never a partial one") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  const std::string body = "Subject: last\r\n\r\n" + std::string(100000, 'z') + "\r\n";
  for (int i = 0; i < 10; ++i) {
    Raw r(s.port());
    REQUIRE(raw_open_data(r, "r" + std::to_string(i) + "@example.test"));
    r.send(body + ".\r\n");
    r.reset();
  }
  usleep(500000);
  // Each message was either stored whole (the server may finish before it sees the RST) or not
  // at all; there is no duplicate and no stray temp file.
  for (int i = 0; i < 10; ++i)
    CHECK(store.mailbox("example.test/r" + std::to_string(i)).size() <= 1);
  for (const std::string &m : store.messages()) CHECK(m.find(body) != std::string::npos);
  CHECK(store.tmp_leftovers() == 0);
  CHECK(files_in(s.dir() + "/spool") == 0);
  CHECK(alive(s));
  CHECK(clean_exit(s));
}

TEST_CASE("abrupt: RST while a plugin hook is pending (timer, thread and raw thread completions)") {
  MailStore store;
  for (const char *mode : {"timer", "thread", "rawthread"}) {
    CAPTURE(mode);
    std::string m = mode;
    Options o;
    o.plugins = "verdict:1 helo=DECLINED helo.async=" + m +
                " helo.delay=200 rcpt=OK rcpt.async=" + m +
                " rcpt.delay=200 data_post=DECLINED data_post.async=" + m +
                " data_post.delay=200 queue=OK queue.async=" + m + " queue.delay=200\n";
    o.log_level = "info";
    Server s(o);
    REQUIRE(s.started());
    // Reset during EHLO's hook, during RCPT's, after the end of data (data_post), and once
    // the queue hook runs.
    for (int stage = 0; stage < 4; ++stage) {
      CAPTURE(stage);
      Raw r(s.port());
      REQUIRE(r.reply().rfind("220 ", 0) == 0);
      if (stage == 0) {
        r.send("HELO abrupt.example\r\n");
      } else {
        REQUIRE(r.cmd("HELO abrupt.example").rfind("250 ", 0) == 0);
        REQUIRE(r.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
        if (stage == 1) {
          r.send("RCPT TO:<u@example.test>\r\n");
        } else {
          REQUIRE(r.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
          REQUIRE(r.cmd("DATA") == "354 go ahead");
          r.send("Subject: pending\r\n\r\nx\r\n.\r\n");
          if (stage == 3) usleep(300000);  // data_post done, queue pending
        }
      }
      usleep(50000);
      r.reset();
    }
    usleep(600000);  // let every pending completion arrive for a session that is gone
    CHECK(s.running());
    CHECK(alive(s, 5));
    CHECK(clean_exit(s));
  }
}

TEST_CASE("abrupt: 200 clients doing random abrupt things at once; then all is well") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  const long base = s.rss_kb();
  std::vector<std::thread> ts;
  for (int t = 0; t < 20; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 10; ++i) {
        Raw r(s.port());
        switch (rng() % 6) {
          case 0:  // reset at once (before the greeting)
            break;
          case 1:  // half a command, then reset
            r.first_line();
            r.send("MAIL FROM:<x@");
            break;
          case 2:  // half a message, then EOF
            if (raw_open_data(r)) r.send("Subject: x\r\n\r\nhal");
            r.shutdown_write();
            r.first_line(1);
            break;
          case 3:  // half a message, then reset
            if (raw_open_data(r)) r.send(std::string(70000, 'x'));
            break;
          case 4:  // EOF before anything
            r.shutdown_write();
            r.first_line(1);
            break;
          default:  // garbage with bare LFs, then reset
            r.send(std::string("\n\n\0\xff junk\n", 10));
            break;
        }
        r.reset();
      }
    });
  for (auto &t : ts) t.join();
  CHECK(alive_soon(s, 5, "after@example.test"));
  // Only the polite message got through.
  CHECK(store.count() == 1);
  CHECK(store.mailbox("example.test/after").size() == 1);
  CHECK(store.tmp_leftovers() == 0);
  CHECK(files_in(s.dir() + "/spool") == 0);
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 16 * 1024));
  // hosts_allow slots all came back: 20 concurrent clients are greeted.
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < 20; ++i) cs.push_back(std::make_unique<Client>(s.port()));
  int greeted = 0;
  for (auto &c : cs) greeted += c->reply(5).rfind("220 ", 0) == 0;
  CHECK(greeted == 20);
  cs.clear();
  CHECK(clean_exit(s));
}
