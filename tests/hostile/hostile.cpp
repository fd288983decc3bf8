// tests/hostile/hostile.cpp: the shared helpers of the hostile-input suites (see hostile.hpp).
#include "hostile.hpp"

#include <arpa/inet.h>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace hostile {

MailStore::MailStore() {
  char tmpl[] = "/tmp/uvsmtpd-hostile.XXXXXX";
  if (mkdtemp(tmpl)) root = std::string(tmpl) + "/mail";
}

MailStore::~MailStore() {
  if (root.empty() || getenv("UVS_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  fs::remove_all(fs::path(root).parent_path(), ec);
}

static std::vector<std::string> files_under(const std::string &root, const char *leaf) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(root, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    if (it->path().parent_path().filename() != leaf) continue;
    out.push_back(fs::relative(it->path(), root).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> MailStore::delivered() const {
  return files_under(root, "new");
}

std::vector<std::string> MailStore::mailbox(const std::string &rel) const {
  std::vector<std::string> out;
  for (const auto &f : delivered())
    if (f.rfind(rel + "/new/", 0) == 0) out.push_back(f);
  return out;
}

std::vector<std::string> MailStore::messages() const {
  std::vector<std::string> out;
  for (const auto &f : delivered()) out.push_back(slurp(root + "/" + f));
  return out;
}

size_t MailStore::tmp_leftovers() const {
  return files_under(root, "tmp").size();
}

size_t files_in(const std::string &dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}

std::string greet(Client &c, const char *verb) {
  c.reply();
  return c.cmd(std::string(verb) + " client.example");
}

bool envelope(Client &c, const std::string &from, const std::vector<std::string> &rcpts) {
  bool ok = c.cmd("MAIL FROM:<" + from + ">").rfind("250 ", 0) == 0;
  for (const auto &r : rcpts) ok = c.cmd("RCPT TO:<" + r + ">").rfind("250 ", 0) == 0 && ok;
  return ok;
}

bool alive(Server &s, double budget, const std::string &rcpt) {
  if (!s.running()) return false;
  double deadline = now() + budget;
  Client c(s.port());
  if (!c.connected()) return false;
  auto left = [&] { return std::max(0.05, deadline - now()); };
  if (c.reply(left()).rfind("220 ", 0) != 0) return false;
  c.line("EHLO alive.example");
  if (c.reply(left()).rfind("250", 0) != 0) return false;
  c.line("NOOP");
  if (c.reply(left()) != "250 2.0.0 OK") return false;
  if (!rcpt.empty()) {
    c.line("MAIL FROM:<alive@client.example>");
    if (c.reply(left()).rfind("250 ", 0) != 0) return false;
    c.line("RCPT TO:<" + rcpt + ">");
    if (c.reply(left()).rfind("250 ", 0) != 0) return false;
    c.line("DATA");
    if (c.reply(left()).rfind("354 ", 0) != 0) return false;
    c.send("Subject: alive\r\n\r\nstill here\r\n.\r\n");
    if (c.reply(left()).rfind("250 ", 0) != 0) return false;
  }
  c.line("QUIT");
  if (c.reply(left()).rfind("221 ", 0) != 0) return false;
  return now() <= deadline && s.running();
}

bool alive_soon(Server &s, double within, const std::string &rcpt) {
  double deadline = now() + within;
  do {
    if (alive(s, 5, rcpt)) return true;
    usleep(50000);
  } while (now() < deadline);
  return false;
}

double probe_latency(Server &s, double budget) {
  double t = now();
  if (!alive(s, budget)) return 1e9;
  return now() - t;
}

bool sanitized(const Server &s) {
  std::ifstream in("/proc/" + std::to_string(s.pid()) + "/maps");
  std::string line;
  while (std::getline(in, line))
    if (line.find("libasan") != std::string::npos || line.find("libtsan") != std::string::npos)
      return true;
  return false;
}

long rss_limit_kb(const Server &s, long kb) {
  return sanitized(s) ? kb * 4 + 48 * 1024 : kb;
}

double time_limit(const Server &s, double secs) {
  return sanitized(s) ? secs * 5 : secs;
}

RssSampler::RssSampler(const Server &s) : s_(s) {
  peak_ = s_.rss_kb();
  t_ = std::thread([this] {
    while (!stop_) {
      long r = s_.rss_kb();
      if (r > peak_) peak_ = r;
      usleep(5000);
    }
  });
}

RssSampler::~RssSampler() {
  stop();
}

void RssSampler::stop() {
  stop_ = true;
  if (t_.joinable()) t_.join();
}

Raw::Raw(int port) {
  fd_ = itest::connect_loopback(port);
}

Raw::~Raw() {
  if (fd_ >= 0) close(fd_);
}

bool Raw::send(std::string_view bytes) {
  size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return fd_ >= 0;
}

void Raw::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd_);
  fd_ = -1;
}

void Raw::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

std::string Raw::read_lines(size_t want, double timeout) {
  double deadline = now() + timeout;
  char tmp[65536];
  while (fd_ >= 0 && count(buf_, "\r\n") < want) {
    int left = static_cast<int>((deadline - now()) * 1000);
    if (left <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) break;
    ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    buf_.append(tmp, static_cast<size_t>(n));
  }
  std::string out;
  out.swap(buf_);
  return out;
}

bool Raw::read_to_eof(double timeout, std::string &got) {
  double deadline = now() + timeout;
  char tmp[65536];
  got.swap(buf_);
  buf_.clear();
  while (fd_ >= 0) {
    int left = static_cast<int>((deadline - now()) * 1000);
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) return false;
    ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return true;
    got.append(tmp, static_cast<size_t>(n));
  }
  return false;
}

std::string Raw::reply(double timeout) {
  double deadline = now() + timeout;
  char tmp[65536];
  for (;;) {
    size_t pos = 0;
    for (;;) {
      size_t e = buf_.find("\r\n", pos);
      if (e == std::string::npos) break;
      std::string line = buf_.substr(pos, e - pos);
      pos = e + 2;
      if (line.size() < 4 || line[3] != '-') {
        std::string out = buf_.substr(0, pos - 2);
        buf_.erase(0, pos);
        for (size_t i = out.find("\r\n"); i != std::string::npos; i = out.find("\r\n", i))
          out.replace(i, 2, "\n");
        return out;
      }
    }
    int left = static_cast<int>((deadline - now()) * 1000);
    if (fd_ < 0 || left <= 0) return "";
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) return "";
    ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return "";
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

std::string Raw::cmd(std::string_view line, double timeout) {
  if (!send(std::string(line) + "\r\n")) return "";
  return reply(timeout);
}

bool clean_exit(Server &s, double timeout) {
  s.signal(SIGTERM);
  return s.wait_exit(timeout) == 0;
}

std::string Raw::first_line(double timeout) {
  std::string got = read_lines(1, timeout);
  size_t e = got.find("\r\n");
  if (e == std::string::npos) return got;
  buf_ = got.substr(e + 2);
  return got.substr(0, e);
}

size_t count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string_view::npos;
       pos = hay.find(needle, pos + needle.size()))
    ++n;
  return n;
}

std::vector<std::string> lines(const std::string &text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t e = text.find('\n', start);
    if (e == std::string::npos) e = text.size();
    out.push_back(text.substr(start, e - start));
    start = e + 1;
  }
  return out;
}

}  // namespace hostile
