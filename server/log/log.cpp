// log/log.cpp: the logger's level, text and JSON formatting; log/sink.cpp writes the lines.
#include "log/log.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <sys/time.h>

#include "log/sink.hpp"

namespace uvs::log {
namespace {
std::atomic<int> g_level{info};
std::atomic<bool> g_json{false};
std::atomic<int> g_worker{0};
const char *const kNames[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF), or 0 if the byte there does not start one.
size_t utf8_length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(k) & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
  if (c == 0xED && b(1) > 0x9F) return 0;  // surrogates
  if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
  if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
  return n;
}

// Text lines: one line per event whatever the message holds, so control bytes become \xNN.
void append_text(std::string &out, std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
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
bool json() { return g_json; }
void set_worker(int k) { g_worker = k; }
int worker() { return g_worker; }

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else if (size_t n = utf8_length(s, i); n > 0) {
          out.append(s, i, n);
          i += n - 1;
        } else {
          char buf[8];
          snprintf(buf, sizeof buf, "\\\\x%02x", c);
          out += buf;
        }
    }
  }
  return out;
}

std::string json_string(std::string_view s) { return "\"" + json_escape(s) + "\""; }
std::string json_number(int64_t n) { return std::to_string(n); }
std::string json_strings(std::span<const std::string> items) {
  std::string out = "[";
  for (const auto &i : items) {
    if (out.size() > 1) out += ',';
    out += json_string(i);
  }
  return out + "]";
}

bool parse_level(std::string_view name, int &out) {
  for (int i = 0; i < 8; ++i)
    if (name == kNames[i]) {
      out = i;
      return true;
    }
  return false;
}

void write(int lvl, std::string_view session, std::string_view source, std::string_view msg,
           std::span<const Field> fields) {
  if (lvl > g_level) return;
  if (lvl < 0) lvl = 0;
  if (lvl > 7) lvl = 7;
  std::string line;
  if (g_json) {
    line = "{\"ts\":\"" + timestamp() + "\",\"level\":\"" + kNames[lvl] + "\"";
    if (int w = g_worker; w > 0)
      line += ",\"worker\":" + std::to_string(w);
    else if (w == kSupervisor)
      line += ",\"supervisor\":true";
    if (!session.empty()) line += ",\"session\":\"" + json_escape(session) + "\"";
    if (!source.empty()) line += ",\"source\":\"" + json_escape(source) + "\"";
    line += ",\"msg\":\"" + json_escape(msg) + "\"";
    for (const Field &f : fields) line += ",\"" + json_escape(f.key) + "\":" + f.json;
    line += "}\n";
  } else {
    // syslog stamps its own time (and keeps the level as the priority).
    if (sink_destination() != Destination::syslog) line = timestamp() + " ";
    line += kNames[lvl];
    if (int w = g_worker; w > 0)
      line += " worker " + std::to_string(w);
    else if (w == kSupervisor)
      line += " supervisor";
    if (!session.empty()) {
      line += " [";
      append_text(line, session);
      line += "]";
    }
    if (!source.empty()) {
      line += " ";
      append_text(line, source);
      line += ":";
    }
    line += " ";
    append_text(line, msg);
    line += "\n";
  }
  sink_write(lvl, line);
}

void vformat(int lvl, std::string_view session, std::string_view source, const char *fmt,
             va_list ap, std::span<const Field> fields) {
  if (lvl > g_level) return;
  char buf[1024];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof buf) {
    write(lvl, session, source, std::string_view(buf, n), fields);
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(big.data(), big.size(), fmt, ap);
  big.resize(n);
  write(lvl, session, source, big, fields);
}

void format_txn(int lvl, std::string_view session, std::string_view queue_id, const char *fmt,
                ...) {
  if (lvl > g_level) return;
  const Field f[] = {{"queue_id", json_string(queue_id)}};
  va_list ap;
  va_start(ap, fmt);
  vformat(lvl, session, "", fmt, ap,
          queue_id.empty() ? std::span<const Field>{} : std::span<const Field>(f));
  va_end(ap);
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
