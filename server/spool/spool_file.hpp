// spool/spool_file.hpp: the message body of one transaction while it streams in. Small messages
// (up to kMemoryLimit) stay in memory and never cost a disk or thread-pool round trip; larger
// ones spill to an anonymous file (O_TMPFILE, or created and unlinked at once) in the spool
// directory — nothing to clean after a crash — written in order through libuv's thread pool.
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

  static constexpr size_t kMemoryLimit = 256 * 1024;

  int open();                        // checks the spool directory: 0 or -errno
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
  // A new read-only descriptor on the content (caller closes), or -errno. An in-memory message
  // is moved into a memfd first.
  int dup_fd();

 private:
  struct State;
  static void kick(const std::shared_ptr<State> &s);
  uv_loop_t *loop_;
  std::string dir_;
  std::shared_ptr<State> s_;
};

// An anonymous read-write file in dir (O_TMPFILE, or created and unlinked at once): fd or -errno.
int spool_tmpfile(const std::string &dir);
// A new read-only descriptor with its own offset on the file behind fd (through /proc), or a
// plain duplicate where /proc is missing: fd or -errno.
int reopen_read_only(int fd);

}  // namespace uvs
