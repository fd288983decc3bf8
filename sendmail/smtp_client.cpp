// sendmail/smtp_client.cpp: plain POSIX sockets, poll() for the timeouts.
#include "smtp_client.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace sm {

namespace {

constexpr size_t kMaxLine = 65536;

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits for events on fd until deadline: 1 ready, 0 timeout, -1 error (errno).
int wait_fd(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - now();
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? -1 : r;
  }
}

}  // namespace

std::string Reply::text() const {
  return std::to_string(code) + (lines.empty() ? std::string() : " " + lines.front());
}

SmtpClient::~SmtpClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool SmtpClient::connect(const Target &t, int timeout_s, std::string &err) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int rc = getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &res);
  if (rc != 0) {
    err = "cannot connect to " + t.shown() + ": " + gai_strerror(rc);
    return false;
  }
  std::string last = "no address";
  for (addrinfo *ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = strerror(errno);
      continue;
    }
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      r = wait_fd(fd, POLLOUT, now() + timeout_s);
      if (r == 0) {
        errno = ETIMEDOUT;
        r = -1;
      } else if (r > 0) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        errno = soerr;
        r = soerr ? -1 : 0;
      }
    }
    if (r == 0) {
      fd_ = fd;
      freeaddrinfo(res);
      return true;
    }
    last = strerror(errno);
    ::close(fd);
  }
  freeaddrinfo(res);
  err = "cannot connect to " + t.shown() + ": " + last;
  return false;
}

bool SmtpClient::send(const std::string &bytes, int timeout_s, std::string &err) {
  double deadline = now() + timeout_s;
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      int r = wait_fd(fd_, POLLOUT, deadline);
      if (r > 0) continue;
      err = r == 0 ? "timeout sending to the server" : std::string("send: ") + strerror(errno);
      return false;
    }
    err = std::string("connection lost while sending: ") + strerror(errno);
    return false;
  }
  return true;
}

bool SmtpClient::read_line(std::string &line, int timeout_s, std::string &err) {
  double deadline = now() + timeout_s;
  for (;;) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      line = buf_.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      buf_.erase(0, nl + 1);
      return true;
    }
    if (buf_.size() > kMaxLine) {
      protocol_ = true;
      err = "reply line longer than " + std::to_string(kMaxLine) + " bytes";
      return false;
    }
    int r = wait_fd(fd_, POLLIN, deadline);
    if (r <= 0) {
      err = r == 0 ? "timeout waiting for the server's reply"
                   : std::string("read: ") + strerror(errno);
      return false;
    }
    char b[4096];
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n == 0) {
      err = "the server closed the connection";
      return false;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      err = std::string("connection lost: ") + strerror(errno);
      return false;
    }
    buf_.append(b, static_cast<size_t>(n));
  }
}

bool SmtpClient::reply(Reply &r, int timeout_s, std::string &err) {
  r = Reply{};
  for (;;) {
    std::string line;
    if (!read_line(line, timeout_s, err)) return false;
    if (verbose) fprintf(stderr, "<<< %s\n", line.c_str());
    bool digits = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
                  line[1] <= '9' && line[2] >= '0' && line[2] <= '9';
    if (!digits || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      protocol_ = true;
      err = "malformed reply line '" + line.substr(0, 80) + "'";
      return false;
    }
    int code = std::stoi(line.substr(0, 3));
    if (r.code != 0 && code != r.code) {
      protocol_ = true;
      err = "reply code changes inside a multiline reply (" + std::to_string(r.code) + ", " +
            line.substr(0, 3) + ")";
      return false;
    }
    r.code = code;
    r.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
    if (line.size() <= 3 || line[3] == ' ') return true;
  }
}

bool SmtpClient::command(const std::string &line, Reply &r, int timeout_s, std::string &err) {
  if (verbose) fprintf(stderr, ">>> %s\n", line.c_str());
  return send(line + "\r\n", timeout_s, err) && reply(r, timeout_s, err);
}

}  // namespace sm
