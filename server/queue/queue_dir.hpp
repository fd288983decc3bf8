// queue/queue_dir.hpp: the outbound queue directory (docs/queue.md): its layout, the crash-safe
// writing of a new entry, atomic envelope updates, hold/release/delete under the entry's lock,
// and the startup scan that builds the compact index and cleans what a crash left behind.
// Blocking file I/O: call it from the thread pool (or from a command-line tool), never the loop.
#pragma once
#include <cstdint>
#include <functional>
#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "queue/queue_entry.hpp"
#include "queue/spare_files.hpp"

namespace uvs::queue {

// The layout version in <root>/format.
inline constexpr std::string_view kLayoutMagic = "uvsmtpd-queue 1";
// Entries are spread over this many directories, q/00 .. q/ff, by a hash of the id.
inline constexpr unsigned kBuckets = 256;

enum class EntryState : uint8_t { waiting, held };

// One entry in the scan's index: 48 bytes, no heap allocation.
struct IndexEntry {
  char id[kMaxIdLen + 1];
  EntryState state;
  int64_t next_try;  // unix seconds: the envelope file's mtime
};

struct ScanResult {
  std::vector<IndexEntry> entries;  // sorted by bucket, then id
  size_t waiting = 0, held = 0;
  size_t temp_files = 0;       // files found in tmp/ (removed when cleaning), spares aside
  size_t spare_files = 0;      // emptied files kept for reuse (spare_files.hpp): kept
  size_t orphan_messages = 0;  // message files without an envelope (removed when cleaning)
  size_t lone_envelopes = 0;   // envelopes without a message (moved to corrupt/ when cleaning)
  std::vector<std::string> problems;  // files that do not belong, errors (at most 20 kept)
  size_t problem_count = 0;
};

class QueueDir {
 public:
  explicit QueueDir(std::string root);
  ~QueueDir();
  QueueDir(const QueueDir &) = delete;
  QueueDir &operator=(const QueueDir &) = delete;

  const std::string &root() const { return root_; }

  // create: make the root (and missing parents), its subdirectories and the format file, each
  // made durable in its parent. Otherwise they must exist. Then opens <root>/lock. A directory
  // that is not empty and has no format file is refused (not a queue directory).
  bool open(bool create, std::string &err);
  // The queue-wide lock (flock of <root>/lock): every process that uses the queue holds it
  // shared; the startup scan cleans only when it gets it exclusively (nobody else writes).
  bool try_lock_exclusive();
  bool lock_shared(std::string &err);  // waits for an exclusive holder (a scan) to finish
  void unlock();

  static unsigned bucket(std::string_view id);
  std::string bucket_dir(std::string_view id) const;
  std::string msg_path(std::string_view id) const;
  std::string env_path(std::string_view id, bool held = false) const;

  // A new entry, durable when it returns 0: the message copied from msg_fd (bytes 0..size)
  // and the envelope e (e.id names the files; the envelope file's mtime is e.next_try).
  // Temp files in tmp/, fsync both, rename the message then the envelope (the commit) into
  // q/<bucket>/ without replacing anything, fsync q/<bucket>. On failure nothing is left:
  // -errno with err = "<operation> <path>: <reason>"; -EEXIST if the id is taken.
  int store(const Envelope &e, int msg_fd, int64_t size, std::string &err);

  // Reads id's envelope. 0; -ENOENT (no such entry); -EBADMSG (damaged: err says the file and
  // line); another -errno.
  int load(std::string_view id, Envelope &e, bool &held, std::string &err);

  // Rewrites id's envelope with change() applied (never the message): under the entry's lock,
  // a new file (mtime = next_try) renamed over the old one, directory fsynced. Same returns.
  int update(std::string_view id, const std::function<void(Envelope &)> &change, std::string &err);
  // Hold (rename .env to .hold) or release (back); 0 also when it already was so.
  int set_hold(std::string_view id, bool hold, std::string &err);
  // Removes the entry: the envelope first (the entry is gone), then the message. Both files
  // become spares for later entries (spare_files.hpp), or are unlinked.
  int remove(std::string_view id, std::string &err);
  // Removes the entry as the delivery engine does after the last recipient, without waiting
  // for the disk: the envelope leaves now (the entry is gone), the message stays in q/<b>/ as
  // an orphan nothing delivers until discard_retired() has made the envelope's removal durable,
  // with one fsync per directory for all the entries retired since. A power loss before that
  // leaves at most orphans (removed by the startup scan) or the whole entry (delivered again),
  // never an envelope without its message. Same returns as remove().
  int retire(std::string_view id, std::string &err);
  // Finishes what retire() began: fsyncs each directory that lost an envelope, then discards
  // those entries' messages. Blocking; any thread. The number of messages discarded.
  size_t discard_retired();
  size_t retired_count();

  // Lists every entry without reading envelopes (names and one fstatat per envelope).
  // cleanup (only while holding the lock exclusively): removes tmp/ files (spares beyond
  // SpareFiles::kMax; the others are kept) and message files
  // without an envelope, and moves envelopes without a message to corrupt/.
  ScanResult scan(bool cleanup);

 private:
  // Opens id's message file and takes its flock exclusively: the entry's lock.
  int lock_entry(std::string_view id, int &fd, std::string &err);
  int write_envelope_tmp(const Envelope &e, std::string &tmp, std::string &err);
  std::string tmp_name(std::string_view id, const char *suffix);
  // A new temp file at path, open for writing: a spare renamed there, else a new file.
  int create_tmp(const std::string &path);
  // Takes path's file out of the queue for good: kept as a spare, else unlinked. 0 or -errno.
  int discard(const std::string &path);
  // Renames id's envelope (.env and/or .hold) into tmp/ under temp names, listed in `taken`.
  // On failure nothing stays taken (what was renamed is discarded).
  int take_envelope(std::string_view id, std::vector<std::string> &taken, std::string &err);
  // After the directory's fsync: the taken envelopes, then the message, go as discard() says.
  // The message's discard() result.
  int drop_taken(std::string_view id, const std::vector<std::string> &envelopes);

  std::string root_;
  int lock_fd_ = -1;
  std::unique_ptr<SpareFiles> spares_;
  // q/<b> opened once (O_DIRECTORY) for its fsyncs; made on first use. -1: not yet.
  int bucket_fd(unsigned b, std::string &err);
  int sync_bucket(std::string_view id);  // fsync of id's q/<b>: 0 or -errno
  std::array<std::atomic<int>, kBuckets> bucket_fds_;
  std::mutex retired_mu_;
  struct Retired {
    std::string id;
    std::vector<std::string> envelopes;  // in tmp/, to become spares after the fsync
  };
  std::vector<Retired> retired_;  // entries whose envelope left, message not yet discarded
};

// "operation path: strerror(e)"
std::string io_error(const char *op, const std::string &path, int e);

}  // namespace uvs::queue
