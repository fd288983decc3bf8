// bench/queuescan.cpp: the outbound queue's startup scan at scale (docs/queue.md, "Scale"):
// fills a queue directory with N synthetic deferred entries (default 100,000), then times
// QueueDir::scan() and measures the memory of its index; with --server, also the time from
// starting uvsmtpd with queue/outbound on that queue to its "started" line.
//
//   build/bench/queuescan [--entries N] [--dir DIR] [--server BUILD_DIR]
//
// Exit status 1 when a target is missed: scan (or server start) >= 2 s, index > 1 KiB/entry.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <string>
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

}  // namespace

int main(int argc, char **argv) {
  unsigned entries = 100000;
  std::string dir, server_build;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--entries" && i + 1 < argc)
      entries = static_cast<unsigned>(atol(argv[++i]));
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--server" && i + 1 < argc)
      server_build = argv[++i];
    else {
      fprintf(stderr, "usage: queuescan [--entries N] [--dir DIR] [--server BUILD_DIR]\n");
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
      e.next_try = now + (n % 7200);
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
  // uvsmtpd itself: from exec to its "started" line, the startup scan included.
  if (!server_build.empty()) {
    std::string conf = dir + "/conf", log = dir + "/server.log";
    std::filesystem::create_directories(conf);
    std::filesystem::create_directories(dir + "/spool");
    write_file(conf + "/uvsmtpd.toml",
               "hostname = \"bench.test\"\nspool_dir = \"" + dir +
                   "/spool\"\n[delivery]\nenabled = false\n[dns]\n"  // the start only, no delivery
                   "reverse_lookup = false\n[log]\nlevel = \"info\"\n",
               0);
    write_file(conf + "/plugins", "queue/outbound " + queue + "\n", 0);
    auto t0 = Clock::now();
    pid_t pid = fork();
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::string bin = server_build + "/server/uvsmtpd", plugins = server_build + "/plugins";
      execl(bin.c_str(), bin.c_str(), "--config", conf.c_str(), "--plugin-dir", plugins.c_str(),
            "--listen", "127.0.0.1:0", static_cast<char *>(nullptr));
      _exit(127);
    }
    double t = -1;
    std::string text;
    while (secs(t0, Clock::now()) < 30) {
      std::ifstream f(log);
      text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      if (text.find(" started (pid") != std::string::npos) {
        t = secs(t0, Clock::now());
        break;
      }
      usleep(1000);
    }
    long server_rss = -1;
    std::ifstream st("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(st, line))
      if (line.rfind("VmRSS:", 0) == 0) server_rss = atol(line.c_str() + 6);
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    size_t at = text.find("queue " + queue);
    printf("uvsmtpd start to \"started\": %.3f s; RSS %ld KiB; %s\n", t, server_rss,
           at == std::string::npos ? "(no scan line)"
                                   : text.substr(at, text.find('\n', at) - at).c_str());
    if (t < 0 || t >= 2.0) rc = 1;
  }
  if (own_dir && !getenv("UVS_KEEP_TEST_DIRS")) std::filesystem::remove_all(dir);
  printf("%s\n", rc == 0 ? "targets met (scan < 2 s, index <= 1 KiB per entry)" : "TARGET MISSED");
  return rc;
}
