// main.cpp: uvsmtpd's command line: load and check the configuration, bind, run the loop.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <uv.h>

#include "cli/checks.hpp"
#include "cli/list_plugins.hpp"
#include "cli/print_config.hpp"
#include "cli/queue_tool.hpp"
#include "config/settings.hpp"
#include "log/log.hpp"
#include "log/setup.hpp"
#include "log/sink.hpp"
#include "net/server.hpp"
#include "state/service.hpp"
#include "plugin_host/host.hpp"
#include "util/default_paths.hpp"
#include "util/privileges.hpp"
#include "uvs_build_config.h"
#include "workers/role.hpp"
#include "workers/supervisor.hpp"

namespace {

void usage(FILE *f) {
  fprintf(f,
          "usage: uvsmtpd [--config DIR] [--listen ADDR:PORT]... [--plugin-dir DIR]\n"
          "               [--no-sync-check] [--check-config] [--print-config]\n"
          "               [--print-defaults] [--list-plugins] [--version]\n"
          "       uvsmtpd queue [--config DIR | --queue-dir DIR] list|show ID|delete ID|hold ID|\n"
          "               release ID|flush [ID]   (the outbound queue; uvsmtpd queue --help)\n"
          "  --config DIR      configuration directory (uvsmtpd.toml, plugins, list files);\n"
          "                    default " UVS_INSTALL_CONFIG_DIR
          "\n"
          "                    (./conf for the binary in the build tree)\n"
          "  --listen ADDR:PORT  listen here instead of the configured list (repeatable;\n"
          "                    [IPv6]:port; port 0 picks a free port, logged at start)\n"
          "  --plugin-dir DIR  where plugin .so files live (overrides plugin_dir)\n"
          "  --no-sync-check   turn the RFC 2920 synchronisation check off on every listener\n"
          "  --check-config    load everything as a start would (settings, TLS certificates,\n"
          "                    plugins as the run-as user), report the first error, exit 0 or 1\n"
          "  --print-config    print the effective settings (file, defaults, options) as TOML\n"
          "  --print-defaults  print the built-in default settings as TOML\n"
          "  --list-plugins    list the modules in the plugin directory (name, version, ABI) and\n"
          "                    the hooks of each conf/plugins instance\n"
          "  --version         print the version and exit\n");
}

}  // namespace

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "queue") == 0)
    return uvs::cli::queue_main(argc - 2, argv + 2, uvs::default_config_dir());
  std::string config_dir = uvs::default_config_dir();
  std::string plugin_dir;
  std::vector<uvs::config::Listen> listen;
  bool check_only = false;
  bool no_sync_check = false;
  bool print_config = false, print_defaults = false, list_only = false;
  uvs::workers::Role role;  // set by the supervisor's internal options in a worker process
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
    } else if (a == "--worker" || a == "--worker-listener") {
      std::string v = value(a.c_str());
      if (!uvs::workers::parse_role_option(a, v, role)) {
        fprintf(stderr, "uvsmtpd: %s %s: an internal option of worker processes\n", a.c_str(),
                v.c_str());
        return 2;
      }
    } else if (a == "--no-sync-check") {
      no_sync_check = true;
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--print-config") {
      print_config = true;
    } else if (a == "--print-defaults") {
      print_defaults = true;
    } else if (a == "--list-plugins") {
      list_only = true;
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

  if (print_defaults) {
    uvs::cli::print_settings(stdout, uvs::config::default_settings(),
                             "uvsmtpd --print-defaults: the built-in defaults (hostname: this "
                             "host's name)");
    return 0;
  }

  signal(SIGPIPE, SIG_IGN);
  uvs::log::set_worker(role.index);  // a worker names itself in every log line
  std::string err;
  bool logging = false;  // log::format once the configured logging is set up; stderr before
  auto warn = [&](const std::vector<std::string> &warnings) {
    for (const auto &w : warnings) {
      if (logging)
        uvs::log::format(uvs::log::warning, "", "", "%s", w.c_str());
      else
        fprintf(stderr, "uvsmtpd: warning: %s\n", w.c_str());
    }
  };
  auto load_with = [&](std::string &e, bool with_plugins) {
    auto g = uvs::load_generation(config_dir, listen, plugin_dir, e, with_plugins);
    if (g && no_sync_check)
      for (auto &l : g->settings.listen) l.sync_check = false;
    // A worker serves the listeners its supervisor bound, whatever the file says now (a
    // listen change needs a restart, as on SIGHUP).
    if (g && role.index > 0) g->settings.listen = role.listen;
    return g;
  };
  // Everything a start (or SIGHUP) loads once running as the run-as user: the plugins, then the
  // spool directory and the queue plugin checks.
  auto load = [&](std::string &e) -> std::shared_ptr<uvs::Generation> {
    auto g = load_with(e, true);
    std::vector<std::string> warnings;
    if (!g || !uvs::cli::check_spool(g->settings, config_dir, e) ||
        !uvs::cli::check_queue(*g, warnings, e))
      return nullptr;
    uvs::cli::check_auth(*g, warnings);
    warn(warnings);
    return g;
  };
  auto fail = [&](const std::string &e) {
    fprintf(stderr, "uvsmtpd: %s\n", e.c_str());
    return 1;
  };
  // A log file that cannot be opened: where it is configured and what to do.
  auto log_file_error = [&](const uvs::config::Settings &s, const std::string &e) {
    if (s.log_destination != "file") return e;
    std::string who = s.user.empty() ? "uvsmtpd" : "user " + s.user;
    return uvs::cli::where_key(config_dir, "log.file") + e + ": the file (or, while it does not " +
           "exist, its directory) must be writable by " + who + "; or change [log] file";
  };
  // A real start loads only the settings here: it binds first, drops root, then loads plugins
  // (so no plugin code ever runs as root). --check-config and --list-plugins drop root the
  // same way before they load plugins.
  auto gen = load_with(err, false);
  if (!gen) return fail(err);
  if (print_config) {
    uvs::config::Settings shown = gen->settings;
    if (!plugin_dir.empty()) shown.plugin_dir = plugin_dir;
    uvs::cli::print_settings(stdout, shown,
                             "uvsmtpd --print-config: effective settings of " + config_dir +
                                 "/uvsmtpd.toml (built-in defaults for keys it does not set, "
                                 "command-line options applied)");
    return 0;
  }
  if (!uvs::cli::check_accounts(gen->settings, config_dir, err)) return fail(err);
  if (check_only || list_only) {
    std::vector<std::string> warnings;
    if (check_only &&
        !uvs::cli::check_bind_privilege(gen->settings, config_dir, !listen.empty(), err))
      return fail(err);
    // As a start: the certificates are read before root is dropped.
    if (check_only && !uvs::cli::check_tls(gen->settings, err)) return fail(err);
    if (!uvs::cli::become_run_as_user(gen->settings, config_dir, warnings, err)) return fail(err);
    warn(warnings);
    if (check_only && gen->settings.log_destination == "file" &&
        !uvs::log::probe_log_file(gen->settings.log_file, err))
      return fail(log_file_error(gen->settings, err));
    if (list_only) {
      auto full = load_with(err, true);
      if (!full) fprintf(stderr, "uvsmtpd: %s (hooks not shown)\n", err.c_str());
      uvs::cli::list_plugins(stdout, gen->plugin_dir, full.get());
      fflush(stdout);  // the whole list before the plugins' fini lines (stderr) at the return
      return full ? 0 : 1;
    }
    auto full = load(err);
    if (!full) return fail(err);
    printf("uvsmtpd: configuration OK (%s, %zu plugin instance(s))\n", config_dir.c_str(),
           full->plugins->instances.size());
    return 0;
  }
  // [log]: level, format, destination. A log file is opened here, before privileges drop, but
  // with the run-as user's rights (created as that user, never through a symbolic link), so the
  // reopen at SIGHUP, by then as that user, finds what the start found.
  if (!uvs::as_user(
          gen->settings.user, gen->settings.group,
          [&] { return uvs::log::setup(gen->settings, err); }, err))
    return fail(log_file_error(gen->settings, err));
  logging = true;

  // workers = N > 1: this process becomes the supervisor; the workers run the code below.
  if (role.index == 0 && gen->settings.workers > 1) {
    uvs::workers::SupervisorConfig sc;
    sc.args.assign(argv, argv + argc);
    sc.settings = gen->settings;
    sc.listen_where = listen.empty() ? uvs::cli::where_key(config_dir, "listen") : "--listen: ";
    sc.metrics_where = uvs::cli::where_key(config_dir, "metrics.listen");
    sc.reload = [&](uvs::config::Settings &out, std::string &e) {
      auto g = load_with(e, false);
      if (g) out = g->settings;
      return g != nullptr;
    };
    gen.reset();
    uvs::log::set_worker(uvs::log::kSupervisor);
    return uvs::workers::run_supervisor(sc);
  }

  // Before anything uses libuv's thread pool: its size (fsyncs of queue plugins run there in
  // parallel). The environment variable, when set, wins.
  if (!getenv("UV_THREADPOOL_SIZE"))
    setenv("UV_THREADPOOL_SIZE", std::to_string(gen->settings.thread_pool_size).c_str(), 1);
  uv_loop_t *loop = uv_default_loop();
  const uvs::config::Settings settings = gen->settings;
  int rc = 0;
  {
    // Shared state (uvs_api.kv_*): made before any plugin loads, kept across reloads, stopped
    // with the server and destroyed after it (so after every plugin's fini).
    uvs::state::Service state(loop, settings.state);
    uvs::state::install(&state);
    uvs::Server server(loop, gen, load);
    gen.reset();
    if (role.index > 0 && !server.attach_supervisor(role.channel_fd, err)) {
      fprintf(stderr, "uvsmtpd: %s\n", err.c_str());
      server.begin_shutdown("startup failure");
      server.run();
      rc = 1;
    } else if (!server.load_tls(err)) {
      fprintf(stderr, "uvsmtpd: %s\n", err.c_str());
      server.begin_shutdown("startup failure");
      server.run();
      rc = 1;
    } else if (role.index > 0 ? !server.adopt(role.fds, err) : !server.listen(err)) {
      fprintf(stderr, "uvsmtpd: %s%s\n",
              listen.empty() ? uvs::cli::where_key(config_dir, "listen").c_str() : "--listen: ",
              err.c_str());
      server.begin_shutdown("startup failure");
      server.run();
      rc = 1;
    } else if (!server.listen_metrics(err, role.index == 0)) {
      fprintf(stderr, "uvsmtpd: %s%s\n", uvs::cli::where_key(config_dir, "metrics.listen").c_str(),
              err.c_str());
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
      // Worker processes: the supervisor announces the listeners once all serve, and one
      // process, worker 1, delivers the outbound queue (docs/queue.md). Delivery starts after
      // the plugins: queue/outbound made the directory.
      if (role.index == 0) server.announce();
      if (role.index <= 1 && !server.start_delivery(err))
        uvs::log::format(uvs::log::err, "", "", "%s (no outbound delivery)", err.c_str());
      if (role.index > 0) {
        uvs::log::format(uvs::log::notice, "", "", "started (uvsmtpd %s, pid %d)", UVS_VERSION,
                         static_cast<int>(getpid()));
        server.tell_supervisor("ready");
      } else {
        uvs::log::format(uvs::log::notice, "", "", "uvsmtpd %s started (pid %d)", UVS_VERSION,
                         static_cast<int>(getpid()));
      }
      rc = server.run();
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);  // let the last close callbacks run
  uv_loop_close(loop);
  return rc;
}
