// sendmail/server_config.hpp: where uvsmtpd-sendmail submits (-S, $UVSMTPD_SENDMAIL_SERVER, the
// first listen address of uvsmtpd.toml, 127.0.0.1:25) and the host name it qualifies with.
#pragma once
#include <string>

namespace sm {

struct Target {
  std::string host;  // name or numeric address, without brackets
  std::string port;
  std::string shown() const;  // host:port or [v6]:port
};

// "host:port", "[v6]:port" or "host" (port 25). false if malformed.
bool parse_target(const std::string &s, Target &t);

// What uvsmtpd.toml says (only listen and hostname are read).
struct ServerConfig {
  bool found = false;    // the file was read
  std::string listen;    // the first listen address, made connectable ("*:25" -> 127.0.0.1:25)
  std::string hostname;  // "" when not set
};
// path: a config directory (its uvsmtpd.toml) or a file. A missing or unreadable file is an
// error only when required; a file that does not parse always is. 0 or EX_CONFIG with err.
int read_server_config(const std::string &path, bool required, ServerConfig &c, std::string &err);

// A listen address as uvsmtpd.toml writes it, as an address to connect to: the wildcard
// addresses become loopback ("*:25", "0.0.0.0:25" -> 127.0.0.1:25, "[::]:25" -> [::1]:25),
// "localhost:p" -> 127.0.0.1:p.
std::string connectable(const std::string &listen);

}  // namespace sm
