// delivery/control.cpp: the control socket (control.hpp).
#include "delivery/control.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "queue/control_notify.hpp"
#include "queue/queue_entry.hpp"

namespace uvs::delivery {

ControlCommand parse_control(std::string_view d) {
  while (!d.empty() && (d.back() == '\n' || d.back() == '\r')) d.remove_suffix(1);
  ControlCommand c;
  size_t sp = d.find(' ');
  std::string_view verb = d.substr(0, sp);
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : d.substr(sp + 1);
  if (verb == "new" && queue::valid_id(arg)) {
    c.kind = ControlCommand::new_entry;
    c.id = arg;
  } else if (verb == "flush" && (arg.empty() || queue::valid_id(arg))) {
    c.kind = ControlCommand::flush;
    c.id = arg;
  }
  return c;
}

std::vector<ControlCommand> parse_controls(std::string_view d) {
  while (!d.empty() && (d.back() == '\n' || d.back() == '\r')) d.remove_suffix(1);
  std::vector<ControlCommand> out;
  if (d.substr(0, 4) != "new ") {
    out.push_back(parse_control(d));
    return out;
  }
  std::string_view rest = d.substr(4);
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view id = rest.substr(0, sp);
    if (!id.empty()) out.push_back(parse_control("new " + std::string(id)));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  if (out.empty()) out.push_back(ControlCommand{});
  return out;
}

ControlSocket::~ControlSocket() {
  close();
}

int ControlSocket::open(const std::string &path, Handler h, std::string &err) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path) {
    err = path + ": the path is too long for a UNIX socket";
    return -ENAMETOOLONG;
  }
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::string("socket: ") + strerror(errno);
    return -errno;
  }
  unlink(path.c_str());  // a previous run's socket (one server per queue directory)
  mode_t old = umask(077);
  int rc = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
  int e = errno;
  umask(old);
  if (rc < 0) {
    ::close(fd);
    err = "bind " + path + ": " + strerror(e);
    return -e;
  }
  chmod(path.c_str(), 0600);
  fd_ = fd;
  path_ = path;
  handler_ = std::move(h);
  poll_ = new uv_poll_t;
  uv_poll_init(loop_, poll_, fd_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, on_readable);
  return 0;
}

void ControlSocket::on_readable(uv_poll_t *p, int status, int) {
  auto *self = static_cast<ControlSocket *>(p->data);
  if (status < 0) return;
  char buf[queue::kControlMaxDatagram];
  for (int i = 0; i < 64; ++i) {  // a burst at most per wake-up: the loop stays fair
    ssize_t n = recv(self->fd_, buf, sizeof buf, 0);
    if (n < 0) break;
    std::string_view raw(buf, static_cast<size_t>(n));
    for (const ControlCommand &c : parse_controls(raw)) {
      self->handler_(c, raw);
      if (self->fd_ < 0) return;  // closed by the handler
    }
  }
}

void ControlSocket::close() {
  if (poll_) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t *>(poll_),
             [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
    poll_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    unlink(path_.c_str());
  }
}

}  // namespace uvs::delivery
