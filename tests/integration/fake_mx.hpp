// tests/integration/fake_mx.hpp: a scriptable SMTP/LMTP server for the delivery engine's tests:
// the destination an outbound delivery connects to. It listens on a chosen loopback address
// (127.0.0.2 .. 127.0.0.9 work on Linux without configuration: all of 127/8 is the loopback
// interface) and port (0 = any free one), answers every connection from a script (greeting,
// EHLO keywords, STARTTLS with a test certificate, replies per RCPT address pattern, the reply
// to DATA and after the data, points at which it drops the connection or stops answering),
// counts connections (total, current, the most at once), and records every command and every
// message it received (envelope and bytes). One accept thread, one thread per connection, all
// stopped and joined by the destructor.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace itest {

// Where a script drops the connection or stops answering: when this command arrives (before
// its reply), `connect` right after the accept (before the greeting), `dot` once the data's
// final "." arrived (before the reply to it).
enum class MxStep { never, connect, ehlo, starttls, mail, rcpt, data, dot, rset, quit };

struct MxScript {
  bool lmtp = false;        // LHLO instead of EHLO/HELO; after the data one reply per recipient
  int greeting_code = 220;  // 4xx/5xx: that greeting, then 503 to everything but QUIT
  std::string greeting_text = "fake.mx.test ESMTP fake MX";
  std::string ehlo_name = "fake.mx.test";
  std::vector<std::string> ehlo_keywords = {"PIPELINING", "SIZE 10485760", "8BITMIME",
                                            "ENHANCEDSTATUSCODES", "SMTPUTF8"};
  std::string ehlo_reply;  // non-empty: the whole reply to EHLO/LHLO (e.g. "502 5.5.2 no")
  // STARTTLS offered (and the handshake done) when cert and key (PEM paths) are given.
  std::string tls_cert, tls_key;
  bool starttls_fails = false;  // answer STARTTLS "454 4.7.0 TLS not available"
  std::string mail_reply = "250 2.1.0 Ok";
  // RCPT: the first pattern ('*' matches any run, case-insensitive) that matches the address
  // (without <>) gives the reply; else rcpt_default.
  std::vector<std::pair<std::string, std::string>> rcpt_replies;
  std::string rcpt_default = "250 2.1.5 Ok";
  std::string data_reply = "354 End data with <CR><LF>.<CR><LF>";
  std::string dot_reply = "250 2.0.0 Ok: queued";  // after the data
  // LMTP: the final reply per accepted recipient (patterns as above); else dot_reply.
  std::vector<std::pair<std::string, std::string>> lmtp_replies;
  MxStep drop_at = MxStep::never;  // close the connection at this point, without a reply
  MxStep hang_at = MxStep::never;  // stop answering at this point (keep reading until closed)
  double reply_delay = 0;          // seconds before every reply
};

struct MxMessage {
  int connection = 0;              // 1 for the first connection the server accepted
  bool tls = false;                // received over STARTTLS
  std::string helo;                // the EHLO/HELO/LHLO argument
  std::string mail;                // the MAIL command's argument as sent ("FROM:<a@b> SIZE=9")
  std::string from;                // the reverse path without <>
  std::vector<std::string> rcpts;  // the recipients it accepted (2xx), without <>
  std::string data;                // the message as stored: dot-unstuffed, without the "."
  std::string reply;               // the reply to the data (LMTP: the replies, '\n'-joined)
  bool accepted = false;           // some recipient got a 2xx reply to the data
};

class FakeMx {
 public:
  // Listens on ip:port (port 0: a free one; see port()).
  explicit FakeMx(const std::string &ip = "127.0.0.2", int port = 0, MxScript script = {});
  ~FakeMx();
  FakeMx(const FakeMx &) = delete;
  FakeMx &operator=(const FakeMx &) = delete;

  bool started() const { return port_ > 0; }
  const std::string &error() const { return error_; }  // why it did not start
  const std::string &ip() const { return ip_; }
  int port() const { return port_; }
  std::string address() const { return ip_ + ":" + std::to_string(port_); }

  // The script for connections accepted from now on ...
  void set_script(const MxScript &s);
  // ... or for the n-th connection (1-based) only, taking precedence.
  void set_script_for(int n, const MxScript &s);

  int connections() const { return total_.load(); }  // accepted so far
  int current() const { return current_.load(); }    // open now
  int max_concurrent() const { return max_concurrent_.load(); }
  std::vector<MxMessage> messages() const;  // in the order received
  // Every command line received, "<connection> <line>" ("2 RCPT TO:<a@b>"), data excluded.
  std::vector<std::string> commands() const;
  // Wait until that many messages (or connections) have arrived; false on timeout.
  bool wait_messages(size_t n, double timeout = 10) const;
  bool wait_connections(int n, double timeout = 10) const;
  // Wait until no connection is open; false on timeout.
  bool wait_idle(double timeout = 10) const;

 private:
  struct Conn;
  void accept_loop();
  void serve(int fd, int n);
  void run_script(Conn &c, const MxScript &s);
  void note_command(int n, const std::string &line);
  void add_message(MxMessage m);

  std::string ip_;
  int port_ = 0;
  int fd_ = -1;
  int wake_[2] = {-1, -1};
  std::string error_;
  std::atomic<bool> stop_{false};
  std::atomic<int> total_{0}, current_{0}, max_concurrent_{0};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  MxScript script_;
  std::map<int, MxScript> per_conn_;
  std::vector<std::thread> threads_;
  std::map<int, int> open_fds_;  // connection number -> fd, for the destructor's shutdown()
  std::vector<MxMessage> messages_;
  std::vector<std::string> commands_;
};

// Fake MXs on several addresses sharing one port (the delivery engine connects to every MX on
// the same port, its test-only `smtp_port`): the first on a free port, the others on the same
// one; a port taken on one of the addresses is given up and another tried. Empty if no port
// worked in `tries` attempts.
std::vector<std::unique_ptr<FakeMx>> start_fake_mxs(const std::vector<std::string> &ips,
                                                    const MxScript &script = {}, int tries = 20);

// True if `pattern` ('*' = any run of characters, case-insensitive) matches all of `s`.
bool mx_glob(const std::string &pattern, const std::string &s);

}  // namespace itest
