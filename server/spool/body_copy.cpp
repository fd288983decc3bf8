// spool/body_copy.cpp: BodyCopy (see body_copy.hpp).
#include "spool/body_copy.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/spool_file.hpp"
#include "util/write_all.hpp"

namespace uvs {

BodyCopy::~BodyCopy() {
  if (fd_ >= 0) ::close(fd_);
}

int BodyCopy::open_source(int src, uint64_t max) {
  struct stat st;
  if (src < 0 || ::fstat(src, &st) < 0 || !S_ISREG(st.st_mode)) return -EINVAL;
  int flags = ::fcntl(src, F_GETFL);
  if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY) return -EINVAL;
  if (max && static_cast<uint64_t>(st.st_size) > max) return -EFBIG;
  int fd = ::fcntl(src, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (fd_ >= 0) ::close(fd_);
  mem_.clear();
  fd_ = fd;
  source_ = true;
  size_ = st.st_size;
  return 0;
}

int BodyCopy::load(int src, const std::string &spool_dir, uint64_t max) {
  if (src < 0) return -EBADF;
  char buf[64 * 1024];
  int64_t off = 0;
  char prev = '\n';  // the byte before the current one ("\n": at the start of a line)
  for (;;) {
    ssize_t n = ::pread(src, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    for (ssize_t k = 0; k < n; ++k) {
      char c = buf[k];
      if (c == '\n' && prev != '\r') return -EINVAL;  // bare LF
      if (prev == '\r' && c != '\n') return -EINVAL;  // bare CR
      prev = c;
    }
    off += n;
    if (max && static_cast<uint64_t>(off) > max) return -EFBIG;
    if (fd_ < 0 && mem_.size() + static_cast<size_t>(n) > kMemoryLimit) {
      int fd = spool_tmpfile(spool_dir);
      if (fd < 0) return fd;
      fd_ = fd;
      int rc = write_all(fd_, mem_.data(), mem_.size());
      if (rc < 0) return rc;
      mem_.clear();
    }
    if (fd_ >= 0) {
      int rc = write_all(fd_, buf, static_cast<size_t>(n));
      if (rc < 0) return rc;
    } else {
      mem_.append(buf, static_cast<size_t>(n));
    }
  }
  if (off > 0 && prev != '\n') return -EINVAL;  // the last line has no CRLF (or ends in CR)
  size_ = off;
  return 0;
}

int64_t BodyCopy::read(int64_t offset, void *buf, size_t len) const {
  if (offset >= size_) return 0;
  size_t n = std::min(len, static_cast<size_t>(size_ - offset));
  if (fd_ < 0) {
    memcpy(buf, mem_.data() + offset, n);
    return static_cast<int64_t>(n);
  }
  ssize_t r = ::pread(fd_, buf, n, offset);
  return r < 0 ? -errno : r;
}

}  // namespace uvs
