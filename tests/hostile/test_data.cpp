// tests/hostile/test_data.cpp: header bombs, oversize and parked DATA (deliveries, RSS, latency).
#include <doctest/doctest.h>

#include <memory>
#include <thread>
#include <unistd.h>

#include "hostile.hpp"

using namespace hostile;

namespace {

Options opts(const MailStore &store, const std::string &toml = "") {
  Options o;
  o.plugins = "verdict rcpt=OK\n" + store.plugin_line();
  o.toml = toml;
  o.log_level = "info";
  return o;
}

std::string header_bomb(int lines) {
  std::string m;
  m.reserve(static_cast<size_t>(lines) * 12 + 64);
  for (int i = 0; i < lines; ++i) m += "X-H" + std::to_string(i % 10) + ": v\r\n";
  return m + "Subject: bomb\r\n\r\nbody\r\n";
}

std::string long_header(size_t n) {
  return "X-Big: " + std::string(n, 'a') + "\r\nSubject: long\r\n\r\nbody\r\n";
}

// The stored message without the Maildir copy's trace fields and the core's Received: header.
std::string after_received(const std::string &m) {
  std::string hdr, rest;
  return itest::split_received(m, hdr, rest) ? rest : "";
}

// Sends content (already CRLF-terminated, not dot-stuffed: no line starts with '.') and the
// end of data in chunks with short pauses, so the transfer takes a while.
void send_paced(Client &c, const std::string &content, size_t chunk = 256 * 1024,
                int pause_us = 5000) {
  for (size_t off = 0; off < content.size(); off += chunk) {
    c.send(std::string_view(content).substr(off, chunk));
    if (pause_us) usleep(pause_us);
  }
  c.send(".\r\n");
}

void open_data(Client &c) {
  greet(c);
  REQUIRE(c.cmd("MAIL FROM:<bomber@client.example>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("DATA") == "354 go ahead");
}

// Runs `attack` in a thread while polite clients keep probing; returns the worst probe latency.
template <class F>
double worst_latency_during(Server &s, F attack) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    attack();
    done = true;
  });
  double worst = 0;
  int probes = 0;
  while (!done || probes == 0) {
    worst = std::max(worst, probe_latency(s));
    ++probes;
  }
  t.join();
  return worst;
}

}  // namespace

TEST_CASE("data: 100k short header lines within max_message_size: stored whole, others served") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  const long base = s.rss_kb();
  RssSampler rss(s);
  const std::string bomb = header_bomb(100000);
  std::string reply;
  double worst = worst_latency_during(s, [&] {
    Client c(s.port());
    open_data(c);
    send_paced(c, bomb);
    reply = c.reply(30);
  });
  rss.stop();
  CHECK(reply.rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(worst < time_limit(s, 2.0));
  CHECK(rss.peak_kb() - base < rss_limit_kb(s, 24 * 1024));
  auto msgs = store.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(after_received(msgs[0]) == bomb);
  CHECK(alive(s));
}

TEST_CASE("data: 100k header lines over max_message_size: 552 only after the end, session usable") {
  MailStore store;
  Server s(opts(store, "max_message_size = 262144\n"));
  REQUIRE(s.started());
  Client c(s.port());
  open_data(c);
  const std::string bomb = header_bomb(100000);
  c.send(bomb);
  CHECK(c.read_some(0.3).empty());  // nothing until the end of data: the server keeps reading
  c.send(".\r\n");
  CHECK(c.reply(10) == "552 5.3.4 Message size exceeds fixed maximum message size");
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");  // reset
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<small@example.test>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("DATA") == "354 go ahead");
  c.send("Subject: small\r\n\r\nsmall\r\n.\r\n");
  CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
  // Exactly the small message.
  CHECK(store.count() == 1);
  CHECK(store.mailbox("example.test/small").size() == 1);
  CHECK(files_in(s.dir() + "/spool") == 0);
  CHECK(alive(s));
}

TEST_CASE("data: one 5 MB header line: stored within the limit, 552 over it; RSS bounded") {
  SUBCASE("within max_message_size") {
    MailStore store;
    Server s(opts(store));
    REQUIRE(s.started());
    const long base = s.rss_kb();
    RssSampler rss(s);
    const std::string msg = long_header(5 << 20);
    std::string reply;
    double worst = worst_latency_during(s, [&] {
      Client c(s.port());
      open_data(c);
      send_paced(c, msg);
      reply = c.reply(30);
    });
    rss.stop();
    CHECK(reply.rfind("250 2.0.0 Queued as ", 0) == 0);
    CHECK(worst < time_limit(s, 2.0));
    CHECK(rss.peak_kb() - base < rss_limit_kb(s, 24 * 1024));
    auto msgs = store.messages();
    REQUIRE(msgs.size() == 1);
    CHECK(after_received(msgs[0]) == msg);
  }
  SUBCASE("over max_message_size (1 MiB)") {
    MailStore store;
    Server s(opts(store, "max_message_size = 1048576\n"));
    REQUIRE(s.started());
    const long base = s.rss_kb();
    Client c(s.port());
    open_data(c);
    send_paced(c, long_header(5 << 20));
    CHECK(c.reply(30) == "552 5.3.4 Message size exceeds fixed maximum message size");
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(s.rss_kb() - base < rss_limit_kb(s, 24 * 1024));
    CHECK(store.count() == 0);
    CHECK(alive(s));
  }
}

TEST_CASE(
    "data: bodies over max_message_size: 552 after the end, three in a row, then a good one") {
  MailStore store;
  Server s(opts(store, "max_message_size = 4194304\n"));
  REQUIRE(s.started());
  const long base = s.rss_kb();
  RssSampler rss(s);
  Client c(s.port());
  greet(c);
  std::string line(998, 'b');
  line += "\r\n";
  std::string body = "Subject: big\r\n\r\n";
  while (body.size() < (12u << 20)) body += line;
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    // The third declares a small SIZE and lies.
    std::string mail = "MAIL FROM:<a@client.example>" + std::string(i == 2 ? " SIZE=1000" : "");
    REQUIRE(c.cmd(mail).rfind("250 ", 0) == 0);
    REQUIRE(c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
    REQUIRE(c.cmd("DATA") == "354 go ahead");
    send_paced(c, body, 1 << 20, 1000);
    CHECK(c.reply(30) == "552 5.3.4 Message size exceeds fixed maximum message size");
  }
  // Just at the limit: accepted (the Received: header is not counted).
  std::string fits = "Subject: fits\r\n\r\n";
  while (fits.size() + line.size() <= 4194304) fits += line;
  fits += std::string(4194304 - fits.size() - 2, 'f') + "\r\n";
  REQUIRE(fits.size() == 4194304);
  REQUIRE(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<fits@example.test>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("DATA") == "354 go ahead");
  send_paced(c, fits, 1 << 20, 0);
  CHECK(c.reply(30).rfind("250 2.0.0 Queued as ", 0) == 0);
  // One octet more: refused.
  REQUIRE(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("DATA") == "354 go ahead");
  send_paced(c, "x" + fits, 1 << 20, 0);
  CHECK(c.reply(30) == "552 5.3.4 Message size exceeds fixed maximum message size");
  rss.stop();
  CHECK(rss.peak_kb() - base < rss_limit_kb(s, 32 * 1024));
  CHECK(store.count() == 1);
  CHECK(store.mailbox("example.test/fits").size() == 1);
  CHECK(files_in(s.dir() + "/spool") == 0);
  CHECK(s.count_log("message too big") == 4);
  CHECK(alive(s));
}

TEST_CASE("data: eight clients send 3 MB messages at once while others are served") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  const long base = s.rss_kb();
  RssSampler rss(s);
  std::string line(200, 'm');
  line += "\r\n";
  std::string body = header_bomb(20000);
  while (body.size() < (3u << 20)) body += line;
  std::atomic<int> ok{0};
  double worst = worst_latency_during(s, [&] {
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i)
      ts.emplace_back([&, i] {
        Client c(s.port());
        greet(c);
        if (c.cmd("MAIL FROM:<m" + std::to_string(i) + "@client.example>").rfind("250 ", 0) != 0)
          return;
        if (c.cmd("RCPT TO:<c" + std::to_string(i) + "@example.test>").rfind("250 ", 0) != 0)
          return;
        if (c.cmd("DATA") != "354 go ahead") return;
        send_paced(c, body, 128 * 1024, 2000);
        if (c.reply(60).rfind("250 2.0.0 Queued as ", 0) == 0) ++ok;
      });
    for (auto &t : ts) t.join();
  });
  rss.stop();
  CHECK(ok == 8);
  CHECK(worst < time_limit(s, 3.0));
  CHECK(rss.peak_kb() - base < rss_limit_kb(s, 48 * 1024));
  CHECK(store.count() == 8);
  for (int i = 0; i < 8; ++i)
    CHECK(store.mailbox("example.test/c" + std::to_string(i)).size() == 1);
  for (const std::string &m : store.messages()) CHECK(after_received(m) == body);
  CHECK(alive(s));
  CHECK(clean_exit(s));
}

TEST_CASE("data: a header section that never ends and a 2 MB body line are stored as sent") {
  MailStore store;
  Server s(opts(store));
  REQUIRE(s.started());
  Client c(s.port());
  std::string no_blank;
  for (int i = 0; i < 50000; ++i) no_blank += "X-Only-Headers: " + std::to_string(i) + "\r\n";
  open_data(c);
  send_paced(c, no_blank);
  CHECK(c.reply(30).rfind("250 2.0.0 Queued as ", 0) == 0);
  const std::string longbody = "Subject: long line\r\n\r\n" + std::string(2 << 20, 'L') + "\r\n";
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<v@example.test>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("DATA") == "354 go ahead");
  send_paced(c, longbody);
  CHECK(c.reply(30).rfind("250 2.0.0 Queued as ", 0) == 0);
  REQUIRE(store.mailbox("example.test/u").size() == 1);
  REQUIRE(store.mailbox("example.test/v").size() == 1);
  CHECK(after_received(slurp(store.root + "/" + store.mailbox("example.test/u")[0])) == no_blank);
  CHECK(after_received(slurp(store.root + "/" + store.mailbox("example.test/v")[0])) == longbody);
  CHECK(alive(s));
}

TEST_CASE(
    "data: 40 clients park 250 KiB each in DATA and stall: memory per parked client bounded") {
  // Messages up to 256 KiB stay in memory (memfd) before they spill to the spool directory, so
  // a parked DATA session costs about its message so far plus buffers. Bound: 600 KiB each.
  Server s({.plugins = "verdict rcpt=OK queue=OK\n", .log_level = "info"});
  REQUIRE(s.started());
  usleep(100000);
  const long base = s.rss_kb();
  const std::string part = "Subject: parked\r\n\r\n" + std::string(250 * 1024, 'p') + "\r\n";
  std::vector<std::unique_ptr<Client>> parked;
  for (int i = 0; i < 40; ++i) {
    auto c = std::make_unique<Client>(s.port());
    greet(*c);
    REQUIRE(envelope(*c, "p@client.example", {"u@example.test"}));
    REQUIRE(c->cmd("DATA") == "354 go ahead");
    c->send(part);
    parked.push_back(std::move(c));
  }
  usleep(500000);
  const long grown = s.rss_kb() - base;
  MESSAGE("RSS growth for 40 parked DATA sessions of 250 KiB: ", grown, " KiB");
  CHECK(grown < rss_limit_kb(s, 40 * 600));
  CHECK(probe_latency(s) < time_limit(s, 1.0));
  // They can still finish.
  for (auto &c : parked) c->send(".\r\n");
  int ok = 0;
  for (auto &c : parked) ok += c->reply(10).rfind("250 2.0.0 Queued as ", 0) == 0;
  CHECK(ok == 40);
  parked.clear();
  CHECK(alive(s));
  CHECK(clean_exit(s));
}
