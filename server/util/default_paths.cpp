// util/default_paths.cpp: build-tree or installed defaults (see default_paths.hpp).
#include "util/default_paths.hpp"

#include <filesystem>
#include <system_error>

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

std::string plugin_dir_for(const std::string &exe_dir, const std::string &sbin_dir,
                           const std::string &plugin_dir) {
  namespace fs = std::filesystem;
  if (exe_dir.empty()) return plugin_dir;
  const fs::path rel = fs::path(plugin_dir).lexically_relative(sbin_dir);
  if (rel.empty()) return plugin_dir;
  const fs::path candidate = (fs::path(exe_dir) / rel).lexically_normal();
  std::error_code ec;
  if (!fs::is_directory(candidate, ec)) return plugin_dir;
  std::string s = candidate.string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string default_plugin_dir() {
  if (running_from_build_tree()) return UVS_BUILD_PLUGIN_DIR;
  static const std::string installed =
      plugin_dir_for(self_exe_dir(), UVS_INSTALL_SBIN_DIR, UVS_INSTALL_PLUGIN_DIR);
  return installed;
}

}  // namespace uvs
