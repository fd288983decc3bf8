// tests/integration/test_auth_dovecot.cpp: SMTP AUTH against a real Dovecot through the auth/dovecot
// plugin (Dovecot started by the test, dovecot_fixture.hpp): good and wrong passwords, TLS and the
// `secured` flag, Dovecot stopped and restarted (reconnect), a socket that never answers (timeout,
// the loop stays free), temporary failures, passwords kept out of the log, swaks --auth PLAIN and
// LOGIN over STARTTLS, and the plugin's argument errors. Also the sender_login plugin with AUTH
// users from the same Dovecot. Cases are named "auth-dovecot: ..." and "sender_login: ...".
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "dovecot_fixture.hpp"
#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"
#include "tls_fixture.hpp"

using namespace itest;
using namespace itest::tls;

namespace {

const char *const kAlicePw = "Correct-Horse-7";
const char *const kBobPw = "bob's p@ss w0rd";  // a quote, an @ and blanks

std::string b64(const std::string &s) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    unsigned v = (unsigned char)s[i] << 16 | (unsigned char)s[i + 1] << 8 | (unsigned char)s[i + 2];
    out += {tab[v >> 18 & 63], tab[v >> 12 & 63], tab[v >> 6 & 63], tab[v & 63]};
  }
  if (i < s.size()) {
    unsigned v = (unsigned char)s[i] << 16 | (i + 1 < s.size() ? (unsigned char)s[i + 1] << 8 : 0u);
    out += {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < s.size() ? tab[v >> 6 & 63] : '=', '='};
  }
  return out;
}

std::string plain(const std::string &user, const std::string &pw, const std::string &authzid = "") {
  return b64(authzid + std::string(1, '\0') + user + std::string(1, '\0') + pw);
}

std::vector<DovecotUser> users() {
  return {{"alice", kAlicePw, true}, {"bob", kBobPw, false}, {"carol@example.org", "carol-pw", true}};
}

// A started Dovecot (REQUIREd: the test fails, never skips, when dovecot is missing).
struct RealDovecot {
  Dovecot d;
  explicit RealDovecot(const std::string &extra = "") : d(users(), extra) {
    REQUIRE_MESSAGE(d.start(), d.error());
  }
};

// Listener 0: STARTTLS; listener 1: plain with auth_plaintext (for the cases that need no TLS).
std::string toml(const std::string &more = "") {
  const Certs &c = pki();
  return "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n"
         "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"none\"\nauth_plaintext = true\n"
         "[tls]\ncertificate = \"" + c.leaf.cert + "\"\nkey = \"" + c.leaf.key + "\"\n"
         "[auth]\nfailure_delay = 0\nmax_failures = 100\nlockout_failures = 0\n" + more;
}

Options opts(const std::string &sock, const std::string &timeout_ms = "",
             const std::string &more_plugins = "") {
  Options o;
  o.toml = toml();
  o.cli_listen = false;
  o.plugins = "auth/dovecot " + sock + (timeout_ms.empty() ? "" : " " + timeout_ms) + "\n" +
              more_plugins + "verdict rcpt=OK queue=OK\n";
  return o;
}

// EHLO then AUTH PLAIN with an initial response on a plain client: the reply.
std::string auth_plain(int port, const std::string &user, const std::string &pw, double timeout = 10) {
  Client c(port);
  c.reply();
  c.cmd("EHLO client.test");
  return c.cmd("AUTH PLAIN " + plain(user, pw), timeout);
}

bool starts(const std::string &reply, const std::string &prefix) { return reply.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("auth-dovecot: the fixture's Dovecot answers the protocol handshake") {
  RealDovecot rd;
  Dovecot &d = rd.d;
  RunResult r = sh("printf 'VERSION\\t1\\t2\\nCPID\\t1\\n' | timeout 3 python3 -c \""
                   "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                   "s.sendall(sys.stdin.buffer.read()); import time; time.sleep(0.5); "
                   "print(s.recv(4096).decode())\" " + d.socket_path());
  CHECK_MESSAGE(r.output.find("VERSION\t1\t") != std::string::npos, r.output);
  CHECK_MESSAGE(r.output.find("MECH\tPLAIN") != std::string::npos, r.output);
  CHECK_MESSAGE(r.output.find("DONE") != std::string::npos, r.output);
  CHECK(d.stop());
  CHECK_FALSE(d.running());
}

TEST_CASE("auth-dovecot: a good password gets 235, a wrong one 535, an unknown user 535") {
  RealDovecot rd("disable_plaintext_auth = no\n");
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0"));
  CHECK(starts(auth_plain(ports[1], "bob", kBobPw), "235 2.7.0"));  // {PLAIN} entry
  CHECK(starts(auth_plain(ports[1], "carol@example.org", "carol-pw"), "235 2.7.0"));
  CHECK(starts(auth_plain(ports[1], "alice", "wrong"), "535 5.7.8"));
  CHECK(starts(auth_plain(ports[1], "nobody", "x"), "535 5.7.8"));
  // LOGIN reaches Dovecot as PLAIN
  Client c(ports[1]);
  c.reply();
  c.cmd("EHLO client.test");
  CHECK(c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
  CHECK(c.cmd(b64("alice")) == "334 UGFzc3dvcmQ6");
  CHECK(starts(c.cmd(b64(kAlicePw)), "235 2.7.0"));
  CHECK(s.wait_log("auth/dovecot: user=<alice>: Dovecot says OK"));
  CHECK(s.wait_log("auth/dovecot: user=<alice>: Dovecot says FAIL"));
  CHECK(s.wait_log("auth/dovecot: connected to " + rd.d.socket_path()));
  // one connection serves every session
  CHECK(s.count_log("auth/dovecot: connected to") == 1);
}

TEST_CASE("auth-dovecot: `secured` goes to Dovecot only with TLS (disable_plaintext_auth = yes)") {
  RealDovecot rd;  // the fixture's default: Dovecot refuses plaintext auth on unsecured requests
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  TlsClient t(ports[0]);
  REQUIRE_MESSAGE(t.starttls(verified()), t.error());
  t.cmd("EHLO client.test");
  CHECK(starts(t.cmd("AUTH PLAIN " + plain("alice", kAlicePw)), "235 2.7.0"));
  // the same credentials on the plaintext listener: Dovecot refuses them
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "535 5.7.8"));
}

TEST_CASE("auth-dovecot: Dovecot stopped mid-run gives 454 and the server keeps running; restarted, 235 again") {
  RealDovecot rd("disable_plaintext_auth = no\n");
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0"));
  REQUIRE(rd.d.stop());
  // the open connection breaks; the next AUTH cannot connect
  double t0 = now();
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0 Temporary authentication failure"));
  CHECK(now() - t0 < 3);
  CHECK(s.wait_log("cannot connect"));
  // one warning per failed attempt, with the socket's path
  CHECK(s.count_log("auth/dovecot: " + rd.d.socket_path() + ": cannot connect") == 1);
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0"));
  CHECK(s.count_log("auth/dovecot: " + rd.d.socket_path() + ": cannot connect") == 2);
  // the server still serves everything else
  Client c(ports[1]);
  c.reply();
  CHECK(starts(c.cmd("EHLO client.test"), "250"));
  CHECK(starts(c.cmd("NOOP"), "250"));
  CHECK(s.running());
  // Dovecot back: the plugin connects again
  REQUIRE_MESSAGE(rd.d.start(), rd.d.error());
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0"));
  CHECK(starts(auth_plain(ports[1], "alice", "wrong"), "535 5.7.8"));
  CHECK(s.count_log("auth/dovecot: connected to") == 2);
}

TEST_CASE("auth-dovecot: a missing socket gives 454 at once") {
  TempDir tmp;
  Server s(opts(tmp.path + "/no-such-socket"));
  auto ports = start_ports(s, 2);
  double t0 = now();
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0"));
  CHECK(now() - t0 < 2);
  CHECK(s.wait_log("no-such-socket: cannot connect: no such file or directory"));
}

TEST_CASE("auth-dovecot: a socket that never answers gives 454 after the timeout; other sessions stay fast") {
  TempDir tmp;
  std::string path = tmp.path + "/silent";
  SilentSocket silent(path);
  REQUIRE(silent.ok());
  Server s(opts(path, "1000"));
  auto ports = start_ports(s, 2);
  Client a(ports[1]);
  a.reply();
  a.cmd("EHLO a.test");
  Client b(ports[1]);
  b.reply();
  b.cmd("EHLO b.test");
  double t0 = now();
  a.line("AUTH PLAIN " + plain("alice", kAlicePw));
  // while A waits for Dovecot, B's commands are answered at once
  double worst = 0;
  while (now() - t0 < 0.8) {
    double t = now();
    CHECK(starts(b.cmd("NOOP"), "250"));
    worst = std::max(worst, now() - t);
  }
  CHECK(worst < 0.2);
  std::string r = a.reply(5);
  double took = now() - t0;
  CHECK(starts(r, "454 4.7.0 Temporary authentication failure"));
  CHECK(took >= 0.9);
  CHECK(took < 3);
  CHECK(s.wait_log("no answer from " + path + " within 1000 ms"));
  // the stuck connection was dropped: the next AUTH connects again (and times out again)
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0"));
  CHECK(silent.accepted() >= 2);
  CHECK(s.running());
}

TEST_CASE("auth-dovecot: Dovecot's temporary failure gives 454") {
  RealDovecot rd("disable_plaintext_auth = no\n");
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0"));
  // passwd-file cannot be read any more: Dovecot answers FAIL with the temp flag
  REQUIRE(rename((rd.d.dir() + "/users").c_str(), (rd.d.dir() + "/users.gone").c_str()) == 0);
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0"));
  CHECK(s.wait_log("Dovecot reports a temporary failure"));
}

TEST_CASE("auth-dovecot: passwords never reach the log, not even at debug") {
  RealDovecot rd("disable_plaintext_auth = no\n");
  Server s(opts(rd.d.socket_path()));  // log level debug (the harness default)
  auto ports = start_ports(s, 2);
  CHECK(starts(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0"));
  CHECK(starts(auth_plain(ports[1], "alice", "Wrong-Secret-9"), "535 5.7.8"));
  Client c(ports[1]);
  c.reply();
  c.cmd("EHLO client.test");
  c.cmd("AUTH LOGIN");
  c.cmd(b64("bob"));
  CHECK(starts(c.cmd(b64(kBobPw)), "235 2.7.0"));
  CHECK(s.wait_log("asking Dovecot"));
  std::string log = s.log();
  for (const std::string &secret :
       {std::string(kAlicePw), std::string("Wrong-Secret-9"), std::string(kBobPw), b64(kAlicePw),
        b64(kBobPw), plain("alice", kAlicePw), plain("alice", "Wrong-Secret-9"), std::string("resp=")}) {
    CAPTURE(secret);
    CHECK(log.find(secret) == std::string::npos);
  }
}

TEST_CASE("auth-dovecot: swaks --auth PLAIN and LOGIN over --tls") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  REQUIRE_MESSAGE(sh("swaks --support").output.find("=== TLS supported") != std::string::npos,
                  "swaks cannot do TLS (apt-get install libnet-ssleay-perl)");
  for (const char *mech : {"PLAIN", "LOGIN"}) {
    CAPTURE(mech);
    RunResult r = sh("swaks --server 127.0.0.1 --port " + std::to_string(ports[0]) +
                     " --tls --auth " + mech + " --auth-user alice --auth-password '" + kAlicePw +
                     "' --ehlo client.test --from alice@client.test --to u@example.test --timeout 10");
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("235 2.7.0") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("<~  250 2.0.0") != std::string::npos, r.output);
    r = sh("swaks --server 127.0.0.1 --port " + std::to_string(ports[0]) + " --tls --auth " + mech +
           " --auth-user alice --auth-password wrong --ehlo client.test --from alice@client.test"
           " --to u@example.test --timeout 10");
    CHECK_MESSAGE(r.status != 0, r.output);
    CHECK_MESSAGE(r.output.find("535 5.7.8") != std::string::npos, r.output);
  }
}

TEST_CASE("auth-dovecot: bad arguments stop the server with the conf/plugins line") {
  TempDir tmp;
  struct Bad {
    std::string line, want;
  };
  for (const Bad &b : std::vector<Bad>{
           {"auth/dovecot", "usage: auth/dovecot <socket path> [timeout_ms]"},
           {"auth/dovecot relative/path", "the socket path 'relative/path' must be absolute"},
           {"auth/dovecot /run/x 0", "timeout_ms '0' must be a whole number of milliseconds"},
           {"auth/dovecot /run/x 5s", "timeout_ms '5s' must be a whole number of milliseconds"},
           {"auth/dovecot /run/x 1 2", "usage: auth/dovecot"},
       }) {
    CAPTURE(b.line);
    Options o;
    o.plugins = "# auth\n" + b.line + "\nverdict rcpt=OK queue=OK\n";
    std::string dir = make_tree(o);
    RunResult r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    remove_tree(dir);
    CHECK(r.status != 0);
    CHECK_MESSAGE(r.output.find("plugins:2:") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find(b.want) != std::string::npos, r.output);
  }
}

// ---- sender_login ----

namespace {

const char *const kSenderMap =
    "# who may use which sender address\n"
    "alice@example.org     alice\n"
    "sales@example.org     alice, bob\n"
    "@example.net          bob\n";

Options sl_opts(const std::string &sock) {
  Options o = opts(sock, "", "sender_login sender_logins\n");
  o.files = {{"sender_logins", kSenderMap}};
  return o;
}

// A plain session on the auth_plaintext listener, authenticated as user (unless user is "").
std::unique_ptr<Client> session(int port, const std::string &user, const std::string &pw) {
  auto c = std::make_unique<Client>(port);
  c->reply();
  c->cmd("EHLO client.test");
  if (!user.empty()) REQUIRE(starts(c->cmd("AUTH PLAIN " + plain(user, pw)), "235"));
  return c;
}

}  // namespace

TEST_CASE("sender_login: an authenticated user may send as the addresses it owns, and only those") {
  RealDovecot rd("disable_plaintext_auth = no\n");
  Server s(sl_opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  auto alice = session(ports[1], "alice", kAlicePw);
  CHECK(starts(alice->cmd("MAIL FROM:<alice@example.org>"), "250"));
  CHECK(starts(alice->cmd("RSET"), "250"));
  CHECK(starts(alice->cmd("MAIL FROM:<Sales@EXAMPLE.org>"), "250"));  // shared, case-insensitive
  CHECK(starts(alice->cmd("RSET"), "250"));
  // another's address
  CHECK(alice->cmd("MAIL FROM:<x@example.net>") == "553 5.7.1 Sender address rejected: not owned by user alice");
  // an address the map does not list (Postfix's reject_sender_login_mismatch)
  CHECK(alice->cmd("MAIL FROM:<alice@elsewhere.test>") ==
        "553 5.7.1 Sender address rejected: not owned by user alice");
  // the null sender is always allowed
  CHECK(starts(alice->cmd("MAIL FROM:<>"), "250"));
  auto bob = session(ports[1], "bob", kBobPw);
  CHECK(starts(bob->cmd("MAIL FROM:<anyone@example.net>"), "250"));  // @domain entry
  CHECK(starts(bob->cmd("RSET"), "250"));
  CHECK(starts(bob->cmd("MAIL FROM:<sales@example.org>"), "250"));
  CHECK(starts(bob->cmd("RSET"), "250"));
  CHECK(bob->cmd("MAIL FROM:<alice@example.org>") == "553 5.7.1 Sender address rejected: not owned by user bob");
  CHECK(s.wait_log("sender_login: user bob may not send as <alice@example.org>: the address belongs to other logins"));
  CHECK(s.wait_log("sender_login: user alice may not send as <alice@elsewhere.test>: the address is not in the map"));
}

TEST_CASE("sender_login: sessions without AUTH are not affected") {
  RealDovecot rd("disable_plaintext_auth = no\n");
  Server s(sl_opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  auto anon = session(ports[1], "", "");
  CHECK(starts(anon->cmd("MAIL FROM:<alice@example.org>"), "250"));
  CHECK(starts(anon->cmd("RSET"), "250"));
  CHECK(starts(anon->cmd("MAIL FROM:<someone@elsewhere.test>"), "250"));
}

TEST_CASE("sender_login: map errors stop the server with file and line") {
  struct Bad {
    std::string map, want;
  };
  for (const Bad &b : std::vector<Bad>{
           {"# map\nalice@example.org\n", "sender_logins:2: no login names after 'alice@example.org'"},
           {"alice  alice\n", "sender_logins:1: 'alice' is not an address (local@domain) or @domain"},
           {"a@example.org alice # owner\n", "sender_logins:1: a '#' comment must start its own line"},
           {"a@example.org alice\n\nA@Example.org bob\n",
            "sender_logins:3: 'a@example.org' is listed twice (first at "},
       }) {
    CAPTURE(b.map);
    Options o;
    o.plugins = "sender_login sender_logins\nverdict rcpt=OK queue=OK\n";
    o.files = {{"sender_logins", b.map}};
    std::string dir = make_tree(o);
    RunResult r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    remove_tree(dir);
    CHECK(r.status != 0);
    CHECK_MESSAGE(r.output.find(b.want) != std::string::npos, r.output);
  }
  Options o;
  o.plugins = "sender_login\n";
  std::string dir = make_tree(o);
  RunResult r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
  remove_tree(dir);
  CHECK_MESSAGE(r.output.find("usage: sender_login <map file>") != std::string::npos, r.output);
  o.plugins = "sender_login nothere\n";
  dir = make_tree(o);
  r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
  remove_tree(dir);
  CHECK_MESSAGE(r.output.find("cannot read the map file 'nothere': No such file or directory") != std::string::npos,
                r.output);
}
