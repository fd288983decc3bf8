// config/generation.hpp: the Generation (settings + loaded plugins + derived lists) that sessions
// share and SIGHUP replaces, and the PluginSet it holds. Loading lives in plugin_host/host.hpp;
// this header lets the session and the server use a Generation without the loader.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "hooks/runner.hpp"
#include "util/cidr.hpp"

namespace uvs {

struct PluginSet {
  std::vector<std::unique_ptr<uvs_plugin>> instances;
  HookTable table;
  PluginSet() = default;
  PluginSet(const PluginSet &) = delete;
  PluginSet &operator=(const PluginSet &) = delete;
  ~PluginSet();  // calls each instance's fini (plugin_host/host.cpp)
};

struct Generation {
  config::Settings settings;
  std::string config_dir;
  std::shared_ptr<PluginSet> plugins;
  CidrList normalize_networks;
  std::string plugin_dir;  // resolved
};

}  // namespace uvs
