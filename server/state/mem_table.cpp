// state/mem_table.cpp: MemTable (see mem_table.hpp).
#include "state/mem_table.hpp"

#include <cerrno>
#include <charconv>
#include <limits>

namespace uvs::state {

namespace {
bool parse_int(const std::string &s, int64_t &out) {
  if (s.empty()) return false;
  const char *b = s.data(), *e = s.data() + s.size();
  auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e;
}
uint64_t deadline(uint64_t now, uint64_t ttl_ms) {
  if (ttl_ms == 0) return 0;
  return ttl_ms > std::numeric_limits<uint64_t>::max() - now ? std::numeric_limits<uint64_t>::max()
                                                             : now + ttl_ms;
}
}  // namespace

MemTable::Map::iterator MemTable::find_live(const std::string &key, uint64_t now) {
  auto it = map_.find(key);
  if (it == map_.end()) return it;
  if (it->second.expires != 0 && it->second.expires <= now) {  // lazy expiry
    erase(it);
    return map_.end();
  }
  return it;
}

void MemTable::erase(Map::iterator it) {
  if (it->second.expires != 0) expiry_.erase(it->second.exp_it);
  map_.erase(it);
}

void MemTable::set_expiry(Map::iterator it, uint64_t expires) {
  Entry &e = it->second;
  if (e.expires != 0) expiry_.erase(e.exp_it);
  e.expires = expires;
  if (expires != 0) e.exp_it = expiry_.emplace(expires, &it->first);
}

void MemTable::make_room(uint64_t now) {
  if (map_.size() < max_entries_) return;
  sweep(now);
  while (map_.size() >= max_entries_) {
    Map::iterator victim = expiry_.empty() ? map_.begin() : map_.find(*expiry_.begin()->second);
    erase(victim);
    ++evictions_;
  }
}

MemTable::Map::iterator MemTable::insert(const std::string &key, uint64_t now) {
  make_room(now);
  return map_.emplace(key, Entry{}).first;
}

int MemTable::get(const std::string &key, uint64_t now, std::string *out) {
  auto it = find_live(key, now);
  if (it == map_.end()) return -ENOENT;
  if (out) *out = it->second.value;
  return 0;
}

int MemTable::set(const std::string &key, std::string value, uint64_t ttl_ms, uint64_t now) {
  auto it = find_live(key, now);
  if (it == map_.end()) it = insert(key, now);
  it->second.value = std::move(value);
  set_expiry(it, deadline(now, ttl_ms));
  return 0;
}

int MemTable::incr(const std::string &key, int64_t delta, uint64_t ttl_ms, uint64_t now,
                   int64_t *out) {
  auto it = find_live(key, now);
  int64_t cur = 0;
  if (it != map_.end() && !parse_int(it->second.value, cur)) return -EINVAL;
  int64_t next = 0;
  if (__builtin_add_overflow(cur, delta, &next)) return -EINVAL;
  if (it == map_.end()) {
    it = insert(key, now);
    set_expiry(it, deadline(now, ttl_ms));  // a fixed window from the first one
  }
  it->second.value = std::to_string(next);
  if (out) *out = next;
  return 0;
}

int MemTable::del(const std::string &key) {
  auto it = map_.find(key);
  if (it != map_.end()) erase(it);
  return 0;
}

size_t MemTable::sweep(uint64_t now) {
  size_t n = 0;
  while (!expiry_.empty() && expiry_.begin()->first <= now) {
    erase(map_.find(*expiry_.begin()->second));
    ++n;
  }
  return n;
}

}  // namespace uvs::state
