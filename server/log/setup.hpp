// log/setup.hpp: applies the [log] settings to the logger: at start, and on SIGHUP (reopen the
// log file for logrotate, take the new level and format).
#pragma once
#include <string>

#include "config/settings.hpp"

namespace uvs::log {

// At start (before privileges are dropped, so a root-owned log directory works): level,
// format and destination. false with err ("cannot open log file ...") if the file cannot be
// opened; the logger then still writes to stderr.
bool setup(const config::Settings &s, std::string &err);
// SIGHUP, before the configuration is read again: the file destination opens its path again
// (logrotate has renamed the old file). A failure is logged; the old file stays in use.
void reopen();
// SIGHUP, after a successful reload: the new level and format apply at once; a changed
// destination, file or facility needs a restart (logged as a warning).
void reload(const config::Settings &s);

}  // namespace uvs::log
