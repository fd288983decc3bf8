// tests/integration/fake_milter.cpp: the scripted milter of fake_milter.hpp (one thread accepts,
// one thread per connection).
#include "fake_milter.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace itest {

namespace {
std::string u32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}
bool write_all(int fd, const std::string &s) {
  size_t o = 0;
  while (o < s.size()) {
    ssize_t n = ::send(fd, s.data() + o, s.size() - o, MSG_NOSIGNAL);
    if (n <= 0) return false;
    o += static_cast<size_t>(n);
  }
  return true;
}
// Reads exactly n bytes, polling so that stop ends the wait; false on EOF, error or stop.
bool read_n(int fd, std::string &out, size_t n, const std::atomic<bool> &stop) {
  out.clear();
  char buf[65536];
  while (out.size() < n) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (stop.load()) return false;
    if (r <= 0) continue;
    size_t want = std::min(sizeof buf, n - out.size());
    ssize_t k = ::recv(fd, buf, want, 0);
    if (k <= 0) return false;
    out.append(buf, static_cast<size_t>(k));
  }
  return true;
}
}  // namespace

MilterPkt mpkt(char cmd, const std::string &data) {
  return MilterPkt{cmd, data};
}
MilterPkt mpkt_str2(char cmd, const std::string &a, const std::string &b) {
  return MilterPkt{cmd, a + std::string(1, '\0') + b + std::string(1, '\0')};
}
MilterPkt mpkt_idx(char cmd, uint32_t index, const std::string &a, const std::string &b) {
  return MilterPkt{cmd, u32(index) + a + std::string(1, '\0') + b + std::string(1, '\0')};
}
MilterPkt mclose() {
  return MilterPkt{0, "close"};
}
MilterPkt msleep(int ms) {
  return MilterPkt{0, "sleep:" + std::to_string(ms)};
}
MilterPkt mraw(const std::string &bytes) {
  return MilterPkt{0, "raw:" + bytes};
}

FakeMilter::FakeMilter(Script script, uint32_t protocol, uint32_t actions, std::string optneg_extra)
    : script_(std::move(script)),
      protocol_(protocol),
      actions_(actions),
      optneg_extra_(std::move(optneg_extra)) {
  lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 || listen(lfd_, 16) < 0 ||
      getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len) < 0)
    return;
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeMilter::~FakeMilter() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  for (auto &t : workers_)
    if (t.joinable()) t.join();
  if (lfd_ >= 0) close(lfd_);
}

void FakeMilter::accept_loop() {
  while (!stop_.load()) {
    pollfd p{lfd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    std::lock_guard<std::mutex> g(mu_);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void FakeMilter::serve(int fd) {
  std::string hdr, body;
  for (;;) {
    if (!read_n(fd, hdr, 4, stop_)) break;
    uint32_t len = (static_cast<uint32_t>(static_cast<unsigned char>(hdr[0])) << 24) |
                   (static_cast<uint32_t>(static_cast<unsigned char>(hdr[1])) << 16) |
                   (static_cast<uint32_t>(static_cast<unsigned char>(hdr[2])) << 8) |
                   static_cast<unsigned char>(hdr[3]);
    if (len == 0 || !read_n(fd, body, len, stop_)) break;
    MilterPkt in{body[0], body.substr(1)};
    {
      std::lock_guard<std::mutex> g(mu_);
      got_.push_back(in);
    }
    std::vector<MilterPkt> out;
    if (in.cmd == 'O') {
      out.push_back(
          mpkt('O', u32(version_.load()) + u32(actions_) + u32(protocol_) + optneg_extra_));
    } else if (in.cmd == 'Q') {
      break;
    } else if (in.cmd == 'D' || in.cmd == 'A') {
      continue;
    } else if (script_) {
      out = script_(in);
    } else {
      out.push_back(mpkt('c'));
    }
    bool quit = false;
    for (const MilterPkt &p : out) {
      if (p.cmd == 0 && p.data == "close") {
        quit = true;
        break;
      }
      if (p.cmd == 0 && p.data.rfind("sleep:", 0) == 0) {
        int ms = std::stoi(p.data.substr(6));
        for (int i = 0; i < ms / 10 && !stop_.load(); i++)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      std::string wire = p.cmd == 0 ? p.data.substr(4)
                                    : u32(static_cast<uint32_t>(p.data.size() + 1)) +
                                          std::string(1, p.cmd) + p.data;
      if (!write_all(fd, wire)) {
        quit = true;
        break;
      }
    }
    if (quit) break;
  }
  close(fd);
  ++closed_;
}

std::vector<MilterPkt> FakeMilter::received() const {
  std::lock_guard<std::mutex> g(mu_);
  return got_;
}

std::vector<MilterPkt> FakeMilter::of(char cmd) const {
  std::vector<MilterPkt> r;
  for (const MilterPkt &p : received())
    if (p.cmd == cmd) r.push_back(p);
  return r;
}

std::vector<std::pair<std::string, std::string>> FakeMilter::macros(char cmd) const {
  std::vector<std::pair<std::string, std::string>> r;
  for (const MilterPkt &p : received()) {
    if (p.cmd != 'D' || p.data.empty() || p.data[0] != cmd) continue;
    r.clear();
    std::vector<std::string> parts;
    size_t pos = 1;
    while (pos < p.data.size()) {
      size_t nul = p.data.find('\0', pos);
      if (nul == std::string::npos) break;
      parts.push_back(p.data.substr(pos, nul - pos));
      pos = nul + 1;
    }
    for (size_t i = 0; i + 1 < parts.size(); i += 2) r.emplace_back(parts[i], parts[i + 1]);
  }
  return r;
}

bool FakeMilter::wait_for(char cmd, double timeout, size_t count) const {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (std::chrono::steady_clock::now() < end) {
    if (of(cmd).size() >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace itest
