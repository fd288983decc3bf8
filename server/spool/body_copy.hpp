// spool/body_copy.hpp: a message body a plugin supplied (ABI 1.3 body_replace_fd), copied from its
// descriptor at once and checked: CRLF lines only (no bare CR or LF), ending in CRLF unless
// empty. Up to kMemoryLimit it stays in memory, beyond that in an anonymous spool file.
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

  // Copies fd from offset 0 to its end (pread: the plugin's offset is untouched). 0; -EINVAL
  // for a bare CR/LF or a last line without CRLF; -EFBIG beyond max bytes (0: no limit);
  // -errno of pread (-ESPIPE for a pipe) or of the spool file.
  int load(int fd, const std::string &spool_dir, uint64_t max);
  int64_t size() const { return size_; }
  int64_t read(int64_t offset, void *buf, size_t len) const;  // bytes, 0 at the end, or -errno

 private:
  std::string mem_;
  int fd_ = -1;  // when spilled
  int64_t size_ = 0;
};

}  // namespace uvs
