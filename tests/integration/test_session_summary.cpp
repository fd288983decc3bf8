// tests/integration/test_session_summary.cpp: the one summary line per session ("disconnect
// from ..."), text and JSON, through the real binary: the command counts (name=ok/total), the
// TLS protocol and cipher, and how the session ended (quit, client_closed, timeout, plugin,
// limit, protocol, shutdown). Cases are named "summary: ...".
#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "../unit/json_check.hpp"
#include "harness.hpp"
#include "tls_client.hpp"
#include "tls_fixture.hpp"

using namespace itest;

namespace {

std::vector<std::string> lines_with(const std::string &log, const std::string &needle) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);)
    if (l.find(needle) != std::string::npos) out.push_back(l);
  return out;
}

// The one "disconnect from" line holding `needle`; "" (with a message) if not exactly one.
std::string summary_with(const Server &s, const std::string &needle) {
  s.wait_log(needle, 5);
  auto ls = lines_with(s.log(), "disconnect from ");
  std::vector<std::string> hit;
  for (const auto &l : ls)
    if (l.find(needle) != std::string::npos) hit.push_back(l);
  if (hit.size() != 1) {
    MESSAGE("lines with '" << needle << "': " << hit.size() << "\n" << s.log());
    return "";
  }
  return hit[0];
}

bool contains(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

Options summary_opts(const std::string &more_toml = "") {
  Options o;
  o.toml = "max_connections_per_ip = 3\n" + more_toml + "[timeouts]\ncommand = 1\n";
  o.plugins = "verdict rcpt=OK queue=OK vrfy=DENY_DISCONNECT\n";
  o.log_level = "info";
  return o;
}

}  // namespace

TEST_CASE("summary: one text line per session with the counts and how it ended") {
  Server s(summary_opts());
  REQUIRE(s.started());

  {  // quit: a message, a refused RCPT, then QUIT
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("EHLO client.test").rfind("250", 0) == 0);
    CHECK(c.cmd("MAIL FROM:<a@example.org>").rfind("250", 0) == 0);
    CHECK(c.cmd("RCPT TO:<b@example.org>").rfind("250", 0) == 0);
    CHECK(c.cmd("RCPT TO:<b@example.org").rfind("501", 0) == 0);
    CHECK(c.cmd("DATA").rfind("354", 0) == 0);
    CHECK(c.cmd("Subject: x\r\n\r\nhello\r\n.").rfind("250", 0) == 0);
    CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  }
  std::string quit = summary_with(s, " end=quit");
  CHECK_MESSAGE(contains(quit,
                         "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 data=1 "
                         "quit=1 commands=5/6 messages=1 duration="),
                quit);
  CHECK_MESSAGE(!contains(quit, " tls="), quit);

  {  // client_closed: EHLO, then the client goes away
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  }
  std::string closed = summary_with(s, " end=client_closed");
  CHECK_MESSAGE(contains(closed, " ehlo=1 commands=1 messages=0 duration="), closed);

  {  // timeout: [timeouts] command = 1
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.code(5) == 421);
  }
  std::string timeout = summary_with(s, " end=timeout");
  CHECK_MESSAGE(contains(timeout, " commands=0 messages=0 duration=1."), timeout);

  {  // plugin: the verdict plugin answers VRFY with DENY_DISCONNECT
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("HELO client.test").rfind("250", 0) == 0);
    CHECK(c.cmd("VRFY someone").rfind("5", 0) == 0);
    CHECK(c.closed());
  }
  std::string plugin = summary_with(s, " end=plugin:");
  CHECK_MESSAGE(contains(plugin, " helo=1 vrfy=0/1 commands=1/2 "), plugin);
  CHECK_MESSAGE(contains(plugin, " end=plugin:verdict"), plugin);

  {  // protocol: an HTTP request
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("GET / HTTP/1.0").rfind("221", 0) == 0);
  }
  std::string protocol = summary_with(s, " end=protocol");
  CHECK_MESSAGE(contains(protocol, " unknown=1 commands=1 "), protocol);

  {  // limit: the fourth connection from one IP (max_connections_per_ip = 3) is refused
    std::vector<std::unique_ptr<Client>> held;
    for (int i = 0; i < 3; ++i) {
      held.push_back(std::make_unique<Client>(s.port()));
      REQUIRE(held.back()->code() == 220);
    }
    Client c(s.port());
    CHECK(c.code() == 421);
    std::string limit = summary_with(s, " end=limit");
    CHECK_MESSAGE(contains(limit, " commands=0 messages=0 duration="), limit);
  }

  {                                                 // shutdown: an idle session gets 421 on SIGTERM
    REQUIRE(s.wait_log("disconnect from ", 5, 9));  // the three held ones are gone
    Client c(s.port());
    REQUIRE(c.code() == 220);
    s.signal(SIGTERM);
    CHECK(c.code() == 421);
    std::string down = summary_with(s, " end=shutdown");
    CHECK_MESSAGE(contains(down, " commands=0 messages=0 duration="), down);
  }
  CHECK(s.wait_exit() == 0);
}

TEST_CASE("summary: JSON fields: commands, tls, end and end_plugin; TLS in text and JSON") {
  using namespace itest::tls;
  for (bool json : {false, true}) {
    CAPTURE(json);
    std::string toml = tls_toml({{"starttls"}}, pki().leaf.cert, pki().leaf.key);
    Options o = tls_opts(toml, "verdict rcpt=OK queue=OK vrfy=DENY_DISCONNECT\n");
    o.log_level = "info";
    if (json) o.log_keys = "format = \"json\"\n";
    Server s(o);
    int port = start_ports(s, 1)[0];

    std::string protocol, cipher;
    {  // STARTTLS, then QUIT inside TLS
      TlsClient c(port);
      REQUIRE_MESSAGE(c.starttls(verified()), c.error());
      protocol = c.protocol();
      cipher = c.cipher();
      CHECK(c.cmd("EHLO client.test").rfind("250", 0) == 0);
      CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
    }
    {  // plain, closed by a plugin
      Client c(port);
      REQUIRE(c.code() == 220);
      CHECK(c.cmd("VRFY x").rfind("5", 0) == 0);
      CHECK(c.closed());
    }
    REQUIRE(s.wait_log(json ? "\"event\":\"disconnect\"" : "disconnect from ", 5, 2));
    auto ends = lines_with(s.log(), json ? "\"event\":\"disconnect\"" : "disconnect from ");
    REQUIRE(ends.size() == 2);
    if (!json) {
      CHECK_MESSAGE(contains(ends[0], " ehlo=2 starttls=1 quit=1 commands=4 messages=0 "), ends[0]);
      CHECK_MESSAGE(contains(ends[0], " tls=" + protocol + "/" + cipher + " end=quit"), ends[0]);
      CHECK_MESSAGE(contains(ends[1], " vrfy=0/1 commands=0/1 "), ends[1]);
      CHECK_MESSAGE(contains(ends[1], " end=plugin:verdict"), ends[1]);
      CHECK_MESSAGE(!contains(ends[1], " tls="), ends[1]);
      continue;
    }
    auto a = jsoncheck::parse(ends[0].substr(ends[0].find('{')));
    REQUIRE_MESSAGE(a, ends[0]);
    CHECK(a->str("end") == "quit");
    CHECK(a->get("end_plugin")->type == jsoncheck::Value::null);
    REQUIRE(a->get("tls"));
    CHECK(a->get("tls")->str("protocol") == protocol);
    CHECK(a->get("tls")->str("cipher") == cipher);
    CHECK(a->num("commands_ok") == 4);
    CHECK(a->num("commands_total") == 4);
    CHECK(a->get("commands")->get("starttls")->num("ok") == 1);
    CHECK(a->get("commands")->get("ehlo")->num("total") == 2);
    CHECK(a->num("duration") >= 0);
    CHECK_MESSAGE(contains(a->str("msg"), " end=quit"), ends[0]);

    auto b = jsoncheck::parse(ends[1].substr(ends[1].find('{')));
    REQUIRE_MESSAGE(b, ends[1]);
    CHECK(b->str("end") == "plugin");
    CHECK(b->str("end_plugin").rfind("verdict", 0) == 0);
    CHECK(b->get("tls")->type == jsoncheck::Value::null);
    CHECK(b->get("commands")->get("vrfy")->num("ok") == 0);
    CHECK(b->get("commands")->get("vrfy")->num("total") == 1);
  }
}
