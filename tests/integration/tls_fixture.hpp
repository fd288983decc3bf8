// tests/integration/tls_fixture.hpp: what the TLS suites share: the PKI with a REQUIRE, a
// temp dir, uvsmtpd.toml text for TLS listeners and [tls], Options with the listeners from the
// TOML, verified client options, EHLO keyword and log-line matching.
#pragma once
#include <string>
#include <vector>

#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"

namespace itest::tls {

const Certs &pki();  // certs(), REQUIREd to be made

struct TempDir {  // a fresh /tmp/uvsmtpd-test.* dir, removed at the end (UVS_KEEP_TEST_DIRS keeps
                  // it)
  std::string path;
  TempDir();
  ~TempDir();
};

struct Listener {
  std::string mode = "starttls";  // "none" | "starttls" | "implicit"
  bool require_tls = false;
  bool sync_check = true;
};

// uvsmtpd.toml text: one [[listen]] table on 127.0.0.1:0 per listener, a [tls] table with the
// pair (none if cert is ""), `tls_extra` inside [tls], `after` after it (more tables, e.g.
// [[tls.sni]]), and [timeouts] tls_handshake.
std::string tls_toml(const std::vector<Listener> &ls, const std::string &cert,
                     const std::string &key, const std::string &tls_extra = "",
                     const std::string &after = "", double handshake_timeout = 5);

// Options with `toml`, the listeners taken from it (no --listen) and `plugins`.
Options tls_opts(const std::string &toml,
                 const std::string &plugins = "verdict rcpt=OK queue=OK\n");

// REQUIREs that s started with n listeners; their ports in the order of the tables.
std::vector<int> start_ports(Server &s, size_t n);

// Client options that verify the server as "localhost" against the test CA.
TlsOptions verified(const std::string &ciphersuites = "");

// True if the EHLO reply has the keyword `word` on a line of its own ("250-WORD" / "250 WORD",
// optionally followed by parameters).
bool has_line(const std::string &reply, const std::string &word);

// True if within timeout one log line holds every needle (case-insensitive).
bool log_line_with(const Server &s, const std::vector<std::string> &needles, double timeout = 3);

}  // namespace itest::tls
