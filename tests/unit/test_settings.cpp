// tests/unit/test_settings.cpp: unit tests for config/settings (load_settings, parse_listen).
#include <doctest/doctest.h>

#include "tmp_dir.hpp"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/settings.hpp"

using uvs::config::Listen;
using uvs::config::load_settings;
using uvs::config::parse_listen;
using uvs::config::Settings;

namespace {

using SetTmp = unit::TmpDir;

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// Loads `toml` and returns "" on success, else the error with the file name stripped
// (":<line>: <message>"); checks that the error starts with the file name.
std::string load_err(const std::string &toml, Settings *out = nullptr) {
  SetTmp t;
  std::string p = t.write("uvsmtpd.toml", toml);
  Settings s;
  std::string err;
  bool ok = load_settings(p, s, err, false);
  if (out) *out = s;
  if (ok) return "";
  CHECK_MESSAGE(err.rfind(p + ":", 0) == 0, err);
  return err.substr(p.size());
}

Settings load_ok(const std::string &toml) {
  Settings s;
  std::string e = load_err(toml, &s);
  CHECK_MESSAGE(e.empty(), e);
  return s;
}

void check_defaults(const Settings &s) {
  Settings d;
  CHECK(s.greeting == "ESMTP uvsmtpd");
  REQUIRE(s.listen.size() == 1);
  CHECK(s.listen[0].host == "127.0.0.1");
  CHECK(s.listen[0].port == 2525);
  CHECK(s.listen[0].sync_check);
  CHECK(s.listen[0].tls == "starttls");
  CHECK_FALSE(s.listen[0].require_tls);
  CHECK(s.timeout_tls_handshake == 30);
  CHECK(s.tls.certificate.empty());
  CHECK(s.tls.key.empty());
  CHECK(s.tls.min_protocol == "TLSv1.2");
  CHECK(s.tls.ciphers == d.tls.ciphers);
  CHECK(s.tls.ciphers.find("ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
  CHECK(s.tls.ciphersuites ==
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  CHECK(s.tls.groups == "X25519:P-256");
  CHECK(s.tls.session_tickets);
  CHECK(s.tls.ticket_key_lifetime == 3600);
  CHECK(s.tls.client_certificates == "none");
  CHECK(s.tls.client_ca.empty());
  CHECK(s.tls.watch);
  CHECK(s.tls.sni.empty());
  CHECK(s.max_connections == d.max_connections);
  CHECK(s.max_connections == 10000);
  CHECK(s.max_connections_per_ip == 50);
  CHECK(s.timeout_command == 300);
  CHECK(s.timeout_data == 180);
  CHECK(s.min_data_rate == 500);
  CHECK(s.hook_timeout == 30);
  CHECK(s.shutdown_grace == 30);
  CHECK(s.max_message_size == 26214400);
  CHECK(s.max_recipients == 1000);
  CHECK(s.max_line_length == 512);
  CHECK(s.max_errors == 20);
  CHECK(s.max_junk_commands == 100);
  CHECK(s.max_hops == 100);
  CHECK(s.spool_dir == "var/spool");
  CHECK(s.plugin_dir == "");
  CHECK(s.bare_newline == "reject");
  CHECK(s.bare_newline_normalize_networks.empty());
  CHECK(s.bare_newline_normalize_relay_clients);
  CHECK(s.log_level == "info");
  CHECK(s.log_format == "text");
}

}  // namespace

TEST_CASE("settings: missing file gives defaults when missing_ok") {
  SetTmp t;
  Settings s;
  s.max_errors = 99;
  std::string err;
  REQUIRE(load_settings(t.dir + "/nope.toml", s, err));
  check_defaults(s);
  CHECK(s.hostname == host_name());
}

TEST_CASE("settings: missing file is an error unless missing_ok") {
  SetTmp t;
  Settings s;
  s.max_errors = 99;
  std::string err;
  CHECK_FALSE(load_settings(t.dir + "/nope.toml", s, err, false));
  CHECK(err == t.dir + "/nope.toml: cannot open: No such file or directory");
  CHECK(s.max_errors == 99);  // untouched on error
}

TEST_CASE("settings: a directory is not a settings file") {
  SetTmp t;
  Settings s;
  std::string err;
  CHECK_FALSE(load_settings(t.dir, s, err, true));
  CHECK(err == t.dir + ": cannot open: Is a directory");
}

TEST_CASE("settings: empty file and comment-only file give defaults") {
  Settings s = load_ok("");
  check_defaults(s);
  CHECK(s.hostname == host_name());
  check_defaults(load_ok("# nothing here\n\n"));
}

TEST_CASE("settings: every key") {
  Settings s = load_ok(R"(
hostname = "mx.example.test"
greeting = "ESMTP ready"
listen = ["127.0.0.1:25", "[::1]:2526", "*:0"]
max_connections = 7
max_connections_per_ip = 3
max_message_size = 1000000
max_recipients = 5
max_line_length = 1000
max_errors = 0
max_junk_commands = 0
max_hops = 30
hook_timeout = 2.5
shutdown_grace = 10
spool_dir = "/var/spool/uvsmtpd"
plugin_dir = "/usr/lib/uvsmtpd/plugins"

[timeouts]
command = 60
data = 0.5

[log]
level = "debug"
format = "json"

[bare_newline]
policy = "normalize"
normalize_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
normalize_relay_clients = false
)");
  CHECK(s.hostname == "mx.example.test");
  CHECK(s.greeting == "ESMTP ready");
  REQUIRE(s.listen.size() == 3);
  CHECK(s.listen[0].host == "127.0.0.1");
  CHECK(s.listen[0].port == 25);
  CHECK(s.listen[1].host == "::1");
  CHECK(s.listen[1].port == 2526);
  CHECK(s.listen[2].host == "0.0.0.0");
  CHECK(s.listen[2].port == 0);
  for (const Listen &l : s.listen) CHECK(l.sync_check);
  CHECK(s.max_connections == 7);
  CHECK(s.max_connections_per_ip == 3);
  CHECK(s.max_message_size == 1000000);
  CHECK(s.max_recipients == 5);
  CHECK(s.max_line_length == 1000);
  CHECK(s.max_errors == 0);
  CHECK(s.max_junk_commands == 0);
  CHECK(s.max_hops == 30);
  CHECK(s.hook_timeout == 2.5);
  CHECK(s.shutdown_grace == 10);
  CHECK(s.spool_dir == "/var/spool/uvsmtpd");
  CHECK(s.plugin_dir == "/usr/lib/uvsmtpd/plugins");
  CHECK(s.timeout_command == 60);
  CHECK(s.timeout_data == 0.5);
  CHECK(s.log_level == "debug");
  CHECK(s.log_format == "json");
  CHECK(s.bare_newline == "normalize");
  CHECK(s.bare_newline_normalize_networks ==
        std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32", "192.0.2.1"});
  CHECK_FALSE(s.bare_newline_normalize_relay_clients);
}

TEST_CASE("settings: dotted keys and inline tables work like sections") {
  Settings s = load_ok("timeouts.command = 42\nlog = { level = \"err\" }\n");
  CHECK(s.timeout_command == 42);
  CHECK(s.timeout_data == 180);
  CHECK(s.log_level == "err");
  CHECK(s.log_format == "text");
}

TEST_CASE("settings: every log level is accepted") {
  for (const char *l : {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"})
    CHECK(load_ok(std::string("[log]\nlevel = \"") + l + "\"\n").log_level == l);
}

TEST_CASE("settings: listen as an array of tables") {
  Settings s = load_ok(R"(
hostname = "h"

[[listen]]
address = "127.0.0.1:2525"

[[listen]]
address = "[::1]:2525"
sync_check = false

[[listen]]
sync_check = false
address = "localhost:26"
)");
  REQUIRE(s.listen.size() == 3);
  CHECK(s.listen[0].host == "127.0.0.1");
  CHECK(s.listen[0].port == 2525);
  CHECK(s.listen[0].sync_check);
  CHECK(s.listen[1].host == "::1");
  CHECK_FALSE(s.listen[1].sync_check);
  CHECK(s.listen[2].host == "127.0.0.1");
  CHECK(s.listen[2].port == 26);
  CHECK_FALSE(s.listen[2].sync_check);
}

TEST_CASE("settings: listen errors") {
  CHECK(load_err("listen = []\n") == ":1: 'listen' must not be empty");
  CHECK(load_err("listen = \"127.0.0.1:25\"\n") ==
        ":1: 'listen' must be an array of \"host:port\" strings or [[listen]] tables");
  CHECK(load_err("listen = [\n  \"127.0.0.1:25\",\n  \"example.com:25\",\n]\n") ==
        ":3: 'listen' entry 'example.com:25' is not a valid address (host:port, [v6]:port or "
        "*:port)");
  CHECK(load_err("listen = [25]\n") ==
        ":1: 'listen' entries must be \"host:port\" strings or tables");
  CHECK(load_err("listen = [\"127.0.0.1:25\", \"127.0.0.1:25\"]\n") ==
        ":1: 'listen' has a duplicate address");
  CHECK(load_err("[[listen]]\nsync_check = false\n") == ":1: 'listen' table needs an 'address'");
  CHECK(load_err("[[listen]]\naddress = \"1.2.3.4:25\"\nsync_check = 1\n") ==
        ":3: 'listen.sync_check' must be a boolean");
  CHECK(load_err("[[listen]]\naddress = 25\n") == ":2: 'listen.address' must be a string");
  CHECK(load_err("[[listen]]\naddress = \"1.2.3.4:99999\"\n") ==
        ":2: 'listen.address' '1.2.3.4:99999' is not a valid address (host:port, [v6]:port or "
        "*:port)");
  CHECK(load_err("[[listen]]\naddress = \"1.2.3.4:25\"\n\nport = 5\n") ==
        ":4: unknown key 'listen.port'");
}

TEST_CASE("settings: unknown keys report the key and its line") {
  CHECK(load_err("hostname = \"h\"\n\nfoo = 1\n") == ":3: unknown key 'foo'");
  CHECK(load_err("max_conections = 5\n") == ":1: unknown key 'max_conections'");
  CHECK(load_err("hostname = \"h\"\n[other]\nx = 1\n") == ":2: unknown key 'other'");
  // the earliest error in the file wins, whatever the key order
  CHECK(load_err("zzz = 1\naaa = 2\n") == ":1: unknown key 'zzz'");
  CHECK(load_err("aaa = 1\nmax_errors = \"x\"\n") == ":1: unknown key 'aaa'");
}

TEST_CASE("settings: nested unknown keys report the dotted path and line") {
  CHECK(load_err("[timeouts]\ncommand = 5\nidle = 7\n") == ":3: unknown key 'timeouts.idle'");
  CHECK(load_err("[log]\nlevel = \"info\"\n\n\nfilename = \"x\"\n") == ":5: unknown key 'log.filename'");
  CHECK(load_err("[bare_newline]\nexclusions = []\n") ==
        ":2: unknown key 'bare_newline.exclusions'");
  CHECK(load_err("[log.sub]\nx = 1\n") == ":1: unknown key 'log.sub'");
}

TEST_CASE("settings: wrong types") {
  CHECK(load_err("\nmax_connections = \"10\"\n") == ":2: 'max_connections' must be an integer");
  CHECK(load_err("max_connections_per_ip = 1.5\n") ==
        ":1: 'max_connections_per_ip' must be an integer");
  CHECK(load_err("max_message_size = true\n") == ":1: 'max_message_size' must be an integer");
  CHECK(load_err("max_recipients = [1]\n") == ":1: 'max_recipients' must be an integer");
  CHECK(load_err("max_line_length = 1e3\n") == ":1: 'max_line_length' must be an integer");
  CHECK(load_err("max_errors = {}\n") == ":1: 'max_errors' must be an integer");
  CHECK(load_err("hook_timeout = \"30\"\n") == ":1: 'hook_timeout' must be a number");
  CHECK(load_err("shutdown_grace = false\n") == ":1: 'shutdown_grace' must be a number");
  CHECK(load_err("hostname = 5\n") == ":1: 'hostname' must be a string");
  CHECK(load_err("greeting = []\n") == ":1: 'greeting' must be a string");
  CHECK(load_err("spool_dir = 1\n") == ":1: 'spool_dir' must be a string");
  CHECK(load_err("plugin_dir = 1\n") == ":1: 'plugin_dir' must be a string");
  CHECK(load_err("timeouts = 5\n") == ":1: 'timeouts' must be a table");
  CHECK(load_err("log = \"info\"\n") == ":1: 'log' must be a table");
  CHECK(load_err("bare_newline = \"reject\"\n") == ":1: 'bare_newline' must be a table");
  CHECK(load_err("[timeouts]\ncommand = \"300\"\n") == ":2: 'timeouts.command' must be a number");
  CHECK(load_err("[timeouts]\ndata = [1]\n") == ":2: 'timeouts.data' must be a number");
  CHECK(load_err("[log]\nlevel = 6\n") ==
        ":2: 'log.level' must be a string, one of emerg, alert, crit, err, warning, notice, info, "
        "debug");
  CHECK(load_err("[bare_newline]\nnormalize_networks = \"10.0.0.0/8\"\n") ==
        ":2: 'bare_newline.normalize_networks' must be an array of CIDR strings");
  CHECK(load_err("[bare_newline]\nnormalize_networks = [\n 10,\n]\n") ==
        ":3: 'bare_newline.normalize_networks' entries must be strings");
  CHECK(load_err("[bare_newline]\n\nnormalize_relay_clients = \"yes\"\n") ==
        ":3: 'bare_newline.normalize_relay_clients' must be true or false");
  CHECK(load_err("max_junk_commands = \"100\"\n") == ":1: 'max_junk_commands' must be an integer");
  CHECK(load_err("max_hops = 1.5\n") == ":1: 'max_hops' must be an integer");
}

TEST_CASE("settings: bad enum values") {
  CHECK(load_err("[log]\nlevel = \"verbose\"\n") ==
        ":2: 'log.level' must be one of emerg, alert, crit, err, warning, notice, info, debug "
        "(got 'verbose')");
  CHECK(load_err("[log]\nlevel = \"INFO\"\n") ==
        ":2: 'log.level' must be one of emerg, alert, crit, err, warning, notice, info, debug "
        "(got 'INFO')");
  CHECK(load_err("[log]\nformat = \"xml\"\n") ==
        ":2: 'log.format' must be one of text, json (got 'xml')");
  CHECK(load_err("[bare_newline]\npolicy = \"allow\"\n") ==
        ":2: 'bare_newline.policy' must be one of reject, normalize (got 'allow')");
  CHECK(load_err("[bare_newline]\nnormalize_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n") ==
        ":2: 'bare_newline.normalize_networks' entry '10.0.0.0/33' is not a valid CIDR");
}

TEST_CASE("settings: integer ranges") {
  CHECK(load_err("max_connections = -1\n") == ":1: 'max_connections' must not be negative");
  CHECK(load_err("max_errors = -5\n") == ":1: 'max_errors' must not be negative");
  CHECK(load_err("max_message_size = -1\n") == ":1: 'max_message_size' must not be negative");
  CHECK(load_err("max_connections = 4294967296\n") ==
        ":1: 'max_connections' must be between 0 and 4294967295");
  CHECK(load_ok("max_connections = 4294967295\n").max_connections == 4294967295u);
  CHECK(load_ok("max_connections = 0\n").max_connections == 0);
  CHECK(load_ok("max_message_size = 0\n").max_message_size == 0);
  CHECK(load_ok("max_message_size = 10_000_000_000\n").max_message_size == 10000000000ull);
  CHECK(load_err("max_recipients = 0\n") ==
        ":1: 'max_recipients' must be between 1 and 4294967295");
  CHECK(load_ok("max_recipients = 1\n").max_recipients == 1);
  CHECK(load_err("max_line_length = 63\n") == ":1: 'max_line_length' must be between 64 and 65536");
  CHECK(load_err("max_line_length = 65537\n") ==
        ":1: 'max_line_length' must be between 64 and 65536");
  CHECK(load_err("max_line_length = -1\n") == ":1: 'max_line_length' must be between 64 and 65536");
  CHECK(load_ok("max_line_length = 64\n").max_line_length == 64);
  CHECK(load_ok("max_line_length = 65536\n").max_line_length == 65536);
  CHECK(load_err("max_junk_commands = -1\n") == ":1: 'max_junk_commands' must not be negative");
  CHECK(load_err("max_junk_commands = 4294967296\n") ==
        ":1: 'max_junk_commands' must be between 0 and 4294967295");
  CHECK(load_ok("max_junk_commands = 0\n").max_junk_commands == 0);
  CHECK(load_ok("max_junk_commands = 4294967295\n").max_junk_commands == 4294967295u);
  CHECK(load_err("max_hops = 0\n") == ":1: 'max_hops' must be between 1 and 10000");
  CHECK(load_err("\nmax_hops = 10001\n") == ":2: 'max_hops' must be between 1 and 10000");
  CHECK(load_err("max_hops = -3\n") == ":1: 'max_hops' must be between 1 and 10000");
  CHECK(load_ok("max_hops = 1\n").max_hops == 1);
  CHECK(load_ok("max_hops = 10000\n").max_hops == 10000);
}

TEST_CASE("settings: durations must be positive finite numbers") {
  const char *msg = " must be a number > 0 and <= 1e9 (seconds)";
  CHECK(load_err("hook_timeout = 0\n") == std::string(":1: 'hook_timeout'") + msg);
  CHECK(load_err("shutdown_grace = -1.5\n") == std::string(":1: 'shutdown_grace'") + msg);
  CHECK(load_err("[timeouts]\ncommand = 0.0\n") == std::string(":2: 'timeouts.command'") + msg);
  CHECK(load_err("[timeouts]\ndata = inf\n") == std::string(":2: 'timeouts.data'") + msg);
  CHECK(load_err("[timeouts]\ndata = nan\n") == std::string(":2: 'timeouts.data'") + msg);
  CHECK(load_err("hook_timeout = 1e10\n") == std::string(":1: 'hook_timeout'") + msg);
  CHECK(load_ok("hook_timeout = 0.001\n").hook_timeout == 0.001);
  CHECK(load_ok("[timeouts]\ncommand = 3600\n").timeout_command == 3600);
}

TEST_CASE("settings: timeouts.min_data_rate is a byte rate, 0 turns the rate rule off") {
  CHECK(load_ok("[timeouts]\nmin_data_rate = 0\n").min_data_rate == 0);
  CHECK(load_ok("[timeouts]\nmin_data_rate = 1_000_000\n").min_data_rate == 1000000);
  CHECK(load_ok("[timeouts]\nmin_data_rate = 4294967295\n").min_data_rate == 4294967295u);
  CHECK(load_err("[timeouts]\nmin_data_rate = -1\n") ==
        ":2: 'timeouts.min_data_rate' must not be negative");
  CHECK(load_err("[timeouts]\nmin_data_rate = 4294967296\n") ==
        ":2: 'timeouts.min_data_rate' must be between 0 and 4294967295");
  CHECK(load_err("[timeouts]\nmin_data_rate = 500.0\n") ==
        ":2: 'timeouts.min_data_rate' must be an integer");
  CHECK(load_err("[timeouts]\nmin_data_rate = \"500\"\n") ==
        ":2: 'timeouts.min_data_rate' must be an integer");
  Settings s = load_ok("[timeouts]\ncommand = 60\ndata = 20\nmin_data_rate = 1000\n");
  CHECK(s.timeout_command == 60);
  CHECK(s.timeout_data == 20);
  CHECK(s.min_data_rate == 1000);
}

TEST_CASE("settings: string values are checked") {
  CHECK(load_err("hostname = \"\"\n") == ":1: 'hostname' must not be empty");
  CHECK(load_err("hostname = \"mx example\"\n") ==
        ":1: 'hostname' must be printable ASCII without spaces (at most 255 characters)");
  CHECK(load_err("hostname = \"mx\\r\\n250 x\"\n") ==
        ":1: 'hostname' must be printable ASCII without spaces (at most 255 characters)");
  CHECK(load_err("greeting = \"hi\\r\\nthere\"\n") ==
        ":1: 'greeting' must be printable ASCII (at most 400 characters)");
  CHECK(load_err("spool_dir = \"\"\n") == ":1: 'spool_dir' must not be empty");
  CHECK(load_ok("greeting = \"\"\n").greeting == "");
  CHECK(load_ok("hostname = \"[192.0.2.1]\"\n").hostname == "[192.0.2.1]");
  CHECK(load_ok("hostname = \"mx.example.org.\"\n").hostname == "mx.example.org");  // root dot
}

TEST_CASE("settings: TOML syntax errors carry the line") {
  std::string e = load_err("hostname = \"h\"\nmax_errors = \n");
  CHECK_MESSAGE(e.rfind(":2: ", 0) == 0, e);
  e = load_err("a = 1\nb = 2\n[log\n");
  CHECK_MESSAGE(e.rfind(":3: ", 0) == 0, e);
  e = load_err("max_errors = 1\nmax_errors = 2\n");
  CHECK_MESSAGE(e.rfind(":2: ", 0) == 0, e);
}

TEST_CASE("settings: parse_listen forms") {
  Listen l;
  REQUIRE(parse_listen("127.0.0.1:25", l));
  CHECK(l.host == "127.0.0.1");
  CHECK(l.port == 25);
  CHECK(l.sync_check);
  REQUIRE(parse_listen("[::1]:2525", l));
  CHECK(l.host == "::1");
  CHECK(l.port == 2525);
  REQUIRE(parse_listen("[::]:25", l));
  CHECK(l.host == "::");
  REQUIRE(parse_listen("[2001:DB8:0::1]:587", l));
  CHECK(l.host == "2001:db8::1");  // canonical form
  CHECK(l.port == 587);
  REQUIRE(parse_listen("*:25", l));
  CHECK(l.host == "0.0.0.0");
  REQUIRE(parse_listen("localhost:2525", l));
  CHECK(l.host == "127.0.0.1");
  REQUIRE(parse_listen("0.0.0.0:0", l));
  CHECK(l.port == 0);
  REQUIRE(parse_listen("10.0.0.1:65535", l));
  CHECK(l.port == 65535);
}

TEST_CASE("settings: parse_listen rejects bad input and leaves out untouched") {
  const char *bad[] = {"",
                       "127.0.0.1",
                       "127.0.0.1:",
                       ":25",
                       "127.0.0.1:65536",
                       "127.0.0.1:123456",
                       "127.0.0.1:-1",
                       "127.0.0.1:+25",
                       "127.0.0.1: 25",
                       "127.0.0.1:2x",
                       "::1:25",
                       "[::1]",
                       "[::1]25",
                       "[127.0.0.1]:25",
                       "[fe80::1%eth0]:25",
                       "[]:25",
                       "example.com:25",
                       "localhost",
                       "256.0.0.1:25",
                       "1.2.3:25",
                       " 127.0.0.1:25",
                       "**:25"};
  for (const char *b : bad) {
    Listen l;
    l.host = "keep";
    l.port = 7;
    CHECK_MESSAGE(!parse_listen(b, l), b);
    CHECK(l.host == "keep");
    CHECK(l.port == 7);
  }
}

TEST_CASE("settings: the shipped conf/uvsmtpd.toml loads and matches the built-in defaults but one") {
  std::string found = unit::shipped_toml();
  if (found.empty()) {
    MESSAGE("conf/uvsmtpd.toml not found from the working directory; skipped");
    return;
  }
  Settings s;
  std::string err;
  REQUIRE_MESSAGE(load_settings(found, s, err, false), err);
  // The shipped file normalizes bare LF for loopback clients (local scripts); the built-in
  // default normalizes for nobody.
  CHECK(s.bare_newline_normalize_networks == std::vector<std::string>{"127.0.0.0/8", "::1/128"});
  s.bare_newline_normalize_networks.clear();
  check_defaults(s);
  CHECK(s.hostname == "localhost");
}

// ---- startup checks (cli): require_queue_plugin, default_settings ----

TEST_CASE("settings: require_queue_plugin is a boolean, default false") {
  CHECK_FALSE(Settings{}.require_queue_plugin);
  CHECK_FALSE(load_ok("").require_queue_plugin);
  CHECK(load_ok("require_queue_plugin = true\n").require_queue_plugin);
  CHECK_FALSE(load_ok("require_queue_plugin = false\n").require_queue_plugin);
  CHECK(load_err("\nrequire_queue_plugin = \"yes\"\n") ==
        ":2: 'require_queue_plugin' must be true or false");
  CHECK(load_err("require_queue_plugin = 1\n") == ":1: 'require_queue_plugin' must be true or false");
}

TEST_CASE("settings: default_settings() equals loading an empty file") {
  Settings d = uvs::config::default_settings();
  check_defaults(d);
  CHECK(d.hostname == host_name());
  CHECK_FALSE(d.require_queue_plugin);
}

// ---- TLS: [[listen]] tls / require_tls, [tls], [[tls.sni]], timeouts.tls_handshake ----

TEST_CASE("settings: listen tls and require_tls") {
  Settings s = load_ok(R"(
[tls]
certificate = "/etc/uvsmtpd/cert.pem"
key = "/etc/uvsmtpd/key.pem"

[[listen]]
address = "127.0.0.1:25"

[[listen]]
address = "127.0.0.1:465"
tls = "implicit"

[[listen]]
address = "127.0.0.1:587"
require_tls = true

[[listen]]
tls = "none"
address = "127.0.0.1:2526"
sync_check = false
)");
  REQUIRE(s.listen.size() == 4);
  CHECK(s.listen[0].tls == "starttls");
  CHECK_FALSE(s.listen[0].require_tls);
  CHECK(s.listen[1].tls == "implicit");
  CHECK(s.listen[1].port == 465);
  CHECK(s.listen[2].tls == "starttls");
  CHECK(s.listen[2].require_tls);
  CHECK(s.listen[3].tls == "none");  // kept although written before the address
  CHECK_FALSE(s.listen[3].sync_check);
  // plain strings (and --listen) get the defaults
  Settings p = load_ok("listen = [\"127.0.0.1:25\"]\n");
  CHECK(p.listen[0].tls == "starttls");
  CHECK_FALSE(p.listen[0].require_tls);
  Listen l;
  l.tls = "implicit";
  l.require_tls = true;
  REQUIRE(parse_listen("127.0.0.1:7", l));
  CHECK(l.tls == "starttls");
  CHECK_FALSE(l.require_tls);
  // without a certificate a STARTTLS listener is fine (STARTTLS is just not offered)
  CHECK(load_ok("[[listen]]\naddress = \"127.0.0.1:25\"\ntls = \"starttls\"\n").listen[0].tls ==
        "starttls");
}

TEST_CASE("settings: listen tls errors") {
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\ntls = \"ssl\"\n") ==
        ":3: 'listen.tls' must be one of none, starttls, implicit (got 'ssl')");
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\ntls = true\n") ==
        ":3: 'listen.tls' must be one of none, starttls, implicit");
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\nrequire_tls = \"yes\"\n") ==
        ":3: 'listen.require_tls' must be true or false");
  // implicit TLS and require_tls need [tls] certificate; the error names the key's line
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:465\"\n\ntls = \"implicit\"\n") ==
        ":4: 'listen.tls' is \"implicit\" but 'tls.certificate' is not set");
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:587\"\nrequire_tls = true\n") ==
        ":3: 'listen.require_tls' is true but 'tls.certificate' is not set");
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\ntls = \"none\"\nrequire_tls = true\n") ==
        ":1: 'listen.require_tls' is true but 'tls' is \"none\" (no message could be accepted)");
  // require_tls = false needs nothing
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\nrequire_tls = false\n") == "");
}

TEST_CASE("settings: every [tls] key") {
  Settings s = load_ok(R"(
[timeouts]
tls_handshake = 12.5

[tls]
certificate = "certs/rsa.pem"
key = "certs/rsa.key"
min_protocol = "TLSv1.3"
ciphers = "ECDHE-RSA-AES128-GCM-SHA256"
ciphersuites = "TLS_AES_256_GCM_SHA384"
groups = "X25519"
session_tickets = false
ticket_key_lifetime = 600
client_certificates = "request"
client_ca = "certs/ca.pem"
watch = false

[[tls.sni]]
certificate = "certs/other.pem"
key = "certs/other.key"
names = ["mail.example.org", "*.example.org"]

[[tls.sni]]
certificate = "certs/third.pem"
key = "certs/third.key"
)");
  CHECK(s.timeout_tls_handshake == 12.5);
  CHECK(s.tls.certificate == "certs/rsa.pem");
  CHECK(s.tls.key == "certs/rsa.key");
  CHECK(s.tls.min_protocol == "TLSv1.3");
  CHECK(s.tls.ciphers == "ECDHE-RSA-AES128-GCM-SHA256");
  CHECK(s.tls.ciphersuites == "TLS_AES_256_GCM_SHA384");
  CHECK(s.tls.groups == "X25519");
  CHECK_FALSE(s.tls.session_tickets);
  CHECK(s.tls.ticket_key_lifetime == 600);
  CHECK(s.tls.client_certificates == "request");
  CHECK(s.tls.client_ca == "certs/ca.pem");
  CHECK_FALSE(s.tls.watch);
  REQUIRE(s.tls.sni.size() == 2);
  CHECK(s.tls.sni[0].certificate == "certs/other.pem");
  CHECK(s.tls.sni[0].key == "certs/other.key");
  CHECK(s.tls.sni[0].names == std::vector<std::string>{"mail.example.org", "*.example.org"});
  CHECK(s.tls.sni[1].certificate == "certs/third.pem");
  CHECK(s.tls.sni[1].names.empty());  // the certificate's own names
  // the files are not opened here (the TLS engine reports them at startup)
  CHECK(load_ok("[tls]\nmin_protocol = \"TLSv1.2\"\nclient_certificates = \"none\"\n")
            .tls.min_protocol == "TLSv1.2");
  // an empty pair is no TLS, not an error
  CHECK(load_ok("[tls]\ncertificate = \"\"\nkey = \"\"\n").tls.certificate.empty());
}

TEST_CASE("settings: [tls] errors") {
  CHECK(load_err("[tls]\nmin_protocol = \"TLSv1.1\"\n") ==
        ":2: 'tls.min_protocol' must be one of TLSv1.2, TLSv1.3 (got 'TLSv1.1')");
  CHECK(load_err("[tls]\nmin_protocol = 1.2\n") ==
        ":2: 'tls.min_protocol' must be a string, one of TLSv1.2, TLSv1.3");
  CHECK(load_err("[tls]\nclient_certificates = \"require\"\n") ==
        ":2: 'tls.client_certificates' must be one of none, request (got 'require')");
  CHECK(load_err("[tls]\ncertificate = \"c.pem\"\n") ==
        ":2: 'tls.certificate' is set but 'tls.key' is not");
  CHECK(load_err("[tls]\n\nkey = \"k.pem\"\n") ==
        ":3: 'tls.key' is set but 'tls.certificate' is not");
  CHECK(load_err("[tls]\ncertificate = 5\n") == ":2: 'tls.certificate' must be a string");
  CHECK(load_err("[tls]\nticket_key_lifetime = 0\n") ==
        ":2: 'tls.ticket_key_lifetime' must be between 1 and 1000000000");
  CHECK(load_err("[tls]\nticket_key_lifetime = -5\n") ==
        ":2: 'tls.ticket_key_lifetime' must be between 1 and 1000000000");
  CHECK(load_err("[tls]\nticket_key_lifetime = 1.5\n") ==
        ":2: 'tls.ticket_key_lifetime' must be an integer");
  CHECK(load_err("[timeouts]\ntls_handshake = 0\n") ==
        ":2: 'timeouts.tls_handshake' must be a number > 0 and <= 1e9 (seconds)");
  CHECK(load_err("[timeouts]\ntls_handshake = \"30\"\n") ==
        ":2: 'timeouts.tls_handshake' must be a number");
  CHECK(load_err("[tls]\nsession_tickets = \"yes\"\n") ==
        ":2: 'tls.session_tickets' must be true or false");
  CHECK(load_err("[tls]\nwatch = 1\n") == ":2: 'tls.watch' must be true or false");
  CHECK(load_err("[tls]\nciphers = \"\"\n") == ":2: 'tls.ciphers' must not be empty");
  CHECK(load_err("[tls]\nciphersuites = \"\"\n") == ":2: 'tls.ciphersuites' must not be empty");
  CHECK(load_err("[tls]\ngroups = \"\"\n") == ":2: 'tls.groups' must not be empty");
  CHECK(load_err("[tls]\nclient_ca = []\n") == ":2: 'tls.client_ca' must be a string");
  CHECK(load_err("[tls]\ncertificat = \"c.pem\"\n") == ":2: unknown key 'tls.certificat'");
  CHECK(load_err("tls = \"on\"\n") == ":1: 'tls' must be a table");
}

TEST_CASE("settings: [[tls.sni]] errors") {
  const std::string pair = "[tls]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n";  // lines 1-3
  // SNI pairs without the default pair
  CHECK(load_err("\n[[tls.sni]]\ncertificate = \"o.pem\"\nkey = \"o.key\"\n") ==
        ":2: 'tls.sni' pairs need the default pair: 'tls.certificate' is not set");
  CHECK(load_err(pair + "[[tls.sni]]\ncertificate = \"o.pem\"\n") ==
        ":4: 'tls.sni' entry needs both 'certificate' and 'key'");
  CHECK(load_err(pair + "[[tls.sni]]\nkey = \"o.key\"\n") ==
        ":4: 'tls.sni' entry needs both 'certificate' and 'key'");
  CHECK(load_err(pair + "[[tls.sni]]\ncertificate = \"\"\nkey = \"o.key\"\n") ==
        ":5: 'tls.sni.certificate' must not be empty");
  CHECK(load_err(pair + "[[tls.sni]]\ncertificate = \"o.pem\"\nkey = \"o.key\"\nnames = []\n") ==
        ":7: 'tls.sni.names' must be a non-empty array of host names (leave it out to use the "
        "certificate's names)");
  CHECK(load_err(pair +
                 "[[tls.sni]]\ncertificate = \"o.pem\"\nkey = \"o.key\"\nnames = [\"a b\"]\n") ==
        ":7: 'tls.sni.names' entries must be host names (printable ASCII, no spaces)");
  CHECK(load_err(pair + "[[tls.sni]]\ncertificate = \"o.pem\"\nkey = \"o.key\"\nname = \"x\"\n") ==
        ":7: unknown key 'tls.sni.name'");
  CHECK(load_err(pair + "sni = [\"x\"]\n") ==
        ":4: 'tls.sni' entries must be tables (certificate, key, names)");
  CHECK(load_err(pair + "sni = \"x\"\n") == ":4: 'tls.sni' must be an array of [[tls.sni]] tables");
}
