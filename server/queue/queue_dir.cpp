// queue/queue_dir.cpp: the queue directory's files: creating the layout, writing a new entry
// crash-safely, atomic envelope rewrites and renames under the entry's lock, the scan.
#include "queue/queue_dir.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/write_all.hpp"

namespace uvs::queue {

namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
};

struct Dir {
  DIR *d = nullptr;
  ~Dir() {
    if (d) closedir(d);
  }
};

// fsync a directory; EINVAL: the file system cannot (tolerated, as Exim and queue/maildir do).
int fsync_dir(const std::string &path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.fd < 0) return -errno;
  if (fsync(fd.fd) != 0 && errno != EINVAL) return -errno;
  return 0;
}

// Copies bytes [0, size) of in to out: copy_file_range (in-kernel, reflinks where the file
// system can), else pread/write in 64 KiB chunks. -EIO if in is shorter than size.
int copy_message(int in, int out, int64_t size) {
  off_t off_in = 0;
  bool kernel = true;
  while (off_in < size) {
    size_t want = static_cast<size_t>(std::min<int64_t>(size - off_in, 1 << 30));
    if (kernel) {
      ssize_t n = copy_file_range(in, &off_in, out, nullptr, want, 0);
      if (n > 0) continue;
      if (n == 0) return -EIO;
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
          errno == EBADF) {
        kernel = false;
        continue;
      }
      return -errno;
    }
    char buf[64 * 1024];
    ssize_t n = pread(in, buf, std::min(want, sizeof buf), off_in);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    int rc = write_all(out, buf, static_cast<size_t>(n));
    if (rc < 0) return rc;
    off_in += n;
  }
  return 0;
}

// rename without replacing an existing target: renameat2(RENAME_NOREPLACE), or link + unlink
// where the file system does not support the flag.
int rename_noreplace(const std::string &from, const std::string &to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -errno;
  if (link(from.c_str(), to.c_str()) != 0) return -errno;
  unlink(from.c_str());
  return 0;
}

int read_file(const std::string &path, std::string &out, size_t cap) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.fd < 0) return -errno;
  struct stat sb {};
  if (fstat(fd.fd, &sb) != 0) return -errno;
  if (!S_ISREG(sb.st_mode)) return -EBADMSG;
  if (static_cast<uint64_t>(sb.st_size) > cap) return -EFBIG;
  out.resize(static_cast<size_t>(sb.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = pread(fd.fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return 0;
}

bool exists(const std::string &path) {
  struct stat sb {};
  return lstat(path.c_str(), &sb) == 0;
}

// mkdir; 1 if made, 0 if it was there (a directory), -errno.
int make_dir(const std::string &path) {
  if (mkdir(path.c_str(), 0700) == 0) return 1;
  if (errno != EEXIST) return -errno;
  struct stat sb {};
  if (stat(path.c_str(), &sb) != 0) return -errno;
  return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

std::string parent_of(const std::string &p) {
  size_t s = p.find_last_of('/');
  if (s == std::string::npos) return ".";
  if (s == 0) return "/";
  return p.substr(0, s);
}

// mkdir -p, each directory made durable in its parent.
int make_dirs(const std::string &path, std::string &err) {
  int rc = make_dir(path);
  if (rc == -ENOENT) {
    std::string parent = parent_of(path);
    if (parent == path) return rc;
    rc = make_dirs(parent, err);
    if (rc < 0) return rc;
    rc = make_dir(path);
  }
  if (rc < 0) {
    err = io_error("mkdir", path, -rc);
    return rc;
  }
  if (rc == 1) {
    rc = fsync_dir(parent_of(path));
    if (rc < 0) {
      err = io_error("fsync", parent_of(path), -rc);
      return rc;
    }
  }
  return 0;
}

bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

std::atomic<unsigned long> g_tmp_counter{0};

}  // namespace

std::string io_error(const char *op, const std::string &path, int e) {
  return std::string(op) + " " + path + ": " + strerror(e);
}

QueueDir::QueueDir(std::string root)
    : root_(std::move(root)), spares_(std::make_unique<SpareFiles>(root_ + "/tmp")) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  for (auto &fd : bucket_fds_) fd.store(-1, std::memory_order_relaxed);
}

QueueDir::~QueueDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  for (auto &fd : bucket_fds_)
    if (int f = fd.load(); f >= 0) ::close(f);
}

int QueueDir::bucket_fd(unsigned b, std::string &err) {
  int fd = bucket_fds_[b].load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  char sub[8];
  snprintf(sub, sizeof sub, "%02x", b);
  std::string bdir = root_ + "/q/" + sub;
  int rc = make_dir(bdir);
  if (rc == 1) rc = fsync_dir(root_ + "/q");  // a new directory's name made durable
  if (rc < 0) {
    err = io_error("mkdir", bdir, -rc);
    return rc;
  }
  fd = ::open(bdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    err = io_error("open", bdir, errno);
    return -errno;
  }
  int expected = -1;
  if (!bucket_fds_[b].compare_exchange_strong(expected, fd, std::memory_order_acq_rel)) {
    ::close(fd);  // another thread was first
    return expected;
  }
  return fd;
}

int QueueDir::sync_bucket(std::string_view id) {
  std::string ignored;
  int fd = bucket_fd(bucket(id), ignored);
  if (fd < 0) return fd;
  if (fsync(fd) != 0 && errno != EINVAL) return -errno;
  return 0;
}

bool QueueDir::open(bool create, std::string &err) {
  std::string format = root_ + "/format";
  struct stat sb {};
  if (stat(root_.c_str(), &sb) == 0) {
    if (!S_ISDIR(sb.st_mode)) {
      err = root_ + ": not a directory";
      return false;
    }
    if (!exists(format)) {
      Dir d;
      d.d = opendir(root_.c_str());
      if (!d.d) {
        err = io_error("opendir", root_, errno);
        return false;
      }
      bool empty = true;
      while (dirent *de = readdir(d.d))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) empty = false;
      if (!empty || !create) {
        err = root_ + (empty ? ": no queue here yet (no format file)"
                             : ": not an uvsmtpd queue directory (no format file, not empty)");
        return false;
      }
    }
  } else if (errno != ENOENT || !create) {
    err = io_error("stat", root_, errno);
    return false;
  }
  if (create) {
    if (make_dirs(root_, err) < 0) return false;
    bool made = false;
    for (const char *sub : {"tmp", "q", "corrupt"}) {
      std::string p = root_ + "/" + sub;
      int rc = make_dir(p);
      if (rc < 0) {
        err = io_error("mkdir", p, -rc);
        return false;
      }
      made |= rc == 1;
    }
    if (!exists(format)) {
      // The format file last: its presence says the layout is complete.
      std::string tmp = root_ + "/tmp/format." + std::to_string(getpid());
      Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      std::string text = std::string(kLayoutMagic) + "\n";
      int rc = fd.fd < 0 ? -errno : write_all(fd.fd, text.data(), text.size());
      if (rc == 0 && fsync(fd.fd) != 0) rc = -errno;
      if (rc == 0 && rename(tmp.c_str(), format.c_str()) != 0) rc = -errno;
      if (rc < 0) {
        unlink(tmp.c_str());
        err = io_error("write", format, -rc);
        return false;
      }
      made = true;
    }
    if (made) {
      int rc = fsync_dir(root_);
      if (rc < 0) {
        err = io_error("fsync", root_, -rc);
        return false;
      }
    }
  }
  std::string text;
  int rc = read_file(format, text, 4096);
  if (rc < 0) {
    err = io_error("read", format, -rc);
    return false;
  }
  if (text.rfind(std::string(kLayoutMagic) + "\n", 0) != 0) {
    err = format + ": not \"" + std::string(kLayoutMagic) +
          "\" (a queue of another uvsmtpd version, or not a queue)";
    return false;
  }
  for (const char *sub : {"tmp", "q", "corrupt"}) {
    std::string p = root_ + "/" + sub;
    if (stat(p.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      err = p + ": missing (the queue directory is incomplete)";
      return false;
    }
  }
  std::string lock = root_ + "/lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock_fd_ < 0 && (errno == EACCES || errno == EROFS))
    lock_fd_ = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (lock_fd_ < 0) {
    err = io_error("open", lock, errno);
    return false;
  }
  return true;
}

bool QueueDir::try_lock_exclusive() {
  return lock_fd_ >= 0 && flock(lock_fd_, LOCK_EX | LOCK_NB) == 0;
}

bool QueueDir::lock_shared(std::string &err) {
  while (flock(lock_fd_, LOCK_SH) != 0) {
    if (errno == EINTR) continue;
    err = io_error("flock", root_ + "/lock", errno);
    return false;
  }
  return true;
}

void QueueDir::unlock() {
  if (lock_fd_ >= 0) flock(lock_fd_, LOCK_UN);
}

unsigned QueueDir::bucket(std::string_view id) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (char c : id) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return (h ^ (h >> 16)) % kBuckets;
}

std::string QueueDir::bucket_dir(std::string_view id) const {
  char b[8];
  snprintf(b, sizeof b, "%02x", bucket(id));
  return root_ + "/q/" + b;
}

std::string QueueDir::msg_path(std::string_view id) const {
  return bucket_dir(id) + "/" + std::string(id) + ".msg";
}

std::string QueueDir::env_path(std::string_view id, bool held) const {
  return bucket_dir(id) + "/" + std::string(id) + (held ? ".hold" : ".env");
}

std::string QueueDir::tmp_name(std::string_view id, const char *suffix) {
  return root_ + "/tmp/" + std::string(id) + "." + std::to_string(getpid()) + "." +
         std::to_string(g_tmp_counter.fetch_add(1)) + suffix;
}

int QueueDir::create_tmp(const std::string &path) {
  if (spares_->take(path) == 0) {
    int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) return fd;
    unlink(path.c_str());  // then a new one below
  }
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

int QueueDir::discard(const std::string &path) {
  int rc = spares_->give(path);
  if (rc == 0 || rc == -ENOENT) return rc;
  return unlink(path.c_str()) == 0 ? 0 : -errno;
}

int QueueDir::write_envelope_tmp(const Envelope &e, std::string &tmp, std::string &err) {
  tmp = tmp_name(e.id, ".env");
  std::string text = serialize(e);
  Fd fd(create_tmp(tmp));
  if (fd.fd < 0) {
    err = io_error("create", tmp, errno);
    return -errno;
  }
  int rc = write_all(fd.fd, text.data(), text.size());
  const char *op = "write";
  if (rc == 0) {
    // The schedule the scan reads without opening the file: mtime = next try.
    timespec ts[2] = {{e.next_try, 0}, {e.next_try, 0}};
    op = "futimens";
    if (futimens(fd.fd, ts) != 0) rc = -errno;
  }
  if (rc == 0) {
    op = "fsync";
    if (fsync(fd.fd) != 0) rc = -errno;
  }
  if (rc < 0) {
    err = io_error(op, tmp, -rc);
    unlink(tmp.c_str());
    return rc;
  }
  return 0;
}

int QueueDir::store(const Envelope &e, int msg_fd, int64_t size, std::string &err) {
  if (!valid_id(e.id)) {
    err = "bad queue id '" + e.id.substr(0, 40) + "'";
    return -EINVAL;
  }
  std::string bdir = bucket_dir(e.id);
  int rc = bucket_fd(bucket(e.id), err);  // q/<b> made (and its name synced) the first time
  if (rc < 0) return rc;
  std::string mtmp = tmp_name(e.id, ".msg"), etmp;
  std::string mfinal = msg_path(e.id), efinal = env_path(e.id);
  {
    Fd fd(create_tmp(mtmp));
    if (fd.fd < 0) {
      err = io_error("create", mtmp, errno);
      return -errno;
    }
    const char *op = "copy the message to";
    rc = copy_message(msg_fd, fd.fd, size);
    if (rc == 0) {
      op = "fsync";
      if (fsync(fd.fd) != 0) rc = -errno;
    }
    if (rc < 0) {
      err = io_error(op, mtmp, -rc);
      unlink(mtmp.c_str());
      return rc;
    }
  }
  rc = write_envelope_tmp(e, etmp, err);
  if (rc < 0) {
    unlink(mtmp.c_str());
    return rc;
  }
  // An envelope of the same id under hold would be a collision as well.
  if (exists(env_path(e.id, true))) {
    rc = -EEXIST;
    err = io_error("rename to", env_path(e.id, true), EEXIST);
  } else if ((rc = rename_noreplace(mtmp, mfinal)) < 0) {
    err = io_error("rename to", mfinal, -rc);
  } else if ((rc = rename_noreplace(etmp, efinal)) < 0) {
    err = io_error("rename to", efinal, -rc);
    unlink(mfinal.c_str());
  } else if ((rc = sync_bucket(e.id)) < 0) {
    err = io_error("fsync", bdir, -rc);
    unlink(efinal.c_str());  // the envelope first: never an envelope without its message
    unlink(mfinal.c_str());
    return rc;
  } else {
    return 0;
  }
  unlink(mtmp.c_str());
  unlink(etmp.c_str());
  return rc;
}

int QueueDir::load(std::string_view id, Envelope &e, bool &held, std::string &err) {
  if (!valid_id(id)) {
    err = "bad queue id";
    return -ENOENT;
  }
  std::string text, path = env_path(id, false);
  held = false;
  int rc = read_file(path, text, kMaxEnvelopeBytes);
  if (rc == -ENOENT) {
    path = env_path(id, true);
    held = true;
    rc = read_file(path, text, kMaxEnvelopeBytes);
  }
  if (rc == -ENOENT) {
    err = "no entry " + std::string(id);
    return rc;
  }
  if (rc == -EFBIG) {
    err = path + ": larger than " + std::to_string(kMaxEnvelopeBytes) + " bytes (damaged?)";
    return -EBADMSG;
  }
  if (rc < 0) {
    err = io_error("read", path, -rc);
    return rc;
  }
  std::string why;
  if (!parse(text, e, why)) {
    err = path + ": " + why;
    return -EBADMSG;
  }
  if (e.id != id) {
    err = path + ": the envelope names id " + e.id + ", not its file's " + std::string(id);
    return -EBADMSG;
  }
  return 0;
}

int QueueDir::lock_entry(std::string_view id, int &fd, std::string &err) {
  fd = -1;
  if (!valid_id(id)) {
    err = "bad queue id";
    return -ENOENT;
  }
  std::string m = msg_path(id);
  int f = ::open(m.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (f < 0) {
    int e = errno;
    err = e == ENOENT ? "no entry " + std::string(id) : io_error("open", m, e);
    return -e;
  }
  while (flock(f, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    ::close(f);
    err = io_error("flock", m, e);
    return -e;
  }
  fd = f;
  return 0;
}

int QueueDir::update(std::string_view id, const std::function<void(Envelope &)> &change,
                     std::string &err) {
  int lfd = -1;
  int rc = lock_entry(id, lfd, err);
  if (rc < 0) return rc;
  Fd lock(lfd);
  Envelope e;
  bool held = false;
  rc = load(id, e, held, err);
  if (rc < 0) return rc;
  change(e);
  std::string tmp;
  rc = write_envelope_tmp(e, tmp, err);
  if (rc < 0) return rc;
  std::string final_path = env_path(id, held);
  if (rename(tmp.c_str(), final_path.c_str()) != 0) {
    rc = -errno;
    err = io_error("rename to", final_path, -rc);
    unlink(tmp.c_str());
    return rc;
  }
  rc = sync_bucket(id);
  if (rc < 0) err = io_error("fsync", bucket_dir(id), -rc);
  return rc;
}

int QueueDir::set_hold(std::string_view id, bool hold, std::string &err) {
  int lfd = -1;
  int rc = lock_entry(id, lfd, err);
  if (rc < 0) return rc;
  Fd lock(lfd);
  std::string from = env_path(id, !hold), to = env_path(id, hold);
  rc = rename_noreplace(from, to);
  if (rc < 0) {
    if (rc == -ENOENT && exists(to)) return 0;  // already so
    if (rc == -ENOENT) {
      err = "no entry " + std::string(id);
      return rc;
    }
    err = io_error("rename to", to, -rc);
    return rc;
  }
  rc = sync_bucket(id);
  if (rc < 0) err = io_error("fsync", bucket_dir(id), -rc);
  return rc;
}

int QueueDir::take_envelope(std::string_view id, std::vector<std::string> &taken,
                            std::string &err) {
  int lfd = -1;
  int rc = lock_entry(id, lfd, err);
  if (rc < 0) return rc;
  Fd lock(lfd);
  // Out of q/<b> into tmp/ under a temp name, not yet a spare: until its directory's fsync the
  // old name may come back after a power loss, and must not come back with another entry's
  // content (a spare is rewritten by the next store).
  for (bool held : {false, true}) {
    std::string p = env_path(id, held);
    std::string to = tmp_name(id, ".gone");
    if (rename(p.c_str(), to.c_str()) == 0) {
      taken.push_back(std::move(to));
    } else if (int e = errno; e != ENOENT) {
      err = io_error("rename to", to, e);
      for (const auto &t : taken) discard(t);  // both names existed and the second failed
      taken.clear();
      return -e;
    }
  }
  if (taken.empty()) {
    err = "no entry " + std::string(id);
    return -ENOENT;
  }
  return 0;
}

int QueueDir::remove(std::string_view id, std::string &err) {
  std::vector<std::string> taken;
  int rc = take_envelope(id, taken, err);
  if (rc < 0) return rc;
  // The entry is gone once the envelope is; the message goes next (a crash here leaves a
  // message without an envelope, which the next startup scan removes).
  rc = sync_bucket(id);
  if (rc < 0) {
    err = io_error("fsync", bucket_dir(id), -rc);
    return rc;  // the envelope stays in tmp/ under its temp name (the next start removes it)
  }
  // No fsync after it: a message file whose unlink a crash undid is an orphan the scan
  // removes, as Postfix does not sync the directory after deleting a queue file either.
  rc = drop_taken(id, taken);
  if (rc < 0 && rc != -ENOENT) {
    err = io_error("unlink", msg_path(id), -rc);
    return rc;
  }
  return 0;
}

int QueueDir::drop_taken(std::string_view id, const std::vector<std::string> &envelopes) {
  for (const auto &t : envelopes) discard(t);
  return discard(msg_path(id));
}

int QueueDir::retire(std::string_view id, std::string &err) {
  Retired r;
  r.id = std::string(id);
  int rc = take_envelope(id, r.envelopes, err);
  if (rc < 0) return rc;
  try {
    std::lock_guard<std::mutex> lk(retired_mu_);
    retired_.push_back(std::move(r));
    return 0;
  } catch (const std::bad_alloc &) {
  }
  // Cannot remember it: finish it now, as remove() does.
  if (sync_bucket(id) == 0) drop_taken(id, r.envelopes);
  return 0;
}

size_t QueueDir::retired_count() {
  std::lock_guard<std::mutex> lk(retired_mu_);
  return retired_.size();
}

size_t QueueDir::discard_retired() {
  std::vector<Retired> batch;
  {
    std::lock_guard<std::mutex> lk(retired_mu_);
    batch.swap(retired_);
  }
  if (batch.empty()) return 0;
  bool synced[kBuckets] = {};
  bool failed[kBuckets] = {};
  std::vector<Retired> again;  // a directory that could not be synced: tried next time
  size_t n = 0;
  for (auto &r : batch) {
    unsigned b = bucket(r.id);
    if (!synced[b]) {
      synced[b] = true;
      failed[b] = sync_bucket(r.id) < 0;
    }
    if (failed[b]) {
      again.push_back(std::move(r));
      continue;
    }
    if (drop_taken(r.id, r.envelopes) == 0) ++n;
  }
  if (!again.empty()) {
    std::lock_guard<std::mutex> lk(retired_mu_);
    for (auto &r : again) retired_.push_back(std::move(r));
  }
  return n;
}

ScanResult QueueDir::scan(bool cleanup) {
  ScanResult r;
  auto problem = [&](std::string p) {
    if (r.problems.size() < 20) r.problems.push_back(std::move(p));
    ++r.problem_count;
  };
  // tmp/: files being written now (by another process when not cleaning), or left by a crash.
  {
    std::string tdir = root_ + "/tmp";
    Dir d;
    d.d = opendir(tdir.c_str());
    if (!d.d) {
      problem(io_error("opendir", tdir, errno));
    } else {
      int dfd = dirfd(d.d);
      while (dirent *de = readdir(d.d)) {
        if (de->d_name[0] == '.') continue;
        if (SpareFiles::is_spare(de->d_name) && r.spare_files < SpareFiles::kMax) {
          ++r.spare_files;  // emptied, kept for reuse (a crash may have left one not emptied:
          continue;         // its next user truncates it)
        }
        ++r.temp_files;
        if (cleanup && unlinkat(dfd, de->d_name, 0) != 0)
          problem(io_error("unlink", tdir + "/" + de->d_name, errno));
      }
    }
  }
  struct Name {
    std::string_view id;
    int kind;  // 0 msg, 1 env, 2 hold
  };
  std::vector<std::string> names;
  std::vector<Name> parsed;
  for (unsigned b = 0; b < kBuckets; ++b) {
    char sub[8];
    snprintf(sub, sizeof sub, "%02x", b);
    std::string bdir = root_ + "/q/" + sub;
    Dir d;
    d.d = opendir(bdir.c_str());
    if (!d.d) {
      if (errno != ENOENT) problem(io_error("opendir", bdir, errno));
      continue;
    }
    int dfd = dirfd(d.d);
    names.clear();
    while (dirent *de = readdir(d.d)) {
      if (de->d_name[0] == '.') continue;
      names.emplace_back(de->d_name);
    }
    parsed.clear();
    for (const auto &n : names) {
      std::string_view v = n;
      int kind = ends_with(v, ".msg")    ? 0
                 : ends_with(v, ".env")  ? 1
                 : ends_with(v, ".hold") ? 2
                                         : -1;
      std::string_view id = kind < 0 ? v : v.substr(0, v.size() - (kind == 2 ? 5 : 4));
      if (kind < 0 || !valid_id(id) || bucket(id) != b) {
        problem(bdir + "/" + n + ": does not belong in the queue (left alone)");
        continue;
      }
      parsed.push_back({id, kind});
    }
    std::sort(parsed.begin(), parsed.end(), [](const Name &a, const Name &c) {
      return a.id != c.id ? a.id < c.id : a.kind < c.kind;
    });
    bool changed = false;
    for (size_t i = 0; i < parsed.size();) {
      size_t j = i;
      bool msg = false, env = false, hold = false;
      for (; j < parsed.size() && parsed[j].id == parsed[i].id; ++j) {
        msg |= parsed[j].kind == 0;
        env |= parsed[j].kind == 1;
        hold |= parsed[j].kind == 2;
      }
      std::string id(parsed[i].id);
      i = j;
      if (msg && (env || hold)) {
        if (env && hold) problem(bdir + "/" + id + ": both .env and .hold (the .hold one counts)");
        IndexEntry ent{};
        memcpy(ent.id, id.data(), id.size());
        ent.state = hold ? EntryState::held : EntryState::waiting;
        struct stat sb {};
        std::string ename = id + (hold ? ".hold" : ".env");
        if (fstatat(dfd, ename.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0)
          ent.next_try = sb.st_mtim.tv_sec;
        r.entries.push_back(ent);
        ++(hold ? r.held : r.waiting);
      } else if (msg) {
        // Written up to the message, not committed: never acknowledged.
        ++r.orphan_messages;
        if (cleanup) {
          std::string m = id + ".msg";
          if (unlinkat(dfd, m.c_str(), 0) != 0) problem(io_error("unlink", bdir + "/" + m, errno));
          changed = true;
        }
      } else {
        // An envelope whose message is missing: damage, or a power loss before the 250.
        ++r.lone_envelopes;
        if (cleanup) {
          for (const char *suf : {".env", ".hold"}) {
            std::string n = id + suf;
            std::string to = root_ + "/corrupt/" + n;
            if (renameat(dfd, n.c_str(), AT_FDCWD, to.c_str()) == 0)
              changed = true;
            else if (errno != ENOENT)
              problem(io_error("rename to", to, errno));
          }
          problem(bdir + "/" + id + ": envelope without its message; moved to corrupt/");
        }
      }
    }
    if (changed) {
      int rc = fsync_dir(bdir);
      if (rc < 0) problem(io_error("fsync", bdir, -rc));
    }
  }
  return r;
}

}  // namespace uvs::queue
