// plugin_host/host.cpp: the plugin loader (dlopen, the versioned entry symbol, size and version
// checks before any plugin code runs, init) and the Generation loader used at start and SIGHUP.
#include "plugin_host/host.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <algorithm>
#include <dlfcn.h>
#include <filesystem>
#include <map>
#include <sys/stat.h>
#include <uv.h>

#include "log/log.hpp"
#include "util/default_paths.hpp"

namespace uvs {

PluginSet::~PluginSet() {
  // Retire in reverse order of loading; the shared objects stay mapped (never dlclose'd).
  for (auto it = instances.rbegin(); it != instances.rend(); ++it) {
    uvs_plugin *p = it->get();
    p->timers.retire();  // no timer of the instance runs during or after its fini
    if (p->initialised && p->info && p->info->fini) p->info->fini(p);
  }
}

uvs_plugin *add_builtin(PluginSet &set, const std::string &name) {
  auto p = std::make_unique<uvs_plugin>();
  p->instance = name;
  p->module = name;
  p->initialised = true;
  set.instances.push_back(std::move(p));
  return set.instances.back().get();
}

namespace {

std::string where(const config::PluginLine &l) { return l.file + ":" + std::to_string(l.line) + ": "; }

// One dlopen per path for the life of the process: instances and reloads share it.
void *open_module(const std::string &path, std::string &err) {
  static std::map<std::string, void *> handles;
  auto it = handles.find(path);
  if (it != handles.end()) return it->second;
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    err = e ? e : "dlopen failed";
    return nullptr;
  }
  handles[path] = h;
  return h;
}

constexpr size_t kMinInfoSize = offsetof(uvs_plugin_info, fini) + sizeof(void (*)(uvs_plugin *));

std::string joined(const std::vector<std::string> &v) {
  std::string out;
  for (const auto &s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

std::vector<std::string> list_modules(const std::string &plugin_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(plugin_dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path &p = it->path();
    std::string name = p.filename().string();
    if (it->is_directory(ec) && name.size() > 5 && name.ends_with(".so.p")) {
      it.disable_recursion_pending();  // meson's object directories
      continue;
    }
    if (p.extension() != ".so" || !it->is_regular_file(ec)) continue;
    std::string rel = p.lexically_relative(plugin_dir).string();  // symlinks kept as named
    out.push_back(rel.substr(0, rel.size() - 3));
  }
  std::sort(out.begin(), out.end());
  return out;
}

const uvs_plugin_info *probe_module(const std::string &path, std::string &err) {
  std::string dlerr;
  void *h = open_module(path, dlerr);
  if (!h) {
    err = "cannot load: " + dlerr;
    return nullptr;
  }
  auto *info = static_cast<const uvs_plugin_info *>(dlsym(h, "uvs_plugin_v1"));
  if (!info) {
    err = "no uvs_plugin_v1 symbol (not a uvsmtpd plugin)";
    return nullptr;
  }
  if (info->size < kMinInfoSize) {
    err = "uvs_plugin_info too small (" + std::to_string(info->size) + " bytes)";
    return nullptr;
  }
  return info;
}

std::shared_ptr<PluginSet> load_plugins(const std::vector<config::PluginLine> &lines,
                                        const std::string &plugin_dir,
                                        const std::string &config_dir, const std::string &me,
                                        std::string &err, double hook_timeout_s) {
  auto set = std::make_shared<PluginSet>();
  for (const auto &line : lines) {
    std::string path = plugin_dir + "/" + line.module + ".so";
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      int e = errno;
      err = where(line) + "plugin '" + line.module + "': cannot find " + path + ": " + strerror(e);
      if (e == ENOENT) {
        auto have = list_modules(plugin_dir);
        err += have.empty() ? "; no plugins at all in " + plugin_dir + " (check plugin_dir / --plugin-dir)"
                            : "; available: " + joined(have);
      }
      return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
      err = where(line) + "plugin '" + line.module + "': " + path + " is not a regular file";
      return nullptr;
    }
    std::string dlerr;
    void *h = open_module(path, dlerr);
    if (!h) {
      err = where(line) + "plugin '" + line.module + "': cannot load " + path + ": " + dlerr;
      return nullptr;
    }
    auto *info = static_cast<const uvs_plugin_info *>(dlsym(h, "uvs_plugin_v1"));
    if (!info) {
      err = where(line) + "plugin '" + line.module + "': " + path +
            " has no uvs_plugin_v1 symbol (not a uvsmtpd plugin, or built without UVS_PLUGIN)";
      return nullptr;
    }
    if (info->size < kMinInfoSize) {
      err = where(line) + "plugin '" + line.module + "': uvs_plugin_info too small (" +
            std::to_string(info->size) + " bytes)";
      return nullptr;
    }
    if (info->abi_major != UVS_ABI_MAJOR) {
      err = where(line) + "plugin '" + line.module + "': built for ABI " +
            std::to_string(info->abi_major) + "." + std::to_string(info->abi_minor) +
            ", this server speaks ABI " + std::to_string(UVS_ABI_MAJOR) + "." +
            std::to_string(UVS_ABI_MINOR);
      return nullptr;
    }
    // abi_minor is the oldest server minor the plugin runs on (UVS_PLUGIN_MIN_ABI_MINOR): it
    // may have been built against a newer header and test the newer members with UVS_API_HAS.
    if (info->abi_minor > UVS_ABI_MINOR) {
      err = where(line) + "plugin '" + line.module + "': needs ABI " +
            std::to_string(info->abi_major) + "." + std::to_string(info->abi_minor) +
            ", newer than this server's " + std::to_string(UVS_ABI_MAJOR) + "." +
            std::to_string(UVS_ABI_MINOR) + " (upgrade uvsmtpd)";
      return nullptr;
    }
    if (!info->init) {
      err = where(line) + "plugin '" + line.module + "': no init function";
      return nullptr;
    }
    auto p = std::make_unique<uvs_plugin>();
    p->instance = line.instance;
    p->module = line.module;
    p->args = line.args;
    p->config_dir = config_dir;
    p->me = me;
    p->loop = uv_default_loop();
    p->hook_timeout_ms = static_cast<int64_t>(hook_timeout_s * 1000 + 0.5);
    p->info = info;
    p->registering = &set->table;
    p->owner = set;  // kv_* operations keep the set (and so the instance) alive
    uvs_plugin *raw = p.get();
    set->instances.push_back(std::move(p));
    int rc = info->init(raw, plugin_api());
    raw->registering = nullptr;
    if (rc != 0) {
      err = where(line) + "plugin '" + line.instance + "' failed to initialise: " +
            (raw->error.empty() ? std::string(strerror(rc < 0 ? -rc : rc)) : raw->error);
      set->instances.pop_back();  // its fini does not run: init did not succeed
      return nullptr;
    }
    raw->initialised = true;
    log::format(log::debug, "", "", "loaded %s (%s %s, needs ABI %u.%u) from %s",
                line.instance.c_str(), info->name ? info->name : "?",
                info->version ? info->version : "?", static_cast<unsigned>(info->abi_major),
                static_cast<unsigned>(info->abi_minor), path.c_str());
  }
  return set;
}

std::shared_ptr<Generation> load_generation(const std::string &config_dir,
                                            const std::vector<config::Listen> &listen_override,
                                            const std::string &plugin_dir_override,
                                            std::string &err, bool with_plugins) {
  auto gen = std::make_shared<Generation>();
  gen->config_dir = config_dir;
  struct stat dst {};
  errno = 0;
  if (stat(config_dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode)) {
    int e = errno;
    std::string what = !S_ISDIR(dst.st_mode) && e == 0 ? "is not a directory"
                       : e == ENOENT                   ? "does not exist"
                                                       : std::string("cannot be read: ") + strerror(e);
    err = "configuration directory " + config_dir + " " + what +
          ": give --config the directory that holds uvsmtpd.toml and plugins";
    return nullptr;
  }
  std::string toml_path = config_dir + "/uvsmtpd.toml";
  if (stat(toml_path.c_str(), &dst) != 0 && errno == ENOENT) {
    err = toml_path + ": does not exist: create it (an empty file means every built-in default; "
          "uvsmtpd --print-defaults prints them)";
    return nullptr;
  }
  if (!config::load_settings(toml_path, gen->settings, err, false)) return nullptr;
  if (!listen_override.empty()) gen->settings.listen = listen_override;
  for (const auto &cidr : gen->settings.bare_newline_normalize_networks) gen->normalize_networks.add(cidr);

  std::string dir = plugin_dir_override.empty() ? gen->settings.plugin_dir : plugin_dir_override;
  // The build tree's plugins only for the binary in the build tree: an installed binary uses
  // the installed plugin directory even while a build tree exists.
  if (dir.empty()) dir = default_plugin_dir();
  gen->plugin_dir = dir;

  if (!with_plugins) {
    gen->plugins = std::make_shared<PluginSet>();
    return gen;
  }
  std::vector<config::PluginLine> lines;
  std::string plugins_file = config_dir + "/plugins";
  struct stat st;
  if (stat(plugins_file.c_str(), &st) == 0) {
    if (!config::parse_plugins_file(plugins_file, lines, err)) return nullptr;
  } else {
    log::format(log::warning, "", "", "%s not found: no plugins loaded", plugins_file.c_str());
  }
  gen->plugins = load_plugins(lines, dir, config_dir, gen->settings.hostname, err,
                              gen->settings.hook_timeout);
  if (!gen->plugins) return nullptr;
  return gen;
}

}  // namespace uvs
