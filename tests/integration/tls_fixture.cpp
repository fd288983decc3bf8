// tests/integration/tls_fixture.cpp: the TLS suites' shared pieces (see tls_fixture.hpp).
#include "tls_fixture.hpp"

#include <cctype>
#include <cstdlib>
#include <doctest/doctest.h>
#include <unistd.h>

namespace itest::tls {

const Certs &pki() {
  const Certs &c = certs();
  REQUIRE_MESSAGE(c.ok(), c.error);
  return c;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  path = mkdtemp(tmpl);
}

TempDir::~TempDir() {
  if (!getenv("UVS_KEEP_TEST_DIRS")) remove_tree(path);
}

// uvsmtpd.toml text for listeners on 127.0.0.1:0 and a [tls] table with the pair (none if
// cert is ""); `tls_extra` goes into [tls], `after` after it (more tables).
std::string tls_toml(const std::vector<Listener> &ls, const std::string &cert,
                     const std::string &key, const std::string &tls_extra, const std::string &after,
                     double handshake_timeout) {
  std::string t;
  for (const auto &l : ls)
    t += "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"" + l.mode +
         "\"\nrequire_tls = " + (l.require_tls ? "true" : "false") + "\n" +
         (l.sync_check ? "" : "sync_check = false\n");
  if (!cert.empty())
    t += "[tls]\ncertificate = \"" + cert + "\"\nkey = \"" + key + "\"\n" + tls_extra;
  t += after;
  t += "[timeouts]\ntls_handshake = " + std::to_string(handshake_timeout) + "\n";
  return t;
}

Options tls_opts(const std::string &toml, const std::string &plugins) {
  Options o;
  o.toml = toml;
  o.plugins = plugins;
  o.cli_listen = false;
  return o;
}

// A server from `o` with n listeners: their ports, in the order of the tables.
std::vector<int> start_ports(Server &s, size_t n) {
  REQUIRE_MESSAGE(s.started(), s.log());
  std::vector<int> p = s.ports(n);
  REQUIRE_MESSAGE(p.size() == n, s.log());
  return p;
}

// Client options that verify the server as "localhost" against the test CA.
TlsOptions verified(const std::string &ciphersuites) {
  TlsOptions o;
  o.cafile = pki().ca;
  o.verify_name = "localhost";
  o.ciphersuites = ciphersuites;
  o.timeout = 5;
  return o;
}

bool has_line(const std::string &reply, const std::string &word) {
  for (const char *sep : {"250-", "250 "}) {
    std::string key = sep + word;
    for (size_t pos = reply.find(key); pos != std::string::npos; pos = reply.find(key, pos + 1)) {
      size_t end = pos + key.size();
      if ((pos == 0 || reply[pos - 1] == '\n') &&
          (end == reply.size() || reply[end] == '\n' || reply[end] == ' '))
        return true;
    }
  }
  return false;
}

// True if one log line holds every needle (case-insensitive).
bool log_line_with(const Server &s, const std::vector<std::string> &needles, double timeout) {
  auto lower = [](std::string v) {
    for (auto &ch : v) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    return v;
  };
  double deadline = now() + timeout;
  do {
    std::string l = lower(s.log());
    size_t start = 0;
    while (start < l.size()) {
      size_t end = l.find('\n', start);
      if (end == std::string::npos) end = l.size();
      std::string line = l.substr(start, end - start);
      bool all = true;
      for (const auto &n : needles) all = all && line.find(lower(n)) != std::string::npos;
      if (all) return true;
      start = end + 1;
    }
    usleep(20000);
  } while (now() < deadline);
  return false;
}

}  // namespace itest::tls
