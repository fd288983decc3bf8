// sendmail/server_config.cpp: the submission target and uvsmtpd.toml's listen/hostname.
#include "server_config.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sysexits.h>
#include <toml++/toml.h>

namespace sm {

std::string Target::shown() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port;
}

bool parse_target(const std::string &s, Target &t) {
  std::string host, port = "25";
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos) return false;
    host = s.substr(1, close - 1);
    std::string rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
    }
  } else {
    size_t colon = s.rfind(':');
    if (colon != std::string::npos && s.find(':') != colon) return false;  // bare IPv6: use [ ]
    host = s.substr(0, colon);
    if (colon != std::string::npos) port = s.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  if (std::stoi(port) > 65535) return false;
  t.host = host;
  t.port = port;
  return true;
}

std::string connectable(const std::string &listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return listen;
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host == "*" || host == "0.0.0.0" || host == "localhost") return "127.0.0.1:" + port;
  if (host == "[::]" || host == "[0:0:0:0:0:0:0:0]") return "[::1]:" + port;
  return listen;
}

int read_server_config(const std::string &path, bool required, ServerConfig &c, std::string &err) {
  std::string file = path;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/uvsmtpd.toml";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    if (!required) return 0;
    err = file + ": cannot open: " + strerror(errno);
    return EX_CONFIG;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(ss.str(), std::string_view(file));
  } catch (const toml::parse_error &e) {
    err = file + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
    return EX_CONFIG;
  }
  c.found = true;
  c.listen = "127.0.0.1:2525";  // uvsmtpd's default when the file has no listen
  if (auto h = root["hostname"].value<std::string>()) c.hostname = *h;
  if (auto *list = root["listen"].as_array(); list && !list->empty()) {
    const toml::node &first = *list->begin();
    std::optional<std::string> a = first.value<std::string>();
    if (!a && first.is_table()) a = (*first.as_table())["address"].value<std::string>();
    if (!a) {
      err = file + ": the first 'listen' entry has no address";
      return EX_CONFIG;
    }
    c.listen = connectable(*a);
  }
  return 0;
}

}  // namespace sm
