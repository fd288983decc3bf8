// tests/faults/test_crash.cpp: a plugin segfaults in a hook: no 250 lost, none false.
#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "faults_util.hpp"

using namespace faults;
using itest::now;

namespace {

bool starts(const std::string &s, const char *prefix) {
  return s.rfind(prefix, 0) == 0;
}

// Under ASan the runtime's SEGV handler would turn the crash into a report and exit(1)/abort;
// handle_segv=0 leaves the signal to the kernel, as in a normal build.
Env crash_env() {
  const char *cur = getenv("ASAN_OPTIONS");
  std::string opts = cur && *cur ? std::string(cur) + ":handle_segv=0" : "handle_segv=0";
  return {{"ASAN_OPTIONS", opts}};
}

bool died_of_segv(const Proc &p) {
  return p.reaped && WIFSIGNALED(p.wstatus) && WTERMSIG(p.wstatus) == SIGSEGV;
}

struct Session {
  std::unique_ptr<itest::Client> c;
  explicit Session(int port) : c(std::make_unique<itest::Client>(port)) {}
  bool ready() { return c->code() == 220 && starts(c->cmd("EHLO client.test"), "250"); }
};

// Restart on the same tree (what systemd's Restart=on-failure does) and deliver one more
// message; returns its reply.
std::string restart_and_send(const Tree &t, const std::string &tag, int n,
                             const std::vector<std::string> &rcpts, const std::string &log) {
  Proc q;
  if (!q.start(t, crash_env(), log)) return "restart failed: " + q.log();
  Session s(q.port);
  if (!s.ready()) return "no session after restart";
  std::string r = transact(*s.c, rcpts, make_message(tag, n, 5000));
  s.c->cmd("QUIT");
  s.c->shutdown_write();
  s.c->closed(2);
  q.signal(SIGTERM);
  q.wait(10);
  return r;
}

// One crash scenario with a single client: messages 0..nth-2 go through, message nth-1 crashes.
void single(const std::string &crash_line, const std::string &where, bool crash_after_queue) {
  const std::string tag = "crash";
  const std::vector<std::string> rcpts = {"alice@one.test"};
  const int kNth = 3;
  std::string line = crash_line + " nth=" + std::to_string(kNth) + " where=" + where + "\n";
  // A crash plugin on data_post/queue sits before queue/maildir; on queue_post after it.
  Tree t(crash_after_queue ? "verdict rcpt=OK\n" : "verdict rcpt=OK\n" + line, "",
         crash_after_queue ? line : "");
  t.add_crash_plugin();
  Proc p;
  REQUIRE_MESSAGE(p.start(t, crash_env(), t.dir + "/log.0"), p.why());
  // A bystander session, idle: the crash takes it down too (the limit of one process).
  Session idle(p.port);
  REQUIRE(idle.ready());
  Session s(p.port);
  REQUIRE(s.ready());
  for (int i = 0; i < kNth - 1; ++i) {
    std::string r = transact(*s.c, rcpts, make_message(tag, i, 5000));
    REQUIRE_MESSAGE(starts(r, "250 "), r);
  }
  std::string r = transact(*s.c, rcpts, make_message(tag, kNth - 1, 5000), 10);
  REQUIRE(p.wait(10));
  CHECK_MESSAGE(died_of_segv(p), describe_status(p.wstatus) << "\n" << p.log());
  CHECK(p.count_log("crash: ") >= kNth);
  CHECK(s.c->closed(2));
  CHECK(idle.c->closed(2));
  CHECK_MESSAGE(idle.c->drained.empty(), "the idle session got: " << idle.c->drained);
  Inventory inv = inventory(maildir_of(t.mail(), rcpts[0]), tag);
  CHECK(inv.bad.empty());
  CHECK(inv.copies[0] == 1);
  CHECK(inv.copies[1] == 1);
  if (crash_after_queue) {
    // queue_post runs after the 250 was handed to the socket: the message is durable; the
    // client may or may not have read the 250 before the process died.
    CHECK(inv.copies[kNth - 1] == 1);
    MESSAGE(crash_line << " (" << where << "): the client read '" << r
                       << "' before the crash; the message is in new/");
  } else {
    CHECK_MESSAGE(r.empty(), "a reply came from a server that crashed before queueing: " << r);
    CHECK(inv.copies.count(kNth - 1) == 0);
    CHECK(inv.tmp_files == 0);
  }
  std::string r2 = restart_and_send(t, tag, kNth, rcpts, t.dir + "/log.1");
  CHECK_MESSAGE(starts(r2, "250 "), r2);
  inv = inventory(maildir_of(t.mail(), rcpts[0]), tag);
  CHECK(inv.copies[0] == 1);
  CHECK(inv.copies[1] == 1);
  CHECK(inv.copies[kNth] == 1);
}

}  // namespace

TEST_CASE("crash: SIGSEGV in data_post on the loop thread") {
  single("crash hook=data_post", "loop", false);
}

TEST_CASE("crash: SIGSEGV in the queue hook, before queue/maildir") {
  single("crash hook=queue", "loop", false);
}

TEST_CASE("crash: SIGSEGV in a queue hook's run_blocking work, on a pool thread") {
  single("crash hook=queue", "thread", false);
}

TEST_CASE("crash: SIGSEGV in queue_post, after the message is delivered and 250 is sent") {
  single("crash hook=queue_post", "loop", true);
}

TEST_CASE("crash: SIGSEGV under load: in-flight sessions are lost, no message that got 250 is") {
  const std::string tag = "load";
  const int kThreads = 3, kNth = 15;
  Tree t("verdict rcpt=OK\ncrash hook=data_post nth=" + std::to_string(kNth) + "\n");
  t.add_crash_plugin();
  Proc p;
  REQUIRE_MESSAGE(p.start(t, crash_env(), t.dir + "/log.0"), p.why());
  std::mutex mu;
  std::set<int> acked, unanswered;
  std::map<int, int> sender;
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      Session s(p.port);
      if (!s.ready()) return;
      std::vector<std::string> rcpts = {"t" + std::to_string(th) + "@one.test", "all@two.test"};
      for (;;) {
        int n = next++;
        {
          std::lock_guard<std::mutex> lock(mu);
          sender[n] = th;
        }
        std::string r = transact(
            *s.c, rcpts, make_message(tag, n, 2000 + static_cast<size_t>(n % 5) * 30000), 10);
        std::lock_guard<std::mutex> lock(mu);
        if (starts(r, "250 ")) {
          acked.insert(n);
          continue;
        }
        unanswered.insert(n);
        return;
      }
    });
  }
  for (auto &th : threads) th.join();
  REQUIRE(p.wait(10));
  CHECK_MESSAGE(died_of_segv(p), describe_status(p.wstatus));
  int lost = 0, partial = 0, extra = 0;
  std::string shared = maildir_of(t.mail(), "all@two.test");
  Inventory all = inventory(shared, tag);
  partial += static_cast<int>(all.bad.size());
  for (int th = 0; th < kThreads; ++th) {
    Inventory own = inventory(maildir_of(t.mail(), "t" + std::to_string(th) + "@one.test"), tag);
    partial += static_cast<int>(own.bad.size());
    for (int n : acked)
      if (sender[n] == th && (own.copies[n] != 1 || all.copies[n] != 1)) ++lost;
  }
  for (auto &[n, cnt] : all.copies)
    if (!acked.count(n)) ++extra;
  MESSAGE("crash under load: " << next.load() << " messages started, " << acked.size()
                               << " got 250, " << unanswered.size() << " sessions cut, " << lost
                               << " lost, " << partial << " partial, " << extra
                               << " delivered without 250");
  // Calls before the crashing one may still have been in their queue step (at most one per
  // other session): those got no 250 either.
  CHECK(acked.size() >= static_cast<size_t>(kNth - kThreads));
  CHECK(unanswered.size() == static_cast<size_t>(kThreads));
  CHECK(lost == 0);
  CHECK(partial == 0);
  // data_post crashed before queueing: the crashed message is nowhere; others in flight at the
  // moment of the crash were at most in their own data_post/queue step.
  std::string r2 =
      restart_and_send(t, tag, 1000, {"t0@one.test", "all@two.test"}, t.dir + "/log.1");
  CHECK_MESSAGE(starts(r2, "250 "), r2);
}
