// hooks/plugin_timers.hpp: the plugin-level timers of one plugin instance (uvs_api.timer_start,
// ABI 1.3): unreferenced libuv timers (they never keep the loop alive at shutdown), all stopped
// by retire() before the instance's fini runs.
#pragma once
#include <cstdint>
#include <vector>

#include "uvsmtpd/plugin.h"

namespace uvs {

class PluginTimers {
 public:
  PluginTimers() = default;
  ~PluginTimers();  // frees what retire() kept (handles a fini may still pass to timer_stop)
  PluginTimers(const PluginTimers &) = delete;
  PluginTimers &operator=(const PluginTimers &) = delete;

  // loop is the instance's uv_loop_t; nullptr when it has none, or after retire().
  uvs_timer *start(void *loop, uint64_t ms, uint64_t repeat_ms, uvs_timer_fn cb, void *ud);
  // Stops every timer; their handles stay allocated (stop() on them returns 0) until the
  // destructor; start() refuses from now on.
  void retire();
  size_t live() const { return live_.size(); }

  static int stop(uvs_timer *t);  // uvs_api.timer_stop

 private:
  void destroy(uvs_timer *t);  // stop, close the libuv handle, free
  static void fire(uvs_timer *t);
  std::vector<uvs_timer *> live_;
  bool retired_ = false;
};

}  // namespace uvs
