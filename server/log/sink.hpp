// log/sink.hpp: where log lines go: stderr (default), a file opened for append (reopened on
// SIGHUP, for logrotate), or syslog (openlog with LOG_PID); plus the syslog name/level maps.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace uvs::log {

enum class Destination { standard_error, file, syslog };

// "stderr" | "file" | "syslog" -> Destination; false if unknown.
bool parse_destination(std::string_view name, Destination &out);
// syslog facility names as in syslog.conf ("mail", "daemon", "local0".."local7", ...) ->
// LOG_MAIL, ...; false if unknown. `kern` is not offered: user processes cannot log to it.
bool syslog_facility(std::string_view name, int &out);
const std::vector<std::string> &syslog_facility_names();
// A logger level (emerg 0 .. debug 7, syslog's order) -> the syslog priority (LOG_EMERG ..
// LOG_DEBUG); out-of-range levels are clamped.
int syslog_priority(int level);

// Switches the destination. For `file`, opens `path` (O_APPEND|O_CREAT, mode 0640) and fails
// with err = "cannot open log file <path>: <reason>" (the previous destination stays). For
// `syslog`, calls openlog("uvsmtpd", LOG_PID | LOG_NDELAY, facility).
bool open_sink(Destination d, const std::string &path, int facility, std::string &err);
Destination sink_destination();
// file destination: opens the path again (after logrotate renamed it) and switches to the new
// file; on failure keeps writing to the old one and returns false with err. Other
// destinations: nothing to do, true.
bool reopen_sink(std::string &err);

// --check-config: can the log file be opened (created if missing) as a start would open it?
// Opens and closes it; false with err as a start would report it.
bool probe_log_file(const std::string &path, std::string &err);
// Writes one complete line (ending in '\n'): one write(2) for stderr and file (no fsync);
// syslog gets the line without its '\n' at syslog_priority(level). Thread-safe.
void sink_write(int level, std::string_view line);

}  // namespace uvs::log
