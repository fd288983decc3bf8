// spool/body_copy.hpp: a message body a plugin supplied (ABI 1.3 body_replace_fd). First a
// source: a duplicate of the plugin's descriptor (a regular file, read with pread() where it
// is), taken on the loop after cheap checks (fstat). Then, on the thread pool before the next
// hook that needs the message whole, a copy checked as it is read: CRLF lines only (no bare CR
// or LF), ending in CRLF unless empty. Up to kMemoryLimit the copy stays in memory, beyond that
// in an anonymous spool file.
#pragma once
#include <cstdint>
#include <string>

namespace uvs {

class BodyCopy {
 public:
  static constexpr size_t kMemoryLimit = 256 * 1024;
  BodyCopy() = default;
  ~BodyCopy();
  BodyCopy(const BodyCopy &) = delete;
  BodyCopy &operator=(const BodyCopy &) = delete;

  // Loop thread, cheap: takes a duplicate of fd as the (unchecked) source. 0; -EINVAL when fstat
  // fails (fd < 0, closed) or fd is not a regular file open for reading (a directory, a pipe, a
  // socket, O_WRONLY); -EFBIG when its size is beyond max bytes (0: no limit); -errno of dup.
  int open_source(int fd, uint64_t max);
  // Any thread: copies fd from offset 0 to its end (pread: the source's offset is untouched).
  // 0; -EINVAL for a bare CR/LF or a last line without CRLF; -EFBIG beyond max bytes (0: no
  // limit); -errno of pread or of the spool file.
  int load(int fd, const std::string &spool_dir, uint64_t max);
  bool is_source() const { return source_; }  // open_source(), not yet checked by load()
  int source_fd() const { return source_ ? fd_ : -1; }
  int64_t size() const { return size_; }                      // a source: its size at open_source()
  int64_t read(int64_t offset, void *buf, size_t len) const;  // bytes, 0 at the end, or -errno

 private:
  std::string mem_;
  int fd_ = -1;  // when spilled, or the source
  bool source_ = false;
  int64_t size_ = 0;
};

}  // namespace uvs
