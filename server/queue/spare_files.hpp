// queue/spare_files.hpp: emptied queue files kept for reuse. When an entry leaves the queue its
// two files are truncated and renamed into tmp/ as "spare.*" instead of being unlinked, and a
// new entry's temp files are spares renamed back, so a busy queue allocates and frees almost no
// inodes. On ext4 without a journal that matters a great deal: a new inode must skip every
// inode freed in the last minute or more (ialloc.c, recently_deleted()), so a create costs time
// in proportion to the deletes before it. Blocking file I/O, any thread (one mutex).
#pragma once
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace uvs::queue {

class SpareFiles {
 public:
  // At most this many spares are kept: beyond it, files leave by unlink as before.
  static constexpr size_t kMax = 16384;
  static constexpr std::string_view kPrefix = "spare.";

  explicit SpareFiles(std::string tmp_dir) : tmp_(std::move(tmp_dir)) {}

  // Renames a spare to `to` (a new name in tmp/) for the caller to open with O_TRUNC: 0, or
  // -ENOENT when there is none (tmp/ is read again at most every 250 ms when it had none).
  int take(const std::string &to);
  // Keeps the file at `path` (no longer part of any entry) as a spare: renamed into tmp/, then
  // emptied. 0; -E2BIG when kMax spares are kept; else -errno of the rename (-ENOENT: no such
  // file). On any error the file is where it was: the caller unlinks it.
  int give(const std::string &path);

  static bool is_spare(std::string_view name) { return name.substr(0, kPrefix.size()) == kPrefix; }

 private:
  size_t count_spares();  // reads tmp/

  std::string tmp_;
  std::mutex mu_;
  std::vector<std::string> names_;  // spares seen in tmp/ and not taken yet (by us)
  std::chrono::steady_clock::time_point next_read_{};
  size_t estimate_ = 0;  // spares in tmp/: counted now and then, plus what we gave since
  size_t gives_since_count_ = 0;
};

}  // namespace uvs::queue
