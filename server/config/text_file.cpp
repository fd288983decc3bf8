// config/text_file.cpp: the shared file helpers of the config readers (see text_file.hpp).
#include "config/text_file.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace uvs::config {

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kSpace);
  return s.substr(b, e - b + 1);
}

int slurp(const std::string &path, std::string &data) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  data.clear();
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return 0;
}

std::string dir_of(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {};
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string join(const std::string &dir, std::string_view rel) {
  if (!rel.empty() && rel.front() == '/') return std::string(rel);
  if (dir.empty()) return std::string(rel);
  if (dir.back() == '/') return dir + std::string(rel);
  return dir + "/" + std::string(rel);
}

}  // namespace uvs::config
