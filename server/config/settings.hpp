// config/settings.hpp: the server settings from uvsmtpd.toml, parsed once into a typed struct.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/tls_settings.hpp"

namespace uvs::config {

struct Listen {
  std::string host;        // "127.0.0.1", "::1" (no brackets)
  uint16_t port = 2525;    // 0 = pick a free port
  bool sync_check = true;  // RFC 2920 synchronisation enforcement on this listener
  // "none": plain only; "starttls": STARTTLS offered when [tls] has a certificate (RFC 3207);
  // "implicit": TLS from the first byte (RFC 8314, port 465), needs a certificate.
  std::string tls = "starttls";
  bool require_tls = false;  // MAIL before STARTTLS: 530 5.7.0 (RFC 3207 4)
  // SMTP AUTH (RFC 4954, docs/auth.md): "optional" (offered when an auth plugin is loaded),
  // "required" (MAIL before AUTH: 530 5.7.0) or "off" (never offered, AUTH is unrecognized).
  std::string auth = "optional";
  bool auth_plaintext = false;  // AUTH also before TLS (else 538 5.7.11 and not advertised)
  bool auth_relay = true;       // a successful AUTH makes the session a relay client
};

// [[delivery.route]]: mail for `domain` goes to `to` (docs/queue.md, "Routing").
struct DeliveryRoute {
  std::string domain;  // "example.org", ".example.org" (its subdomains) or "*" (every domain)
  std::string to;      // "mx", "smtp:[host]:port", "lmtp:[host]:port", "lmtp:unix:/path"
  uint32_t line = 0;   // where it was configured, for messages
};

// [delivery]: the outbound delivery engine (server/delivery/, docs/queue.md).
struct DeliverySettings {
  bool enabled = true;          // runs when there is a queue (queue_dir or a queue/outbound line)
  std::string queue_dir;        // "" = the directory of the plugins file's queue/outbound line
  std::string hostname;         // EHLO name; "" = the server's hostname
  uint32_t concurrency = 100;   // connections at once, in total
  uint32_t destination_concurrency = 20;  // connections at once to one destination
  double retry_min = 300;                 // seconds before the first retry (then doubled)
  double retry_max = 14400;               // seconds: the longest wait between attempts
  double max_queue_lifetime = 432000;     // seconds a message may wait before it is returned
  double delay_warning = 0;               // seconds before a delay notice; 0 = none
  std::string postmaster;                 // where undeliverable bounces go; "" = dropped (logged)
  uint32_t smtp_port = 25;                // the port of MX hosts (tests use another)
  std::string starttls = "may";           // may | encrypt | none
  double timeout_connect = 30;            // seconds per TCP connect
  double timeout_command = 300;           // seconds per reply (RFC 5321 4.5.3.2)
  double rescan_interval = 60;            // seconds between scans of the queue directory
  std::vector<DeliveryRoute> routes;      // first match wins; default "mx"
};

// [metrics]: the Prometheus endpoint (docs/operations.md, "Metrics").
struct MetricsSettings {
  std::string listen;         // "" = off; else "127.0.0.1:9101" (canonical host, as Listen)
  Listen address;             // listen, parsed
  bool allow_remote = false;  // a listen address that is not loopback is refused without it
};

// [state]: the shared key-value store behind uvs_api.kv_* (server/state/, docs/operations.md).
struct StateSettings {
  std::string redis;            // "" = the embedded store; "host:port", "[v6]:port", "unix:/path"
  double timeout = 0.2;         // seconds an operation may wait for Redis (connect included)
  std::string password;         // Redis AUTH; "" = none
  uint32_t db = 0;              // Redis SELECT
  uint32_t max_entries = 1000000;  // the embedded store's bound (docs/operations.md)
};

struct Settings {
  std::string hostname;              // default: gethostname()
  std::string greeting;              // banner text after "220 <hostname> "; default "ESMTP uvsmtpd"
  std::vector<Listen> listen;        // default: 127.0.0.1:2525
  uint32_t max_connections = 10000;  // over it: 421 4.7.0 and close
  uint32_t max_connections_per_ip = 50;
  double timeout_command = 300;          // seconds, RFC 5321 4.5.3.2.7
  double timeout_data = 180;             // seconds: DATA deadline from the 354 (RFC 5321 4.5.3.2.5)
  double timeout_tls_handshake = 30;     // seconds a TLS handshake may take (STARTTLS, implicit)
  uint32_t min_data_rate = 500;          // bytes/s that extend the DATA deadline; 0 = idle timer
  double hook_timeout = 30;              // seconds a pending plugin call may take -> 451 4.3.0
  double shutdown_grace = 30;            // seconds sessions in DATA get after SIGTERM
  uint64_t max_message_size = 26214400;  // bytes; advertised as SIZE; 0 = no limit
  uint32_t max_recipients = 1000;        // over it: 452 4.5.3
  uint32_t max_line_length = 512;        // command line incl. CRLF; longer: 500 5.5.2
  uint32_t max_errors = 20;              // failed commands before 421 4.7.0 and close; 0 = off
  uint32_t max_junk_commands = 100;      // NOOP/RSET/VRFY/HELP/re-HELO between messages; 0 = off
  uint32_t max_hops = 100;               // Received: fields over this: 554 5.4.6 (RFC 5321 6.3)
  std::string spool_dir = "var/spool";   // relative paths: relative to the working directory
  std::string plugin_dir;                // "" = the built-in default (next to the binary)
  std::string bare_newline = "reject";   // "reject" | "normalize"
  std::vector<std::string> bare_newline_normalize_networks;  // CIDRs that get normalize anyway
  bool bare_newline_normalize_relay_clients = true;          // relay clients get normalize anyway
  uint32_t thread_pool_size = 16;  // libuv worker threads (spool writes, plugins' blocking work)
  // Worker processes (server/workers/): 1 = one process, as ever; N > 1 = a supervisor process
  // that binds the listeners once and runs N workers, each with its own loop and sessions.
  uint32_t workers = 1;
  std::string user;               // drop to this user after binding (when started as root)
  std::string group;              // and this group (default: the user's group)
  std::vector<std::string> dns_servers;  // "ip:port"; empty = /etc/resolv.conf
  double dns_timeout = 5;                // seconds per query (plugins may ask for less)
  bool reverse_lookup = true;            // look up the client's name at connect
  double reverse_timeout = 3;            // seconds the connect-time lookup may take
  std::string log_level = "info";        // emerg alert crit err warning notice info debug
  std::string log_format = "text";       // text | json
  std::string log_destination = "stderr";  // stderr | file | syslog
  std::string log_file;                    // destination "file": appended to, reopened on SIGHUP
  std::string log_syslog_facility = "mail";  // destination "syslog": the facility name
  TlsSettings tls;                           // [tls]: certificates and protocol parameters
  // [auth]: brute-force limits of SMTP AUTH (docs/auth.md)
  uint32_t auth_max_failures = 3;        // per session, then 421 4.7.0 and close; 0 = no limit
  double auth_failure_delay = 1.0;       // seconds before the n-th failure's reply: d * 2^(n-1)
  uint32_t auth_lockout_failures = 10;   // per client IP within the window; 0 = no lockout
  double auth_lockout_window = 600;      // seconds
  DeliverySettings delivery;             // [delivery]
  MetricsSettings metrics;               // [metrics]
  StateSettings state;                   // [state]
  // -- startup checks (cli) --
  bool require_queue_plugin = false;  // no plugin registers `queue`: error instead of warning
};

// Loads `path` into `out` (starting from defaults). A missing file is not an error when
// `missing_ok`; then the defaults stand. On error returns false and sets `err` to
// "<file>:<line>: <message>" naming the key (unknown key, wrong type, bad value).
bool load_settings(const std::string &path, Settings &out, std::string &err,
                   bool missing_ok = true);

// The settings of an empty uvsmtpd.toml: every built-in default (hostname = gethostname()).
Settings default_settings();

// A [[delivery.route]] 'to' value: "mx", "smtp:[host]:port" / "smtp:host[:port]",
// "lmtp:[host]:port", "lmtp:unix:/path". false with why.
bool valid_route_target(const std::string &to, std::string &why);

// "127.0.0.1:25", "[::1]:2525", "*:25" -> Listen; false on syntax error.
bool parse_listen(const std::string &text, Listen &out);

}  // namespace uvs::config
