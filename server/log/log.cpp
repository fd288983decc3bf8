// log/log.cpp: the logger's formatting and its single mutex-protected write to stderr.
#include "log/log.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <sys/time.h>

namespace uvs::log {
namespace {
std::atomic<int> g_level{info};
std::atomic<bool> g_json{false};
std::mutex g_mutex;
const char *const kNames[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string timestamp() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(tv.tv_usec / 1000));
  return buf;
}
}  // namespace

void set_level(int l) { g_level = l; }
int level() { return g_level; }
void set_json(bool j) { g_json = j; }

bool parse_level(std::string_view name, int &out) {
  for (int i = 0; i < 8; ++i)
    if (name == kNames[i]) {
      out = i;
      return true;
    }
  return false;
}

void write(int lvl, std::string_view session, std::string_view source, std::string_view msg) {
  if (lvl > g_level) return;
  if (lvl < 0) lvl = 0;
  if (lvl > 7) lvl = 7;
  std::string line;
  if (g_json) {
    line = "{\"ts\":\"" + timestamp() + "\",\"level\":\"" + kNames[lvl] + "\"";
    if (!session.empty()) line += ",\"session\":\"" + json_escape(session) + "\"";
    if (!source.empty()) line += ",\"source\":\"" + json_escape(source) + "\"";
    line += ",\"msg\":\"" + json_escape(msg) + "\"}\n";
  } else {
    line = timestamp() + " " + kNames[lvl];
    if (!session.empty()) line += " [" + std::string(session) + "]";
    if (!source.empty()) line += " " + std::string(source) + ":";
    line += " ";
    line += msg;
    line += "\n";
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

void vformat(int lvl, std::string_view session, std::string_view source, const char *fmt,
             va_list ap) {
  if (lvl > g_level) return;
  char buf[1024];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof buf) {
    write(lvl, session, source, std::string_view(buf, n));
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(big.data(), big.size(), fmt, ap);
  big.resize(n);
  write(lvl, session, source, big);
}

void format(int lvl, std::string_view session, std::string_view source, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vformat(lvl, session, source, fmt, ap);
  va_end(ap);
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < max; ++i) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > out.size() && out.size() >= max) out += "...";
  return out;
}

}  // namespace uvs::log
