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
// Build tree: <build>/plugins. Installed: the plugin directory relative to the binary, as the
// install laid them out (<sbindir> to <libdir>/uvsmtpd/plugins, e.g.
// <bindir of the binary>/../lib/x86_64-linux-gnu/uvsmtpd/plugins), so a tree moved elsewhere
// (a DESTDIR, an unpacked package) loads its own plugins; when that directory does not exist
// (the binary copied on its own), the configured <libdir>/uvsmtpd/plugins. Decided once.
std::string default_plugin_dir();

// The installed-layout rule of default_plugin_dir() on its own terms: the plugin directory for a
// binary in exe_dir, given the configured install directories of the binary and the plugins.
// Empty exe_dir, or a candidate that is not a directory: plugin_dir as configured.
std::string plugin_dir_for(const std::string &exe_dir, const std::string &sbin_dir,
                           const std::string &plugin_dir);

}  // namespace uvs
