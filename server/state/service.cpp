// state/service.cpp: Service and the process-wide current one (see service.hpp).
#include "state/service.hpp"

#include <cerrno>

#include "log/log.hpp"
#include "state/embedded.hpp"
#include "state/redis_backend.hpp"

namespace uvs::state {

namespace {
Service *g_current = nullptr;
bool g_installed_once = false;
}  // namespace

Service::Service(uv_loop_t *loop, const config::StateSettings &settings)
    : settings_(settings), deferred_(loop) {
  if (settings.redis.empty())
    backend_ = std::make_unique<EmbeddedBackend>(loop, settings.max_entries, deferred_);
  else
    backend_ = std::make_unique<RedisBackend>(loop, settings, deferred_);
}

Service::~Service() {
  if (g_current == this) g_current = nullptr;
  backend_.reset();
}

void Service::submit(Request r) {
  if (stopped_) {
    deferred_.post([done = std::move(r.done)] {
      if (done) done(-ECANCELED, nullptr, 0);
    });
    return;
  }
  backend_->submit(std::move(r));
}

void Service::stop() {
  if (stopped_) return;
  stopped_ = true;
  backend_->stop();
}

void install(Service *s) {
  g_current = s;
  if (s) g_installed_once = true;
}

Service *current() {
  if (g_current || g_installed_once) return g_current;
  // No server around it (a configuration check, a unit test): an embedded store of its own.
  // Never destroyed: its handles stay on the default loop until the process exits.
  static Service *fallback = new Service(uv_default_loop(), config::StateSettings{});
  g_current = fallback;
  return g_current;
}

void stop_current() {
  if (g_current) g_current->stop();
}

void reload_settings(const config::StateSettings &next) {
  if (!g_current) return;
  const config::StateSettings &cur = g_current->settings();
  if (cur.redis != next.redis || cur.timeout != next.timeout || cur.password != next.password ||
      cur.db != next.db || cur.max_entries != next.max_entries)
    log::format(log::warning, "", "",
                "SIGHUP: [state] changed; the shared-state back end needs a restart to change "
                "(still %s%s)",
                cur.redis.empty() ? "the embedded store" : "Redis at ", cur.redis.c_str());
}

}  // namespace uvs::state
