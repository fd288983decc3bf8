// spool/spool_file.cpp: SpoolFile: in-order background writes with uv_fs_write, high/low water
// marks for back-pressure, and a shared state that outlives the object while a write is in flight.
#include "spool/spool_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace uvs {

namespace {
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kHigh = 1024 * 1024;
constexpr size_t kLow = 256 * 1024;
}  // namespace

struct SpoolFile::State {
  uv_loop_t *loop = nullptr;
  int fd = -1;
  bool in_memory = true;  // everything is in `buf` (no file yet)
  std::string buf;       // appended, not yet handed to a write
  std::string writing;   // the write in flight
  bool in_flight = false;
  bool dead = false;     // the SpoolFile is gone: close after the write in flight
  int err = 0;
  int64_t appended = 0;
  int64_t written = 0;
  std::function<void()> drained;
  std::function<void(int)> flushed;
  uv_fs_t req;
  std::shared_ptr<State> self;  // keeps the state alive while a write is in flight
};

SpoolFile::SpoolFile(uv_loop_t *loop, std::string dir)
    : loop_(loop), dir_(std::move(dir)), s_(std::make_shared<State>()) {
  s_->loop = loop;
}

SpoolFile::~SpoolFile() {
  s_->dead = true;
  s_->drained = nullptr;
  s_->flushed = nullptr;
  if (!s_->in_flight && s_->fd >= 0) {
    ::close(s_->fd);
    s_->fd = -1;
  }
}

int SpoolFile::open() {
  if (::access(dir_.c_str(), W_OK | X_OK) != 0) return -errno;
  return 0;
}

static int open_spill_file(const std::string &dir_);
int spool_tmpfile(const std::string &dir) { return open_spill_file(dir); }

int reopen_read_only(int fd) {
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  int r = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r >= 0) return r;
  r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return r < 0 ? -errno : r;
}

static int open_spill_file(const std::string &dir_) {
  int fd = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string tmpl = dir_ + "/spool.XXXXXX";
    fd = mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd >= 0) ::unlink(tmpl.c_str());
  }
  return fd < 0 ? -errno : fd;
}

void SpoolFile::append(std::string_view data) {
  if (data.empty() || s_->err) return;
  s_->buf.append(data);
  s_->appended += static_cast<int64_t>(data.size());
  if (s_->in_memory) {
    if (s_->buf.size() <= kMemoryLimit) return;
    int fd = open_spill_file(dir_);  // too big for memory: spill to disk from here on
    if (fd < 0) {
      s_->err = fd;  // sticky: flush() reports it, so the message gets 451, never 250
      s_->buf.clear();
      s_->buf.shrink_to_fit();
      return;
    }
    s_->fd = fd;
    s_->in_memory = false;
  }
  if (s_->buf.size() >= kChunk) kick(s_);
}

bool SpoolFile::backlogged() const {
  return !s_->in_memory && s_->buf.size() + s_->writing.size() > kHigh;
}

void SpoolFile::on_drained(std::function<void()> cb) { s_->drained = std::move(cb); }

void SpoolFile::flush(std::function<void(int)> cb) {
  if (s_->err) {  // first: a failed spill leaves nothing valid, in memory or on disk
    cb(s_->err);
    return;
  }
  if (s_->in_memory) {
    cb(0);
    return;
  }
  if (!s_->in_flight && s_->buf.empty()) {
    cb(0);
    return;
  }
  s_->flushed = std::move(cb);
  kick(s_);
}

int64_t SpoolFile::size() const { return s_->appended; }

int SpoolFile::dup_fd() {
  if (s_->err) return s_->err;
  if (s_->in_memory) {
    // Hand the content over to a memfd (memory, never blocks on a disk).
    int fd = memfd_create("uvsmtpd-message", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    size_t off = 0;
    while (off < s_->buf.size()) {
      ssize_t n = ::write(fd, s_->buf.data() + off, s_->buf.size() - off);
      if (n < 0) {
        int e = errno;
        ::close(fd);
        return -e;
      }
      off += static_cast<size_t>(n);
    }
    s_->fd = fd;
    s_->written = static_cast<int64_t>(off);
    s_->buf.clear();
    s_->in_memory = false;
  }
  if (s_->fd < 0) return -EBADF;
  // Through /proc so the new descriptor is read-only and has its own file offset.
  return reopen_read_only(s_->fd);
}
int SpoolFile::error() const { return s_->err; }

int64_t SpoolFile::read(int64_t offset, void *buf, size_t len) const {
  if (s_->err) return s_->err;
  if (s_->in_memory) {
    if (offset >= static_cast<int64_t>(s_->buf.size())) return 0;
    size_t n = std::min(len, s_->buf.size() - static_cast<size_t>(offset));
    memcpy(buf, s_->buf.data() + offset, n);
    return static_cast<int64_t>(n);
  }
  if (s_->fd < 0) return -EBADF;
  if (offset >= s_->written) return 0;  // only what is on disk
  size_t max = static_cast<size_t>(s_->written - offset);
  if (len > max) len = max;
  ssize_t n = ::pread(s_->fd, buf, len, offset);
  return n < 0 ? -errno : n;
}

void SpoolFile::kick(const std::shared_ptr<State> &s) {
  if (s->in_flight || s->buf.empty() || s->fd < 0 || s->err) return;
  s->writing.swap(s->buf);
  s->buf.clear();
  s->in_flight = true;
  s->self = s;
  s->req.data = s.get();
  uv_buf_t b = uv_buf_init(s->writing.data(), static_cast<unsigned>(s->writing.size()));
  int rc = uv_fs_write(s->loop, &s->req, s->fd, &b, 1, s->written, [](uv_fs_t *req) {
    auto *st = static_cast<State *>(req->data);
    std::shared_ptr<State> keep = std::move(st->self);
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    st->in_flight = false;
    if (n < 0) {
      st->err = static_cast<int>(n);
    } else if (static_cast<size_t>(n) < st->writing.size()) {
      st->written += n;  // short write: put the rest back in front
      st->buf.insert(0, st->writing, static_cast<size_t>(n), std::string::npos);
    } else {
      st->written += n;
    }
    st->writing.clear();
    if (st->dead) {
      if (st->fd >= 0) ::close(st->fd);
      st->fd = -1;
      return;
    }
    if (!st->err && !st->buf.empty() && (st->flushed || st->buf.size() >= kChunk)) {
      kick(keep);
    }
    if (!st->in_flight && (st->err || st->buf.empty()) && st->flushed) {
      auto cb = std::move(st->flushed);
      st->flushed = nullptr;
      cb(st->err);
    }
    if (st->drained && (st->err || st->buf.size() + st->writing.size() < kLow)) {
      auto cb = std::move(st->drained);
      st->drained = nullptr;
      cb();
    }
  });
  if (rc < 0) {
    s->in_flight = false;
    s->self.reset();
    s->err = rc;
  }
}

}  // namespace uvs
