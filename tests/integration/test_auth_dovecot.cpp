// tests/integration/test_auth_dovecot.cpp: SMTP AUTH against a real Dovecot through the
// auth/dovecot plugin (Dovecot started by the test, dovecot_fixture.hpp): good and wrong passwords,
// TLS and the `secured` flag, Dovecot stopped and restarted (reconnect), a socket that never
// answers (timeout, the loop stays free), temporary failures, passwords kept out of the log, swaks
// --auth PLAIN and LOGIN over STARTTLS, and the plugin's argument errors. Also the sender_login
// plugin with AUTH users from the same Dovecot. Cases are named "auth-dovecot: ..." and
// "sender_login: ...".
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <sys/stat.h>
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
  return {
      {"alice", kAlicePw, true}, {"bob", kBobPw, false}, {"carol@example.org", "carol-pw", true}};
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
         "[tls]\ncertificate = \"" +
         c.leaf.cert + "\"\nkey = \"" + c.leaf.key +
         "\"\n"
         "[auth]\nfailure_delay = 0\nmax_failures = 100\nlockout_failures = 0\n" +
         more;
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
std::string auth_plain(int port, const std::string &user, const std::string &pw,
                       double timeout = 10) {
  Client c(port);
  c.reply();
  c.cmd("EHLO client.test");
  return c.cmd("AUTH PLAIN " + plain(user, pw), timeout);
}

bool starts(const std::string &reply, const std::string &prefix) {
  return reply.rfind(prefix, 0) == 0;
}

// The reply must start with prefix; on failure the reply and the server's log are shown.
#define CHECK_STARTS(expr, prefix)                                                               \
  do {                                                                                           \
    std::string r_ = (expr);                                                                     \
    CHECK_MESSAGE(starts(r_, prefix), (std::string("reply: ") + r_ + "\n--- log:\n" + s.log())); \
  } while (0)

}  // namespace

TEST_CASE("auth-dovecot: the fixture's Dovecot answers the protocol handshake") {
  RealDovecot rd;
  Dovecot &d = rd.d;
  RunResult r =
      sh("printf 'VERSION\\t1\\t2\\nCPID\\t1\\n' | timeout 3 python3 -c \""
         "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
         "s.sendall(sys.stdin.buffer.read()); import time; time.sleep(0.5); "
         "print(s.recv(4096).decode())\" " +
         d.socket_path());
  CHECK_MESSAGE(r.output.find("VERSION\t1\t") != std::string::npos, r.output);
  CHECK_MESSAGE(r.output.find("MECH\tPLAIN") != std::string::npos, r.output);
  CHECK_MESSAGE(r.output.find("DONE") != std::string::npos, r.output);
  CHECK(d.stop());
  CHECK_FALSE(d.running());
}

TEST_CASE("auth-dovecot: a good password gets 235, a wrong one 535, an unknown user 535") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "bob", kBobPw), "235 2.7.0");  // {PLAIN} entry
  CHECK_STARTS(auth_plain(ports[1], "carol@example.org", "carol-pw"), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "alice", "wrong"), "535 5.7.8");
  CHECK_STARTS(auth_plain(ports[1], "nobody", "x"), "535 5.7.8");
  // LOGIN reaches Dovecot as PLAIN
  Client c(ports[1]);
  c.reply();
  c.cmd("EHLO client.test");
  CHECK(c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
  CHECK(c.cmd(b64("alice")) == "334 UGFzc3dvcmQ6");
  CHECK_STARTS(c.cmd(b64(kAlicePw)), "235 2.7.0");
  CHECK(s.wait_log("auth/dovecot: user=<alice>: Dovecot says OK"));
  CHECK(s.wait_log("auth/dovecot: user=<alice>: Dovecot says FAIL"));
  CHECK(s.wait_log("auth/dovecot: connected to " + rd.d.socket_path()));
  // one connection serves every session
  CHECK(s.count_log("auth/dovecot: connected to") == 1);
}

TEST_CASE(
    "auth-dovecot: the request carries service, lip/rip and ports, the session id, and `secured` "
    "only with TLS") {
  RealDovecot rd("auth_debug = yes\n");  // Dovecot logs each request it gets, resp= hidden
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  TlsClient t(ports[0]);
  REQUIRE_MESSAGE(t.starttls(verified()), t.error());
  t.cmd("EHLO client.test");
  CHECK_STARTS(t.cmd("AUTH PLAIN " + plain("alice", kAlicePw)), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  std::vector<std::string> lines;
  for (double end = now() + 5; now() < end; usleep(20000)) {
    lines.clear();
    std::string log = rd.d.log();
    for (size_t p = 0; (p = log.find("client in: AUTH\t", p)) != std::string::npos; p++)
      lines.push_back(log.substr(p, log.find('\n', p) - p));
    if (lines.size() >= 2) break;
  }
  REQUIRE_MESSAGE(lines.size() == 2, rd.d.log());
  std::string pre =
      "client in: "
      "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tno-penalty\tlip=127.0.0.1\trip=127.0.0.1\tlport=";
  CHECK_MESSAGE(lines[0].rfind(pre + std::to_string(ports[0]) + "\trport=", 0) == 0, lines[0]);
  CHECK_MESSAGE(lines[0].find("\tsecured\tsession=") != std::string::npos, lines[0]);
  CHECK_MESSAGE(lines[0].find("\tresp=<hidden>") != std::string::npos, lines[0]);
  pre[std::string("client in: AUTH\t").size()] = '2';
  CHECK_MESSAGE(lines[1].rfind(pre + std::to_string(ports[1]) + "\trport=", 0) == 0, lines[1]);
  CHECK_MESSAGE(lines[1].find("secured") == std::string::npos, lines[1]);
  // the session id that uvsmtpd logs is the one Dovecot logs
  size_t sp = lines[1].find("\tsession=") + 9;
  std::string sid = lines[1].substr(sp, lines[1].find('\t', sp) - sp);
  CHECK(s.wait_log("[" + sid + "] auth/dovecot: user=<alice>: Dovecot says OK"));
}

TEST_CASE(
    "auth-dovecot: Dovecot stopped mid-run gives 454 and the server keeps running; restarted, 235 "
    "again") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  REQUIRE(rd.d.stop());
  // the idle connection breaks (one warning, nobody waited), then the next AUTH cannot connect
  CHECK(s.wait_log(rd.d.socket_path() + ": Dovecot closed the connection\n"));
  double t0 = now();
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw),
               "454 4.7.0 Temporary authentication failure");
  CHECK(now() - t0 < 3);
  CHECK(s.wait_log("cannot connect"));
  // one warning per failed attempt, with the socket's path
  CHECK(s.count_log("auth/dovecot: " + rd.d.socket_path() + ": cannot connect") == 1);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
  CHECK(s.count_log("auth/dovecot: " + rd.d.socket_path() + ": cannot connect") == 2);
  // the server still serves everything else
  Client c(ports[1]);
  c.reply();
  CHECK_STARTS(c.cmd("EHLO client.test"), "250");
  CHECK_STARTS(c.cmd("NOOP"), "250");
  CHECK(s.running());
  // Dovecot back: the plugin connects again
  REQUIRE_MESSAGE(rd.d.start(), rd.d.error());
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "alice", "wrong"), "535 5.7.8");
  CHECK(s.count_log("auth/dovecot: connected to") == 2);
}

TEST_CASE("auth-dovecot: Dovecot stopped while answering: 454 at once, not after the timeout") {
  // users the passwd-file does not know go to a checkpassword program that takes 4 seconds
  TempDir tmp;
  spit(tmp.path + "/slow.sh", "#!/bin/sh\nsleep 4\nexit 1\n");
  chmod((tmp.path + "/slow.sh").c_str(), 0755);
  chmod(tmp.path.c_str(), 0755);
  RealDovecot rd("passdb {\n  driver = checkpassword\n  args = " + tmp.path + "/slow.sh\n}\n");
  Server s(opts(rd.d.socket_path(), "8000"));
  auto ports = start_ports(s, 2);
  Client c(ports[1]);
  c.reply();
  c.cmd("EHLO client.test");
  c.line("AUTH PLAIN " + plain("slowuser", "x"));
  REQUIRE(s.wait_log("asking Dovecot (request 1)"));
  usleep(300000);
  double t0 = now();
  REQUIRE(rd.d.stop());
  CHECK_STARTS(c.reply(10), "454 4.7.0 Temporary authentication failure");
  CHECK(now() - t0 < 3);
  // Dovecot answers a temporary failure as it goes (its checkpassword child was stopped), or
  // just closes: either way the session is answered now
  CHECK(s.wait_log("Dovecot closed the connection"));
}

TEST_CASE(
    "auth-dovecot: Dovecot restarted three times under load: every AUTH gets 235 or 454, the "
    "server lives") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path(), "2000"));
  auto ports = start_ports(s, 2);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, temp{0}, other{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; w++)
    workers.emplace_back([&, w] {
      while (!stop) {
        std::string r = auth_plain(ports[1], w % 2 ? "alice" : "bob", w % 2 ? kAlicePw : kBobPw);
        if (starts(r, "235 2.7.0"))
          ok++;
        else if (starts(r, "454 4.7.0"))
          temp++;
        else
          other++;
        usleep(20000);  // a steady trickle, not a flood
      }
    });
  for (int i = 0; i < 3; i++) {
    usleep(300000);
    CHECK(rd.d.stop());
    usleep(200000);
    CHECK_MESSAGE(rd.d.start(), rd.d.error());
  }
  usleep(300000);
  stop = true;
  for (auto &t : workers) t.join();
  CHECK(other == 0);
  CHECK(ok > 0);
  CHECK(temp > 0);
  CHECK(s.running());
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  MESSAGE("235: " << ok.load() << ", 454: " << temp.load());
}

TEST_CASE("auth-dovecot: a missing socket gives 454 at once") {
  TempDir tmp;
  Server s(opts(tmp.path + "/no-such-socket"));
  auto ports = start_ports(s, 2);
  double t0 = now();
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
  CHECK(now() - t0 < 2);
  CHECK(s.wait_log("no-such-socket: cannot connect: no such file or directory"));
}

TEST_CASE(
    "auth-dovecot: a socket that never answers gives 454 after the timeout; other sessions stay "
    "fast") {
  TempDir tmp;
  std::string path = tmp.path + "/silent";
  FakeAuthServer silent(path);  // accepts, never answers
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
    CHECK_STARTS(b.cmd("NOOP"), "250");
    worst = std::max(worst, now() - t);
    usleep(100000);  // a few NOOPs (the server limits commands without mail)
  }
  CHECK(worst < 0.2);
  std::string r = a.reply(5);
  double took = now() - t0;
  CHECK_STARTS(r, "454 4.7.0 Temporary authentication failure");
  CHECK(took >= 0.9);
  CHECK(took < 3);
  CHECK(s.wait_log("no answer from " + path + " within 1000 ms"));
  // the stuck connection was dropped: the next AUTH connects again (and times out again)
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
  CHECK(silent.accepted() >= 2);
  CHECK(s.running());
}

TEST_CASE("auth-dovecot: Dovecot's temporary failure gives 454") {
  // Users the passwd-file does not know go on to a checkpassword passdb whose program exits 111:
  // a temporary failure in the checkpassword interface, FAIL with code=temp_fail from Dovecot.
  TempDir tmp;
  spit(tmp.path + "/tempfail.sh", "#!/bin/sh\nexit 111\n");
  chmod((tmp.path + "/tempfail.sh").c_str(), 0755);
  chmod(tmp.path.c_str(), 0755);
  RealDovecot rd("passdb {\n  driver = checkpassword\n  args = " + tmp.path + "/tempfail.sh\n}\n");
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "tempuser", "x"), "454 4.7.0 Temporary authentication failure");
  CHECK(s.wait_log("auth/dovecot: user=<tempuser>: Dovecot reports a temporary failure"));
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
}

TEST_CASE("auth-dovecot: many sessions at once share the connection and each gets its own answer") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < 24; i++) {
    cs.push_back(std::make_unique<Client>(ports[1]));
    cs.back()->reply();
    cs.back()->cmd("EHLO c" + std::to_string(i) + ".test");
  }
  // all requests out before the first answer: wrong passwords (answered after Dovecot's
  // failure handling) interleave with good ones
  for (int i = 0; i < 24; i++)
    cs[i]->line("AUTH PLAIN " + (i % 3 == 0   ? plain("alice", "wrong" + std::to_string(i))
                                 : i % 3 == 1 ? plain("alice", kAlicePw)
                                              : plain("bob", kBobPw)));
  for (int i = 0; i < 24; i++) {
    CAPTURE(i);
    CHECK_STARTS(cs[i]->reply(10), i % 3 == 0 ? "535 5.7.8" : "235 2.7.0");
  }
  CHECK(s.count_log("auth/dovecot: connected to") == 1);
}

namespace {

// A fake Dovecot at path sends handshake, then answer to the request: alice's AUTH PLAIN gets
// a reply starting with code, and the log says logged.
void check_odd_answer(const std::string &path, const std::string &handshake,
                      const std::string &answer, const std::string &code,
                      const std::string &logged) {
  FakeAuthServer f(path, handshake, answer);
  Server s(opts(path));
  auto ports = start_ports(s, 2);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), code);
  CHECK(s.wait_log(logged));
}

}  // namespace

TEST_CASE("auth-dovecot: odd answers from a fake Dovecot") {
  TempDir tmp;
  std::string path = tmp.path + "/auth";
  SUBCASE("FAIL with the temp flag (2.2 style) gives 454") {
    check_odd_answer(path, kDovecotHandshake, "FAIL\t{id}\tuser=alice\ttemp\treason=Backend down\n",
                     "454 4.7.0",
                     "user=<alice>: Dovecot reports a temporary failure: Backend down");
  }
  SUBCASE("FAIL with a reason gives 535 and logs the reason, made safe") {
    check_odd_answer(path, kDovecotHandshake,
                     "FAIL\t{id}\tuser=alice\treason=Password\001texpired\n", "535 5.7.8",
                     "user=<alice>: Dovecot says FAIL: Password?expired");
  }
  SUBCASE("CONT for PLAIN gives 454") {
    check_odd_answer(path, kDovecotHandshake, "CONT\t{id}\t\n", "454 4.7.0",
                     "Dovecot asked for more data (CONT) for PLAIN");
  }
  SUBCASE("another major protocol version gives 454 and says so") {
    check_odd_answer(path, "VERSION\t2\t0\nMECH\tPLAIN\nDONE\n", "OK\t{id}\n", "454 4.7.0",
                     "Dovecot speaks auth protocol 2.0; this client speaks 1.x");
  }
  SUBCASE("no PLAIN mechanism gives 454 and names the setting") {
    check_odd_answer(path, "VERSION\t1\t2\nMECH\tCRAM-MD5\nDONE\n", "OK\t{id}\n", "454 4.7.0",
                     "Dovecot does not offer the PLAIN mechanism (auth_mechanisms)");
  }
  SUBCASE("an answer to an id never asked is ignored; the real one counts") {
    check_odd_answer(path, kDovecotHandshake, "OK\t999\nFAIL\t{id}\n", "535 5.7.8",
                     "ignoring an answer to request 999");
  }
  SUBCASE("the connection closes with a request in flight: 454 at once, then a new connection") {
    FakeAuthServer f(path, kDovecotHandshake, "{close}");
    Server s(opts(path));
    auto ports = start_ports(s, 2);
    double t0 = now();
    CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
    CHECK(now() - t0 < 2);
    CHECK(s.wait_log("Dovecot closed the connection (1 authentication answered 454)"));
    CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
    CHECK(f.accepted() == 2);
  }
  SUBCASE("a handshake, then silence: 454 after the timeout, then a new connection") {
    FakeAuthServer f(path, kDovecotHandshake, "");
    Server s(opts(path, "700"));
    auto ports = start_ports(s, 2);
    double t0 = now();
    CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
    CHECK(now() - t0 >= 0.6);
    CHECK(s.wait_log("no answer from Dovecot; reconnecting"));
    CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "454 4.7.0");
    CHECK(f.accepted() == 2);
  }
}

TEST_CASE(
    "auth-dovecot: the core's hook timeout before the plugin's: the stuck connection is dropped "
    "too") {
  TempDir tmp;
  std::string path = tmp.path + "/auth";
  FakeAuthServer f(path, kDovecotHandshake, "");
  Options o = opts(path, "5000");
  o.toml = "hook_timeout = 1\n" + o.toml;
  Server s(o);
  auto ports = start_ports(s, 2);
  CHECK(s.wait_log("timeout_ms 5000 is not below hook_timeout (1000 ms)"));
  double t0 = now();
  std::string r = auth_plain(ports[1], "alice", kAlicePw);
  CHECK_MESSAGE((starts(r, "454") || starts(r, "451")), r);
  CHECK(now() - t0 < 3);
  CHECK(s.wait_log("no answer from Dovecot before the hook timeout; reconnecting"));
  auth_plain(ports[1], "alice", kAlicePw);
  CHECK(f.accepted() == 2);
  CHECK(s.running());
}

TEST_CASE("auth-dovecot: a reload (SIGHUP) starts a new connection and AUTH goes on working") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  REQUIRE(s.reload_toml("max_failures = 100", "max_failures = 50"));
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "alice", "wrong"), "535 5.7.8");
  CHECK(s.count_log("auth/dovecot: connected to") == 2);
}

TEST_CASE("auth-dovecot: passwords never reach the log, not even at debug") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));  // log level debug (the harness default)
  auto ports = start_ports(s, 2);
  CHECK_STARTS(auth_plain(ports[1], "alice", kAlicePw), "235 2.7.0");
  CHECK_STARTS(auth_plain(ports[1], "alice", "Wrong-Secret-9"), "535 5.7.8");
  Client c(ports[1]);
  c.reply();
  c.cmd("EHLO client.test");
  c.cmd("AUTH LOGIN");
  c.cmd(b64("bob"));
  CHECK_STARTS(c.cmd(b64(kBobPw)), "235 2.7.0");
  CHECK(s.wait_log("asking Dovecot"));
  std::string log = s.log();
  for (const std::string &secret :
       {std::string(kAlicePw), std::string("Wrong-Secret-9"), std::string(kBobPw), b64(kAlicePw),
        b64(kBobPw), plain("alice", kAlicePw), plain("alice", "Wrong-Secret-9"),
        std::string("resp=")}) {
    CAPTURE(secret);
    CHECK(log.find(secret) == std::string::npos);
  }
}

TEST_CASE(
    "auth-dovecot: submission end to end: smtplib login() over SMTP_SSL and starttls(), relay "
    "after AUTH") {
  // The setup docs/auth.md describes: implicit TLS (465) and STARTTLS (587) listeners with
  // auth = "required", Dovecot checking the passwords, rcpt_ok letting authenticated users relay.
  RealDovecot rd;
  const Certs &c = pki();
  Options o;
  o.cli_listen = false;
  o.toml =
      "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\nauth = \"required\"\n"
      "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\nauth = \"required\"\n"
      "[tls]\ncertificate = \"" +
      c.leaf.cert + "\"\nkey = \"" + c.leaf.key +
      "\"\n"
      "[auth]\nfailure_delay = 0\n";
  o.plugins = "auth/dovecot " + rd.d.socket_path() + "\nrcpt_ok\nverdict queue=OK\n";
  Server s(o);
  auto ports = start_ports(s, 2);
  std::string script = source_root() + "/tests/integration/clients/auth_send.py";
  struct Run {
    const char *mode;
    int port;
    const char *mech;
  };
  for (Run run : {Run{"ssl", ports[0], "PLAIN"}, Run{"ssl", ports[0], "LOGIN"},
                  Run{"starttls", ports[1], "auto"}}) {
    std::string which = std::string(run.mode) + " " + run.mech;
    CAPTURE(which);
    RunResult r = sh("python3 '" + script + "' --port " + std::to_string(run.port) + " --mode " +
                     run.mode + " --mech " + run.mech + " --cafile '" + c.ca +
                     "' --user bob --password \"" + kBobPw + "\"");
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("auth 235 2.7.0") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("data 250 2.0.0") != std::string::npos, r.output);
  }
  RunResult bad = sh("python3 '" + script + "' --port " + std::to_string(ports[0]) +
                     " --mode ssl --cafile '" + c.ca + "' --user bob --password nope");
  CHECK(bad.status != 0);
  CHECK_MESSAGE(bad.output.find("auth failed 535 5.7.8") != std::string::npos, bad.output);
  CHECK(s.wait_log("auth: user=<bob> mechanism=LOGIN ok by auth/dovecot"));
}

TEST_CASE("auth-dovecot: swaks --auth PLAIN and LOGIN over --tls") {
  RealDovecot rd;
  Server s(opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  REQUIRE_MESSAGE(sh("swaks --support").output.find("=== TLS supported") != std::string::npos,
                  "swaks cannot do TLS (apt-get install libnet-ssleay-perl)");
  for (const char *mech : {"PLAIN", "LOGIN"}) {
    CAPTURE(mech);
    RunResult r =
        sh("swaks --server 127.0.0.1 --port " + std::to_string(ports[0]) + " --tls --auth " + mech +
           " --auth-user alice --auth-password '" + kAlicePw +
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
    RunResult r = run_uvsmtpd(
        {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
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
  RealDovecot rd;
  Server s(sl_opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  auto alice = session(ports[1], "alice", kAlicePw);
  CHECK_STARTS(alice->cmd("MAIL FROM:<alice@example.org>"), "250");
  CHECK_STARTS(alice->cmd("RSET"), "250");
  CHECK_STARTS(alice->cmd("MAIL FROM:<Sales@EXAMPLE.org>"), "250");  // shared, case-insensitive
  CHECK_STARTS(alice->cmd("RSET"), "250");
  // another's address
  CHECK(alice->cmd("MAIL FROM:<x@example.net>") ==
        "553 5.7.1 Sender address rejected: not owned by user alice");
  // an address the map does not list (Postfix's reject_sender_login_mismatch)
  CHECK(alice->cmd("MAIL FROM:<alice@elsewhere.test>") ==
        "553 5.7.1 Sender address rejected: not owned by user alice");
  // the null sender is always allowed
  CHECK_STARTS(alice->cmd("MAIL FROM:<>"), "250");
  auto bob = session(ports[1], "bob", kBobPw);
  CHECK_STARTS(bob->cmd("MAIL FROM:<anyone@example.net>"), "250");  // @domain entry
  CHECK_STARTS(bob->cmd("RSET"), "250");
  CHECK_STARTS(bob->cmd("MAIL FROM:<sales@example.org>"), "250");
  CHECK_STARTS(bob->cmd("RSET"), "250");
  CHECK(bob->cmd("MAIL FROM:<alice@example.org>") ==
        "553 5.7.1 Sender address rejected: not owned by user bob");
  CHECK(
      s.wait_log("sender_login: user bob may not send as <alice@example.org>: the address belongs "
                 "to other logins"));
  CHECK(
      s.wait_log("sender_login: user alice may not send as <alice@elsewhere.test>: the address is "
                 "not in the map"));
}

TEST_CASE("sender_login: sessions without AUTH are not affected") {
  RealDovecot rd;
  Server s(sl_opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  auto anon = session(ports[1], "", "");
  CHECK_STARTS(anon->cmd("MAIL FROM:<alice@example.org>"), "250");
  CHECK_STARTS(anon->cmd("RSET"), "250");
  CHECK_STARTS(anon->cmd("MAIL FROM:<someone@elsewhere.test>"), "250");
}

TEST_CASE("sender_login: a reload (SIGHUP) reads the map again") {
  RealDovecot rd;
  Server s(sl_opts(rd.d.socket_path()));
  auto ports = start_ports(s, 2);
  {
    auto alice = session(ports[1], "alice", kAlicePw);
    CHECK_STARTS(alice->cmd("MAIL FROM:<alice@elsewhere.test>"), "553 5.7.1");
  }
  spit(s.conf_dir() + "/sender_logins", std::string(kSenderMap) + "@elsewhere.test  alice\n");
  REQUIRE(s.reload_toml("max_failures = 100", "max_failures = 50"));
  auto alice = session(ports[1], "alice", kAlicePw);
  CHECK_STARTS(alice->cmd("MAIL FROM:<alice@elsewhere.test>"), "250");
}

TEST_CASE("sender_login: map errors stop the server with file and line") {
  struct Bad {
    std::string map, want;
  };
  for (const Bad &b : std::vector<Bad>{
           {"# map\nalice@example.org\n",
            "sender_logins:2: no login names after 'alice@example.org'"},
           {"alice  alice\n",
            "sender_logins:1: 'alice' is not an address (local@domain) or @domain"},
           {"a@example.org alice # owner\n",
            "sender_logins:1: a '#' comment must start its own line"},
           {"a@example.org alice\n\nA@Example.org bob\n",
            "sender_logins:3: 'a@example.org' is listed twice (first at "},
       }) {
    CAPTURE(b.map);
    Options o;
    o.plugins = "sender_login sender_logins\nverdict rcpt=OK queue=OK\n";
    o.files = {{"sender_logins", b.map}};
    std::string dir = make_tree(o);
    RunResult r = run_uvsmtpd(
        {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    remove_tree(dir);
    CHECK(r.status != 0);
    CHECK_MESSAGE(r.output.find(b.want) != std::string::npos, r.output);
  }
  Options o;
  o.plugins = "sender_login\n";
  std::string dir = make_tree(o);
  RunResult r =
      run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
  remove_tree(dir);
  CHECK_MESSAGE(r.output.find("usage: sender_login <map file>") != std::string::npos, r.output);
  o.plugins = "sender_login nothere\n";
  dir = make_tree(o);
  r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
  remove_tree(dir);
  CHECK_MESSAGE(r.output.find("cannot read the map file 'nothere': No such file or directory") !=
                    std::string::npos,
                r.output);
}
