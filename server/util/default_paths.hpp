// util/default_paths.hpp: the directories uvsmtpd uses when neither the command line nor
// uvsmtpd.toml names them: the build tree's when the running binary is build/server/uvsmtpd,
// the installed ones otherwise (so an installed binary never loads plugins from a build tree).
#pragma once
#include <string>

namespace uvs {

// Decided once, on the first call, from /proc/self/exe (a later rebuild replacing the file does
// not change the answer for the running process).
bool running_from_build_tree();
// Build tree: "conf" (relative to the working directory). Installed: <sysconfdir>/uvsmtpd.
std::string default_config_dir();
// Build tree: <build>/plugins. Installed: <libdir>/uvsmtpd/plugins.
std::string default_plugin_dir();

}  // namespace uvs
