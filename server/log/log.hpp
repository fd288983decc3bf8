// log/log.hpp: the process logger: one line per event, text or JSON, syslog levels, thread-safe.
// Lines go to the destination chosen in log/sink.hpp (stderr, a file or syslog).
#pragma once
#include <cstdarg>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace uvs::log {

enum Level { emerg = 0, alert, crit, err, warning, notice, info, debug };

void set_level(int level);
int level();
void set_json(bool json);
bool json();
// With worker processes (workers = N > 1) every line names its process: a worker's text
// "worker K" after the level and the JSON member "worker": K; the supervisor's (k =
// kSupervisor) text "supervisor" and "supervisor": true. 0 (the default: one process) = none.
inline constexpr int kSupervisor = -1;
void set_worker(int k);
int worker();
// "info" -> info; false if unknown.
bool parse_level(std::string_view name, int &out);

// One structured item of an event line: a key and its value already encoded as JSON (use
// json_string / json_number / json_strings). Only the JSON format shows fields, each as a
// member of the line's object after "msg"; text lines carry the same facts in msg.
struct Field {
  std::string_view key;
  std::string json;
};
std::string json_string(std::string_view s);  // "..." with JSON escapes (see json_escape)
std::string json_number(int64_t n);
std::string json_strings(std::span<const std::string> items);  // ["a","b"]
// JSON string body: quote, backslash and control bytes escaped (\n, \u0001, ...); valid
// UTF-8 is kept; a byte that is not part of valid UTF-8 reads \xNN once decoded (written
// \\xNN), so every line is valid UTF-8 and parses.
std::string json_escape(std::string_view s);

// session may be empty; source is the plugin instance or "" for the core.
void write(int level, std::string_view session, std::string_view source, std::string_view msg,
           std::span<const Field> fields = {});
void vformat(int level, std::string_view session, std::string_view source, const char *fmt,
             va_list ap, std::span<const Field> fields = {});
void format(int level, std::string_view session, std::string_view source, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// format() for a line about one transaction whose message names the queue id already
// ("<qid>: to=<...>"): in JSON the queue id is also the field "queue_id".
void format_txn(int level, std::string_view session, std::string_view queue_id, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

inline bool enabled(int lvl) { return lvl <= level(); }

// Make untrusted text safe for one log line: control bytes and non-UTF-8 become \xNN.
std::string printable(std::string_view s, size_t max = 200);

}  // namespace uvs::log

#define UVS_LOG(lvl, session, ...)                                               \
  do {                                                                          \
    if (::uvs::log::enabled(lvl)) ::uvs::log::format(lvl, session, "", __VA_ARGS__); \
  } while (0)
