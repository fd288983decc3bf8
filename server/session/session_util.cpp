// session/session_util.cpp: the session's pure helpers (ids, dates, header lookup).
#include "session/session_util.hpp"

#include "log/log.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <random>
#include <strings.h>
#include <sys/time.h>

namespace uvs {

namespace {
uint64_t process_salt() {
  static const uint64_t salt = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  return salt;
}
}  // namespace

std::string make_session_id(uint64_t serial) {
  uint64_t x = (serial + process_salt()) * 0x9E3779B97F4A7C15ULL;
  x ^= x >> 29;
  char buf[16];
  snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(x & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string make_queue_id() {
  static std::atomic<uint64_t> counter{0};
  static const char kDigits[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";  // no vowels: no words
  timeval tv;
  gettimeofday(&tv, nullptr);
  uint64_t t = static_cast<uint64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
  uint64_t c = counter.fetch_add(1) ^ (process_salt() & 0xFFFF);
  // Worker processes share the queue directories: their ids must differ even when made in the
  // same microsecond. The last four digits (31^4 = 923521 values) hold the worker's number
  // (0..255) below 3607 values of the process's own counter.
  if (int w = log::worker(); w > 0) c = (c % 3607) * 256 + static_cast<uint64_t>(w - 1) % 256;
  std::string out;
  for (int i = 0; i < 10; ++i, t /= 31) out.insert(out.begin(), kDigits[t % 31]);
  for (int i = 0; i < 4; ++i, c /= 31) out += kDigits[c % 31];
  return out;
}

std::string rfc5322_date() {
  time_t now = time(nullptr);
  tm t;
  localtime_r(&now, &t);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &t);
  return buf;
}

bool find_header(std::string_view h, std::string_view name, int index, std::string &out) {
  size_t pos = 0;
  int seen = 0;
  while (pos < h.size()) {
    size_t eol = h.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = h.size();
    std::string_view line = h.substr(pos, eol - pos);
    if (line.empty()) return false;  // end of the header section
    size_t colon = line.find(':');
    bool match = colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0;
    // the field's extent: continuation lines start with a blank
    size_t end = eol;
    while (end + 2 < h.size() && (h[end + 2] == ' ' || h[end + 2] == '\t')) {
      size_t next = h.find("\r\n", end + 2);
      end = next == std::string_view::npos ? h.size() : next;
    }
    if (match && seen++ == index) {
      std::string v;
      std::string_view raw = h.substr(pos + colon + 1, end - pos - colon - 1);
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') {
          ++i;
          continue;
        }
        v += raw[i];
      }
      size_t first = v.find_first_not_of(" \t");
      out = first == std::string::npos ? "" : v.substr(first);
      return true;
    }
    pos = end + 2;
  }
  return false;
}

}  // namespace uvs
