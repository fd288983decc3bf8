// cli/print_config.cpp: the TOML writer behind --print-config and --print-defaults.
#include "cli/print_config.hpp"

#include <charconv>
#include <vector>

namespace uvs::cli {

namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string str(const std::string &v) {
  std::string out = "\"";
  for (char ch : v) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same double ("300", "0.25", "1e-05").
std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string boolean(bool b) {
  return b ? "true" : "false";
}

std::string strings(const std::vector<std::string> &v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + str(v[i]);
  return out + "]";
}

std::string listen(const std::vector<config::Listen> &v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    const auto &l = v[i];
    bool v6 = l.host.find(':') != std::string::npos;
    std::string addr = (v6 ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port);
    out += (i ? ", " : "") + std::string("{ address = ") + str(addr) +
           ", sync_check = " + boolean(l.sync_check) + ", tls = " + str(l.tls) +
           ", require_tls = " + boolean(l.require_tls) + ", auth = " + str(l.auth) +
           ", auth_plaintext = " + boolean(l.auth_plaintext) +
           ", auth_relay = " + boolean(l.auth_relay) + " }";
  }
  return out + "]";
}

// [[tls.sni]] entries as an inline array of tables (same meaning, fits under [tls]).
std::string sni(const std::vector<config::SniPair> &v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    out += (i ? ", " : "") + std::string("{ certificate = ") + str(v[i].certificate) +
           ", key = " + str(v[i].key);
    if (!v[i].names.empty()) out += ", names = " + strings(v[i].names);
    out += " }";
  }
  return out + "]";
}

}  // namespace

void print_settings(FILE *out, const config::Settings &s, const std::string &origin) {
  auto kv = [out](const char *key, const std::string &value) {
    fprintf(out, "%s = %s\n", key, value.c_str());
  };
  auto n = [](auto v) { return std::to_string(v); };
  fprintf(out, "# %s\n", origin.c_str());
  kv("hostname", str(s.hostname));
  kv("greeting", str(s.greeting));
  kv("listen", listen(s.listen));
  kv("max_connections", n(s.max_connections));
  kv("max_connections_per_ip", n(s.max_connections_per_ip));
  kv("max_message_size", n(s.max_message_size));
  kv("max_recipients", n(s.max_recipients));
  kv("max_line_length", n(s.max_line_length));
  kv("max_errors", n(s.max_errors));
  kv("max_junk_commands", n(s.max_junk_commands));
  kv("max_hops", n(s.max_hops));
  kv("hook_timeout", num(s.hook_timeout));
  kv("shutdown_grace", num(s.shutdown_grace));
  kv("spool_dir", str(s.spool_dir));
  kv("plugin_dir", str(s.plugin_dir));
  kv("thread_pool_size", n(s.thread_pool_size));
  kv("workers", n(s.workers));
  kv("user", str(s.user));
  kv("group", str(s.group));
  kv("require_queue_plugin", boolean(s.require_queue_plugin));
  fprintf(out, "\n[timeouts]\n");
  kv("command", num(s.timeout_command));
  kv("data", num(s.timeout_data));
  kv("tls_handshake", num(s.timeout_tls_handshake));
  kv("min_data_rate", n(s.min_data_rate));
  fprintf(out, "\n[log]\n");
  kv("level", str(s.log_level));
  kv("format", str(s.log_format));
  kv("destination", str(s.log_destination));
  if (s.log_file.empty())  // "" is not a valid value: the key is unset
    fprintf(out, "# file = (not set; needed with destination = \"file\")\n");
  else
    kv("file", str(s.log_file));
  kv("syslog_facility", str(s.log_syslog_facility));
  fprintf(out, "\n[dns]\n");
  kv("servers", strings(s.dns_servers));
  kv("timeout", num(s.dns_timeout));
  kv("reverse_lookup", boolean(s.reverse_lookup));
  kv("reverse_timeout", num(s.reverse_timeout));
  fprintf(out, "\n[bare_newline]\n");
  kv("policy", str(s.bare_newline));
  kv("normalize_networks", strings(s.bare_newline_normalize_networks));
  kv("normalize_relay_clients", boolean(s.bare_newline_normalize_relay_clients));
  fprintf(out, "\n[auth]\n");
  kv("max_failures", n(s.auth_max_failures));
  kv("failure_delay", num(s.auth_failure_delay));
  kv("lockout_failures", n(s.auth_lockout_failures));
  kv("lockout_window", num(s.auth_lockout_window));
  fprintf(out, "\n[delivery]\n");
  const config::DeliverySettings &d = s.delivery;
  kv("enabled", boolean(d.enabled));
  kv("queue_dir", str(d.queue_dir));
  kv("hostname", str(d.hostname));
  kv("concurrency", n(d.concurrency));
  kv("destination_concurrency", n(d.destination_concurrency));
  kv("retry_min", num(d.retry_min));
  kv("retry_max", num(d.retry_max));
  kv("max_queue_lifetime", num(d.max_queue_lifetime));
  kv("delay_warning", num(d.delay_warning));
  kv("postmaster", str(d.postmaster));
  kv("smtp_port", n(d.smtp_port));
  kv("starttls", str(d.starttls));
  kv("timeout_connect", num(d.timeout_connect));
  kv("timeout_command", num(d.timeout_command));
  kv("rescan_interval", num(d.rescan_interval));
  {
    std::string routes;
    for (const auto &r : d.routes)
      routes += std::string(routes.empty() ? "" : ", ") + "{ domain = " + str(r.domain) +
                ", to = " + str(r.to) + " }";
    kv("route", "[" + routes + "]");
  }
  fprintf(out, "\n[metrics]\n");
  kv("listen", str(s.metrics.listen));
  kv("allow_remote", boolean(s.metrics.allow_remote));
  fprintf(out, "\n[state]\n");
  kv("redis", str(s.state.redis));
  kv("timeout", num(s.state.timeout));
  if (s.state.password.empty())
    kv("password", str(""));
  else
    fprintf(out, "# password: set (not shown)\n");
  kv("db", n(s.state.db));
  kv("max_entries", n(s.state.max_entries));
  fprintf(out, "\n[tls]\n");
  const config::TlsSettings &t = s.tls;
  kv("certificate", str(t.certificate));
  kv("key", str(t.key));
  kv("min_protocol", str(t.min_protocol));
  kv("ciphers", str(t.ciphers));
  kv("ciphersuites", str(t.ciphersuites));
  kv("groups", str(t.groups));
  kv("session_tickets", boolean(t.session_tickets));
  kv("ticket_key_lifetime", num(t.ticket_key_lifetime));
  kv("client_certificates", str(t.client_certificates));
  kv("client_ca", str(t.client_ca));
  kv("watch", boolean(t.watch));
  kv("sni", sni(t.sni));
}

}  // namespace uvs::cli
