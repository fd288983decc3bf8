// state/mem_table.hpp: the embedded back end's table: keys with values and optional expiry,
// bounded in entries. Synchronous and clock-free (every call takes "now" in milliseconds), so
// the back end (state/embedded.*) and the unit tests drive it alike.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace uvs::state {

class MemTable {
 public:
  explicit MemTable(size_t max_entries) : max_entries_(max_entries ? max_entries : 1) {}

  // 0 and *out = the value, or -ENOENT (absent or expired).
  int get(const std::string &key, uint64_t now, std::string *out);
  // Stores value; ttl_ms 0 = no expiry. 0.
  int set(const std::string &key, std::string value, uint64_t ttl_ms, uint64_t now);
  // Adds delta to the integer at key (absent = 0); ttl_ms applies only when this creates the
  // key. 0 and *out = the new value; -EINVAL when the value there is not a 64-bit integer or
  // the sum overflows (the entry is then unchanged).
  int incr(const std::string &key, int64_t delta, uint64_t ttl_ms, uint64_t now, int64_t *out);
  // Removes key: 0 (also when it was absent).
  int del(const std::string &key);

  // Drops every expired entry; returns how many.
  size_t sweep(uint64_t now);
  size_t size() const { return map_.size(); }
  size_t max_entries() const { return max_entries_; }
  // Entries dropped to make room since the table was made (see make_room()).
  uint64_t evictions() const { return evictions_; }

 private:
  // expiry time -> the key as the map holds it (unordered_map keeps its elements in place
  // across rehashing, so the pointer stays valid while the entry lives)
  using ExpiryIndex = std::multimap<uint64_t, const std::string *>;
  struct Entry {
    std::string value;
    uint64_t expires = 0;  // 0 = never
    ExpiryIndex::iterator exp_it;
  };
  using Map = std::unordered_map<std::string, Entry>;

  Map::iterator find_live(const std::string &key, uint64_t now);
  void erase(Map::iterator it);
  void set_expiry(Map::iterator it, uint64_t expires);
  // Before a new key goes in: expired entries first, then, if the table is still full, the
  // entry that expires soonest (or, when no entry expires, an arbitrary one).
  void make_room(uint64_t now);
  Map::iterator insert(const std::string &key, uint64_t now);

  size_t max_entries_;
  Map map_;
  ExpiryIndex expiry_;  // the entries that expire, soonest first
  uint64_t evictions_ = 0;
};

}  // namespace uvs::state
