// cli/list_plugins.hpp: --list-plugins: every module in the plugin directory with the name,
// version and ABI its uvs_plugin_info declares, and the hooks of its conf/plugins instances.
#pragma once
#include <cstdio>
#include <string>

#include "plugin_host/host.hpp"

namespace uvs::cli {

// gen: the loaded configuration (its instances give the hooks); nullptr = hooks not shown.
// Returns the number of modules that could not be read as plugins.
int list_plugins(FILE *out, const std::string &plugin_dir, const Generation *gen);

}  // namespace uvs::cli
