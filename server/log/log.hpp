// log/log.hpp: the process logger: one line per event, text or JSON, syslog levels, thread-safe.
#pragma once
#include <cstdarg>
#include <string>
#include <string_view>

namespace uvs::log {

enum Level { emerg = 0, alert, crit, err, warning, notice, info, debug };

void set_level(int level);
int level();
void set_json(bool json);
// "info" -> info; false if unknown.
bool parse_level(std::string_view name, int &out);

// session may be empty; source is the plugin instance or "" for the core.
void write(int level, std::string_view session, std::string_view source, std::string_view msg);
void vformat(int level, std::string_view session, std::string_view source, const char *fmt,
             va_list ap);
void format(int level, std::string_view session, std::string_view source, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

inline bool enabled(int lvl) { return lvl <= level(); }

// Make untrusted text safe for one log line: control bytes and non-UTF-8 become \xNN.
std::string printable(std::string_view s, size_t max = 200);

}  // namespace uvs::log

#define UVS_LOG(lvl, session, ...)                                               \
  do {                                                                          \
    if (::uvs::log::enabled(lvl)) ::uvs::log::format(lvl, session, "", __VA_ARGS__); \
  } while (0)
