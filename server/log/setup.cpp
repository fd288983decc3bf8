// log/setup.cpp: [log] settings -> logger and sink (see setup.hpp).
#include "log/setup.hpp"

#include "log/log.hpp"
#include "log/sink.hpp"

namespace uvs::log {
namespace {
// The destination in use, as configured: reload compares against it.
std::string g_destination, g_file, g_facility;

void apply_level_format(const config::Settings &s) {
  int lvl = info;
  parse_level(s.log_level, lvl);
  set_level(lvl);
  set_json(s.log_format == "json");
}
}  // namespace

bool setup(const config::Settings &s, std::string &err) {
  apply_level_format(s);
  Destination d = Destination::standard_error;
  int facility = 0;
  parse_destination(s.log_destination, d);
  syslog_facility(s.log_syslog_facility, facility);
  if (!open_sink(d, s.log_file, facility, err)) return false;
  g_destination = s.log_destination;
  g_file = s.log_file;
  g_facility = s.log_syslog_facility;
  return true;
}

void reopen() {
  std::string err;
  if (!reopen_sink(err))
    format(log::err, "", "", "SIGHUP: %s; still writing to the previous file", err.c_str());
}

void reload(const config::Settings &s) {
  apply_level_format(s);
  if (s.log_destination != g_destination || (g_destination == "file" && s.log_file != g_file) ||
      (g_destination == "syslog" && s.log_syslog_facility != g_facility))
    format(warning, "", "",
           "SIGHUP: [log] destination, file and syslog_facility change only "
           "on restart; still logging as before");
}

}  // namespace uvs::log
