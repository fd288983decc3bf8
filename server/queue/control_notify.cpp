// queue/control_notify.cpp: one nonblocking datagram to the control socket (control_notify.hpp).
#include "queue/control_notify.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace uvs::queue {

int control_send(const std::string &root, std::string_view msg) {
  std::string path = root + "/" + std::string(kControlName);
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path) return -ENAMETOOLONG;
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  std::string line(msg);
  line += '\n';
  ssize_t n = sendto(fd, line.data(), line.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr *>(&sa),
                     sizeof sa);
  int rc = n < 0 ? -errno : 0;
  close(fd);
  return rc;
}

}  // namespace uvs::queue
