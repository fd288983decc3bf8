// metrics/registry.cpp: the process's counters and render() (see registry.hpp).
#include "metrics/registry.hpp"

#include <memory>
#include <vector>

#include "hooks/call.hpp"
#include "hooks/hook_names.hpp"
#include "metrics/exposition.hpp"

namespace uvs::metrics {

namespace {

std::vector<std::unique_ptr<PluginStats>> &plugins() {
  static std::vector<std::unique_ptr<PluginStats>> all;  // never freed: reloads keep counting
  return all;
}

std::string label(std::string_view name, std::string_view value) {
  return std::string(name) + "=\"" + escape_label(value) + "\"";
}

constexpr std::string_view kRefused[] = {"max_connections", "max_connections_per_ip", "shutdown"};
constexpr std::string_view kTlsModes[] = {"starttls", "implicit"};
constexpr std::string_view kTlsFailures[] = {"error", "timeout", "closed"};
constexpr std::string_view kDeliveries[] = {"sent", "deferred", "bounced"};

std::string verdict_label(size_t v) {
  return v == kVerdictTimeout ? std::string("TIMEOUT")
                              : std::string(verdict_name(static_cast<int>(v)));
}

// The buckets, _sum and _count of one histogram series; labels without braces ("" for none).
void histogram(std::string &out, std::string_view name, const std::string &labels,
               const Histogram &h) {
  std::string bucket = std::string(name) + "_bucket";
  std::string prefix = labels.empty() ? "" : labels + ",";
  uint64_t cum = 0;
  for (size_t i = 0; i < Histogram::kBuckets; ++i) {
    cum += h.counts[i];
    sample(out, bucket, prefix + "le=\"" + format_value(Histogram::kBoundsNs[i] / 1e9) + "\"", cum);
  }
  cum += h.counts[Histogram::kBuckets];
  sample(out, bucket, prefix + "le=\"+Inf\"", cum);
  sample(out, std::string(name) + "_sum", labels, static_cast<double>(h.sum_ns) / 1e9);
  sample(out, std::string(name) + "_count", labels, cum);
}

}  // namespace

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

Core &core() {
  static Core c;
  return c;
}

PluginStats &plugin_named(std::string_view instance) {
  for (auto &s : plugins())
    if (s->instance == instance) return *s;
  plugins().push_back(std::make_unique<PluginStats>());
  plugins().back()->instance.assign(instance);
  return *plugins().back();
}

PluginStats &plugin(uvs_plugin *p) {
  if (!p->stats) p->stats = &plugin_named(p->instance);
  return *p->stats;
}

std::string render() {
  const Core &c = core();
  std::string out;
  out.reserve(16384);

  family_head(out, "uvsmtpd_connections_open", "gauge", "SMTP connections open now.");
  sample(out, "uvsmtpd_connections_open", "", c.connections - c.closed);
  family_head(out, "uvsmtpd_connections_total", "counter", "SMTP connections accepted.");
  sample(out, "uvsmtpd_connections_total", "", c.connections);

  family_head(out, "uvsmtpd_connections_refused_total", "counter",
              "Connections closed before the greeting, by reason (a core limit, shutdown, or a "
              "plugin's verdict at pre-connection or connect).");
  for (size_t i = 0; i < std::size(kRefused); ++i)
    sample(out, "uvsmtpd_connections_refused_total", label("reason", kRefused[i]), c.refused[i]);
  for (const auto &p : plugins())
    if (p->refused)
      sample(out, "uvsmtpd_connections_refused_total",
             label("reason", "plugin") + "," + label("plugin", p->instance), p->refused);

  family_head(out, "uvsmtpd_sessions_total", "counter",
              "SMTP sessions ended, by how they ended (the summary line's end=).");
  for (size_t i = 1; i < log::kEndReasons; ++i)  // 0 (nothing recorded) reads "lost"
    sample(out, "uvsmtpd_sessions_total",
           label("end", log::end_reason_name(static_cast<log::EndReason>(i))),
           c.sessions[i] + (i == static_cast<size_t>(log::EndReason::lost) ? c.sessions[0] : 0));

  family_head(out, "uvsmtpd_smtp_commands_total", "counter",
              "SMTP commands received, by verb (other verbs count as unknown).");
  for (size_t i = 0; i < log::SessionCounters::kNames; ++i)
    sample(out, "uvsmtpd_smtp_commands_total", label("verb", log::SessionCounters::name(i)),
           c.commands[i]);

  family_head(out, "uvsmtpd_hook_verdicts_total", "counter",
              "Plugin verdicts, by hook, plugin instance and verdict (TIMEOUT: no answer within "
              "hook_timeout).");
  for (const auto &p : plugins())
    for (size_t h = 1; h < kHooks; ++h)
      for (size_t v = 0; v < kVerdicts; ++v)
        if (p->verdicts[h][v])
          sample(out, "uvsmtpd_hook_verdicts_total",
                 label("hook", hook_name(static_cast<int>(h))) + "," +
                     label("plugin", p->instance) + "," + label("verdict", verdict_label(v)),
                 p->verdicts[h][v]);

  family_head(out, "uvsmtpd_hook_duration_seconds", "histogram",
              "Time a hook's whole plugin chain took, by hook.");
  for (size_t h = 1; h < kHooks; ++h)
    if (c.hooks[h].count())
      histogram(out, "uvsmtpd_hook_duration_seconds", label("hook", hook_name(static_cast<int>(h))),
                c.hooks[h]);

  family_head(out, "uvsmtpd_plugin_hook_duration_seconds", "histogram",
              "Time one plugin took to give its verdict, by hook and plugin instance.");
  for (const auto &p : plugins())
    for (size_t h = 1; h < kHooks; ++h)
      if (p->latency[h].count())
        histogram(
            out, "uvsmtpd_plugin_hook_duration_seconds",
            label("hook", hook_name(static_cast<int>(h))) + "," + label("plugin", p->instance),
            p->latency[h]);

  family_head(out, "uvsmtpd_messages_accepted_total", "counter",
              "Messages accepted (the queue plugin said OK and the client got 250).");
  sample(out, "uvsmtpd_messages_accepted_total", "", c.messages);
  family_head(out, "uvsmtpd_message_bytes_accepted_total", "counter",
              "Bytes of the accepted messages, as spooled.");
  sample(out, "uvsmtpd_message_bytes_accepted_total", "", c.bytes);

  family_head(out, "uvsmtpd_tls_handshakes_total", "counter",
              "TLS handshakes completed, by mode (STARTTLS or implicit TLS).");
  for (size_t i = 0; i < std::size(kTlsModes); ++i)
    sample(out, "uvsmtpd_tls_handshakes_total", label("mode", kTlsModes[i]), c.tls_ok[i]);
  family_head(out, "uvsmtpd_tls_handshake_failures_total", "counter",
              "TLS handshakes that did not complete, by reason.");
  for (size_t i = 0; i < std::size(kTlsFailures); ++i)
    sample(out, "uvsmtpd_tls_handshake_failures_total", label("reason", kTlsFailures[i]),
           c.tls_failed[i]);

  family_head(out, "uvsmtpd_auth_total", "counter",
              "SMTP AUTH attempts, by result (tempfail: a plugin's temporary failure or timeout).");
  sample(out, "uvsmtpd_auth_total", label("result", "success"), c.auth_success);
  sample(out, "uvsmtpd_auth_total", label("result", "failure"), c.auth_failure);
  sample(out, "uvsmtpd_auth_total", label("result", "tempfail"), c.auth_tempfail);

  QueueGauges q = c.queue ? c.queue() : QueueGauges{};
  family_head(out, "uvsmtpd_queue_entries", "gauge",
              "Messages in the outbound queue, by state (0 without a delivery engine).");
  sample(out, "uvsmtpd_queue_entries", label("state", "active"), q.active);
  sample(out, "uvsmtpd_queue_entries", label("state", "deferred"), q.deferred);
  sample(out, "uvsmtpd_queue_entries", label("state", "held"), q.held);
  family_head(out, "uvsmtpd_deliveries_total", "counter",
              "Outbound delivery results, one per recipient and attempt.");
  for (size_t i = 0; i < std::size(kDeliveries); ++i)
    sample(out, "uvsmtpd_deliveries_total", label("result", kDeliveries[i]), c.deliveries[i]);
  return out;
}

}  // namespace uvs::metrics
