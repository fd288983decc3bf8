// cli/list_plugins.cpp: the table printed by --list-plugins (see list_plugins.hpp).
#include "cli/list_plugins.hpp"

#include <map>
#include <vector>

#include "hooks/call.hpp"
#include "hooks/hook_names.hpp"

namespace uvs::cli {

int list_plugins(FILE *out, const std::string &plugin_dir, const Generation *gen) {
  // instance -> hooks it registered, and module -> its instances in conf/plugins order.
  std::map<const uvs_plugin *, std::vector<std::string>> hooks;
  std::map<std::string, std::vector<const uvs_plugin *>> instances;
  if (gen && gen->plugins) {
    for (int h = 1; h <= kHookMax; ++h)
      for (const auto &handler : gen->plugins->table.by_hook[h])
        hooks[handler.plugin].push_back(std::string(hook_name(h)));
    for (const auto &p : gen->plugins->instances) instances[p->module].push_back(p.get());
  }
  std::vector<std::string> modules = list_modules(plugin_dir);
  fprintf(out, "# plugin dir: %s (%zu module(s))\n", plugin_dir.c_str(), modules.size());
  fprintf(out, "%-30s %-28s %-8s %-5s %s\n", "# MODULE", "NAME", "VERSION", "ABI",
          "HOOKS (per conf/plugins instance)");
  int bad = 0;
  for (const auto &m : modules) {
    std::string err;
    const uvs_plugin_info *info = probe_module(plugin_dir + "/" + m + ".so", err);
    if (!info) {
      fprintf(out, "%-30s %-28s %-8s %-5s not a loadable plugin: %s\n", m.c_str(), "-", "-", "-",
              err.c_str());
      ++bad;
      continue;
    }
    std::string abi = std::to_string(info->abi_major) + "." + std::to_string(info->abi_minor);
    std::string hook_text;
    auto it = instances.find(m);
    if (it == instances.end()) {
      hook_text = gen ? "- (not in conf/plugins; hooks are known once init has run)"
                      : "- (configuration not loaded)";
    } else {
      for (const uvs_plugin *p : it->second) {
        std::string list;
        for (const auto &h : hooks[p]) list += (list.empty() ? "" : ",") + h;
        hook_text +=
            (hook_text.empty() ? "" : "; ") + p->instance + ": " + (list.empty() ? "(none)" : list);
      }
    }
    fprintf(out, "%-30s %-28s %-8s %-5s %s\n", m.c_str(), info->name ? info->name : "?",
            info->version ? info->version : "?", abi.c_str(), hook_text.c_str());
  }
  return bad;
}

}  // namespace uvs::cli
