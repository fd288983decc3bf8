// tests/integration/test_policy.cpp: the policy plugins end to end, with the open relay battery.
#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <memory>

#include "harness.hpp"

using namespace itest;

namespace {

const char *kDenied = "550 5.7.1 Relaying denied";

// max_errors = 0: the battery sends many refused commands in one session.
const char *kToml = "max_errors = 0\n";

Options policy(const std::string &plugins, std::map<std::string, std::string> files = {}) {
  return Options{.toml = kToml, .plugins = plugins, .files = std::move(files)};
}

// Greeting, EHLO and MAIL FROM; true when all three succeeded.
bool envelope(Client &c, const std::string &from = "sender@remote.example") {
  bool ok = c.reply().rfind("220 ", 0) == 0;
  ok = c.cmd("EHLO client.example").rfind("250", 0) == 0 && ok;
  return c.cmd("MAIL FROM:<" + from + ">").rfind("250 ", 0) == 0 && ok;
}

std::string rcpt(Client &c, const std::string &addr) {
  return c.cmd("RCPT TO:<" + addr + ">");
}

std::string accepted(const std::string &addr) {
  return "250 2.1.5 <" + addr + ">, recipient ok";
}

// --check-config over a tree made for opt: exit status and output.
RunResult check_config(const Options &opt) {
  std::string dir = make_tree(opt);
  RunResult r =
      run_uvsmtpd({"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
  remove_tree(dir);
  return r;
}

// ---- a minimal IPv6 client for ::1 ------------------------------------------------------

// The port of the "[::1]" listener from the server log (logged after 127.0.0.1's), 0 if none.
int v6_port(const Server &s) {
  if (!s.wait_log("listening on [::1]:", 5)) return 0;
  std::string l = s.log();
  const std::string needle = "listening on [::1]:";
  size_t pos = l.find(needle);
  return pos == std::string::npos ? 0 : atoi(l.c_str() + pos + needle.size());
}

class V6Client {
 public:
  explicit V6Client(int port) {
    fd_ = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, "::1", &sa.sin6_addr);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~V6Client() {
    if (fd_ >= 0) close(fd_);
  }
  V6Client(const V6Client &) = delete;
  V6Client &operator=(const V6Client &) = delete;
  bool connected() const { return fd_ >= 0; }
  // One reply line (single-line replies; a multi-line reply is read to its last line).
  std::string reply() {
    for (;;) {
      size_t nl = buf_.find("\r\n");
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 2);
        if (line.size() >= 4 && line[3] == '-') continue;
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return "";
      char tmp[4096];
      ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return "";
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  std::string cmd(const std::string &line) {
    std::string out = line + "\r\n";
    if (::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) < 0) return "";
    return reply();
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

}  // namespace

// ---- relay --------------------------------------------------------------------------------

TEST_CASE("policy: relayclients: a listed client relays, an unlisted one is refused") {
  const std::string plugins = "relay\nrcpt_ok\n";
  SUBCASE("127.0.0.1 listed: a foreign domain is accepted") {
    Server s(policy(plugins, {{"relayclients", "# trusted\n10.0.0.0/8\n127.0.0.1\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(envelope(c));
    CHECK(rcpt(c, "victim@elsewhere.example") == accepted("victim@elsewhere.example"));
    CHECK(s.wait_log("relay: pass, relay client (127.0.0.1 in relayclients)"));
    CHECK(s.wait_log("rcpt_ok: pass, relay client"));
  }
  SUBCASE("127.0.0.0/8, and qpsmtpd's prefix form 127.") {
    for (std::string list :
         {"127.0.0.0/8\n", "127.\n", "127.0.0.1/8\n", "::ffff:127.0.0.0/104\n"}) {
      CAPTURE(list);
      Server s(policy(plugins, {{"relayclients", list}}));
      REQUIRE(s.started());
      Client c(s.port());
      REQUIRE(envelope(c));
      CHECK(rcpt(c, "victim@elsewhere.example") == accepted("victim@elsewhere.example"));
    }
  }
  SUBCASE("not listed: 550 5.7.1 Relaying denied") {
    Server s(policy(plugins, {{"relayclients", "10.0.0.0/8\n127.0.0.2\n::1\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(envelope(c));
    CHECK(rcpt(c, "victim@elsewhere.example") == kDenied);
    CHECK(s.wait_log("relay: skip, not a relay client"));
    CHECK(s.wait_log("rcpt_ok: fail, relaying denied for <victim@elsewhere.example>"));
  }
  SUBCASE("no relayclients file: nobody relays") {
    Server s(policy(plugins));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(envelope(c));
    CHECK(rcpt(c, "victim@elsewhere.example") == kDenied);
  }
  SUBCASE("norelayclients wins over relayclients") {
    Server s(
        policy(plugins, {{"relayclients", "127.0.0.0/8\n"}, {"norelayclients", "127.0.0.1\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(envelope(c));
    CHECK(rcpt(c, "victim@elsewhere.example") == kDenied);
    CHECK(s.wait_log("skip, not a relay client (127.0.0.1 in norelayclients)"));
  }
}

TEST_CASE("policy: relayclients over IPv6 (::1)") {
  Options o = policy("relay\nrcpt_ok\n", {{"relayclients", "127.0.0.1\n::1/128\n"}});
  o.args = {"--listen", "[::1]:0"};
  Server s(o);
  if (!s.started() || v6_port(s) == 0) {
    MESSAGE("no IPv6 loopback here; skipped");
    return;
  }
  V6Client c(v6_port(s));
  REQUIRE(c.connected());
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("EHLO client.example").rfind("250 ", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@remote.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<victim@elsewhere.example>") == accepted("victim@elsewhere.example"));
  CHECK(s.wait_log("pass, relay client (::1 in relayclients)"));

  Options o2 = policy("relay\nrcpt_ok\n", {{"relayclients", "127.0.0.1\n2001:db8::/32\n"}});
  o2.args = {"--listen", "[::1]:0"};
  Server s2(o2);
  REQUIRE(s2.started());
  V6Client c2(v6_port(s2));
  REQUIRE(c2.connected());
  c2.reply();
  c2.cmd("EHLO client.example");
  c2.cmd("MAIL FROM:<a@remote.example>");
  CHECK(c2.cmd("RCPT TO:<victim@elsewhere.example>") == kDenied);
}

// ---- rcpt_ok ------------------------------------------------------------------------------

TEST_CASE("policy: rcpthosts: me, exact entries, .subdomain entries, case") {
  Server s(policy("rcpt_ok\n",
                  {{"rcpthosts", "example.test\n.sub.example\nMixed.Example\n[192.0.2.1]\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(envelope(c));
  for (std::string ok :
       {"user@example.test", "user@EXAMPLE.Test", "User.Name@example.test", "user@mx.test.invalid",
        "user@MX.Test.Invalid", "user@a.sub.example", "user@b.a.SUB.example", "user@mixed.example",
        "user@MIXED.EXAMPLE", "\"john doe\"@example.test", "user@[192.0.2.1]",
        "postmaster@example.test"}) {
    CAPTURE(ok);
    CHECK(rcpt(c, ok) == accepted(ok));
  }
  for (std::string bad : {"user@sub.example", "user@xsub.example", "user@other.example",
                          "user@example.test.evil", "user@evil-example.test", "user@test.invalid",
                          "user@a.mx.test.invalid", "user@[192.0.2.2]", "user@[IPv6:::1]"}) {
    CAPTURE(bad);
    CHECK(rcpt(c, bad) == kDenied);
  }
  CHECK(s.wait_log("rcpt_ok: pass, in rcpthosts (.sub.example)"));
  CHECK(s.wait_log("rcpt_ok: pass, me"));
}

TEST_CASE("policy: rcpt_ok: an address literal naming the server's own address is local") {
  // RFC 1123 5.2.17, RFC 5321 4.1.3: user@[own address] without listing it in rcpthosts.
  Server s(policy("rcpt_ok\n", {{"rcpthosts", "example.test\n[IPv6:2001:db8::1]\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(envelope(c));
  for (std::string ok : {"postmaster@[127.0.0.1]", "user@[127.0.0.1]",
                         // listed literals compare as addresses, not as text
                         "user@[IPv6:2001:DB8:0:0:0:0:0:1]", "user@[ipv6:2001:db8::0:1]"}) {
    CAPTURE(ok);
    CHECK(rcpt(c, ok) == accepted(ok));
  }
  for (std::string bad : {"user@[127.0.0.2]", "user@[IPv6:::1]", "user@[IPv6:::ffff:127.0.0.1]",
                          "user@[IPv6:2001:db8::2]", "user%other.example@[127.0.0.1]"}) {
    CAPTURE(bad);
    CHECK(rcpt(c, bad) == kDenied);
  }
  CHECK(s.wait_log("rcpt_ok: pass, own address literal: <postmaster@[127.0.0.1]>"));

  // Over IPv6 the own address is ::1, written any way RFC 5321 4.1.3 allows.
  Options o = policy("rcpt_ok\n");
  o.args = {"--listen", "[::1]:0"};
  Server s6(o);
  if (!s6.started() || v6_port(s6) == 0) {
    MESSAGE("no IPv6 loopback here; the IPv6 half is skipped");
    return;
  }
  V6Client c6(v6_port(s6));
  REQUIRE(c6.connected());
  CHECK(c6.reply().rfind("220 ", 0) == 0);
  CHECK(c6.cmd("EHLO client.example").rfind("250 ", 0) == 0);
  CHECK(c6.cmd("MAIL FROM:<a@remote.example>").rfind("250 ", 0) == 0);
  CHECK(c6.cmd("RCPT TO:<postmaster@[IPv6:::1]>") == accepted("postmaster@[IPv6:::1]"));
  CHECK(c6.cmd("RCPT TO:<user@[IPv6:0:0:0:0:0:0:0:1]>") == accepted("user@[IPv6:0:0:0:0:0:0:0:1]"));
  CHECK(c6.cmd("RCPT TO:<user@[127.0.0.1]>") == kDenied);
}

TEST_CASE("policy: postmaster is always accepted (bare, any case, and @me)") {
  Server s(policy("rcpt_ok\n"));  // no rcpthosts: only me is local
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(envelope(c));
  for (std::string ok : {"postmaster", "Postmaster", "POSTMASTER", "postmaster@mx.test.invalid",
                         "PostMaster@MX.TEST.INVALID"}) {
    CAPTURE(ok);
    CHECK(rcpt(c, ok) == accepted(ok));
  }
  CHECK(rcpt(c, "postmaster@elsewhere.example") == kDenied);
  CHECK(rcpt(c, "abuse@elsewhere.example") == kDenied);
  CHECK(s.wait_log("rcpt_ok: pass, postmaster"));
}

TEST_CASE(
    "policy: open relay battery: refused from a non-relay client, accepted from a relay client") {
  // Local: example.test (rcpthosts) and mx.test.invalid (me). Foreign: other.example.
  struct Probe {
    const char *addr;
    bool syntax;  // the core refuses it as syntax before any plugin (501, for everyone)
    const char *shown = nullptr;  // the address in the 250 reply when it differs (route stripped)
  };
  const Probe battery[] = {
      {"victim@other.example", false},
      {"user%other.example@example.test", false},
      {"user%other.example@mx.test.invalid", false},
      {"user%other.example%example.test@example.test", false},
      {"\"user@other.example\"@example.test", false},
      {"\"user@other.example\"@mx.test.invalid", false},
      {"\"user%other.example\"@example.test", false},
      {"\"user\\@other.example\"@example.test", false},
      {"\"other.example!user\"@example.test", false},
      {"b!user@example.test", false},
      {"other.example!user@mx.test.invalid", false},
      {"@example.test:user@other.example", false, "user@other.example"},
      {"@example.test,@mx.test.invalid:user@other.example", false, "user@other.example"},
      {"@[127.0.0.1]:relaytest@other.example", false, "relaytest@other.example"},
      {"relaytest%other.example@[127.0.0.1]", false},
      {"relaytest@[192.0.2.1]", false},  // [127.0.0.1] is this server: local (below)
      {"user@other.example@example.test", true},
      {"\"user@other.example\"", true},
      {"other.example!user", true},
      {"@example.test:postmaster", true},
  };
  const std::string files_rcpthosts = "example.test\n";
  for (bool relay_client : {false, true}) {
    CAPTURE(relay_client);
    Server s(policy("relay\nrcpt_ok\nverdict queue=OK\n",
                    {{"rcpthosts", files_rcpthosts},
                     {"relayclients", relay_client ? "127.0.0.1\n" : "192.0.2.0/24\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    // A local sender grants nothing.
    REQUIRE(envelope(c, "someone@example.test"));
    for (const Probe &p : battery) {
      std::string addr = p.addr;
      CAPTURE(addr);
      std::string r = rcpt(c, p.addr);
      if (p.syntax)
        CHECK(r.rfind("501 ", 0) == 0);
      else if (relay_client)
        CHECK(r == accepted(p.shown ? p.shown : p.addr));
      else
        CHECK(r == kDenied);
    }
    // Local mail is accepted either way; a route to a local mailbox is stripped by the core.
    CHECK(rcpt(c, "user@example.test") == accepted("user@example.test"));
    CHECK(rcpt(c, "@other.example:user@example.test") == accepted("user@example.test"));
    CHECK(c.cmd("DATA") == "354 go ahead");
    c.send("Subject: t\r\n\r\nbody\r\n.\r\n");
    CHECK(c.reply().rfind("250 ", 0) == 0);
  }
}

TEST_CASE("policy: rcpt_ok honours is_immune (whitelisthost) and earlier rcpt plugins' verdicts") {
  SUBCASE("whitelisthost relays") {
    Server s(policy("verdict connect=DECLINED connect.note=whitelisthost:1\nrcpt_ok\n"));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(envelope(c));
    CHECK(rcpt(c, "victim@other.example") == accepted("victim@other.example"));
    CHECK(s.wait_log("rcpt_ok: pass, immune"));
  }
  SUBCASE("an earlier rcpt DENY stands (rcpt_ok never runs)") {
    Server s(policy("verdict rcpt=DENY rcpt.text=no_such_user\nrcpt_ok\n",
                    {{"rcpthosts", "example.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(envelope(c));
    CHECK(rcpt(c, "user@example.test") == "550 5.7.1 no such user");
  }
}

// ---- count_unrecognized_commands ------------------------------------------------------------

TEST_CASE("policy: count_unrecognized_commands: 500 three times, then 521 and close") {
  Server s(policy("count_unrecognized_commands 4\n"));
  REQUIRE(s.started());
  {
    Client c(s.port());
    c.reply();
    CHECK(c.cmd("FOO") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("") == "500 5.5.1 Unrecognized command");  // the empty line counts, as in qpsmtpd
    CHECK(c.cmd("EHLO client.example").rfind("250", 0) == 0);
    CHECK(c.cmd("BAR baz") == "500 5.5.1 Unrecognized command");
    CHECK(
        c.cmd("QUUX") ==
        "521 5.5.1 Too many unrecognized commands (4); closing connection");
    CHECK(c.closed());
  }
  {  // a new connection starts from zero
    Client c(s.port());
    c.reply();
    for (int i = 0; i < 3; ++i) CHECK(c.cmd("FOO") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(c.cmd("FOO").rfind("521 5.5.1 Too many unrecognized commands (4)", 0) == 0);
    CHECK(c.closed());
  }
  CHECK(s.wait_log("fail, Too many unrecognized commands (4); closing connection", 5, 2));
}

TEST_CASE("policy: count_unrecognized_commands: default 4, N=1, separate instances") {
  SUBCASE("default") {
    Server s(policy("count_unrecognized_commands\n"));
    REQUIRE(s.started());
    Client c(s.port());
    c.reply();
    for (int i = 0; i < 3; ++i) CHECK(c.cmd("FOO") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("FOO").rfind("521 5.5.1 Too many unrecognized commands (4)", 0) == 0);
    CHECK(c.closed());
  }
  SUBCASE("N=1") {
    Server s(policy("count_unrecognized_commands 1\n"));
    REQUIRE(s.started());
    Client c(s.port());
    c.reply();
    CHECK(
        c.cmd("FOO") ==
        "521 5.5.1 Too many unrecognized commands (1); closing connection");
    CHECK(c.closed());
  }
  SUBCASE("two instances keep separate counts") {
    Server s(policy("count_unrecognized_commands:0 3\ncount_unrecognized_commands:1 5\n"));
    REQUIRE(s.started());
    Client c(s.port());
    c.reply();
    for (int i = 0; i < 2; ++i) CHECK(c.cmd("FOO") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("FOO").rfind("521 5.5.1 Too many unrecognized commands (3)", 0) == 0);
    CHECK(c.closed());
  }
}

// ---- hosts_allow ----------------------------------------------------------------------------

TEST_CASE("policy: hosts_allow max-from-ip 2: the third concurrent connection gets 451") {
  Server s(policy("hosts_allow max-from-ip 2\n"));
  REQUIRE(s.started());
  const std::string busy = "451 4.7.0 too many connections from 127.0.0.1, try again later";
  auto c1 = std::make_unique<Client>(s.port());
  auto c2 = std::make_unique<Client>(s.port());
  CHECK(c1->reply().rfind("220 ", 0) == 0);
  CHECK(c2->reply().rfind("220 ", 0) == 0);
  {
    Client c3(s.port());
    CHECK(c3.reply() == busy);
    CHECK(c3.closed());
  }
  CHECK(s.wait_log("fail, too many connections from 127.0.0.1 (3 > 2)"));
  {  // the refused connection was not counted: still full, still refused
    Client c3(s.port());
    CHECK(c3.reply() == busy);
  }
  CHECK(c1->cmd("QUIT").rfind("221 ", 0) == 0);
  CHECK(c1->closed());
  {
    Client c4(s.port());
    CHECK(c4.reply().rfind("220 ", 0) == 0);
    CHECK(c4.cmd("QUIT").rfind("221 ", 0) == 0);
  }
  // A client that just drops the connection frees its slot too.
  c1 = std::make_unique<Client>(s.port());
  CHECK(c1->reply().rfind("220 ", 0) == 0);
  c2.reset();
  CHECK(s.wait_log("client closed the connection"));
  Client c5(s.port());
  CHECK(c5.reply().rfind("220 ", 0) == 0);
}

TEST_CASE(
    "policy: hosts_allow: sessions refused at pre-connection by a later plugin are released") {
  // hosts_allow counts the connection, then verdict refuses it; the core runs disconnect,
  // which releases the slot: every connection gets verdict's 550, never hosts_allow's 451.
  Server s(policy("hosts_allow max-from-ip 1\nverdict pre-connection=DENY\n"));
  REQUIRE(s.started());
  for (int i = 0; i < 4; ++i) {
    Client c(s.port());
    CHECK(c.reply() == "550 5.7.1 Sorry, service not available for you");
    CHECK(c.closed());
  }
}

TEST_CASE("policy: hosts_allow rows: CIDR VERDICT text, first match wins") {
  SUBCASE("DENY with text: 550 and close at connect") {
    Server s(policy("hosts_allow\n", {{"hosts_allow", "10.0.0.0/8 OK\n127.0.0.1 DENY go away\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == "550 5.7.1 go away");
    CHECK(c.closed());
    CHECK(s.wait_log("hosts_allow: fail, hosts_allow: DENY go away"));
  }
  SUBCASE("DENYSOFT without text: the core's default") {
    Server s(policy("hosts_allow\n", {{"hosts_allow", "127.0.0.0/8 denysoft\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == "451 4.7.1 Sorry, try again later");
    CHECK(c.closed());
  }
  SUBCASE("DENY_DISCONNECT and DENYSOFT_DISCONNECT") {
    Server s(
        policy("hosts_allow\n", {{"hosts_allow", "127.0.0.1/32 DENY_DISCONNECT  bye  now\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == "550 5.7.1 bye  now");
    CHECK(c.closed());
    Server s2(policy("hosts_allow\n", {{"hosts_allow", "127.0.0.1 DENYSOFT_DISCONNECT later\n"}}));
    REQUIRE(s2.started());
    Client c2(s2.port());
    CHECK(c2.reply() == "451 4.7.1 later");
  }
  SUBCASE("an OK row ends the pre-connection chain; a DECLINED row does not") {
    Server s(policy("hosts_allow\nverdict pre-connection=DENY\n",
                    {{"hosts_allow", "127.0.0.1 OK\n127.0.0.0/8 DENY never reached\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply().rfind("220 ", 0) == 0);
    Server s2(policy("hosts_allow\nverdict pre-connection=DENY\n",
                     {{"hosts_allow", "127.0.0.1 DECLINED\n127.0.0.0/8 DENY never reached\n"}}));
    REQUIRE(s2.started());
    Client c2(s2.port());
    CHECK(c2.reply() == "550 5.7.1 Sorry, service not available for you");
  }
  SUBCASE("an unlimited instance first: its OK rows exempt addresses from a later limit") {
    Server s(policy("hosts_allow:0 max-from-ip 0\nhosts_allow:1 max-from-ip 1\n",
                    {{"hosts_allow", "127.0.0.1 OK\n"}}));
    REQUIRE(s.started());
    std::vector<std::unique_ptr<Client>> open;
    for (int i = 0; i < 3; ++i) {
      open.push_back(std::make_unique<Client>(s.port()));
      CHECK(open.back()->reply().rfind("220 ", 0) == 0);
    }
  }
  SUBCASE("rows that do not match leave the client alone") {
    Server s(policy("hosts_allow\n", {{"hosts_allow", "10.0.0.0/8 DENY no\n::1 DENY no\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply().rfind("220 ", 0) == 0);
  }
}

TEST_CASE("policy: hosts_allow: karma_history adjusts the limit") {
  SUBCASE("karma_history <= 0: one connection") {
    Server s(
        policy("verdict pre-connection=DECLINED pre-connection.note=karma_history:0\n"
               "hosts_allow max-from-ip 5\n"));
    REQUIRE(s.started());
    Client c1(s.port());
    CHECK(c1.reply().rfind("220 ", 0) == 0);
    Client c2(s.port());
    CHECK(c2.reply() == "451 4.7.0 too many connections from 127.0.0.1, try again later");
  }
  SUBCASE("karma_history > 5: three more") {
    Server s(
        policy("verdict pre-connection=DECLINED pre-connection.note=karma_history:6\n"
               "hosts_allow max-from-ip 1\n"));
    REQUIRE(s.started());
    std::vector<std::unique_ptr<Client>> open;
    for (int i = 0; i < 4; ++i) {
      open.push_back(std::make_unique<Client>(s.port()));
      CHECK(open.back()->reply().rfind("220 ", 0) == 0);
    }
    Client c5(s.port());
    CHECK(c5.reply() == "451 4.7.0 too many connections from 127.0.0.1, try again later");
  }
  SUBCASE("max-from-ip 0: no limit") {
    Server s(policy("hosts_allow max-from-ip 0\n"));
    REQUIRE(s.started());
    std::vector<std::unique_ptr<Client>> open;
    for (int i = 0; i < 15; ++i) {
      open.push_back(std::make_unique<Client>(s.port()));
      CHECK(open.back()->reply().rfind("220 ", 0) == 0);
    }
  }
}

// ---- configuration errors -------------------------------------------------------------------

TEST_CASE(
    "policy: bad list lines and arguments refuse startup (--check-config), naming file and line") {
  struct Row {
    const char *plugins;
    const char *file;
    const char *text;
    const char *message;
  };
  const Row rows[] = {
      {"relay\n", "relayclients", "127.0.0.1\n# c\n10.0.0.0/33\n",
       "conf/relayclients:3: '10.0.0.0/33' is not an IPv4/IPv6 address or CIDR"},
      {"relay\n", "relayclients", "example.com\n", "conf/relayclients:1: 'example.com' is not"},
      {"relay\n", "relayclients", "10.0.0.1 10.0.0.2\n", "'10.0.0.1 10.0.0.2' is not"},
      {"relay\n", "norelayclients", "\n\n::1/129\n", "conf/norelayclients:3: '::1/129' is not"},
      {"relay foo\n", "", "", "relay takes no arguments"},
      {"hosts_allow\n", "hosts_allow", "127.0.0.1 DENY ok\n\n# x\n10.0.0.0/8 DENYY no\n",
       "conf/hosts_allow:4: '10.0.0.0/8 DENYY no': unknown verdict"},
      {"hosts_allow\n", "hosts_allow", "10.0.0.0/8\n",
       "conf/hosts_allow:1: '10.0.0.0/8': no verdict"},
      {"hosts_allow\n", "hosts_allow", "10.0.0.300 DENY\n", "the first word is not an IPv4/IPv6"},
      {"hosts_allow max-from-ip x\n", "", "", "bad value 'x' for 'max-from-ip'"},
      {"hosts_allow max-from-ip\n", "", "", "max-from-ip needs a value"},
      {"hosts_allow max_from_ip 3\n", "", "", "unknown argument 'max_from_ip'"},
      {"hosts_allow max-from-ip 1 max-from-ip 2\n", "", "", "given twice"},
      {"rcpt_ok\n", "rcpthosts", "# local\nexample.test\nexample.net # x\n",
       "conf/rcpthosts:3: 'example.net # x' is not a domain"},
      {"rcpt_ok x\n", "", "", "rcpt_ok takes no arguments"},
      {"count_unrecognized_commands 0\n", "", "", "usage: count_unrecognized_commands [N]"},
      {"count_unrecognized_commands four\n", "", "", "usage: count_unrecognized_commands [N]"},
      {"count_unrecognized_commands 4 5\n", "", "", "usage: count_unrecognized_commands [N]"},
  };
  for (const Row &row : rows) {
    std::string plugins = row.plugins, text = row.text;
    CAPTURE(plugins);
    CAPTURE(text);
    std::map<std::string, std::string> files;
    if (*row.file) files[row.file] = row.text;
    Options o = policy("# line 1\n" + plugins, files);
    RunResult r = check_config(o);
    CHECK(r.status == 1);
    std::string head = plugins.substr(0, plugins.find_first_of(" \n"));
    CHECK(r.output.find("conf/plugins:2: plugin '" + head + "' failed to initialise") !=
          std::string::npos);
    CHECK(r.output.find(row.message) != std::string::npos);
    // and the server does not start either (it binds first, then loads plugins, then exits)
    Server s(o);
    CHECK(s.wait_exit() == 1);
  }
  // An entry from an $include'd file names that file and its own line.
  {
    RunResult r = check_config(policy(
        "relay\n", {{"relayclients", "# ours\n127.0.0.1\n$include office\n10.0.0.1\n"},
                     {"office", "192.0.2.0/24\n\n# lab\n198.51.100.0/33\n"}}));
    CHECK(r.status == 1);
    CHECK(r.output.find("conf/office:4: '198.51.100.0/33' is not an IPv4/IPv6 address or CIDR") !=
          std::string::npos);
  }
  RunResult ok = check_config(policy(
      "hosts_allow max-from-ip 3\nrelay\ncount_unrecognized_commands 2\nrcpt_ok\n",
      {{"relayclients", "127.0.0.1\n10.\n192.168.0.0/16\n2001:db8::/32 # office\n"},
       {"norelayclients", "10.1.2.3\n"},
       {"hosts_allow", "# who\n192.0.2.0/24 DENY go away\n198.51.100.7 DENYSOFT\n2001:db8::1 OK\n"},
       {"rcpthosts", "example.test\n.example.net\n[192.0.2.1]\n"}}));
  CHECK(ok.status == 0);
  CHECK(ok.output.find("configuration OK") != std::string::npos);
}
