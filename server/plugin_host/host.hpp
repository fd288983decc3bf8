// plugin_host/host.hpp: loading conf/plugins into a PluginSet (dlopen, version checks, init),
// and loading a Generation (config/generation.hpp): at start and on SIGHUP.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/generation.hpp"
#include "config/plugin_lines.hpp"
#include "config/settings.hpp"

namespace uvs {

// Loads every line; hook_timeout_s is what hook_timeout_ms() (1.3) reports. On error returns nullptr and err = "<file>:<line>: <message>".
std::shared_ptr<PluginSet> load_plugins(const std::vector<config::PluginLine> &lines,
                                        const std::string &plugin_dir,
                                        const std::string &config_dir, const std::string &me,
                                        std::string &err, double hook_timeout_s = 30);

// The modules in plugin_dir (every *.so below it, as "name" or "queue/maildir"), sorted.
std::vector<std::string> list_modules(const std::string &plugin_dir);

// dlopens path (once per process) and returns its checked uvs_plugin_info without running any
// plugin code but its constructors; nullptr with err on failure.
const uvs_plugin_info *probe_module(const std::string &path, std::string &err);

// Adds in-process handlers (unit tests, built-ins): an instance with this name and handlers.
uvs_plugin *add_builtin(PluginSet &set, const std::string &name);

// The function table handed to plugins.
const uvs_api *plugin_api();

// Reads <config_dir>/uvsmtpd.toml and <config_dir>/plugins and loads the plugins.
// listen_override: --listen values (replace the file's list when not empty).
std::shared_ptr<Generation> load_generation(const std::string &config_dir,
                                            const std::vector<config::Listen> &listen_override,
                                            const std::string &plugin_dir_override,
                                            std::string &err, bool with_plugins = true);

}  // namespace uvs
