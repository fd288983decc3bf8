// tests/integration/fake_server.cpp: Conn and FakeServer (see fake_server.hpp).
#include "fake_server.hpp"

#include <arpa/inet.h>
#include <cstdio>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.hpp"

namespace itest {

bool Conn::send(std::string_view s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool Conn::line(std::string &out, bool *batched, double timeout) {
  double deadline = now() + timeout;
  for (;;) {
    size_t nl = buf_.find("\r\n");
    if (nl != std::string::npos) {
      out = buf_.substr(0, nl);
      buf_.erase(0, nl + 2);
      if (batched) *batched = !buf_.empty();
      return true;
    }
    if (!fill(deadline)) return false;
  }
}

bool Conn::data(std::string &raw, double timeout) {
  double deadline = now() + timeout;
  for (;;) {
    size_t end = std::string::npos;
    if (buf_.rfind(".\r\n", 0) == 0)
      end = 3;
    else if (size_t p = buf_.find("\r\n.\r\n"); p != std::string::npos)
      end = p + 5;
    if (end != std::string::npos) {
      raw = buf_.substr(0, end);
      buf_.erase(0, end);
      return true;
    }
    if (!fill(deadline)) return false;
  }
}

bool Conn::some(double timeout) {
  return fill(now() + timeout);
}

void Conn::drain(double timeout) {
  double deadline = now() + timeout;
  while (fill(deadline)) buf_.clear();
}

bool Conn::fill(double deadline) {
  int left = static_cast<int>((deadline - now()) * 1000);
  if (left <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, left) <= 0) return false;
  char b[65536];
  ssize_t n = recv(fd_, b, sizeof b, 0);
  if (n <= 0) return false;
  buf_.append(b, static_cast<size_t>(n));
  return true;
}

FakeServer::FakeServer(Handler h, bool v6, bool accept_conns) : handler_(std::move(h)) {
  lfd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    auto *a = reinterpret_cast<sockaddr_in *>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  if (bind(lfd_, reinterpret_cast<sockaddr *>(&ss), len) != 0 || listen(lfd_, 16) != 0) {
    close(lfd_);
    lfd_ = -1;
    return;
  }
  getsockname(lfd_, reinterpret_cast<sockaddr *>(&ss), &len);
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port
                   : reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
  if (accept_conns) thread_ = std::thread([this] { run(); });
}

FakeServer::FakeServer(Handler h, const std::string &unix_path) : handler_(std::move(h)) {
  lfd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", unix_path.c_str());
  unlink(unix_path.c_str());
  if (bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || listen(lfd_, 16) != 0) {
    close(lfd_);
    lfd_ = -1;
    return;
  }
  thread_ = std::thread([this] { run(); });
}

FakeServer::~FakeServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (lfd_ >= 0) close(lfd_);
}

void FakeServer::run() {
  while (!stop_) {
    pollfd p{lfd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++busy_;
    ++conns_;
    Conn c(fd);
    handler_(c);
    close(fd);
    --busy_;
  }
}

}  // namespace itest
