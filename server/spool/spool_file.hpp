// spool/spool_file.hpp: the message body of one transaction on disk while it streams in. An
// anonymous file (O_TMPFILE, or created and unlinked at once) in the spool directory: nothing to
// clean after a crash. Writes go through libuv's thread pool in order; reads are pread.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <uv.h>

namespace uvs {

class SpoolFile {
 public:
  SpoolFile(uv_loop_t *loop, std::string dir);
  ~SpoolFile();  // closes the file once any write in flight has finished
  SpoolFile(const SpoolFile &) = delete;
  SpoolFile &operator=(const SpoolFile &) = delete;

  int open();                        // 0 or -errno
  void append(std::string_view data);  // buffered; written in the background
  // True while more than the high-water mark waits to be written: stop reading the client.
  bool backlogged() const;
  // cb runs once the backlog has drained below the low-water mark.
  void on_drained(std::function<void()> cb);
  // Writes everything appended so far; cb(0) or cb(-errno) on the loop.
  void flush(std::function<void(int)> cb);
  int64_t size() const;  // bytes appended
  int64_t read(int64_t offset, void *buf, size_t len) const;  // pread: bytes or -errno
  int error() const;
  int dup_fd() const;  // a new read-only descriptor on the file (caller closes), or -errno

 private:
  struct State;
  static void kick(const std::shared_ptr<State> &s);
  uv_loop_t *loop_;
  std::string dir_;
  std::shared_ptr<State> s_;
};

}  // namespace uvs
