// state/service.hpp: the process's shared-state service: the back end chosen by [state]
// (embedded, or Redis when 'redis' is set) behind uvs_api.kv_*. main() makes one before any
// plugin loads and keeps it until the server is gone: it lives outside the plugin
// generations, so a SIGHUP reload keeps its tables. The server stops it when the last
// session has closed (waiting operations answer -ECANCELED).
#pragma once
#include <memory>
#include <uv.h>

#include "config/settings.hpp"
#include "state/deferred.hpp"
#include "state/request.hpp"

namespace uvs::state {

class Service {
 public:
  Service(uv_loop_t *loop, const config::StateSettings &settings);
  ~Service();  // uninstalls itself if installed
  Service(const Service &) = delete;
  Service &operator=(const Service &) = delete;

  void submit(Request r);  // answers later on the loop
  void stop();             // the server stops: see Backend::stop()
  bool stopped() const { return stopped_; }
  Backend &backend() { return *backend_; }
  const config::StateSettings &settings() const { return settings_; }

 private:
  config::StateSettings settings_;
  Deferred deferred_;
  std::unique_ptr<Backend> backend_;
  bool stopped_ = false;
};

// The service the kv_* API uses. install() makes s current (nullptr: none). Without an
// installed service (--check-config, unit tests) current() makes an embedded one on the
// default loop the first time it is asked; after an installed one is gone it returns nullptr.
void install(Service *s);
Service *current();
// The server stops (net/server.cpp): stops the installed service, if any.
void stop_current();
// A reload's [state] (SIGHUP): the back end stays as started; a change is logged as needing
// a restart.
void reload_settings(const config::StateSettings &next);

}  // namespace uvs::state
