// tests/integration/harness.hpp: drives the real uvsmtpd binary: a throw-away config directory,
// the server process on 127.0.0.1 port 0, and a raw-socket SMTP client with timeouts.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace itest {

std::string build_root();  // from UVS_BUILD_ROOT (set by meson test)
std::string source_root(); // from UVS_SOURCE_ROOT
double now();              // monotonic seconds

struct Options {
  std::string toml;                           // appended to the base uvsmtpd.toml
  std::string plugins;                        // conf/plugins
  std::map<std::string, std::string> files;   // more files in the config dir
  std::vector<std::string> args;              // more command-line arguments
  std::string log_level = "debug";
  std::string log_keys;  // more keys of the [log] table, e.g. "format = \"json\"\n"
  // false: the listeners come from `toml` ([[listen]] tables) instead of --listen 127.0.0.1:0;
  // their ports are then Server::ports(), in the order of the tables.
  bool cli_listen = true;
};

class Server {
 public:
  explicit Server(const Options &opt = {});
  ~Server();
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  bool started() const { return port_ > 0; }
  int port() const { return port_; }
  // Every "listening on 127.0.0.1:PORT" port in the log, in logged order (the order of the
  // [[listen]] tables); waits up to `timeout` for `want` of them.
  std::vector<int> ports(size_t want = 1, double timeout = 2) const;
  pid_t pid() const { return pid_; }
  const std::string &dir() const { return dir_; }
  std::string conf_dir() const { return dir_ + "/conf"; }
  std::string log() const;
  // Waits until the log contains `needle` (count times); false on timeout.
  bool wait_log(std::string_view needle, double timeout = 5, int count = 1) const;
  int count_log(std::string_view needle) const;
  void signal(int sig) const;
  // Replaces `from` by `to` in the running server's uvsmtpd.toml, sends SIGHUP and waits for the
  // reload; false (with nothing sent) if `from` is not there, or if the reload is not logged.
  bool reload_toml(const std::string &from, const std::string &to) const;
  // Exit status (WEXITSTATUS) or -1 on timeout / killed by a signal.
  int wait_exit(double timeout = 10);
  bool running();
  long rss_kb() const;

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool reaped_ = false;
  int exit_status_ = -1;
};

// The shipped configuration (conf/plugins and the list files of conf/; the harness writes its own
// uvsmtpd.toml) with queue/maildir delivering under `maildir_root` and earlytalker waiting 0.2 s
// (the shipped second per connection would only cost time), log level info.
Options shipped_options(const std::string &maildir_root);

// Writes a config dir for opt under a fresh temp dir and returns that dir (the conf is in
// <dir>/conf, the plugin tree in <dir>/plugins, the spool in <dir>/spool).
std::string make_tree(const Options &opt);
void remove_tree(const std::string &dir);

struct RunResult {
  int status = -1;
  std::string output;  // stdout and stderr
};
// In a forked child: stdout and stderr to out_fd, then exec the build's uvsmtpd with args.
[[noreturn]] void exec_uvsmtpd(int out_fd, const std::vector<std::string> &args);
// Runs uvsmtpd with args to completion (for --check-config, --version, bad startups).
RunResult run_uvsmtpd(const std::vector<std::string> &args, double timeout = 10);
// Runs a shell command to completion: its exit status (-1 if it did not exit) and its stdout and
// stderr together.
RunResult sh(const std::string &cmd);

// ---- sockets ----
// A TCP socket connected to 127.0.0.1:port with TCP_NODELAY (blocking); -1 with errno set.
int connect_loopback(int port);
// The same to another IPv4 address ("127.0.0.2": a fake MX, tests/integration/fake_mx.hpp).
int connect_ipv4(const std::string &ip, int port);
// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed); type is
// SOCK_STREAM or SOCK_DGRAM. 0 on failure.
int free_port(int type);
// In a forked child: stdout and stderr to out_fd (closed after), then exec argv (PATH lookup).
[[noreturn]] void exec_program(int out_fd, const std::vector<std::string> &argv);

// The SMTP side of a test client, shared by the plain Client and the TLS client: the read
// buffer, reply parsing and the read helpers, over a transport that supplies send() and fill().
class SmtpClient {
 public:
  SmtpClient() = default;
  virtual ~SmtpClient();
  SmtpClient(const SmtpClient &) = delete;
  SmtpClient &operator=(const SmtpClient &) = delete;

  bool connected() const { return fd_ >= 0; }
  virtual void send(std::string_view bytes) = 0;
  void line(std::string_view text) { send(std::string(text) + "\r\n"); }
  // One complete reply, lines joined by '\n' without CRLF; "" on timeout or EOF.
  std::string reply(double timeout = 5);
  int code(double timeout = 5);  // the code of the next reply, -1 if none
  std::string cmd(std::string_view text, double timeout = 5) {
    line(text);
    return reply(timeout);
  }
  // True if the server closed the connection (EOF or reset) within timeout; data read on the
  // way is kept in `drained`.
  bool closed(double timeout = 3);
  // Whatever arrives within timeout.
  std::string read_some(double timeout);
  // Everything up to and including `needle` (or all that came before timeout/EOF).
  std::string read_until(std::string_view needle, double timeout = 5);
  void shutdown_write();  // TCP half-close
  std::string drained;
  bool last_crlf_ok = true;  // every line of every reply so far ended in CRLF

 protected:
  // One read from the transport appended to buf_; false on timeout, EOF (eof_ set) or error.
  virtual bool fill(double deadline) = 0;
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

// The plain-socket client (blocking socket, reads bounded by poll()).
class Client : public SmtpClient {
 public:
  explicit Client(int port);
  Client(const std::string &ip, int port);  // to ip:port (IPv4) instead of 127.0.0.1
  void send(std::string_view bytes) override;
  double connected_at() const { return t0_; }

 private:
  bool fill(double deadline) override;
  double t0_ = 0;
};

// Sends a whole polite transaction; returns the final reply to the end of data.
std::string send_message(SmtpClient &c, const std::string &from,
                         const std::vector<std::string> &rcpts, const std::string &body);

// ---- files and messages (shared by the integration, hostile and faults suites) ----
std::string slurp(const std::string &path);                   // whole file; "" if unreadable
void spit(const std::string &path, const std::string &data);  // creates parent directories
// RFC 5321 4.5.2 transparency: what a client puts on the wire for stored bytes (no final ".").
std::string dot_stuff(const std::string &m);
// Splits the trace fields (a Maildir copy's Return-Path: and Delivered-To:, then the first
// Received: with its folded lines) off a stored message.
bool split_received(const std::string &stored, std::string &hdr, std::string &rest);

}  // namespace itest
