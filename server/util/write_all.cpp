// util/write_all.cpp: write_all (see write_all.hpp).
#include "util/write_all.hpp"

#include <cerrno>
#include <sys/types.h>
#include <unistd.h>

namespace uvs {

int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

}  // namespace uvs
