// tests/integration/test_workers.cpp: worker processes (workers = N > 1): one port for all
// workers, log lines naming the worker, a crashed worker restarted within a second while the
// other's sessions go on (tests/plugins/crash_probe.c), the back-off for a worker that dies at
// every start, SIGHUP and SIGTERM passed on to every worker, the workers stopping when the
// supervisor is gone, outbound delivery in exactly one worker, the metrics endpoint summed over
// the workers, and startup and config errors.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <netinet/in.h>
#include <regex>
#include <set>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "dns_stub.hpp"
#include "fake_mx.hpp"
#include "harness.hpp"
#include "queue_helpers.hpp"

using namespace itest;

namespace {

bool has(const std::string &s, const std::string &needle) {
  return s.find(needle) != std::string::npos;
}

// A client that knows its own port, to find its "connect from" line (and so its worker).
class WClient : public Client {
 public:
  using Client::Client;
  int local_port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) return -1;
    return ntohs(a.sin_port);
  }
};

// The worker that logged this client's "connect from" line; 0 if none within timeout.
int worker_of(const Server &s, const WClient &c, double timeout = 1) {
  std::regex re("worker ([0-9]+) \\[[0-9a-f]+\\] connect from 127\\.0\\.0\\.1:" +
                std::to_string(c.local_port()) + " ");
  double deadline = now() + timeout;
  do {
    std::smatch m;
    std::string l = s.log();
    if (std::regex_search(l, m, re)) return atoi(m[1].str().c_str());
    usleep(5000);
  } while (now() < deadline);
  return 0;
}

// A greeted session (220 read) on worker `want` (any but `not_on` when want is 0): new
// connections until one lands there; nullptr after `tries`.
std::unique_ptr<WClient> session_on(const Server &s, int want, int not_on = 0, int tries = 300) {
  for (int i = 0; i < tries; ++i) {
    auto c = std::make_unique<WClient>(s.port());
    if (c->code() != 220) continue;
    int w = worker_of(s, *c);
    if ((want && w == want) || (!want && w && w != not_on)) return c;
  }
  return nullptr;
}

// The pid a worker logged at its (latest) start: "worker K started (uvsmtpd V, pid N)".
pid_t worker_pid(const Server &s, int k) {
  std::regex re("worker " + std::to_string(k) + " started \\(uvsmtpd [^,]+, pid ([0-9]+)\\)");
  std::string l = s.log();
  pid_t pid = 0;
  for (std::sregex_iterator it(l.begin(), l.end(), re), end; it != end; ++it)
    pid = atoi((*it)[1].str().c_str());
  return pid;
}

bool alive(pid_t pid) {
  return pid > 0 && kill(pid, 0) == 0;
}

// GET /metrics from 127.0.0.1:port: the whole response ("" if none).
std::string scrape(int port) {
  int fd = connect_loopback(port);
  if (fd < 0) return "";
  std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// The value of the sample "name " (no labels) in an exposition; -1 if absent.
long sample_of(const std::string &text, const std::string &name) {
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : atol(text.c_str() + at + name.size() + 2);
}

Options workers_opts(int n, const std::string &plugins = "verdict rcpt=OK queue=OK\n") {
  Options o;
  o.toml = "workers = " + std::to_string(n) + "\n";
  o.plugins = plugins;
  o.log_level = "info";
  return o;
}

std::string message(const std::string &subject) {
  return "From: <a@client.test>\r\nSubject: " + subject + "\r\n\r\nHello.\r\n";
}

}  // namespace

TEST_CASE("workers: one port for two workers; the supervisor announces it, lines name the worker") {
  Server s(workers_opts(2));
  REQUIRE(s.started());
  CHECK(s.count_log("listening on 127.0.0.1:") == 1);  // the supervisor's, once all serve
  CHECK(s.wait_log("supervisor uvsmtpd "));
  CHECK(has(s.log(), "started (pid " + std::to_string(s.pid()) + ", 2 worker processes)"));
  pid_t w1 = worker_pid(s, 1), w2 = worker_pid(s, 2);
  CHECK(alive(w1));
  CHECK(alive(w2));
  CHECK(w1 != w2);
  CHECK(w1 != s.pid());
  // Both workers take connections on the one port; every line of a session names its worker.
  auto a = session_on(s, 1);
  auto b = session_on(s, 2);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->cmd("EHLO one.test").rfind("250", 0) == 0);
  CHECK(b->cmd("EHLO two.test").rfind("250", 0) == 0);
  CHECK(send_message(*a, "a@client.test", {"x@dest.test"}, message("one")).rfind("250", 0) == 0);
  CHECK(send_message(*b, "a@client.test", {"x@dest.test"}, message("two")).rfind("250", 0) == 0);
  CHECK(a->cmd("QUIT").rfind("221", 0) == 0);
  CHECK(b->cmd("QUIT").rfind("221", 0) == 0);
  CHECK(s.wait_log("info worker 1 [", 3));
  CHECK(s.wait_log("info worker 2 [", 3));
  std::regex accepted("info worker ([12]) \\[[0-9a-f]+\\] [0-9A-Z]+: accepted ");
  std::string l = s.log();
  std::set<std::string> seen;
  for (std::sregex_iterator it(l.begin(), l.end(), accepted), end; it != end; ++it)
    seen.insert((*it)[1].str());
  CHECK(seen == std::set<std::string>{"1", "2"});
}

TEST_CASE("workers: JSON lines carry \"worker\": K, the supervisor's \"supervisor\": true") {
  Options o = workers_opts(2);
  o.log_level = "info\"\nformat = \"json";  // into the [log] table the harness writes
  Server s(o);
  REQUIRE(s.started());
  for (int i = 0; i < 300 && (s.count_log("\"level\":\"info\",\"worker\":2,\"session\":") == 0 ||
                              s.count_log("\"level\":\"info\",\"worker\":1,\"session\":") == 0);
       ++i) {
    Client c(s.port());
    c.code();
  }
  CHECK(s.wait_log("\"level\":\"info\",\"worker\":2,\"session\":"));
  CHECK(s.wait_log("\"level\":\"info\",\"worker\":1,\"session\":"));
  CHECK(s.wait_log("\"level\":\"notice\",\"supervisor\":true,\"msg\":\"listening on 127.0.0.1:"));
  CHECK(s.wait_log("\"worker\":1,\"msg\":\"started (uvsmtpd "));
}

TEST_CASE("workers: workers = 1 is one process, as ever") {
  Server s(workers_opts(1));
  REQUIRE(s.started());
  CHECK(has(s.log(), "started (pid " + std::to_string(s.pid()) + ")"));
  CHECK(!has(s.log(), "worker"));
  CHECK(!has(s.log(), "supervisor"));
  Client c(s.port());
  CHECK(c.code() == 220);
}

TEST_CASE("workers: a crashed worker is restarted within 1 s; the other worker's session goes on") {
  const char *how = "abort";
  int sig = SIGABRT;
  SUBCASE("abort()") {}
  SUBCASE("SIGSEGV") {
    how = "segv";
    sig = SIGSEGV;
  }
  CAPTURE(how);
  // Under ASan the runtime's SEGV handler would turn the crash into a report and an exit (or an
  // abort); handle_segv=0 leaves the signal to the kernel, as in a normal build.
  const char *asan = getenv("ASAN_OPTIONS");
  std::string saved = asan ? asan : "";
  setenv("ASAN_OPTIONS", (saved.empty() ? "" : saved + ":").append("handle_segv=0").c_str(), 1);
  Server s(workers_opts(2, std::string("crash_probe how=") + how + "\nverdict rcpt=OK queue=OK\n"));
  if (asan)
    setenv("ASAN_OPTIONS", saved.c_str(), 1);
  else
    unsetenv("ASAN_OPTIONS");
  REQUIRE(s.started());
  // A: a long-lived session, greeted, on some worker; B: a session on the other one.
  auto a = session_on(s, 0);
  REQUIRE(a);
  int wa = worker_of(s, *a);
  CHECK(a->cmd("EHLO keep.test").rfind("250", 0) == 0);
  auto b = session_on(s, 0, wa);
  REQUIRE(b);
  int wb = worker_of(s, *b);
  REQUIRE(wb != wa);
  pid_t dead = worker_pid(s, wb);
  pid_t other = worker_pid(s, wa);

  b->line("EHLO crash.invalid");
  CHECK(b->closed(3));
  double crashed = now();
  std::string died = "supervisor worker " + std::to_string(wb) + " (pid " + std::to_string(dead) +
                     ") killed by signal " + std::to_string(sig);
  CHECK(s.wait_log(died, 3));
  // Restarted and serving within 1 s of the crash.
  std::string back = "supervisor worker " + std::to_string(wb) + " (pid ";
  CHECK(s.wait_log("started again and serving", 1.0 - (now() - crashed)));
  CHECK(now() - crashed < 1.0);
  CHECK(s.count_log(back) >= 2);  // the death, and the restart
  pid_t fresh = worker_pid(s, wb);
  CHECK(fresh != dead);
  CHECK(alive(fresh));
  CHECK(!alive(dead));
  CHECK(worker_pid(s, wa) == other);  // the other worker was not touched

  // The same connection on the other worker goes on to send a message.
  CHECK(send_message(*a, "a@client.test", {"x@dest.test"}, message("after")).rfind("250", 0) == 0);
  CHECK(a->cmd("QUIT").rfind("221", 0) == 0);
  // New connections are served, by the restarted worker too.
  auto c = session_on(s, wb);
  REQUIRE(c);
  CHECK(c->cmd("EHLO again.test").rfind("250", 0) == 0);
  CHECK(s.running());
}

TEST_CASE("workers: a worker that dies at every start is started again with a growing wait") {
  TempDir tmp("workers");
  std::string broken = tmp.path + "/broken";
  Server s(workers_opts(2, "crash_probe init_file=" + broken + "\nverdict rcpt=OK queue=OK\n"));
  REQUIRE(s.started());
  spit(broken, "");  // from now on a new worker aborts in the plugin's init
  auto victim = session_on(s, 0);
  REQUIRE(victim);
  int w = worker_of(s, *victim);
  victim->line("EHLO crash.invalid");
  CHECK(victim->closed(3));
  // Deaths within a second of their start: at the fifth in a row the supervisor waits 1 s,
  // then 2 s: no busy loop of restarts.
  std::string prefix = "supervisor worker " + std::to_string(w) + " (pid ";
  CHECK(s.wait_log("within 1 s of its start 5 times in a row: next start in 1 s", 5));
  double fifth = now();
  int deaths = s.count_log(prefix);
  CHECK(s.wait_log("within 1 s of its start 6 times in a row: next start in 2 s", 3));
  CHECK(now() - fifth > 0.8);  // the 1 s wait (tolerance for the poll)
  CHECK(s.count_log(prefix) == deaths + 1);
  // The other worker serves all along.
  int other = w == 1 ? 2 : 1;
  auto c = session_on(s, other);
  REQUIRE(c);
  CHECK(c->cmd("EHLO fine.test").rfind("250", 0) == 0);
  // Fixed: the next start (after the 2 s wait) stays up.
  unlink(broken.c_str());
  CHECK(s.wait_log("started again and serving", 4));
  auto d = session_on(s, w);
  REQUIRE(d);
  CHECK(d->cmd("EHLO back.test").rfind("250", 0) == 0);
}

TEST_CASE("workers: SIGHUP reloads every worker; a broken configuration keeps the running one") {
  Server s(workers_opts(2));
  REQUIRE(s.started());
  std::string path = s.conf_dir() + "/uvsmtpd.toml";
  spit(path, "greeting = \"ESMTP reloaded\"\n" + slurp(path));  // a top-level key: first
  s.signal(SIGHUP);
  CHECK(s.wait_log("SIGHUP: passed on to 2 worker(s)"));
  CHECK(s.wait_log("SIGHUP: configuration and plugins reloaded", 5, 2));
  CHECK(s.count_log("worker 1 SIGHUP: configuration and plugins reloaded") == 1);
  CHECK(s.count_log("worker 2 SIGHUP: configuration and plugins reloaded") == 1);
  for (int w : {1, 2}) {
    CAPTURE(w);
    bool found = false;
    for (int i = 0; i < 300 && !found; ++i) {
      WClient c(s.port());
      std::string greeting = c.reply();
      if (worker_of(s, c) != w) continue;
      found = true;
      CHECK(greeting == "220 mx.test.invalid ESMTP reloaded");
    }
    CHECK(found);
  }
  // A broken file: each worker says so and keeps what it runs.
  spit(path, "max_hops = -1\n" + slurp(path));
  s.signal(SIGHUP);
  CHECK(s.wait_log("SIGHUP: reload failed, keeping the running configuration", 5, 2));
  CHECK(s.count_log("worker 1 SIGHUP: reload failed") == 1);
  CHECK(s.count_log("worker 2 SIGHUP: reload failed") == 1);
  Client c(s.port());
  CHECK(c.reply() == "220 mx.test.invalid ESMTP reloaded");
  CHECK(s.running());
}

TEST_CASE("workers: SIGTERM stops every worker gracefully; the supervisor exits 0 after them") {
  int sig = SIGTERM;
  SUBCASE("SIGTERM") {}
  SUBCASE("SIGINT") {
    sig = SIGINT;
  }
  Server s(workers_opts(2));
  REQUIRE(s.started());
  // A message in DATA on one worker, an idle session on the other.
  auto a = session_on(s, 1);
  auto b = session_on(s, 2);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->cmd("EHLO a.test").rfind("250", 0) == 0);
  CHECK(b->cmd("EHLO b.test").rfind("250", 0) == 0);
  CHECK(a->cmd("MAIL FROM:<a@client.test>").rfind("250", 0) == 0);
  CHECK(a->cmd("RCPT TO:<x@dest.test>").rfind("250", 0) == 0);
  CHECK(a->cmd("DATA").rfind("354", 0) == 0);
  a->send("Subject: in flight\r\n\r\nfirst half\r\n");
  pid_t w1 = worker_pid(s, 1), w2 = worker_pid(s, 2);
  s.signal(sig);
  CHECK(s.wait_log("stopping 2 worker(s)"));
  CHECK(b->reply().rfind("421 4.3.2", 0) == 0);  // idle: told at once
  CHECK(b->closed(3));
  a->send("second half\r\n.\r\n");  // the message in flight is still taken
  CHECK(a->reply().rfind("250 ", 0) == 0);
  CHECK(a->reply().rfind("421 4.3.2", 0) == 0);
  CHECK(s.wait_exit(10) == 0);
  CHECK(has(s.log(), "all workers have exited; exiting"));
  CHECK(!alive(w1));
  CHECK(!alive(w2));
  CHECK(s.count_log("started again") == 0);  // a stop is not a crash
}

TEST_CASE("workers: when the supervisor is gone the workers stop") {
  Server s(workers_opts(2));
  REQUIRE(s.started());
  pid_t w1 = worker_pid(s, 1), w2 = worker_pid(s, 2);
  REQUIRE(alive(w1));
  REQUIRE(alive(w2));
  s.signal(SIGKILL);
  CHECK(s.wait_exit(5) == -1);  // killed
  CHECK(s.wait_log("worker 1 supervisor gone: shutting down", 5));
  CHECK(s.wait_log("worker 2 supervisor gone: shutting down", 5));
  double deadline = now() + 5;
  while ((alive(w1) || alive(w2)) && now() < deadline) usleep(10000);
  CHECK(!alive(w1));
  CHECK(!alive(w2));
}

TEST_CASE(
    "workers: outbound delivery runs in worker 1 only; relay mail from any worker is delivered "
    "once") {
  TempDir tmp("workers-deliv");
  std::string queue = tmp.path + "/queue";
  int mx_port = free_port(SOCK_STREAM);
  DnsStub dns;
  dns.add("dest.test", DnsStub::MX, {"10 mx1.dest.test"});
  dns.add("mx1.dest.test", DnsStub::A, {"127.0.0.2"});
  FakeMx mx("127.0.0.2", mx_port);
  REQUIRE_MESSAGE(mx.started(), mx.error());
  Options o;
  o.plugins = "verdict rcpt=OK\nqueue/outbound " + queue + "\n";
  o.toml = "workers = 2\n[delivery]\nsmtp_port = " + std::to_string(mx_port) +
           "\nretry_min = 1\nretry_max = 2\nrescan_interval = 1\n" + dns.toml();
  o.log_level = "debug";  // the control socket's lines
  Server s(o);
  REQUIRE(s.started());
  CHECK(s.wait_log("worker 1 delivery: queue "));
  CHECK(s.count_log("delivery: queue ") == 1);
  std::set<std::string> ids;
  for (int w : {1, 2, 1, 2}) {
    auto c = session_on(s, w);
    REQUIRE(c);
    CHECK(c->cmd("EHLO client.test").rfind("250", 0) == 0);
    std::string r = send_message(*c, "sender@client.test", {"alice@dest.test"},
                                 message("from worker " + std::to_string(w)));
    std::string id = queued_as_id(r);
    CHECK(!id.empty());
    ids.insert(id);
    CHECK(s.wait_log("worker " + std::to_string(w) + " [", 1));
  }
  REQUIRE(ids.size() == 4);
  REQUIRE(mx.wait_messages(4));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a rescan: nothing sent twice
  CHECK(mx.messages().size() == 4);
  for (const auto &id : ids) {
    CAPTURE(id);
    CHECK(s.wait_log("worker 1 " + id + ": to=<alice@dest.test> relay=mx1.dest.test"));
    CHECK(s.count_log(id + ": to=<alice@dest.test> relay=") == 1);
    CHECK(s.wait_log("worker 1 delivery: control: new " +
                     id));  // queue/outbound's datagram reached worker 1
  }
  CHECK(s.count_log("worker 2 delivery") == 0);

  // Worker 1 killed: its successor runs the engine (and binds the control socket) again, and
  // a message accepted by worker 2 meanwhile or after is delivered.
  kill(worker_pid(s, 1), SIGKILL);
  auto c = session_on(s, 2);
  REQUIRE(c);
  CHECK(c->cmd("EHLO client.test").rfind("250", 0) == 0);
  std::string id = queued_as_id(
      send_message(*c, "sender@client.test", {"alice@dest.test"}, message("after the kill")));
  CHECK(!id.empty());
  REQUIRE(s.wait_log("started again and serving", 3));
  CHECK(s.wait_log("delivery: queue ", 3, 2));
  REQUIRE(mx.wait_messages(5));
  CHECK(s.wait_log("worker 1 " + id + ": to=<alice@dest.test> relay=mx1.dest.test"));
  CHECK(s.count_log("delivery: queue ") == 2);  // one engine at a time: the new worker 1's
}

TEST_CASE("workers: a worker that cannot start stops the whole start with its error, exit 1") {
  Options o = workers_opts(2, "verdict rcpt=OK\nbad_init x\n");
  std::string dir = make_tree(o);
  RunResult r = run_uvsmtpd(
      {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--listen", "127.0.0.1:0"});
  CHECK(r.status == 1);
  CHECK(has(r.output, "plugin 'bad_init' failed to initialise: bad_init: refusing to start"));
  CHECK(has(r.output, "while starting; stopping"));
  CHECK(!has(r.output, "listening on"));
  remove_tree(dir);
}

TEST_CASE("workers: the supervisor binds; an address in use is a startup error, exit 1") {
  Server first(workers_opts(1));
  REQUIRE(first.started());
  Options o = workers_opts(2);
  std::string dir = make_tree(o);
  RunResult r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins",
                             "--listen", "127.0.0.1:" + std::to_string(first.port())});
  CHECK(r.status == 1);
  CHECK(has(r.output, "--listen: cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                          ": address already in use"));
  CHECK(!has(r.output, "started ("));  // no worker was started
  remove_tree(dir);
}

TEST_CASE("workers: a bad value is a config error naming file and line") {
  struct Bad {
    const char *value;
    const char *message;
  };
  for (const Bad &b : {Bad{"0", "'workers' must be between 1 and 256"},
                       Bad{"257", "'workers' must be between 1 and 256"},
                       Bad{"-2", "'workers' must be between 1 and 256"},
                       Bad{"\"two\"", "'workers' must be an integer"},
                       Bad{"2.5", "'workers' must be an integer"}}) {
    std::string value = b.value;
    CAPTURE(value);
    Options o;
    o.toml = std::string("workers = ") + b.value + "\n";
    std::string dir = make_tree(o);
    RunResult r = run_uvsmtpd(
        {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    CHECK(r.status == 1);
    // the harness writes hostname and spool_dir first: workers is line 3
    CHECK(has(r.output, dir + "/conf/uvsmtpd.toml:3: " + b.message));
    remove_tree(dir);
  }
}

TEST_CASE("workers: the supervisor serves the metrics, summed over the workers") {
  Options o = workers_opts(2);
  o.toml += "[metrics]\nlisten = \"127.0.0.1:0\"\n";
  Server s(o);
  REQUIRE(s.started());
  const std::string mark = "supervisor metrics endpoint on http://127.0.0.1:";
  REQUIRE(s.wait_log(mark));
  std::string l = s.log();
  int mport = atoi(l.c_str() + l.find(mark) + mark.size());
  REQUIRE(mport > 0);
  CHECK(s.count_log("metrics endpoint on") == 1);  // the workers bind none of their own
  // Two messages through worker 1, three through worker 2.
  for (int w : {1, 2, 1, 2, 2}) {
    auto c = session_on(s, w);
    REQUIRE(c);
    CHECK(c->cmd("EHLO m.test").rfind("250", 0) == 0);
    CHECK(send_message(*c, "a@client.test", {"x@dest.test"}, message("m")).rfind("250", 0) == 0);
    CHECK(c->cmd("QUIT").rfind("221", 0) == 0);
  }
  CHECK(s.wait_log("accepted message-id", 3, 5));
  std::string m = scrape(mport);
  CAPTURE(m);
  REQUIRE(m.find(" 200 OK\r\n") != std::string::npos);
  CHECK(sample_of(m, "uvsmtpd_messages_accepted_total") == 5);
  // Every connection either worker accepted (session_on opens some to find a worker).
  CHECK(sample_of(m, "uvsmtpd_connections_total") == s.count_log("] connect from "));
  CHECK(sample_of(m, "uvsmtpd_workers") == 2);
  CHECK(sample_of(m, "uvsmtpd_workers_scraped") == 2);
  CHECK(sample_of(m, "uvsmtpd_worker_restarts_total") == 0);
  CHECK(s.count_log("# TYPE") == 0);
  // Each family once: the sum, not one copy per worker.
  size_t first = m.find("# TYPE uvsmtpd_messages_accepted_total counter");
  CHECK(first != std::string::npos);
  CHECK(m.find("# TYPE uvsmtpd_messages_accepted_total counter", first + 1) == std::string::npos);

  // A worker killed and started again: counted, and the sum goes on with the new one.
  pid_t w2 = worker_pid(s, 2);
  kill(w2, SIGKILL);
  REQUIRE(s.wait_log("started again and serving", 3));
  m = scrape(mport);
  CHECK(sample_of(m, "uvsmtpd_worker_restarts_total") == 1);
  CHECK(sample_of(m, "uvsmtpd_workers") == 2);
  CHECK(sample_of(m, "uvsmtpd_messages_accepted_total") == 2);  // worker 2's three went with it
}
