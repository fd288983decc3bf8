// tests/hostile/test_floods.cpp: connection floods, per-IP/total/hosts_allow limits, fd exhaustion.
#include <doctest/doctest.h>

#include <dirent.h>
#include <memory>
#include <sys/resource.h>
#include <unistd.h>

#include "hostile.hpp"

using namespace hostile;

namespace {

const std::string kPerIp = "421 4.7.0 mx.test.invalid Error: too many connections from 127.0.0.1";
const std::string kTotal = "421 4.7.0 mx.test.invalid Error: too many connections";
const std::string kHostsAllow = "451 4.7.0 too many connections from 127.0.0.1, try again later";

struct Tally {
  int greeted = 0, refused = 0, other = 0;
};

// Opens n connections at once, then reads the first reply of each.
Tally flood(Server &s, int n, const std::string &refusal,
            std::vector<std::unique_ptr<Client>> &keep) {
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < n; ++i) cs.push_back(std::make_unique<Client>(s.port()));
  Tally t;
  for (auto &c : cs) {
    std::string r = c->reply(5);
    if (r.rfind("220 ", 0) == 0) {
      ++t.greeted;
      keep.push_back(std::move(c));
    } else if (r == refusal && c->closed(3)) {
      ++t.refused;
    } else {
      ++t.other;
    }
  }
  return t;
}

// Waits until n concurrent connections are all greeted (slots are freed asynchronously).
bool n_greeted(Server &s, int n, double timeout = 5) {
  double deadline = now() + timeout;
  while (now() < deadline) {
    std::vector<std::unique_ptr<Client>> keep;
    Tally t = flood(s, n, "", keep);
    if (t.greeted == n) return true;
    keep.clear();
    usleep(100000);
  }
  return false;
}

int open_fds(pid_t pid) {
  int n = 0;
  DIR *d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  while (readdir(d)) ++n;
  closedir(d);
  return n - 2;
}

}  // namespace

TEST_CASE("floods: 300 connections vs max_connections_per_ip = 20") {
  Server s({.toml = "max_connections_per_ip = 20\n", .log_level = "info"});
  REQUIRE(s.started());
  const long base = s.rss_kb();
  std::vector<std::unique_ptr<Client>> keep;
  Tally t = flood(s, 300, kPerIp, keep);
  CHECK(t.greeted == 20);
  CHECK(t.refused == 280);
  CHECK(t.other == 0);
  // The 20 are real sessions.
  for (auto &c : keep) CHECK(c->cmd("EHLO flood.example").rfind("250", 0) == 0);
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 16 * 1024));
  keep.clear();
  // Their slots come back, and the 280 refused ones never held any.
  CHECK(n_greeted(s, 20));
  CHECK(alive_soon(s));
}

TEST_CASE("floods: 200 connections vs max_connections = 50 (no per-IP limit)") {
  Server s({.toml = "max_connections = 50\nmax_connections_per_ip = 0\n", .log_level = "info"});
  REQUIRE(s.started());
  std::vector<std::unique_ptr<Client>> keep;
  Tally t = flood(s, 200, kTotal, keep);
  CHECK(t.greeted == 50);
  CHECK(t.refused == 150);
  CHECK(t.other == 0);
  keep.clear();
  CHECK(n_greeted(s, 50));
  CHECK(alive_soon(s));
}

TEST_CASE("floods: hosts_allow max-from-ip 10: 451 beyond it; resets and early closes free slots") {
  Server s({.toml = "max_connections_per_ip = 0\n",
            .plugins = "hosts_allow max-from-ip 10\nverdict rcpt=OK queue=OK\n",
            .log_level = "info"});
  REQUIRE(s.started());
  {
    std::vector<std::unique_ptr<Client>> keep;
    Tally t = flood(s, 100, kHostsAllow, keep);
    CHECK(t.greeted == 10);
    CHECK(t.refused == 90);
    CHECK(t.other == 0);
    // Abrupt end of the 10 greeted ones.
  }
  // Churn: 300 clients reset right after connecting (some before the greeting), 300 that
  // half-close at once, 300 that reset in the middle of a command.
  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<Raw>> rs;
    for (int i = 0; i < 300; ++i) {
      auto r = std::make_unique<Raw>(s.port());
      if (round == 1) r->shutdown_write();
      if (round == 2) r->send("MAIL FROM:<a@");
      rs.push_back(std::move(r));
    }
    for (auto &r : rs) r->reset();
  }
  // No slot leaked: 10 concurrent clients are greeted again.
  CHECK(n_greeted(s, 10));
  CHECK(alive_soon(s));
}

TEST_CASE("floods: 3000 sequential connect/close cycles leave memory and slots as they were") {
  Server s({.toml = "max_connections_per_ip = 5\n", .log_level = "notice"});
  REQUIRE(s.started());
  for (int i = 0; i < 50; ++i) Raw(s.port()).reset();  // warm up allocator pools
  usleep(200000);
  const long base = s.rss_kb();
  for (int i = 0; i < 3000; ++i) {
    Raw r(s.port());
    if (i % 3 == 0) r.first_line(2);
    if (i % 2) r.reset();
  }
  CHECK(n_greeted(s, 5));
  CHECK(s.rss_kb() - base < rss_limit_kb(s, 4 * 1024));
  CHECK(alive_soon(s));
}

TEST_CASE("floods: out of file descriptors: no crash, no 250 without storage, recovery after") {
  // The server runs with a soft RLIMIT_NOFILE of 64 and no connection limits; a flood of 200
  // connections exhausts its descriptors. A session opened before must get 4xx (or succeed),
  // never a crash or a 250 without a stored copy; once the flood is gone everything works.
  MailStore store;
  rlimit old{};
  getrlimit(RLIMIT_NOFILE, &old);
  rlimit low = old;
  low.rlim_cur = 64;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  Server s({.toml = "max_connections = 0\nmax_connections_per_ip = 0\n",
            .plugins = "verdict rcpt=OK\n" + store.plugin_line(),
            .log_level = "info"});
  setrlimit(RLIMIT_NOFILE, &old);
  REQUIRE(s.started());
  Client first(s.port());
  greet(first);
  REQUIRE(envelope(first, "a@client.example", {"u@example.test"}));
  std::vector<std::unique_ptr<Client>> flood;
  for (int i = 0; i < 200; ++i) flood.push_back(std::make_unique<Client>(s.port()));
  usleep(300000);
  CHECK(open_fds(s.pid()) >= 60);  // the flood did exhaust the descriptors
  // The established session still gets answers; its message is stored or refused with 4xx.
  std::string r = first.cmd("DATA");
  int stored_before = static_cast<int>(store.count());
  if (r == "354 go ahead") {
    first.send("Subject: during\r\n\r\nduring the flood\r\n.\r\n");
    r = first.reply(10);
  }
  CAPTURE(r);
  CHECK((r.rfind("250 2.0.0 Queued as ", 0) == 0 || r.rfind("451 4.3.0 ", 0) == 0));
  CHECK(static_cast<int>(store.count()) == stored_before + (r.rfind("250 ", 0) == 0 ? 1 : 0));
  CHECK(store.tmp_leftovers() == 0);
  CHECK(s.running());
  flood.clear();
  // Recovery: new clients are served and deliver.
  bool ok = false;
  for (double deadline = now() + 5; !ok && now() < deadline;)
    ok = alive(s, 5, "after@example.test");
  CHECK(ok);
  CHECK(store.mailbox("example.test/after").size() >= 1);
  CHECK(s.running());
  CHECK(clean_exit(s));
}
