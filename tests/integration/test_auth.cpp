// tests/integration/test_auth.cpp: SMTP AUTH (RFC 4954) end to end through the real binary with
// the auth_static test plugin (tests/plugins/auth_static.c): EHLO advertising, PLAIN (with and
// without an initial response, authzid) and LOGIN, every reply of the exchange (235, 535, 454,
// 421, 501, 500, 503, 504, 538, 530), the failure delay and the per-IP lockout, relay after
// AUTH, Received: ESMTPSA/ESMTPA with the Authenticated sender comment, a pending auth plugin,
// STARTTLS forgetting a plaintext AUTH, passwords kept out of the debug log, and real clients
// (Python smtplib, swaks). Cases are named "auth: ...": run them with -tc='auth*'.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"
#include "tls_fixture.hpp"

using namespace itest;
using namespace itest::tls;
using std::string_literals::operator""s;
namespace fs = std::filesystem;

namespace {

std::string b64(const std::string &in) {
  static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<unsigned char>(in[i + 2]);
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    out += i + 1 < in.size() ? a[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? a[n & 63] : '=';
  }
  return out;
}

std::string plain(const std::string &user, const std::string &pw, const std::string &authzid = "") {
  return b64(authzid + '\0' + user + '\0' + pw);
}

const std::string kUsers = "auth_static alice s3cret bob hunter22 slow slowpw42 tempfail x\n";
const std::string kOk = "235 2.7.0 Authentication successful";
const std::string kBad = "535 5.7.8 Authentication credentials invalid";

struct Setup {
  std::string top;                           // top-level keys (before any table)
  std::string listen = "plaintext";          // plaintext | starttls | implicit | starttls+implicit
  std::string listen_extra;                  // more keys in each [[listen]] table
  std::string auth = "failure_delay = 0\n";  // the [auth] table
  std::string plugins = kUsers + "verdict rcpt=OK queue=OK\n";
  std::map<std::string, std::string> files;
  size_t listeners() const { return listen == "starttls+implicit" ? 2 : 1; }
};

Options opts(const Setup &s) {
  std::string t = s.top;
  auto one = [&](const std::string &mode) {
    t += "[[listen]]\naddress = \"127.0.0.1:0\"\n";
    if (mode == "plaintext")
      t += "tls = \"none\"\nauth_plaintext = true\n";
    else
      t += "tls = \"" + mode + "\"\n";
    t += s.listen_extra;
  };
  if (s.listen == "starttls+implicit") {
    one("starttls");
    one("implicit");
  } else {
    one(s.listen);
  }
  t += "[auth]\n" + s.auth;
  if (s.listen != "plaintext")
    t += "[tls]\ncertificate = \"" + pki().leaf.cert + "\"\nkey = \"" + pki().leaf.key + "\"\n";
  Options o;
  o.toml = t;
  o.plugins = s.plugins;
  o.files = s.files;
  o.cli_listen = false;
  return o;
}

// Banner and EHLO (REQUIREd 250); returns the EHLO reply.
std::string greet(SmtpClient &c) {
  REQUIRE(c.reply().rfind("220", 0) == 0);
  std::string e = c.cmd("EHLO client.example");
  REQUIRE_MESSAGE(e.rfind("250", 0) == 0, e);
  return e;
}

// A STARTTLS client up to the EHLO inside TLS; returns that EHLO reply.
std::string tls_greet(TlsClient &t) {
  REQUIRE_MESSAGE(t.starttls(verified()), t.error());
  std::string e = t.cmd("EHLO client.example");
  REQUIRE_MESSAGE(e.rfind("250", 0) == 0, e);
  return e;
}

std::vector<std::string> delivered(const std::string &root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file() && it->path().parent_path().filename() == "new")
      out.push_back(it->path().string());
  return out;
}

// The first Received: field of a stored message, unfolded (CRLF + WSP -> " ").
std::string received_of(const std::string &stored) {
  std::string hdr, rest;
  if (!split_received(stored, hdr, rest)) return "";
  std::string r = hdr.substr(hdr.find("Received: "));
  std::string out;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i] == '\r' && i + 2 < r.size() && r[i + 1] == '\n' &&
        (r[i + 2] == ' ' || r[i + 2] == '\t')) {
      out += ' ';
      i += 2;
      continue;
    }
    if (r[i] == '\r' || r[i] == '\n') break;
    out += r[i];
  }
  return out;
}

std::string send_to(SmtpClient &c, const std::string &to, const std::string &mail_params = "") {
  std::string r = c.cmd("MAIL FROM:<a@client.example>" + mail_params);
  if (r.rfind("250", 0) != 0) return r;
  r = c.cmd("RCPT TO:<" + to + ">");
  if (r.rfind("250", 0) != 0) return r;
  r = c.cmd("DATA");
  if (r.rfind("354", 0) != 0) return r;
  c.send("Subject: auth test\r\n\r\nhello\r\n.\r\n");
  return c.reply(10);
}

}  // namespace

// ---- advertising ---------------------------------------------------------------------------

TEST_CASE("auth: EHLO offers AUTH PLAIN LOGIN after STARTTLS, not before it") {
  Setup st;
  st.listen = "starttls";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  TlsClient t(ports[0]);
  REQUIRE(t.starttls(verified()));
  CHECK_FALSE(has_line(t.ehlo_plain, "AUTH"));
  std::string e = t.cmd("EHLO client.example");
  CHECK_MESSAGE(has_line(e, "AUTH PLAIN LOGIN"), e);
}

TEST_CASE("auth: not offered without an auth plugin or with auth = off: AUTH is unrecognized") {
  for (bool plugin_loaded : {false, true}) {
    CAPTURE(plugin_loaded);
    Setup st;
    st.listen = "starttls";
    if (!plugin_loaded)
      st.plugins = "verdict rcpt=OK queue=OK\n";
    else
      st.listen_extra = "auth = \"off\"\n";
    Server s(opts(st));
    auto ports = start_ports(s, 1);
    TlsClient t(ports[0]);
    std::string e = tls_greet(t);
    CHECK_FALSE(has_line(e, "AUTH"));
    CHECK(t.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == "500 5.5.1 Unrecognized command");
    CHECK(t.cmd("NOOP") == "250 2.0.0 OK");
  }
}

TEST_CASE("auth: 538 before TLS; after STARTTLS the same AUTH succeeds") {
  Setup st;
  st.listen = "starttls";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  TlsClient t(ports[0]);
  greet(t);
  CHECK(t.cmd("AUTH PLAIN " + plain("alice", "s3cret")) ==
        "538 5.7.11 Encryption required for requested authentication mechanism");
  CHECK(t.cmd("AUTH LOGIN") ==
        "538 5.7.11 Encryption required for requested authentication mechanism");
  REQUIRE(t.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS");
  REQUIRE_MESSAGE(t.handshake(verified()), t.error());
  REQUIRE(t.cmd("EHLO client.example").rfind("250", 0) == 0);
  CHECK(t.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
  CHECK(s.wait_log("auth: user=<alice> mechanism=PLAIN ok"));
}

TEST_CASE("auth: auth_plaintext allows AUTH without TLS (and EHLO offers it)") {
  Server s(opts(Setup{}));
  auto ports = start_ports(s, 1);
  Client c(ports[0]);
  std::string e = greet(c);
  CHECK_MESSAGE(has_line(e, "AUTH PLAIN LOGIN"), e);
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
}

// ---- mechanisms ----------------------------------------------------------------------------

TEST_CASE("auth: PLAIN with and without an initial response, LOGIN, authzid reaches the hook") {
  Server s(opts(Setup{}));
  auto ports = start_ports(s, 1);
  SUBCASE("PLAIN with an initial response; the mail hook sees the user and mechanism") {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
    CHECK(
        s.wait_log("auth_static: mechanism=PLAIN user=alice authzid=(null) password_len=6 "
                   "auth_user=(null) auth_mechanism=PLAIN"));
    CHECK(c.cmd("MAIL FROM:<a@client.example> AUTH=<>") ==
          "250 2.1.0 <a@client.example>, sender OK");
    CHECK(
        s.wait_log("auth_static: mail auth_user=alice auth_mechanism=PLAIN auth_password=(null) "
                   "param_auth=<>"));
  }
  SUBCASE("PLAIN without: an empty 334, then the response") {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH plain") == "334 ");
    CHECK(c.cmd(plain("bob", "hunter22")) == kOk);
    CHECK(s.wait_log("auth: user=<bob> mechanism=PLAIN ok"));
  }
  SUBCASE("LOGIN: Username: and Password: challenges") {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
    CHECK(c.cmd(b64("alice")) == "334 UGFzc3dvcmQ6");
    CHECK(c.cmd(b64("s3cret")) == kOk);
    CHECK(s.wait_log("auth: user=<alice> mechanism=LOGIN ok"));
    CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
    CHECK(s.wait_log("auth_static: mail auth_user=alice auth_mechanism=LOGIN"));
  }
  SUBCASE("LOGIN with the user name as initial response") {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH LOGIN " + b64("bob")) == "334 UGFzc3dvcmQ6");
    CHECK(c.cmd(b64("hunter22")) == kOk);
  }
  SUBCASE("authzid: given and different, the hook sees it; equal to the user, it does not") {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret", "boss@example.test")) == kOk);
    CHECK(s.wait_log("auth_static: mechanism=PLAIN user=alice authzid=boss@example.test"));
    Client d(ports[0]);
    greet(d);
    CHECK(d.cmd("AUTH PLAIN " + plain("bob", "hunter22", "bob")) == kOk);
    CHECK(s.wait_log("auth_static: mechanism=PLAIN user=bob authzid=(null)"));
  }
  SUBCASE("MAIL's AUTH= needs a value") {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("MAIL FROM:<a@client.example> AUTH") == "501 5.5.4 Bad AUTH parameter syntax");
    CHECK(c.cmd("MAIL FROM:<a@client.example> AUTH=a+2Bb@client.example").rfind("250", 0) == 0);
    CHECK(s.wait_log("param_auth=a+2Bb@client.example"));
  }
}

// ---- replies -------------------------------------------------------------------------------

TEST_CASE("auth: the exchange's error replies") {
  Setup st;
  st.top = "max_errors = 0\n";  // this session collects more refusals than the default 20
  st.auth = "failure_delay = 0\nmax_failures = 0\nlockout_failures = 0\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  Client c(ports[0]);
  REQUIRE(c.reply().rfind("220", 0) == 0);
  CHECK(c.cmd("AUTH PLAIN") == "503 5.5.1 Error: send EHLO first");
  CHECK(c.cmd("HELO client.example").rfind("250", 0) == 0);
  CHECK(c.cmd("AUTH PLAIN") == "503 5.5.1 Error: send EHLO first");  // AUTH is an ESMTP extension
  CHECK(c.cmd("EHLO client.example").rfind("250", 0) == 0);
  CHECK(c.cmd("AUTH CRAM-MD5") == "504 5.5.4 Unrecognized authentication type");
  CHECK(c.cmd("AUTH") == "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  CHECK(c.cmd("AUTH PLAIN a b") == "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  // cancel
  CHECK(c.cmd("AUTH PLAIN") == "334 ");
  CHECK(c.cmd("*") == "501 5.0.0 Authentication cancelled");
  CHECK(c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
  CHECK(c.cmd(b64("alice")) == "334 UGFzc3dvcmQ6");
  CHECK(c.cmd("*") == "501 5.0.0 Authentication cancelled");
  // bad base64: in the initial response and in a continuation line
  CHECK(c.cmd("AUTH PLAIN not*base64") == "501 5.5.2 Invalid base64 data");
  CHECK(c.cmd("AUTH PLAIN") == "334 ");
  CHECK(c.cmd("abc") == "501 5.5.2 Invalid base64 data");
  // well-formed base64, not a PLAIN message
  CHECK(c.cmd("AUTH PLAIN " + b64("alice:s3cret")) == "501 5.5.2 Malformed authentication data");
  CHECK(c.cmd("AUTH PLAIN =") == "501 5.5.2 Malformed authentication data");
  // a continuation line over 12288 bytes: 500, and the session goes on reading commands
  CHECK(c.cmd("AUTH PLAIN") == "334 ");
  CHECK(c.cmd(std::string(12289, 'A')) == "500 5.5.6 Authentication exchange line is too long");
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  // a line of exactly 12288 bytes is read (and is no PLAIN message)
  CHECK(c.cmd("AUTH PLAIN") == "334 ");
  CHECK(c.cmd(std::string(12288, 'A')) == "501 5.5.2 Malformed authentication data");
  // a continuation line is not a command: "QUIT" there is base64 of three bytes, and
  // "MAIL FROM:<a@b>" is bad base64
  CHECK(c.cmd("AUTH PLAIN") == "334 ");
  CHECK(c.cmd("QUIT") == "501 5.5.2 Malformed authentication data");
  CHECK(c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
  CHECK(c.cmd("MAIL FROM:<a@b>") == "501 5.5.2 Invalid base64 data");
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  // wrong password, unknown user (nobody says OK), temporary failure
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "wrong")) == kBad);
  CHECK(s.wait_log("auth: user=<alice> mechanism=PLAIN failed (denied by auth_static"));
  CHECK(c.cmd("AUTH PLAIN " + plain("nobody", "x")) == kBad);
  CHECK(s.wait_log(
      "auth: user=<nobody> mechanism=PLAIN failed (no plugin accepted the credentials)"));
  CHECK(c.cmd("AUTH PLAIN " + plain("tempfail", "x")) ==
        "454 4.7.0 Temporary authentication failure");
  // in a transaction, then twice
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) ==
        "503 5.5.1 Error: MAIL transaction in progress");
  CHECK(c.cmd("RSET") == "250 2.0.0 OK");
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == "503 5.5.1 Already authenticated");
  CHECK(c.cmd("AUTH LOGIN") == "503 5.5.1 Already authenticated");
  // a new EHLO keeps the authentication (and still lists AUTH, RFC 4954)
  std::string e = c.cmd("EHLO client.example");
  CHECK(has_line(e, "AUTH PLAIN LOGIN"));
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == "503 5.5.1 Already authenticated");
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
  CHECK(s.wait_log("auth_static: mail auth_user=alice auth_mechanism=PLAIN"));
}

TEST_CASE("auth: failures are answered after a growing delay; max_failures ends with 421") {
  Setup st;
  st.auth = "failure_delay = 0.2\nmax_failures = 3\nlockout_failures = 0\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  Client c(ports[0]);
  greet(c);
  double expected[] = {0.2, 0.4, 0.8};
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    double t0 = now();
    std::string r = c.cmd("AUTH PLAIN " + plain("alice", "wrong" + std::to_string(i)), 5);
    double took = now() - t0;
    CHECK_MESSAGE(took >= expected[i] - 0.02, took);
    CHECK_MESSAGE(took < expected[i] + 0.8, took);  // a loaded machine may be slow
    if (i < 2) {
      CHECK(r == kBad);
      // meanwhile other sessions are served at once
    } else {
      CHECK(r == "421 4.7.0 mx.test.invalid Too many authentication failures");
      CHECK(c.closed());
    }
  }
  CHECK(s.wait_log("too many authentication failures (3); closing"));
}

TEST_CASE("auth: a failure's delay does not hold the loop: other sessions are served") {
  Setup st;
  st.auth = "failure_delay = 1\nlockout_failures = 0\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  Client c(ports[0]);
  greet(c);
  Client d(ports[0]);
  greet(d);
  double t0 = now();
  c.line("AUTH PLAIN " + plain("alice", "wrong"));
  usleep(100000);
  CHECK(d.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(now() - t0 < 0.6);
  // the failed session itself reads nothing until its reply is out
  CHECK(c.reply(3) == kBad);
  CHECK(now() - t0 >= 0.98);
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
}

TEST_CASE("auth: a client IP with lockout_failures failures gets 454 without the hook") {
  Setup st;
  st.auth = "failure_delay = 0\nmax_failures = 0\nlockout_failures = 2\nlockout_window = 1.5\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH PLAIN " + plain("alice", "bad1")) == kBad);
    CHECK(c.cmd("AUTH PLAIN " + plain("alice", "bad2")) == kBad);
    // the right password is no longer tried, in this session or in a new one
    CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) ==
          "454 4.7.0 Too many authentication failures, try again later");
  }
  Client d(ports[0]);
  greet(d);
  CHECK(d.cmd("AUTH LOGIN") == "454 4.7.0 Too many authentication failures, try again later");
  CHECK(s.count_log("auth_static: mechanism=") == 2);
  CHECK(s.wait_log("auth: client 127.0.0.1 is locked out"));
  usleep(1600000);  // the window passes
  CHECK(d.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
}

TEST_CASE("auth: verdicts: DENY_DISCONNECT, DENYSOFT_DISCONNECT, DONE, hook timeout") {
  struct Case {
    std::string plugin;
    std::string reply;
    bool closes;
  };
  std::vector<Case> cases = {
      {"verdict auth=DENY_DISCONNECT\n", kBad, true},
      {"verdict auth=DENYSOFT_DISCONNECT\n", "421 4.7.0 Temporary authentication failure", true},
      {"verdict auth=DONE auth.code=550 auth.enh=5.7.1 auth.text=Account_disabled\n",
       "550 5.7.1 Account disabled", false},
      {"verdict auth=DONE auth.code=250 auth.text=Fine\n", kBad, false},  // DONE never succeeds
      {"verdict auth=OK auth.async=never\n", "451 4.3.0", false},
  };
  for (const auto &cs : cases) {
    CAPTURE(cs.plugin);
    Setup st;
    st.top = "hook_timeout = 0.3\n";
    st.plugins = cs.plugin;
    Server s(opts(st));
    auto ports = start_ports(s, 1);
    Client c(ports[0]);
    greet(c);
    std::string r = c.cmd("AUTH PLAIN " + plain("alice", "s3cret"));
    CHECK_MESSAGE(r.rfind(cs.reply, 0) == 0, r);
    if (cs.closes) {
      CHECK(c.closed());
    } else {
      CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
      CHECK(s.count_log("mechanism=PLAIN ok") == 0);
    }
  }
}

TEST_CASE("auth: auth = required: MAIL before AUTH gets 530") {
  Setup st;
  st.listen_extra = "auth = \"required\"\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  Client c(ports[0]);
  greet(c);
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "530 5.7.0 Authentication required");
  CHECK(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "250 2.1.0 <a@client.example>, sender OK");
  CHECK(s.wait_log(" (AUTH required) (AUTH before TLS)"));  // the listening line
  c.cmd("QUIT");
  // the session summary counts AUTH like other commands (settled by the 235, not the 334)
  CHECK(s.wait_log(" auth=1 "));
}

// ---- what AUTH gives -----------------------------------------------------------------------

TEST_CASE("auth: an authenticated session relays (rcpt_ok); without AUTH the relay is denied") {
  for (bool auth_relay : {true, false}) {
    CAPTURE(auth_relay);
    Setup st;
    st.plugins = kUsers + "rcpt_ok\nverdict queue=OK\n";
    st.files = {{"rcpthosts", "example.test\n"}};
    if (!auth_relay) st.listen_extra = "auth_relay = false\n";
    Server s(opts(st));
    auto ports = start_ports(s, 1);
    {
      Client c(ports[0]);
      greet(c);
      CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
      CHECK(c.cmd("RCPT TO:<u@example.test>").rfind("250", 0) == 0);
      CHECK(c.cmd("RCPT TO:<v@elsewhere.example>") == "550 5.7.1 Relaying denied");
    }
    Client c(ports[0]);
    greet(c);
    REQUIRE(c.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
    CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
    std::string r = c.cmd("RCPT TO:<v@elsewhere.example>");
    if (auth_relay)
      CHECK(r == "250 2.1.5 <v@elsewhere.example>, recipient ok");
    else
      CHECK(r == "550 5.7.1 Relaying denied");
  }
}

TEST_CASE("auth: Received says ESMTPSA (TLS) or ESMTPA and names the authenticated sender") {
  for (bool tls : {true, false}) {
    CAPTURE(tls);
    TempDir mail;
    Setup st;
    st.listen = tls ? "starttls" : "plaintext";
    st.plugins = kUsers + "queue/maildir " + mail.path + "\nrcpt_ok\n";
    st.files = {{"rcpthosts", "example.test\n"}};
    Server s(opts(st));
    auto ports = start_ports(s, 1);
    {
      TlsClient t(ports[0]);
      if (tls)
        tls_greet(t);
      else
        greet(t);
      REQUIRE(t.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
      std::string r = send_to(t, "u@example.test");
      CHECK_MESSAGE(r.rfind("250 2.0.0", 0) == 0, r);
      r = send_to(t, "u@example.test", " SMTPUTF8");  // RFC 6531: UTF8SMTPA, UTF8SMTPSA
      CHECK_MESSAGE(r.rfind("250 2.0.0", 0) == 0, r);
      t.cmd("QUIT");
    }
    auto files = delivered(mail.path);
    REQUIRE_MESSAGE(files.size() == 2, s.log());
    std::vector<std::string> protos;
    for (const auto &f : files) {
      std::string rcv = received_of(slurp(f));
      CHECK_MESSAGE(
          rcv.find("(Authenticated sender: alice) by mx.test.invalid") != std::string::npos, rcv);
      size_t w = rcv.find(") with ");  // after "(uvsmtpd/x.y)", not the TLS comment
      if (w != std::string::npos) ++w;
      REQUIRE(w != std::string::npos);
      protos.push_back(rcv.substr(w + 6, rcv.find(' ', w + 6) - w - 6));
    }
    std::sort(protos.begin(), protos.end());
    if (tls)
      CHECK(protos == std::vector<std::string>{"ESMTPSA", "UTF8SMTPSA"});
    else
      CHECK(protos == std::vector<std::string>{"ESMTPA", "UTF8SMTPA"});
  }
}

TEST_CASE("auth: a pending auth plugin does not hold other sessions") {
  Server s(opts(Setup{}));
  auto ports = start_ports(s, 1);
  Client slow(ports[0]);
  greet(slow);
  Client other(ports[0]);
  greet(other);
  double t0 = now();
  slow.line("AUTH PLAIN " + plain("slow", "slowpw42"));
  usleep(50000);
  for (int i = 0; i < 3; ++i) CHECK(other.cmd("NOOP") == "250 2.0.0 OK");
  // the NOOPs were answered while the auth call was still pending
  CHECK(slow.read_some(0).empty());
  CHECK(slow.reply(3) == kOk);
  CHECK(now() - t0 >= 0.19);
  // the password was still there for the pending call (read through pending_call)
  CHECK(s.wait_log("auth_static: slow pending password_len=8"));
  CHECK(s.wait_log("auth: user=<slow> mechanism=PLAIN ok"));
}

TEST_CASE("auth: STARTTLS forgets an AUTH made in plaintext (RFC 3207)") {
  Setup st;
  st.listen = "starttls";
  st.listen_extra = "auth = \"required\"\nauth_plaintext = true\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  TlsClient t(ports[0]);
  std::string e = greet(t);
  CHECK(has_line(e, "AUTH PLAIN LOGIN"));
  REQUIRE(t.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
  REQUIRE(t.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS");
  REQUIRE_MESSAGE(t.handshake(verified()), t.error());
  REQUIRE(t.cmd("EHLO client.example").rfind("250", 0) == 0);
  CHECK(t.cmd("MAIL FROM:<a@client.example>") == "530 5.7.0 Authentication required");
  CHECK(s.wait_log("auth: user=<alice> forgotten at STARTTLS"));
  CHECK(t.cmd("AUTH PLAIN " + plain("alice", "s3cret")) == kOk);
  CHECK(t.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
}

TEST_CASE("auth: a password and its base64 never reach the log, even at debug level") {
  Setup st;
  st.auth = "failure_delay = 0\nmax_failures = 0\n";
  st.plugins = "auth_static carol Zq7pW9xKv2 dave Zq7pW9xKv3\nverdict rcpt=OK queue=OK\n";
  Server s(opts(st));  // the harness logs at debug
  auto ports = start_ports(s, 1);
  Client c(ports[0]);
  greet(c);
  CHECK(c.cmd("AUTH PLAIN " + plain("carol", "Zq7pW9xKv2")) == kOk);
  Client d(ports[0]);
  greet(d);
  CHECK(d.cmd("AUTH PLAIN " + plain("dave", "Zq7pW9xKv2")) == kBad);  // a wrong one
  CHECK(d.cmd("AUTH PLAIN") == "334 ");
  CHECK(d.cmd(plain("dave", "Zq7pW9xKv3")) == kOk);
  Client e(ports[0]);
  greet(e);
  CHECK(e.cmd("AUTH LOGIN " + b64("carol")) == "334 UGFzc3dvcmQ6");
  CHECK(e.cmd(b64("Zq7pW9xKv2")) == kOk);
  CHECK(s.wait_log("auth: user=<carol> mechanism=LOGIN ok"));
  std::string log = s.log();
  CHECK(log.find("<- AUTH PLAIN ****") != std::string::npos);  // the debug trace is there
  for (std::string secret :
       {"Zq7pW9xKv2"s, "Zq7pW9xKv3"s, b64("Zq7pW9xKv2"), b64("Zq7pW9xKv3"),
        plain("carol", "Zq7pW9xKv2"), plain("dave", "Zq7pW9xKv2"), plain("dave", "Zq7pW9xKv3")}) {
    CAPTURE(secret);
    CHECK(log.find(secret) == std::string::npos);
  }
}

// ---- real clients --------------------------------------------------------------------------

TEST_CASE("auth: real clients: Python smtplib login() over starttls() and SMTP_SSL") {
  const Certs &c = pki();
  Setup st;
  st.listen = "starttls+implicit";
  st.listen_extra = "auth = \"required\"\n";
  st.plugins = kUsers + "rcpt_ok\nverdict queue=OK\n";
  Server s(opts(st));
  auto ports = start_ports(s, 2);
  std::string script = source_root() + "/tests/integration/clients/auth_send.py";
  struct Run {
    const char *mode;
    int port;
    const char *mech;
  };
  for (Run run : {Run{"starttls", ports[0], "auto"}, Run{"ssl", ports[1], "auto"},
                  Run{"starttls", ports[0], "LOGIN"}, Run{"ssl", ports[1], "PLAIN"}}) {
    std::string which = std::string(run.mode) + " " + run.mech;
    CAPTURE(which);
    RunResult r =
        sh("python3 '" + script + "' --port " + std::to_string(run.port) + " --mode " + run.mode +
           " --mech " + run.mech + " --cafile '" + c.ca + "' --user alice --password s3cret");
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("auth 235 2.7.0 Authentication successful") != std::string::npos,
                  r.output);
    CHECK_MESSAGE(r.output.find("data 250 2.0.0") != std::string::npos, r.output);
  }
  RunResult bad = sh("python3 '" + script + "' --port " + std::to_string(ports[1]) +
                     " --mode ssl --cafile '" + c.ca + "' --user alice --password nope");
  CHECK(bad.status != 0);
  CHECK_MESSAGE(bad.output.find("auth failed 535 5.7.8") != std::string::npos, bad.output);
}

TEST_CASE("auth: real clients: swaks --auth PLAIN and LOGIN over --tls") {
  if (sh("command -v swaks").status != 0) {
    MESSAGE("swaks is not installed: skipped (apt-get install swaks)");
    return;
  }
  if (sh("swaks --support").output.find("=== TLS supported") == std::string::npos) {
    MESSAGE("swaks cannot do TLS (Net::SSLeay missing): skipped");
    return;
  }
  Setup st;
  st.listen = "starttls";
  st.listen_extra = "auth = \"required\"\n";
  st.plugins = kUsers + "rcpt_ok\nverdict queue=OK\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  for (const char *mech : {"PLAIN", "LOGIN"}) {
    CAPTURE(mech);
    RunResult r =
        sh("swaks --server 127.0.0.1 --port " + std::to_string(ports[0]) + " --tls --auth " + mech +
           " --auth-user alice --auth-password s3cret --ehlo client.test"
           " --from a@client.test --to v@elsewhere.example --timeout 10");
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("<~  235 2.7.0 Authentication successful") != std::string::npos,
                  r.output);
    CHECK_MESSAGE(r.output.find("<~  250 2.0.0") != std::string::npos, r.output);
    CHECK(s.wait_log("auth: user=<alice> mechanism="s + mech + " ok"));
  }
}

TEST_CASE("auth: AUTH ends a pipelining group, and so does each response (RFC 4954 4)") {
  Server s(opts(Setup{}));
  auto ports = start_ports(s, 1);
  {
    Client c(ports[0]);
    greet(c);
    c.send("AUTH PLAIN " + plain("alice", "s3cret") + "\r\nNOOP\r\n");
    CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
    CHECK(c.closed());
  }
  {
    Client c(ports[0]);
    greet(c);
    CHECK(c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
    c.send(b64("alice") + "\r\n" + b64("s3cret") + "\r\n");
    CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
    CHECK(c.closed());
  }
  CHECK(s.count_log("auth: user=<alice> mechanism=PLAIN ok") == 0);
}

TEST_CASE("auth: auth = required without an auth plugin: a startup warning, MAIL gets 530") {
  Setup st;
  st.listen_extra = "auth = \"required\"\n";
  st.plugins = "verdict rcpt=OK queue=OK\n";
  Server s(opts(st));
  auto ports = start_ports(s, 1);
  CHECK(s.wait_log("has auth = \"required\" but no plugin in "));
  CHECK(s.wait_log("registers the auth hook, so every MAIL there gets 530 5.7.0"));
  Client c(ports[0]);
  std::string e = greet(c);
  CHECK_FALSE(has_line(e, "AUTH"));
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "530 5.7.0 Authentication required");
}
