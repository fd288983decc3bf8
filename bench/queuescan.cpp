// bench/queuescan.cpp: the outbound queue's startup scan at scale (docs/queue.md, "Scale"):
// fills a queue directory with N synthetic deferred entries (default 100,000, next try in the
// future), then times QueueDir::scan() and measures the memory of its index; with --server,
// runs that build's uvsmtpd with queue/outbound and the delivery engine on the queue (routes
// to a closed port, nothing due), once on an empty queue and once on the full one: the time to
// its "started" line, to the first 220 and to the engine's index, and RSS per deferred entry.
//
//   build/bench/queuescan [--entries N] [--dir DIR] [--server BUILD_DIR] [--json]
//
// Exit status 1 when a target is missed: scan, start or first 220 >= 2 s, index > 1 KiB/entry,
// server RSS per deferred entry > 1 KiB. --json adds one JSON line with the server figures.
#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <netinet/in.h>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/queue_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

long status_kb(const char *key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return atol(line.c_str() + strlen(key));
  return -1;
}

void write_file(const std::string &path, const std::string &text, int64_t mtime) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    perror(path.c_str());
    exit(2);
  }
  if (mtime) {
    timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    futimens(fd, ts);
  }
  close(fd);
}

std::string make_id(unsigned n) {
  static const char kDigits[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";
  std::string id = "5YHV";
  for (int i = 0; i < 10; ++i, n /= 31) id += kDigits[n % 31];
  return id;
}

// A free TCP port on 127.0.0.1 (bound, read, closed: a port nobody listens on right after).
int free_port() {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 ||
      getsockname(s, reinterpret_cast<sockaddr *>(&a), &len) < 0) {
    perror("free_port");
    exit(2);
  }
  close(s);
  return ntohs(a.sin_port);
}

// Connects to 127.0.0.1:port and reads the first line; true when it is a 220.
bool greeted(int port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string line;
  if (connect(s, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) {
    char buf[512];
    ssize_t n;
    while (line.find('\n') == std::string::npos && (n = read(s, buf, sizeof buf)) > 0)
      line.append(buf, static_cast<size_t>(n));
  }
  close(s);
  return line.rfind("220", 0) == 0;
}

long proc_rss_kb(pid_t pid) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("VmRSS:", 0) == 0) return atol(line.c_str() + 6);
  return -1;
}

struct ServerRun {
  double started = -1, greeted = -1, indexed = -1;
  long rss_kb = -1;
  std::string index_line = "no index line";
};

// Starts BUILD/server/uvsmtpd with queue/outbound on QUEUE and the delivery engine on, every
// route to a closed port (nothing is due, so nothing is tried); waits for "started", a 220 and
// the engine's "delivery: N entries to deliver" line, reads the RSS half a second later, stops it.
ServerRun run_server(const std::string &build, const std::string &dir, const std::string &name,
                     const std::string &queue) {
  std::string conf = dir + "/conf-" + name, log = dir + "/server-" + name + ".log";
  std::filesystem::create_directories(conf);
  std::filesystem::create_directories(dir + "/spool-" + name);
  int port = free_port(), closed = free_port();
  write_file(conf + "/uvsmtpd.toml",
             "hostname = \"bench.test\"\nspool_dir = \"" + dir + "/spool-" + name +
                 "\"\n[dns]\nreverse_lookup = false\n[log]\nlevel = \"info\"\n"
                 "[delivery]\nenabled = true\nstarttls = \"none\"\nrescan_interval = 3600\n"
                 "[[delivery.route]]\ndomain = \"*\"\nto = \"smtp:[127.0.0.1]:" +
                 std::to_string(closed) + "\"\n",
             0);
  write_file(conf + "/plugins", "queue/outbound " + queue + "\n", 0);
  ServerRun r;
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::string bin = build + "/server/uvsmtpd", plugins = build + "/plugins";
    std::string listen = "127.0.0.1:" + std::to_string(port);
    execl(bin.c_str(), bin.c_str(), "--config", conf.c_str(), "--plugin-dir", plugins.c_str(),
          "--listen", listen.c_str(), static_cast<char *>(nullptr));
    _exit(127);
  }
  std::string text;
  while (secs(t0, Clock::now()) < 60 && (r.started < 0 || r.greeted < 0 || r.indexed < 0)) {
    if (r.greeted < 0 && greeted(port)) r.greeted = secs(t0, Clock::now());
    std::ifstream f(log);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (r.started < 0 && text.find(" started (pid") != std::string::npos)
      r.started = secs(t0, Clock::now());
    size_t at = text.find("delivery: ");
    while (at != std::string::npos && text.find(" to deliver", at) > text.find('\n', at))
      at = text.find("delivery: ", at + 1);
    if (r.indexed < 0 && at != std::string::npos) {
      r.indexed = secs(t0, Clock::now());
      r.index_line = text.substr(at, text.find('\n', at) - at);
    }
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      fprintf(stderr, "queuescan: uvsmtpd exited; its log:\n%s", text.c_str());
      exit(2);
    }
    usleep(1000);
  }
  usleep(500000);  // the index is built; let the loop settle before reading the RSS
  r.rss_kb = proc_rss_kb(pid);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return r;
}

}  // namespace

int main(int argc, char **argv) {
  unsigned entries = 100000;
  std::string dir, server_build;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--entries" && i + 1 < argc)
      entries = static_cast<unsigned>(atol(argv[++i]));
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--server" && i + 1 < argc)
      server_build = argv[++i];
    else if (a == "--json")
      json = true;
    else {
      fprintf(stderr, "usage: queuescan [--entries N] [--dir DIR] [--server BUILD_DIR] [--json]\n");
      return 2;
    }
  }
  bool own_dir = dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/uvsmtpd-queuescan.XXXXXX";
    if (!mkdtemp(tmpl)) return 2;
    dir = tmpl;
  }
  std::string queue = dir + "/queue", err;
  int rc = 0;
  {
    uvs::queue::QueueDir q(queue);
    if (!q.open(true, err)) {
      fprintf(stderr, "queuescan: %s\n", err.c_str());
      return 2;
    }
    // Synthetic deferred entries: a 2 KiB message, an envelope with 2 recipients after 3
    // attempts, next try spread over the coming hours (written without fsync: setup only).
    auto t0 = Clock::now();
    std::string msg =
        "Received: from x\r\nSubject: bench\r\n\r\n" + std::string(2000, 'x') + "\r\n";
    int64_t now = time(nullptr);
    for (unsigned n = 0; n < entries; ++n) {
      uvs::queue::Envelope e;
      e.id = make_id(n);
      e.arrival = now - 3600;
      e.size = static_cast<int64_t>(msg.size());
      e.sender = "sender" + std::to_string(n) + "@example.org";
      e.client_ip = "192.0.2.1";
      e.helo = "client.example.org";
      e.protocol = "ESMTP";
      e.attempts = 3;
      e.next_try = now + 600 + (n % 7200);  // none due during the run
      e.last_error = "451 4.4.1 mx.example.net: Connection timed out";
      e.rcpts.resize(2);
      e.rcpts[0].address = "alice" + std::to_string(n) + "@example.net";
      e.rcpts[1].address = "bob" + std::to_string(n) + "@example.com";
      std::string b = q.bucket_dir(e.id);
      mkdir(b.c_str(), 0700);
      write_file(q.msg_path(e.id), msg, 0);
      write_file(q.env_path(e.id, n % 100 == 0), uvs::queue::serialize(e), e.next_try);
    }
    printf("filled %u entries in %.1f s (%s)\n", entries, secs(t0, Clock::now()), queue.c_str());
  }
  // The scan as the plugin's startup runs it: open, lock, scan with cleaning.
  long rss0 = status_kb("VmRSS:"), hwm0 = status_kb("VmHWM:");
  for (int round = 0; round < 3; ++round) {
    uvs::queue::QueueDir q(queue);
    auto t0 = Clock::now();
    if (!q.open(false, err) || !q.try_lock_exclusive()) {
      fprintf(stderr, "queuescan: %s\n", err.empty() ? "lock busy" : err.c_str());
      return 2;
    }
    uvs::queue::ScanResult r = q.scan(true);
    double t = secs(t0, Clock::now());
    long rss1 = status_kb("VmRSS:"), hwm1 = status_kb("VmHWM:");
    size_t index_bytes = r.entries.capacity() * sizeof(uvs::queue::IndexEntry);
    double per = r.entries.empty() ? 0 : static_cast<double>(index_bytes) / r.entries.size();
    printf(
        "scan %d: %zu entries (%zu waiting, %zu held) in %.3f s; index %zu bytes = %.1f "
        "bytes/entry (sizeof %zu); RSS +%ld KiB, peak RSS +%ld KiB during the scan\n",
        round + 1, r.entries.size(), r.waiting, r.held, t, index_bytes, per,
        sizeof(uvs::queue::IndexEntry), rss1 - rss0, hwm1 - hwm0);
    if (r.entries.size() != entries) rc = 1;
    if (t >= 2.0 || per > 1024) rc = 1;
  }
  // uvsmtpd itself, with the delivery engine on (every route to a closed port, nothing due):
  // first on an empty queue, then on the full one. Times from exec to the "started" line, to
  // the first 220 and to the engine's index line; RSS once the index is built.
  if (!server_build.empty()) {
    std::string empty = dir + "/empty-queue";
    {
      uvs::queue::QueueDir e(empty);
      if (!e.open(true, err)) {
        fprintf(stderr, "queuescan: %s\n", err.c_str());
        return 2;
      }
    }
    ServerRun base = run_server(server_build, dir, "empty", empty);
    ServerRun full = run_server(server_build, dir, "full", queue);
    for (const ServerRun *r : {&base, &full})
      printf(
          "uvsmtpd (%s queue): \"started\" after %.3f s, first 220 after %.3f s, index built "
          "after %.3f s (%s); RSS %ld KiB\n",
          r == &base ? "empty" : "full", r->started, r->greeted, r->indexed, r->index_line.c_str(),
          r->rss_kb);
    double per = full.rss_kb < 0 || base.rss_kb < 0
                     ? -1
                     : static_cast<double>(full.rss_kb - base.rss_kb) * 1024.0 / entries;
    printf("RSS per deferred entry: (%ld - %ld KiB) / %u = %.1f bytes\n", full.rss_kb, base.rss_kb,
           entries, per);
    bool ok = full.started >= 0 && full.started < 2.0 && full.greeted >= 0 && full.greeted < 2.0 &&
              full.indexed >= 0 && per >= 0 && per <= 1024;
    if (!ok) rc = 1;
    if (json)
      printf(
          "{\"entries\": %u, \"started_s\": %.3f, \"first_220_s\": %.3f, \"indexed_s\": %.3f, "
          "\"rss_empty_kib\": %ld, \"rss_full_kib\": %ld, \"rss_per_entry_bytes\": %.1f, "
          "\"empty_started_s\": %.3f, \"empty_first_220_s\": %.3f, \"ok\": %s}\n",
          entries, full.started, full.greeted, full.indexed, base.rss_kb, full.rss_kb, per,
          base.started, base.greeted, ok ? "true" : "false");
  }
  if (own_dir && !getenv("UVS_KEEP_TEST_DIRS")) std::filesystem::remove_all(dir);
  printf("%s\n", rc == 0 ? "targets met (scan, start and first 220 < 2 s; <= 1 KiB per entry)"
                         : "TARGET MISSED");
  return rc;
}
