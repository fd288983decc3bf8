// tests/hostile/hostile.hpp: shared helpers (Maildir store, RST sockets, liveness, RSS sampler).
#pragma once
#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace hostile {

using itest::Client;
using itest::now;
using itest::Options;
using itest::Server;

// A Maildir root for queue/maildir in a private temp dir (removed at destruction).
struct MailStore {
  std::string root;
  MailStore();
  ~MailStore();
  MailStore(const MailStore &) = delete;
  MailStore &operator=(const MailStore &) = delete;
  // "queue/maildir <root>\n" for conf/plugins.
  std::string plugin_line() const { return "queue/maildir " + root + "\n"; }
  // Delivered files (in some */new/), relative to root, sorted.
  std::vector<std::string> delivered() const;
  size_t count() const { return delivered().size(); }
  // Delivered files of one mailbox ("example.test/u").
  std::vector<std::string> mailbox(const std::string &rel) const;
  // Contents of every delivered message, in the order of delivered().
  std::vector<std::string> messages() const;
  // Files left in any tmp/ (must be none after a delivery finished).
  size_t tmp_leftovers() const;
};

using itest::slurp;
// Regular files directly in dir (none if it does not exist).
size_t files_in(const std::string &dir);

// Reads the banner and sends EHLO (or HELO); returns the EHLO reply.
std::string greet(Client &c, const char *verb = "EHLO");
// MAIL FROM and each RCPT, one at a time; true when every reply was 250.
bool envelope(Client &c, const std::string &from, const std::vector<std::string> &rcpts);
// A polite client completes greeting, EHLO, NOOP and QUIT on the server within `budget`
// seconds. With `from`/`rcpt` set it also sends one small message and needs a 250 for it.
bool alive(Server &s, double budget = 5, const std::string &rcpt = "");
// alive(), retried for up to `within` seconds (slots of closed sessions are freed asynchronously).
bool alive_soon(Server &s, double within = 3, const std::string &rcpt = "");
// Seconds a polite EHLO/NOOP/QUIT round takes (large value on failure).
double probe_latency(Server &s, double budget = 5);

// True when the server process has AddressSanitizer loaded (RSS limits are relaxed then).
bool sanitized(const Server &s);
// An RSS growth limit in KiB: `kb` normally; under ASan (debug build, shadow memory, a 16 MiB
// quarantine) 4 * kb + 48 MiB.
long rss_limit_kb(const Server &s, long kb);
// A latency limit in seconds: `secs` normally, 5 * secs under ASan (a debug build).
double time_limit(const Server &s, double secs);

// Samples the server's RSS every few milliseconds in a thread and keeps the peak.
class RssSampler {
 public:
  explicit RssSampler(const Server &s);
  ~RssSampler();
  long peak_kb() const { return peak_.load(); }
  void stop();

 private:
  const Server &s_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0};
  std::thread t_;
};

// A raw TCP client for what itest::Client cannot do: reset the connection (RST), send without
// reading from another thread, read counts of reply lines.
class Raw {
 public:
  explicit Raw(int port);
  ~Raw();
  Raw(const Raw &) = delete;
  Raw &operator=(const Raw &) = delete;
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Sends all bytes (blocking); false if the connection failed.
  bool send(std::string_view bytes);
  // Closes with SO_LINGER 0: the peer gets a RST.
  void reset();
  void shutdown_write();
  // Reads until `lines` CRLF-terminated lines arrived, EOF, or timeout; returns what was read.
  std::string read_lines(size_t lines, double timeout);
  // Reads until EOF or timeout; true on EOF (data in `got`).
  bool read_to_eof(double timeout, std::string &got);
  // One complete reply (multi-line joined by '\n', without CRLF); "" on timeout or EOF.
  std::string reply(double timeout = 5);
  std::string cmd(std::string_view line, double timeout = 5);
  // Waits until the first line arrives (the banner) and returns it without CRLF.
  std::string first_line(double timeout = 5);

 private:
  int fd_ = -1;
  std::string buf_;
};

// SIGTERM, then the exit status must be 0 (under ASan this includes LeakSanitizer's verdict).
bool clean_exit(Server &s, double timeout = 15);

// Counts occurrences of `needle` in `hay`.
size_t count(std::string_view hay, std::string_view needle);
// Splits "a\nb\nc" reply text into lines.
std::vector<std::string> lines(const std::string &text);

}  // namespace hostile
