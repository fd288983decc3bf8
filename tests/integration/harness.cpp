// tests/integration/harness.cpp: process control, temp trees and the raw SMTP client.
#include "harness.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <regex>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace itest {

std::string build_root() {
  const char *e = getenv("UVS_BUILD_ROOT");
  return e ? e : "build";
}
std::string source_root() {
  const char *e = getenv("UVS_SOURCE_ROOT");
  return e ? e : ".";
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void spit(const std::string &path, const std::string &data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string dot_stuff(const std::string &m) {
  std::string out;
  out.reserve(m.size() + m.size() / 40);
  bool bol = true;
  for (char ch : m) {
    if (bol && ch == '.') out += '.';
    out += ch;
    bol = ch == '\n';
  }
  return out;
}

bool split_received(const std::string &m, std::string &hdr, std::string &rest) {
  // A Maildir copy starts with the delivery's Return-Path: and Delivered-To: lines.
  size_t pos = 0;
  for (const char *trace : {"Return-Path: ", "Delivered-To: "})
    if (m.compare(pos, strlen(trace), trace) == 0) pos = m.find("\r\n", pos) + 2;
  if (m.compare(pos, 10, "Received: ") != 0) return false;
  for (;;) {
    size_t e = m.find("\r\n", pos);
    if (e == std::string::npos) return false;
    pos = e + 2;
    if (pos < m.size() && (m[pos] == ' ' || m[pos] == '\t')) continue;
    break;
  }
  hdr = m.substr(0, pos);
  rest = m.substr(pos);
  return true;
}

static void link_plugins(const fs::path &from, const fs::path &to) {
  std::error_code ec;
  if (!fs::exists(from, ec)) return;
  for (auto it = fs::recursive_directory_iterator(from, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    const fs::path &p = it->path();
    if (p.extension() != ".so" || !it->is_regular_file()) continue;
    if (p.string().find(".so.p") != std::string::npos) continue;
    fs::path rel = fs::relative(p, from);
    fs::create_directories((to / rel).parent_path());
    fs::create_symlink(fs::absolute(p), to / rel, ec);
  }
}

Options shipped_options(const std::string &maildir_root) {
  Options o;
  o.log_level = "info";
  std::string conf = source_root() + "/conf";
  for (const auto &e : fs::directory_iterator(conf)) {
    std::string name = e.path().filename().string();
    // list files only: not the settings, the unit template or the build file
    if (!e.is_regular_file() || name == "plugins" || name.find('.') != std::string::npos) continue;
    o.files[name] = slurp(e.path().string());
  }
  std::string plugins = slurp(conf + "/plugins");
  plugins = std::regex_replace(plugins, std::regex("^queue/maildir[^\n]*", std::regex::multiline),
                               "queue/maildir " + maildir_root);
  o.plugins = std::regex_replace(plugins, std::regex("^earlytalker[^\n]*", std::regex::multiline),
                                 "earlytalker wait 0.2");
  return o;
}

std::string make_tree(const Options &opt) {
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  fs::create_directories(dir + "/spool");
  fs::create_directories(dir + "/plugins");
  link_plugins(build_root() + "/plugins", dir + "/plugins");
  link_plugins(build_root() + "/tests/plugins", dir + "/plugins");
  std::string toml = "hostname = \"mx.test.invalid\"\nspool_dir = \"" + dir + "/spool\"\n" +
                     opt.toml + "\n[log]\nlevel = \"" + opt.log_level + "\"\n" + opt.log_keys;
  // Tests send nothing off the machine: no DNS unless the test points [dns] at its own stub.
  if (opt.toml.find("[dns]") == std::string::npos) toml += "[dns]\nreverse_lookup = false\n";
  spit(dir + "/conf/uvsmtpd.toml", toml);
  spit(dir + "/conf/plugins", opt.plugins);
  for (const auto &[name, text] : opt.files) spit(dir + "/conf/" + name, text);
  return dir;
}

void remove_tree(const std::string &dir) {
  std::error_code ec;
  if (!dir.empty() && dir.rfind("/tmp/uvsmtpd-test.", 0) == 0) fs::remove_all(dir, ec);
}

static std::string binary() { return build_root() + "/server/uvsmtpd"; }

void exec_program(int out_fd, const std::vector<std::string> &args) {
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  if (out_fd > 2) close(out_fd);
  std::vector<char *> argv;
  for (auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  _exit(127);
}

void exec_uvsmtpd(int out_fd, const std::vector<std::string> &args) {
  std::vector<std::string> full = {binary()};
  full.insert(full.end(), args.begin(), args.end());
  exec_program(out_fd, full);
}

Server::Server(const Options &opt) {
  dir_ = make_tree(opt);
  std::vector<std::string> args = {"--config", dir_ + "/conf", "--plugin-dir", dir_ + "/plugins"};
  if (opt.cli_listen) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  args.insert(args.end(), opt.args.begin(), opt.args.end());
  std::string logpath = dir_ + "/log";
  pid_ = fork();
  if (pid_ == 0) exec_uvsmtpd(open(logpath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), args);
  double deadline = now() + 15;
  while (now() < deadline) {
    std::string l = log();
    auto pos = l.find("listening on 127.0.0.1:");  // logged once the plugins are loaded
    if (pos != std::string::npos) {
      port_ = atoi(l.c_str() + pos + strlen("listening on 127.0.0.1:"));
      break;
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    usleep(5000);
  }
}

Server::~Server() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (!getenv("UVS_KEEP_TEST_DIRS")) remove_tree(dir_);
}

std::string Server::log() const { return slurp(dir_ + "/log"); }

std::vector<int> Server::ports(size_t want, double timeout) const {
  static const std::string kMark = "listening on 127.0.0.1:";
  std::vector<int> out;
  double deadline = now() + timeout;
  do {
    out.clear();
    std::string l = log();
    for (size_t pos = l.find(kMark); pos != std::string::npos; pos = l.find(kMark, pos + 1))
      out.push_back(atoi(l.c_str() + pos + kMark.size()));
    if (out.size() >= want || reaped_) break;
    usleep(5000);
  } while (now() < deadline);
  return out;
}

int Server::count_log(std::string_view needle) const {
  std::string l = log();
  int n = 0;
  for (size_t pos = l.find(needle); pos != std::string::npos; pos = l.find(needle, pos + 1)) ++n;
  return n;
}

bool Server::wait_log(std::string_view needle, double timeout, int count) const {
  double deadline = now() + timeout;
  do {
    if (count_log(needle) >= count) return true;
    usleep(5000);
  } while (now() < deadline);
  return false;
}

void Server::signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

int Server::wait_exit(double timeout) {
  if (reaped_) return exit_status_;
  double deadline = now() + timeout;
  while (now() < deadline) {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return exit_status_;
    }
    usleep(5000);
  }
  return -1;
}

bool Server::running() {
  if (reaped_) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

long Server::rss_kb() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return atol(line.c_str() + 6);
  return -1;
}

bool Server::reload_toml(const std::string &from, const std::string &to) const {
  std::string path = conf_dir() + "/uvsmtpd.toml";
  std::string toml = slurp(path);
  size_t at = toml.find(from);
  if (at == std::string::npos) return false;
  toml.replace(at, from.size(), to);
  spit(path, toml);
  int before = count_log("configuration and plugins reloaded");
  signal(SIGHUP);
  return wait_log("configuration and plugins reloaded", 5, before + 1);
}

RunResult sh(const std::string &cmd) {
  RunResult r;
  FILE *p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

RunResult run_uvsmtpd(const std::vector<std::string> &args, double timeout) {
  RunResult res;
  int pipefd[2];
  if (pipe(pipefd) != 0) return res;
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    exec_uvsmtpd(pipefd[1], args);
  }
  close(pipefd[1]);
  double deadline = now() + timeout;
  char buf[4096];
  for (;;) {
    pollfd p{pipefd[0], POLLIN, 0};
    int left = static_cast<int>((deadline - now()) * 1000);
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    res.output.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  res.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return res;
}

int connect_loopback(int port) { return connect_ipv4("127.0.0.1", port); }

int connect_ipv4(const std::string &ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int free_port(int type) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// ---- SmtpClient: reply parsing over the transport's fill() ----

SmtpClient::~SmtpClient() {
  if (fd_ >= 0) close(fd_);
}

void SmtpClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

std::string SmtpClient::reply(double timeout) {
  double deadline = now() + timeout;
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t nl = buf_.find('\n', pos);
    if (nl == std::string::npos) {
      if (!fill(deadline)) return "";
      continue;
    }
    std::string line = buf_.substr(pos, nl - pos);
    if (line.empty() || line.back() != '\r') last_crlf_ok = false;
    else line.pop_back();
    pos = nl + 1;
    if (!out.empty()) out += '\n';
    out += line;
    if (line.size() < 4 || line[3] != '-') {
      buf_.erase(0, pos);
      return out;
    }
  }
}

int SmtpClient::code(double timeout) {
  std::string r = reply(timeout);
  return r.size() >= 3 ? atoi(r.substr(0, 3).c_str()) : -1;
}

bool SmtpClient::closed(double timeout) {
  double deadline = now() + timeout;
  drained += buf_;
  buf_.clear();
  while (!eof_) {
    if (now() >= deadline) return false;
    if (fill(deadline)) {
      drained += buf_;
      buf_.clear();
    }
  }
  return true;
}

std::string SmtpClient::read_some(double timeout) {
  double deadline = now() + timeout;
  while (fill(deadline)) {
  }
  std::string out;
  out.swap(buf_);
  return out;
}

std::string SmtpClient::read_until(std::string_view needle, double timeout) {
  double deadline = now() + timeout;
  size_t at;
  while ((at = buf_.find(needle)) == std::string::npos)
    if (!fill(deadline)) break;
  size_t n = at == std::string::npos ? buf_.size() : at + needle.size();
  std::string out = buf_.substr(0, n);
  buf_.erase(0, n);
  return out;
}

// ---- Client: the plain socket ----

Client::Client(int port) {
  t0_ = now();
  fd_ = connect_loopback(port);
}

Client::Client(const std::string &ip, int port) {
  t0_ = now();
  fd_ = connect_ipv4(ip, port);
}

void Client::send(std::string_view bytes) {
  size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

bool Client::fill(double deadline) {
  if (fd_ < 0 || eof_) return false;
  int left = static_cast<int>((deadline - now()) * 1000);
  if (left < 0) left = 0;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, left) <= 0) return false;
  char buf[65536];
  ssize_t n = recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buf_.append(buf, static_cast<size_t>(n));
  return true;
}

std::string send_message(SmtpClient &c, const std::string &from,
                         const std::vector<std::string> &rcpts, const std::string &body) {
  std::string r = c.cmd("MAIL FROM:<" + from + ">");
  if (r.rfind("250", 0) != 0) return r;
  for (const auto &to : rcpts) c.cmd("RCPT TO:<" + to + ">");
  r = c.cmd("DATA");
  if (r.rfind("354", 0) != 0) return r;
  c.send(body + ".\r\n");
  return c.reply(10);
}

}  // namespace itest
