// metrics/registry.hpp: this process's counters for the metrics endpoint: plain integers,
// touched on the loop thread only (no locks, no allocation per event: every label set is an
// array index, a plugin's counters are found once per loaded instance), and render(), which
// writes them in the Prometheus text format (docs/operations.md, "Metrics").
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "log/events.hpp"
#include "uvsmtpd/plugin.h"

struct uvs_plugin;

namespace uvs::metrics {

inline constexpr size_t kHooks = UVS_HOOK_AUTH + 1;  // indexed by hook id (0 unused)
// Verdicts DECLINED ... DONE by their value, then one for a plugin that did not answer in time.
inline constexpr size_t kVerdictTimeout = UVS_DONE + 1;
inline constexpr size_t kVerdicts = kVerdictTimeout + 1;

// A latency histogram with fixed buckets (nanoseconds inside, seconds when rendered).
struct Histogram {
  static constexpr size_t kBuckets = 14;
  static constexpr uint64_t kBoundsNs[kBuckets] = {
      100'000,       500'000,       1'000'000,     5'000'000,     10'000'000,
      25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
  uint64_t counts[kBuckets + 1] = {};  // per bucket (not cumulative); the last is +Inf
  uint64_t sum_ns = 0;
  void observe(uint64_t ns) {
    size_t i = 0;
    while (i < kBuckets && ns > kBoundsNs[i]) ++i;
    ++counts[i];
    sum_ns += ns;
  }
  uint64_t count() const;
};

// One plugin instance's counters (kept by name across reloads).
struct PluginStats {
  std::string instance;
  uint64_t verdicts[kHooks][kVerdicts] = {};
  Histogram latency[kHooks];  // from the call to the verdict (a suspended call: to complete())
  uint64_t refused = 0;       // connections its verdict closed before the greeting
};

// The counters of the plugin instance p (made on first use and cached in p).
PluginStats &plugin(uvs_plugin *p);
// The same by instance name (for rare events that know only the name: a refusal).
PluginStats &plugin_named(std::string_view instance);

enum class Refused : uint8_t { max_connections, max_connections_per_ip, shutdown, count };
enum class TlsMode : uint8_t { starttls, implicit, count };
enum class TlsFailure : uint8_t { error, timeout, closed, count };
enum class Delivery : uint8_t { sent, deferred, bounced, count };

// What the outbound queue holds now (the delivery engine's view), read when rendering.
struct QueueGauges {
  uint64_t active = 0;    // being delivered now
  uint64_t deferred = 0;  // waiting for their next try
  uint64_t held = 0;      // held by the administrator (uvsmtpd queue hold)
};

struct Core {
  uint64_t connections = 0;  // accepted
  uint64_t closed = 0;       // finished (open = connections - closed)
  uint64_t refused[static_cast<size_t>(Refused::count)] = {};
  uint64_t sessions[log::kEndReasons] = {};
  uint64_t commands[log::SessionCounters::kNames] = {};
  Histogram hooks[kHooks];  // a hook's whole chain, per hook
  uint64_t messages = 0, bytes = 0;
  uint64_t tls_ok[static_cast<size_t>(TlsMode::count)] = {};
  uint64_t tls_failed[static_cast<size_t>(TlsFailure::count)] = {};
  uint64_t auth_success = 0, auth_failure = 0, auth_tempfail = 0;
  uint64_t deliveries[static_cast<size_t>(Delivery::count)] = {};
  std::function<QueueGauges()> queue;  // set while a delivery engine runs
};

Core &core();

template <class E>
inline void inc(uint64_t (&a)[static_cast<size_t>(E::count)], E e) {
  ++a[static_cast<size_t>(e)];
}

// This process's metrics in the text format (version 0.0.4).
std::string render();

}  // namespace uvs::metrics
