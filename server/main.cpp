// main.cpp: uvsmtpd's command line: load and check the configuration, bind, run the loop.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <uv.h>

#include "config/settings.hpp"
#include "log/log.hpp"
#include "log/setup.hpp"
#include "net/server.hpp"
#include "plugin_host/host.hpp"
#include "util/default_paths.hpp"
#include "util/privileges.hpp"
#include "uvs_build_config.h"

namespace {

void usage(FILE *f) {
  fprintf(f,
          "usage: uvsmtpd [--config DIR] [--listen ADDR:PORT]... [--plugin-dir DIR]\n"
          "               [--no-sync-check] [--check-config] [--version]\n"
          "  --config DIR      configuration directory (uvsmtpd.toml, plugins, list files);\n"
          "                    default " UVS_INSTALL_CONFIG_DIR "\n"
          "                    (./conf for the binary in the build tree)\n"
          "  --listen ADDR:PORT  listen here instead of the configured list (repeatable;\n"
          "                    [IPv6]:port; port 0 picks a free port, logged at start)\n"
          "  --plugin-dir DIR  where plugin .so files live (overrides plugin_dir)\n"
          "  --no-sync-check   turn the RFC 2920 synchronisation check off on every listener\n"
          "  --check-config    load everything, report the first error, exit 0 or 1\n"
          "  --version         print the version and exit\n");
}

}  // namespace

int main(int argc, char **argv) {
  std::string config_dir = uvs::default_config_dir();
  std::string plugin_dir;
  std::vector<uvs::config::Listen> listen;
  bool check_only = false;
  bool no_sync_check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *name) -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "uvsmtpd: %s needs a value\n", name);
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--config") {
      config_dir = value("--config");
    } else if (a == "--plugin-dir") {
      plugin_dir = value("--plugin-dir");
    } else if (a == "--listen") {
      uvs::config::Listen l;
      std::string v = value("--listen");
      if (!uvs::config::parse_listen(v, l)) {
        fprintf(stderr, "uvsmtpd: --listen %s: expected ADDR:PORT or [IPv6]:PORT\n", v.c_str());
        return 2;
      }
      listen.push_back(l);
    } else if (a == "--no-sync-check") {
      no_sync_check = true;
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--version") {
      printf("uvsmtpd %s (plugin ABI %d.%d)\n", UVS_VERSION, UVS_ABI_MAJOR, UVS_ABI_MINOR);
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "uvsmtpd: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }

  signal(SIGPIPE, SIG_IGN);
  std::string err;
  auto load_with = [&](std::string &e, bool with_plugins) {
    auto g = uvs::load_generation(config_dir, listen, plugin_dir, e, with_plugins);
    if (g && no_sync_check)
      for (auto &l : g->settings.listen) l.sync_check = false;
    return g;
  };
  auto load = [&](std::string &e) { return load_with(e, true); };
  // --check-config loads everything; a real start binds first, drops root, then loads plugins
  // (so no plugin code ever runs as root).
  auto gen = load_with(err, check_only);
  if (!gen) {
    fprintf(stderr, "uvsmtpd: %s\n", err.c_str());
    return 1;
  }
  if (check_only) {
    printf("uvsmtpd: configuration OK (%s, %zu plugin instance(s))\n", config_dir.c_str(),
           gen->plugins->instances.size());
    return 0;
  }
  // [log]: level, format, destination (a log file is opened here, before privileges drop).
  if (!uvs::log::setup(gen->settings, err)) {
    fprintf(stderr, "uvsmtpd: %s\n", err.c_str());
    return 1;
  }

  // Before anything uses libuv's thread pool: its size (fsyncs of queue plugins run there in
  // parallel). The environment variable, when set, wins.
  if (!getenv("UV_THREADPOOL_SIZE"))
    setenv("UV_THREADPOOL_SIZE", std::to_string(gen->settings.thread_pool_size).c_str(), 1);
  uv_loop_t *loop = uv_default_loop();
  const uvs::config::Settings settings = gen->settings;
  int rc = 0;
  {
    uvs::Server server(loop, gen, load);
    gen.reset();
    if (!server.listen(err)) {
      fprintf(stderr, "uvsmtpd: %s\n", err.c_str());
      server.begin_shutdown("startup failure");
      server.run();
      rc = 1;
    } else if (auto full = [&]() -> std::shared_ptr<uvs::Generation> {
                 if (!uvs::drop_privileges(settings.user, settings.group, err)) return nullptr;
                 return load(err);
               }();
               !full) {
      fprintf(stderr, "uvsmtpd: %s\n", err.c_str());
      server.begin_shutdown("startup failure");
      server.run();
      rc = 1;
    } else {
      server.set_generation(full);
      full.reset();
      server.announce();
      uvs::log::format(uvs::log::notice, "", "", "uvsmtpd %s started (pid %d)", UVS_VERSION,
                       static_cast<int>(getpid()));
      rc = server.run();
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);  // let the last close callbacks run
  uv_loop_close(loop);
  return rc;
}
