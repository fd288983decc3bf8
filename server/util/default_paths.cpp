// util/default_paths.cpp: build-tree or installed defaults (see default_paths.hpp).
#include "util/default_paths.hpp"

#include "util/self_exe.hpp"
#include "uvs_build_config.h"

namespace uvs {

bool running_from_build_tree() {
  static const bool in_build = self_exe_is(UVS_BUILD_EXE);
  return in_build;
}

std::string default_config_dir() {
  return running_from_build_tree() ? "conf" : UVS_INSTALL_CONFIG_DIR;
}

std::string default_plugin_dir() {
  return running_from_build_tree() ? UVS_BUILD_PLUGIN_DIR : UVS_INSTALL_PLUGIN_DIR;
}

}  // namespace uvs
