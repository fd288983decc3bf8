// workers/role.cpp: the worker's internal command-line options (role.hpp).
#include "workers/role.hpp"

#include <cstdlib>

namespace uvs::workers {

namespace {

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

bool to_int(const std::string &s, long max, long &out) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = strtol(s.c_str(), nullptr, 10);
  return out <= max;
}

}  // namespace

std::vector<std::string> role_args(int index, int channel_fd, const std::vector<int> &fds,
                                   const std::vector<config::Listen> &listen) {
  std::vector<std::string> out = {"--worker",
                                  std::to_string(index) + "," + std::to_string(channel_fd)};
  for (size_t i = 0; i < fds.size() && i < listen.size(); ++i) {
    const config::Listen &l = listen[i];
    // host has no ',' (an IP address); the modes are fixed words.
    out.push_back("--worker-listener");
    out.push_back(std::to_string(fds[i]) + "," + l.host + "," + std::to_string(l.port) + "," +
                  (l.sync_check ? "1" : "0") + "," + l.tls + "," + (l.require_tls ? "1" : "0") +
                  "," + l.auth + "," + (l.auth_plaintext ? "1" : "0") + "," +
                  (l.auth_relay ? "1" : "0"));
  }
  return out;
}

bool parse_role_option(const std::string &option, const std::string &value, Role &role) {
  auto parts = split(value, ',');
  long a = 0, b = 0;
  if (option == "--worker") {
    if (parts.size() != 2 || !to_int(parts[0], 100000, a) || a < 1 || !to_int(parts[1], 1 << 20, b))
      return false;
    role.index = static_cast<int>(a);
    role.channel_fd = static_cast<int>(b);
    return true;
  }
  if (option != "--worker-listener" || parts.size() != 9 || !to_int(parts[0], 1 << 20, a) ||
      !to_int(parts[2], 65535, b))
    return false;
  config::Listen l;
  l.host = parts[1];
  l.port = static_cast<uint16_t>(b);
  l.sync_check = parts[3] == "1";
  l.tls = parts[4];
  l.require_tls = parts[5] == "1";
  l.auth = parts[6];
  l.auth_plaintext = parts[7] == "1";
  l.auth_relay = parts[8] == "1";
  role.fds.push_back(static_cast<int>(a));
  role.listen.push_back(l);
  return true;
}

}  // namespace uvs::workers
