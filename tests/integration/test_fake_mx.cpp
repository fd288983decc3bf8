// tests/integration/test_fake_mx.cpp: the delivery tests' infrastructure, tested on its own: the
// scriptable fake MX (fake_mx.hpp) spoken to with the harness clients on 127.0.0.2 and
// 127.0.0.1 (STARTTLS), and the DNS stub's MX (null MX included), A and AAAA answers as dig(1)
// reads them.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "dns_stub.hpp"
#include "fake_mx.hpp"
#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"

using namespace itest;

namespace {

bool starts(const std::string &s, const std::string &prefix) {
  return s.rfind(prefix, 0) == 0;
}
bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

const std::string kMsg = "Subject: fake mx\r\n\r\nline one\r\n.leading dot\r\n";

}  // namespace

TEST_CASE("fake_mx: a whole transaction on 127.0.0.2, recorded with envelope and bytes") {
  FakeMx mx("127.0.0.2");
  REQUIRE_MESSAGE(mx.started(), mx.error());
  CHECK(mx.ip() == "127.0.0.2");
  Client c("127.0.0.2", mx.port());
  REQUIRE(c.connected());
  CHECK(c.reply() == "220 fake.mx.test ESMTP fake MX");
  std::string ehlo = c.cmd("EHLO client.test");
  CHECK(starts(ehlo, "250-fake.mx.test\n"));
  CHECK(has(ehlo, "250-PIPELINING\n"));
  CHECK(has(ehlo, "250-8BITMIME\n"));
  CHECK(has(ehlo, "250 SMTPUTF8"));
  CHECK_FALSE(has(ehlo, "STARTTLS"));  // no certificate in the script
  CHECK(starts(send_message(c, "from@client.test", {"a@dest.test", "b@dest.test"}, dot_stuff(kMsg)),
               "250 2.0.0"));
  CHECK(starts(c.cmd("QUIT"), "221"));
  REQUIRE(mx.wait_messages(1));
  MxMessage m = mx.messages()[0];
  CHECK(m.connection == 1);
  CHECK_FALSE(m.tls);
  CHECK(m.helo == "client.test");
  CHECK(m.mail == "FROM:<from@client.test>");
  CHECK(m.from == "from@client.test");
  CHECK(m.rcpts == std::vector<std::string>{"a@dest.test", "b@dest.test"});
  CHECK(m.data == kMsg);  // dot-unstuffed, without the final "."
  CHECK(m.accepted);
  CHECK(mx.connections() == 1);
  CHECK(mx.wait_idle());
  std::vector<std::string> cmds = mx.commands();
  REQUIRE(cmds.size() == 6);
  CHECK(cmds[0] == "1 EHLO client.test");
  CHECK(cmds[5] == "1 QUIT");
}

TEST_CASE("fake_mx: replies per RCPT pattern, to MAIL, DATA and the data") {
  MxScript s;
  s.rcpt_replies = {{"*@unknown.test", "550 5.1.1 No such user"},
                    {"slow*", "450 4.2.0 Try again later"}};
  s.dot_reply = "554 5.7.1 Content refused";
  FakeMx mx("127.0.0.3", 0, s);
  REQUIRE_MESSAGE(mx.started(), mx.error());
  Client c("127.0.0.3", mx.port());
  CHECK(c.code() == 220);
  CHECK(c.read_some(0.2).empty());  // nothing more
  c.line("EHLO client.test");
  c.reply();
  CHECK(starts(c.cmd("MAIL FROM:<f@client.test> SIZE=100"), "250 2.1.0"));
  CHECK(c.cmd("RCPT TO:<x@UNKNOWN.test>") == "550 5.1.1 No such user");
  CHECK(c.cmd("RCPT TO:<Slowpoke@dest.test>") == "450 4.2.0 Try again later");
  CHECK(c.cmd("RCPT TO:<ok@dest.test> NOTIFY=NEVER") == "250 2.1.5 Ok");
  CHECK(starts(c.cmd("DATA"), "354"));
  c.send(kMsg + ".\r\n");
  CHECK(c.reply() == "554 5.7.1 Content refused");
  REQUIRE(mx.wait_messages(1));
  MxMessage m = mx.messages()[0];
  CHECK(m.mail == "FROM:<f@client.test> SIZE=100");
  CHECK(m.rcpts == std::vector<std::string>{"ok@dest.test"});
  CHECK_FALSE(m.accepted);
  // a rejected MAIL leaves no transaction
  MxScript busy;
  busy.mail_reply = "452 4.3.1 Insufficient system storage";
  mx.set_script(busy);
  Client d("127.0.0.3", mx.port());
  d.reply();
  d.cmd("EHLO client.test");
  CHECK(d.cmd("MAIL FROM:<f@client.test>") == "452 4.3.1 Insufficient system storage");
  CHECK(starts(d.cmd("RCPT TO:<ok@dest.test>"), "503"));
  CHECK(mx.wait_connections(2));

  CHECK(mx_glob("*@a.test", "X@A.TEST"));
  CHECK(mx_glob("a*b*c", "aXXbYc"));
  CHECK_FALSE(mx_glob("a*b", "aXXbY"));
  CHECK(mx_glob("*", ""));
}

TEST_CASE("fake_mx: refused greetings, drop and hang points") {
  SUBCASE("554 greeting: 503 to everything but QUIT") {
    MxScript s;
    s.greeting_code = 554;
    s.greeting_text = "5.3.2 No service here";
    FakeMx mx("127.0.0.4", 0, s);
    REQUIRE_MESSAGE(mx.started(), mx.error());
    Client c("127.0.0.4", mx.port());
    CHECK(c.reply() == "554 5.3.2 No service here");
    CHECK(starts(c.cmd("EHLO client.test"), "503"));
    CHECK(starts(c.cmd("QUIT"), "221"));
    CHECK(c.closed());
  }
  SUBCASE("drop at connect: closed before any greeting") {
    MxScript s;
    s.drop_at = MxStep::connect;
    FakeMx mx("127.0.0.4", 0, s);
    REQUIRE_MESSAGE(mx.started(), mx.error());
    Client c("127.0.0.4", mx.port());
    CHECK(c.closed());
    CHECK(c.drained.empty());
  }
  SUBCASE("drop at RCPT") {
    MxScript s;
    s.drop_at = MxStep::rcpt;
    FakeMx mx("127.0.0.4", 0, s);
    REQUIRE_MESSAGE(mx.started(), mx.error());
    Client c("127.0.0.4", mx.port());
    c.reply();
    c.cmd("EHLO client.test");
    CHECK(starts(c.cmd("MAIL FROM:<f@client.test>"), "250"));
    c.line("RCPT TO:<a@dest.test>");
    CHECK(c.closed());
    CHECK(mx.wait_idle());
  }
  SUBCASE("hang after the data: no reply, the connection stays open") {
    MxScript s;
    s.hang_at = MxStep::dot;
    FakeMx mx("127.0.0.4", 0, s);
    REQUIRE_MESSAGE(mx.started(), mx.error());
    Client c("127.0.0.4", mx.port());
    c.reply();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<f@client.test>");
    c.cmd("RCPT TO:<a@dest.test>");
    CHECK(starts(c.cmd("DATA"), "354"));
    c.send(kMsg + ".\r\n");  // no reply to the "."
    CHECK(c.read_some(0.5).empty());
    CHECK(mx.current() == 1);
    CHECK(mx.messages().empty());  // not recorded: it was never answered
  }
  SUBCASE("a reply delay") {
    MxScript s;
    s.reply_delay = 0.3;
    FakeMx mx("127.0.0.4", 0, s);
    REQUIRE_MESSAGE(mx.started(), mx.error());
    Client c("127.0.0.4", mx.port());
    double t0 = now();
    CHECK(c.code() == 220);
    CHECK(now() - t0 >= 0.25);
  }
}

TEST_CASE("fake_mx: per-connection scripts; total, current and concurrent connection counts") {
  FakeMx mx("127.0.0.5");
  REQUIRE_MESSAGE(mx.started(), mx.error());
  MxScript busy;
  busy.greeting_code = 421;
  busy.greeting_text = "4.3.2 Too busy";
  mx.set_script_for(2, busy);
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::string> greetings;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>("127.0.0.5", mx.port()));
    greetings.push_back(clients.back()->reply());  // in accept order
  }
  CHECK(starts(greetings[0], "220"));
  CHECK(greetings[1] == "421 4.3.2 Too busy");
  CHECK(starts(greetings[2], "220"));
  CHECK(mx.connections() == 3);
  CHECK(mx.current() == 3);
  CHECK(mx.max_concurrent() == 3);
  clients.clear();
  CHECK(mx.wait_idle());
  CHECK(mx.current() == 0);
  Client again("127.0.0.5", mx.port());
  CHECK(starts(again.reply(), "220"));
  CHECK(mx.connections() == 4);
  CHECK(mx.max_concurrent() == 3);
}

TEST_CASE("fake_mx: STARTTLS with the test certificate; EHLO again; the message marked TLS") {
  const tls::Certs &pki = tls::certs();
  REQUIRE_MESSAGE(pki.ok(), pki.error);
  MxScript s;
  s.tls_cert = pki.leaf.cert;
  s.tls_key = pki.leaf.key;
  FakeMx mx("127.0.0.1", 0, s);  // the TLS client connects to 127.0.0.1
  REQUIRE_MESSAGE(mx.started(), mx.error());
  tls::TlsClient t(mx.port());
  tls::TlsOptions o;
  o.cafile = pki.ca;
  o.verify_name = "localhost";
  o.sni = "localhost";
  REQUIRE_MESSAGE(t.starttls(o), t.error());
  CHECK(has(t.ehlo_plain, "STARTTLS"));
  CHECK(t.verify_result() == 0);
  std::string ehlo = t.cmd("EHLO client.test");
  CHECK(starts(ehlo, "250-"));
  CHECK_FALSE(has(ehlo, "STARTTLS"));  // not offered twice
  CHECK(starts(send_message(t, "f@client.test", {"a@dest.test"}, kMsg), "250"));
  REQUIRE(mx.wait_messages(1));
  CHECK(mx.messages()[0].tls);
  CHECK(mx.messages()[0].helo == "client.test");

  SUBCASE("STARTTLS refused by the script") {
    s.starttls_fails = true;
    mx.set_script(s);
    Client c(mx.port());
    c.reply();
    CHECK(has(c.cmd("EHLO client.test"), "STARTTLS"));
    CHECK(c.cmd("STARTTLS") == "454 4.7.0 TLS not available");
    CHECK(starts(c.cmd("MAIL FROM:<f@client.test>"), "250"));  // still in plaintext
  }
}

TEST_CASE("fake_mx: LMTP: LHLO and one final reply per recipient") {
  MxScript s;
  s.lmtp = true;
  s.lmtp_replies = {{"full@*", "452 4.2.2 Mailbox full"}};
  FakeMx mx("127.0.0.6", 0, s);
  REQUIRE_MESSAGE(mx.started(), mx.error());
  Client c("127.0.0.6", mx.port());
  c.reply();
  CHECK(starts(c.cmd("EHLO client.test"), "500"));
  CHECK(starts(c.cmd("LHLO client.test"), "250-"));
  c.cmd("MAIL FROM:<f@client.test>");
  c.cmd("RCPT TO:<a@dest.test>");
  c.cmd("RCPT TO:<full@dest.test>");
  CHECK(starts(c.cmd("DATA"), "354"));
  c.send(kMsg + ".\r\n");
  CHECK(starts(c.reply(), "250 2.0.0"));
  CHECK(c.reply() == "452 4.2.2 Mailbox full");
  REQUIRE(mx.wait_messages(1));
  CHECK(mx.messages()[0].reply == "250 2.0.0 Ok: queued\n452 4.2.2 Mailbox full");
  CHECK(mx.messages()[0].accepted);
}

TEST_CASE("fake_mx: several fake MXs on one port, one per address") {
  auto mxs = start_fake_mxs({"127.0.0.2", "127.0.0.3", "127.0.0.4"});
  REQUIRE(mxs.size() == 3);
  for (size_t i = 0; i < mxs.size(); ++i) {
    CHECK(mxs[i]->port() == mxs[0]->port());
    MxScript s;
    s.greeting_text = "mx" + std::to_string(i) + " ready";
    mxs[i]->set_script(s);
  }
  for (size_t i = 0; i < mxs.size(); ++i) {
    Client c(mxs[i]->ip(), mxs[0]->port());
    CHECK(c.reply() == "220 mx" + std::to_string(i) + " ready");
  }
  for (auto &mx : mxs) CHECK(mx->connections() == 1);
}

TEST_CASE("fake_mx: a port that is taken is reported") {
  FakeMx a("127.0.0.7");
  REQUIRE_MESSAGE(a.started(), a.error());
  FakeMx b("127.0.0.7", a.port());
  CHECK_FALSE(b.started());
  CHECK(has(b.error(), "127.0.0.7:" + std::to_string(a.port())));
}

TEST_CASE("dns_stub: MX (null MX included), A and AAAA for test domains, as dig reads them") {
  RunResult have_dig = sh("command -v dig");
  REQUIRE_MESSAGE(have_dig.status == 0, "dig(1) is needed (bind9-dnsutils)");
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add("dest.test", DnsStub::MX, {"20 mx2.dest.test", "10 mx1.dest.test"});
  dns.add("mx1.dest.test", DnsStub::A, {"127.0.0.2"});
  dns.add("mx1.dest.test", DnsStub::AAAA, {"::1"});
  dns.add("mx2.dest.test", DnsStub::A, {"127.0.0.3", "127.0.0.4"});
  dns.add("nullmx.test", DnsStub::MX, {"0 ."});     // RFC 7505
  dns.add("nomx.test", DnsStub::A, {"127.0.0.5"});  // no MX: the implicit MX is the A record
  auto dig = [&](const std::string &type, const std::string &name) {
    RunResult r = sh("dig @127.0.0.1 -p " + std::to_string(dns.port()) +
                     " +short +tries=1 +time=2 " + type + " " + name + " | sort");
    return r.output;
  };
  CHECK(dig("MX", "dest.test") == "10 mx1.dest.test.\n20 mx2.dest.test.\n");
  CHECK(dig("MX", "nullmx.test") == "0 .\n");
  CHECK(dig("A", "mx1.dest.test") == "127.0.0.2\n");
  CHECK(dig("AAAA", "mx1.dest.test") == "::1\n");
  CHECK(dig("A", "mx2.dest.test") == "127.0.0.3\n127.0.0.4\n");
  CHECK(dig("MX", "nomx.test") == "");
  RunResult nodata =
      sh("dig @127.0.0.1 -p " + std::to_string(dns.port()) + " +tries=1 +time=2 MX nomx.test");
  CHECK(has(nodata.output, "status: NOERROR"));
  RunResult nx =
      sh("dig @127.0.0.1 -p " + std::to_string(dns.port()) + " +tries=1 +time=2 MX absent.test");
  CHECK(has(nx.output, "status: NXDOMAIN"));
  CHECK(dns.queries("nullmx.test", DnsStub::MX) == 1);
  CHECK(dns.queries("mx1.dest.test", DnsStub::AAAA) == 1);
}
