// queue/spare_files.cpp: reusing emptied queue files (see spare_files.hpp for why).
#include "queue/spare_files.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <dirent.h>
#include <unistd.h>

namespace uvs::queue {

namespace {
std::atomic<unsigned long> g_spare_counter{0};
constexpr size_t kReadBatch = 1024;    // names cached per read of tmp/
constexpr size_t kRecountEvery = 512;  // gives between two counts of tmp/
constexpr auto kEmptyPause = std::chrono::milliseconds(250);
}  // namespace

size_t SpareFiles::count_spares() {
  size_t n = 0;
  if (DIR *d = opendir(tmp_.c_str())) {
    while (dirent *de = readdir(d))
      if (is_spare(de->d_name)) ++n;
    closedir(d);
  }
  return n;
}

int SpareFiles::take(const std::string &to) {
  for (;;) {
    std::string name;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (names_.empty()) {
        auto now = std::chrono::steady_clock::now();
        if (now < next_read_) return -ENOENT;
        if (DIR *d = opendir(tmp_.c_str())) {
          while (dirent *de = readdir(d)) {
            if (!is_spare(de->d_name)) continue;
            names_.emplace_back(de->d_name);
            if (names_.size() >= kReadBatch) break;
          }
          closedir(d);
        }
        if (names_.empty()) {
          next_read_ = now + kEmptyPause;
          return -ENOENT;
        }
      }
      name = std::move(names_.back());
      names_.pop_back();
      if (estimate_ > 0) --estimate_;
    }
    // Another process (or a stale name) may have had it first: then try the next one.
    if (rename((tmp_ + "/" + name).c_str(), to.c_str()) == 0) return 0;
    if (errno != ENOENT) return -errno;
  }
}

int SpareFiles::give(const std::string &path) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Other processes (and the other users of this queue in this one) take spares we do not
    // hear of: count them now and then.
    if (++gives_since_count_ >= kRecountEvery) {
      estimate_ = count_spares();
      gives_since_count_ = 0;
    }
    if (estimate_ >= kMax) return -E2BIG;
    ++estimate_;
  }
  std::string to = tmp_ + "/" + std::string(kPrefix) + std::to_string(getpid()) + "." +
                   std::to_string(g_spare_counter.fetch_add(1));
  if (rename(path.c_str(), to.c_str()) != 0) {
    int e = errno;
    std::lock_guard<std::mutex> lk(mu_);
    if (estimate_ > 0) --estimate_;
    return -e;
  }
  // Emptied now: a spare holds no message. (A crash before this leaves a spare with content;
  // take() callers open it with O_TRUNC, and it stays in the owner-only tmp/ meanwhile.)
  if (truncate(to.c_str(), 0) != 0) {
    // Cannot empty it: do not keep it.
    unlink(to.c_str());
  }
  return 0;
}

}  // namespace uvs::queue
