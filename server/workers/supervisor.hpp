// workers/supervisor.hpp: the supervisor of worker processes (workers = N > 1). It binds every
// listener once, then starts N workers (this binary again, with the sockets and a channel
// inherited: role.hpp), restarts one that dies (at once; with a growing wait when it keeps
// dying within a second of its start), passes SIGHUP, SIGTERM and SIGINT on to all of them,
// and exits when all have gone after a stop. It loads no plugins and serves no SMTP client;
// with [metrics] it serves the endpoint, with the sum of every worker's counters.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/settings.hpp"

namespace uvs::workers {

struct SupervisorConfig {
  std::vector<std::string> args;  // the command line it was started with (argv[0] first)
  config::Settings settings;      // as loaded at start
  std::string listen_where;       // prefix of a bind error ("<file>:<line>: " or "--listen: ")
  std::string metrics_where;      // prefix of the metrics endpoint's bind error
  // SIGHUP: reads uvsmtpd.toml again (settings only: the workers load the plugins); false
  // with err when it does not load.
  std::function<bool(config::Settings &out, std::string &err)> reload;
};

// Runs the supervisor on the default loop until every worker has gone: 0 after a stop by
// signal, 1 when the listeners cannot be bound or a worker fails during the first start (its
// error is on stderr).
int run_supervisor(const SupervisorConfig &c);

}  // namespace uvs::workers
