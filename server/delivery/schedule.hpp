// delivery/schedule.hpp: when each queue entry is due (the index the engine keeps in memory,
// filled from QueueDir::scan and kept current by the engine), the retry backoff, and the pure
// bookkeeping of one delivery attempt's results in an envelope (docs/queue.md, "Delivery").
// No I/O and no clock: `now` is always a parameter, so the unit tests drive time themselves.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "queue/queue_entry.hpp"

namespace uvs::delivery {

// The wait after the n-th failed attempt (n >= 1): retry_min * 2^(n-1), at most retry_max.
int64_t retry_delay(int attempts, int64_t retry_min, int64_t retry_max);

// The entries waiting for delivery, by due time. An entry taken for delivery leaves the
// schedule until the engine puts it back with its new time (or drops it when it is finished).
class Schedule {
 public:
  // Adds id, or moves it to next_try when it is already there.
  void set(const std::string &id, int64_t next_try);
  void remove(const std::string &id);
  bool contains(const std::string &id) const { return pos_.count(id) != 0; }
  size_t size() const { return pos_.size(); }
  // Up to max entries with next_try <= now, earliest first; they leave the schedule.
  std::vector<std::string> take_due(int64_t now, size_t max);
  // The earliest next_try, or -1 when empty.
  int64_t next_due() const;

 private:
  std::multimap<int64_t, std::string> by_time_;
  std::unordered_map<std::string, std::multimap<int64_t, std::string>::iterator> pos_;
};

// What a remote server (or the route, or DNS) said about one recipient.
struct RcptResult {
  int code = 0;          // the SMTP reply code; 4xx also for connection failures
  std::string enhanced;  // "5.1.1"
  std::string text;      // the reply text, one line
  std::string mta;       // "host[ip]:port" that answered, "" if none did
};

struct AttemptOutcome {
  std::vector<size_t> delivered, deferred, failed;  // indexes into env.rcpts, changed this time
  bool finished = false;  // no recipient pending any more: the entry can be removed
};

// Applies results[i] to the pending recipient env.rcpts[idx[i]]: 2xx delivered, 5xx failed,
// anything else deferred. Then attempts+1; when something is still pending: next_try = now +
// retry_delay(attempts), last_error = the last deferral's text; a message older than
// max_lifetime (arrival + max_lifetime <= now) gets its deferred recipients failed with the
// last error (they are returned to the sender).
AttemptOutcome apply_attempt(queue::Envelope &env, const std::vector<size_t> &idx,
                             const std::vector<RcptResult> &results, int64_t now, int64_t retry_min,
                             int64_t retry_max, int64_t max_lifetime);

}  // namespace uvs::delivery
