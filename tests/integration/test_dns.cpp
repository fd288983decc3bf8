// tests/integration/test_dns.cpp: reverse lookup at connect and dnsbl, against a local DNS stub.
//
// Every server here is pointed at a DnsStub on 127.0.0.1 through its [dns] table, and the
// tests check that the stub received the questions: no lookup leaves the machine.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "dns_stub.hpp"
#include "harness.hpp"

using namespace itest;

namespace {

const std::string kAccept = "verdict:9 rcpt=OK queue=OK\n";
const std::string kBanner = "220 mx.test.invalid ESMTP uvsmtpd";
const std::string kBody = "Subject: dns test\r\n\r\nhello\r\n";
const std::string kQ = "1.0.0.127.";  // 127.0.0.1 reversed, the DNSBL query prefix
// libuv's loop clock has millisecond granularity: a timer may fire ~1 ms early.
constexpr double kEarly = 0.005;

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

double since(const Client &c) {
  return now() - c.connected_at();
}

// A dnsbl line with `text` that names its session: "[<id>] dnsbl: <text>" when logged through
// the call, "dnsbl: (session <id>) <text>" when no call was at hand (check-at rcpt's answers, or
// an answer after the core let go of the call). True once such a line names a session that
// connected, within timeout.
bool bl_logged(const Server &s, const std::string &text, double timeout = 5) {
  double end = now() + timeout;
  for (;;) {
    std::string log = s.log();
    for (size_t pos = log.find(text); pos != std::string::npos; pos = log.find(text, pos + 1)) {
      size_t bol = log.rfind('\n', pos);
      std::string head = log.substr(bol == std::string::npos ? 0 : bol + 1,
                                    pos - (bol == std::string::npos ? 0 : bol + 1));
      std::string id;
      size_t k = head.rfind("(session ");
      if (head.size() > 2 && head.compare(head.size() - 2, 2, ") ") == 0 && k != std::string::npos)
        id = head.substr(k + 9, head.size() - 2 - (k + 9));
      else if (head.size() >= 7 && head.compare(head.size() - 7, 7, "dnsbl: ") == 0 &&
               (k = head.find(" [")) != std::string::npos)
        id = head.substr(k + 2, head.find_first_of(" ]", k + 2) - (k + 2));
      if (!id.empty() && has(log, "[" + id + "] connect from")) return true;
    }
    if (now() >= end) return false;
    usleep(20 * 1000);
  }
}

// The [dns] table (last in the toml) pointing at the stub; the reverse lookup is off unless
// a test turns it on, so that only the plugin's questions reach the stub.
Options opts(const DnsStub &dns, const std::string &plugins,
             std::map<std::string, std::string> files = {},
             const std::string &dns_extra = "reverse_lookup = false\ntimeout = 2\n") {
  Options o;
  o.plugins = plugins;
  o.files = std::move(files);
  o.toml = dns.toml(dns_extra);
  return o;
}

// The first line of the EHLO reply, e.g. "250-mx.test.invalid Hello [127.0.0.1]".
std::string ehlo_first_line(Client &c) {
  std::string r = c.cmd("EHLO client.example");
  return r.substr(0, r.find('\n'));
}

// The value of "<plugin>: <key>=" in the log (api_probe's lines), "" if absent.
std::string probe_value(const std::string &log, const std::string &key) {
  std::string needle = "api_probe: " + key + "=";
  size_t pos = log.find(needle);
  if (pos == std::string::npos) return "";
  pos += needle.size();
  return log.substr(pos, log.find('\n', pos) - pos);
}

// A greeted client with EHLO and MAIL done; the RCPT reply comes from the test.
void envelope(Client &c) {
  REQUIRE(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  REQUIRE(c.cmd("MAIL FROM:<a@sender.example>").rfind("250 ", 0) == 0);
}

// A minimal IPv6 SMTP client (the harness's Client speaks IPv4 only).
class Client6 {
 public:
  explicit Client6(int port) {
    fd_ = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    a.sin6_addr = in6addr_loopback;
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Client6() {
    if (fd_ >= 0) close(fd_);
  }
  Client6(const Client6 &) = delete;
  Client6 &operator=(const Client6 &) = delete;
  bool connected() const { return fd_ >= 0; }
  // The next whole reply (lines joined by '\n', no CRLF); "" on timeout or EOF.
  std::string reply(double timeout = 5) {
    double deadline = now() + timeout;
    std::string out;
    for (;;) {
      size_t nl = buf_.find("\r\n");
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 2);
        out += (out.empty() ? "" : "\n") + line;
        if (line.size() < 4 || line[3] != '-') return out;
        continue;
      }
      int left = static_cast<int>((deadline - now()) * 1000);
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, left) <= 0) return "";
      char b[4096];
      ssize_t n = recv(fd_, b, sizeof b, 0);
      if (n <= 0) return "";
      buf_.append(b, static_cast<size_t>(n));
    }
  }
  std::string cmd(const std::string &line) {
    std::string l = line + "\r\n";
    if (::send(fd_, l.data(), l.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(l.size())) return "";
    return reply();
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

// A local UDP port with nobody behind it (bound, read, closed): questions sent there are
// refused by the kernel, and nothing leaves the machine.
int dead_udp_port() {
  return free_port(SOCK_DGRAM);
}

}  // namespace

// ---- the stub itself ----------------------------------------------------------------------

TEST_CASE("dns: the stub answers A/AAAA/TXT/PTR/MX, NXDOMAIN and NODATA, and counts questions") {
  // Through the server's own resolver: api_probe's "HELP dns NAME TYPE" runs dns_query().
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add("multi.test", DnsStub::A, {"192.0.2.1", "192.0.2.2"});
  dns.add("multi.test", DnsStub::AAAA, {"2001:db8::1"});
  dns.add("multi.test", DnsStub::TXT, {"v=stub " + std::string(300, 'x')});
  dns.add("multi.test", DnsStub::MX, {"10 mx1.multi.test"});
  dns.add_ptr("192.0.2.1", "ptr.multi.test");
  Server s(opts(dns, "api_probe\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply().find("220 ") != std::string::npos);
  CHECK(c.cmd("HELP dns multi.test 1") == "214 2.0.0 dns status=0 count=2 192.0.2.1 192.0.2.2");
  CHECK(c.cmd("HELP dns multi.test 2") == "214 2.0.0 dns status=0 count=1 2001:db8::1");
  CHECK(c.cmd("HELP dns multi.test 3") == "214 2.0.0 dns status=0 count=1 10 mx1.multi.test");
  // 300+ bytes of TXT arrive as two strings and are joined again; the reply is cut by api_probe.
  CHECK(c.cmd("HELP dns multi.test 4").rfind("214 2.0.0 dns status=0 count=1 v=stub xxxx", 0) == 0);
  CHECK(c.cmd("HELP dns 192.0.2.1 5").rfind("214 2.0.0 dns status=0 count=", 0) == 0);
  CHECK(has(s.log(), "help dns status=0 count="));
  CHECK(has(s.log(), " ptr.multi.test"));
  CHECK(c.cmd("HELP dns nx.multi.test 1") ==
        "214 2.0.0 dns status=" + std::to_string(-ENOENT) + " count=0");
  dns.add("txtonly.test", DnsStub::TXT, {"t"});
  CHECK(c.cmd("HELP dns txtonly.test 1") ==
        "214 2.0.0 dns status=" + std::to_string(-ENOENT) + " count=0");
  CHECK(dns.queries("multi.test") == 4);
  CHECK(dns.queries("multi.test", DnsStub::A) == 1);
  CHECK(dns.queries("1.2.0.192.in-addr.arpa", DnsStub::PTR) == 1);
  CHECK(dns.queries() == 7);  // nothing else was asked: no reverse lookup, no other traffic
}

// ---- the core: reverse lookup at connect ---------------------------------------------------

TEST_CASE(
    "dns: reverse lookup at connect: the PTR name shows in EHLO, remote_host() and Received") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add_ptr("127.0.0.1", "host.example");
  Server s(opts(dns, "api_probe\n", {}, "reverse_lookup = true\nreverse_timeout = 2\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(has(c.reply(), "220 "));
  CHECK(ehlo_first_line(c) == "250-mx.test.invalid Hello host.example [127.0.0.1]");
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  REQUIRE(s.wait_log("api_probe: data_post first_line="));
  std::string log = s.log();
  CHECK(probe_value(log, "connect remote_host") == "host.example");
  CHECK(probe_value(log, "data_post first_line")
            .rfind("Received: from host.example (HELO client.example)", 0) == 0);
  CHECK(dns.queries("1.0.0.127.in-addr.arpa", DnsStub::PTR) == 1);
  CHECK(dns.queries() == 1);  // one question per connection, and it came here
}

TEST_CASE("dns: reverse lookup NXDOMAIN: Unknown in EHLO and Received, remote_host() NULL") {
  DnsStub dns;
  REQUIRE(dns.started());
  Server s(opts(dns, "api_probe\n", {}, "reverse_lookup = true\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(has(c.reply(), "220 "));
  CHECK(since(c) < 0.5);
  CHECK(ehlo_first_line(c) == "250-mx.test.invalid Hello [127.0.0.1]");
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  REQUIRE(s.wait_log("api_probe: data_post first_line="));
  std::string log = s.log();
  CHECK(probe_value(log, "connect remote_host") == "(null)");
  CHECK(probe_value(log, "data_post first_line")
            .rfind("Received: from Unknown (HELO client.example)", 0) == 0);
  CHECK(dns.queries("1.0.0.127.in-addr.arpa", DnsStub::PTR) == 1);
}

TEST_CASE("dns: reverse lookup that never answers: banner after reverse_timeout, name Unknown") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.never_answer("*");
  Server s(opts(dns, kAccept, {}, "reverse_lookup = true\nreverse_timeout = 0.3\n"));
  REQUIRE(s.started());
  Client c(s.port());
  std::string banner = c.reply(5);
  double t = since(c);
  CHECK(banner == kBanner);
  CHECK(t >= 0.3 - kEarly);
  CHECK(t < 1.0);
  CHECK(ehlo_first_line(c) == "250-mx.test.invalid Hello [127.0.0.1]");
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  CHECK(s.wait_log("reverse lookup of 127.0.0.1 timed out"));
  CHECK(dns.queries("1.0.0.127.in-addr.arpa", DnsStub::PTR) >= 1);
  // The server is not stuck: a second client gets the same treatment.
  Client c2(s.port());
  CHECK(c2.reply(5) == kBanner);
  CHECK(since(c2) < 1.0);
}

TEST_CASE("dns: reverse lookups of concurrent clients run in parallel") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add_ptr("127.0.0.1", "slow.example");
  dns.delay("1.0.0.127.in-addr.arpa", 0.3);
  Server s(opts(dns, kAccept, {}, "reverse_lookup = true\nreverse_timeout = 2\n"));
  REQUIRE(s.started());
  std::vector<std::unique_ptr<Client>> clients;
  double t0 = now();
  for (int i = 0; i < 20; ++i) clients.push_back(std::make_unique<Client>(s.port()));
  for (auto &c : clients) CHECK(c->reply(5) == kBanner);
  double t = now() - t0;
  CHECK(t >= 0.3 - kEarly);
  CHECK(t < 1.0);  // 20 lookups one after the other would take 6 s
  CHECK(ehlo_first_line(*clients[0]) == "250-mx.test.invalid Hello slow.example [127.0.0.1]");
  CHECK(dns.queries("1.0.0.127.in-addr.arpa", DnsStub::PTR) >= 20);
}

TEST_CASE("dns: reverse_lookup = false asks nothing") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add_ptr("127.0.0.1", "host.example");
  Server s(opts(dns, kAccept, {}, "reverse_lookup = false\n"));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(ehlo_first_line(c) == "250-mx.test.invalid Hello [127.0.0.1]");
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  usleep(100 * 1000);
  CHECK(dns.queries() == 0);
}

TEST_CASE("dns: a hostile PTR name cannot add lines to the EHLO reply or the Received header") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add_ptr("127.0.0.1", "evil\r\nX-Injected: yes.example");
  Server s(opts(dns, "api_probe\n", {}, "reverse_lookup = true\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(has(c.reply(), "220 "));
  std::string ehlo = c.cmd("EHLO client.example");
  CHECK(ehlo.rfind("250-mx.test.invalid Hello ", 0) == 0);
  CHECK(!has(ehlo, "\nX-Injected"));
  CHECK(c.last_crlf_ok);
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  REQUIRE(s.wait_log("api_probe: data_post first_line="));
  std::string first = probe_value(s.log(), "data_post first_line");
  CHECK(first.rfind("Received: from ", 0) == 0);
  CHECK(has(first, "(HELO client.example)"));  // the whole header start stayed on one line
  CHECK(!has(s.log(), "\nX-Injected"));
}

// ---- dnsbl ---------------------------------------------------------------------------------

TEST_CASE("dns: dnsbl listed: RCPT refused 550 5.7.1 with the zone's message; postmaster passes") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  Server s(opts(
      dns, "dnsbl\n" + kAccept,
      {{"dnsbl_zones", "# a comment\nbl.test - Listed at bl.test, see http://bl.test/q?%IP%\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(since(c) < 0.5);
  envelope(c);
  CHECK(c.cmd("RCPT TO:<u@example.com>") ==
        "550 5.7.1 Listed at bl.test, see http://bl.test/q?127.0.0.1");
  CHECK(c.cmd("RCPT TO:<other@example.com>").rfind("550 5.7.1 Listed at bl.test", 0) == 0);
  CHECK(c.cmd("RCPT TO:<postmaster@example.com>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<Abuse@example.com>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<postmaster>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  CHECK(bl_logged(s, "bl.test lists 127.0.0.1 (127.0.0.2)"));
  CHECK(s.wait_log("dnsbl: listed, bl.test: Listed at bl.test"));
  CHECK(s.wait_log("dnsbl: fail, bl.test: Listed at bl.test", 2, 2));
  CHECK(s.wait_log("dnsbl: skip, special recipient postmaster@example.com"));
  CHECK(dns.queries(kQ + "bl.test", DnsStub::A) == 1);
  CHECK(dns.queries() == 1);  // a configured message: no TXT lookup
}

TEST_CASE("dns: dnsbl not listed: the message is accepted") {
  DnsStub dns;
  REQUIRE(dns.started());
  Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(since(c) < 0.5);
  REQUIRE(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  CHECK(bl_logged(s, "pass, 127.0.0.1 not listed in 1 zone"));
  CHECK(dns.queries(kQ + "bl.test", DnsStub::A) == 1);
  CHECK(dns.queries() == 1);
}

TEST_CASE("dns: dnsbl with two zones, one listing: refused with that zone's message") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "two.test", DnsStub::A, {"127.0.0.3"});
  Server s(opts(dns, "dnsbl\n" + kAccept,
                {{"dnsbl_zones",
                  "one.test - Blocked by one.test\ntwo.test 127.0.0.3 Blocked by two.test\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  envelope(c);
  CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 Blocked by two.test");
  CHECK(dns.queries(kQ + "one.test", DnsStub::A) == 1);
  CHECK(dns.queries(kQ + "two.test", DnsStub::A) == 1);
  CHECK(dns.queries() == 2);
}

TEST_CASE(
    "dns: dnsbl check-at connect timeout: the client is accepted after the plugin's timeout, and "
    "it is logged") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.never_answer(kQ + "slow.test");
  Server s(opts(dns, "dnsbl timeout 0.3 check-at connect\n" + kAccept,
                {{"dnsbl_zones", "slow.test\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  double t = since(c);
  CHECK(t >= 0.3 - kEarly);
  CHECK(t < 1.0);
  REQUIRE(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  CHECK(bl_logged(s, "slow.test: no answer within 0.3s, treated as not listed"));
  CHECK(bl_logged(s, "pass, 127.0.0.1 not listed"));
  CHECK(dns.queries(kQ + "slow.test", DnsStub::A) >= 1);
}

TEST_CASE("dns: dnsbl with a DNS server that refuses: accepted, the error is logged") {
  int port = dead_udp_port();
  REQUIRE(port > 0);
  Options o;
  o.plugins = "dnsbl timeout 2\n" + kAccept;
  o.files = {{"dnsbl_zones", "bl.test\n"}};
  o.toml =
      "[dns]\nservers = [\"127.0.0.1:" + std::to_string(port) + "\"]\nreverse_lookup = false\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(since(c) < 2.5);
  REQUIRE(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
  CHECK(bl_logged(s, "bl.test: "));
  CHECK(s.wait_log("treated as not listed"));
  CHECK(bl_logged(s, "pass, 127.0.0.1 not listed"));
}

TEST_CASE(
    "dns: dnsbl check-at connect lookups run in parallel: 3 zones delayed 0.3 s hold the banner "
    "~0.3 s") {
  DnsStub dns;
  REQUIRE(dns.started());
  for (const char *z : {"a.test", "b.test", "c.test"}) dns.delay(kQ + z, 0.3);
  dns.add(kQ + "c.test", DnsStub::A, {"127.0.0.2"});
  Server s(opts(dns, "dnsbl check-at connect\n" + kAccept,
                {{"dnsbl_zones", "a.test\nb.test\nc.test - Listed by c.test\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == "550 5.7.1 Listed by c.test");
  double t = since(c);
  CHECK(t >= 0.3 - kEarly);
  CHECK(t < 0.85);  // one after the other: >= 0.9 s
  for (const char *z : {"a.test", "b.test", "c.test"}) CHECK(dns.queries(kQ + z, DnsStub::A) == 1);
}

TEST_CASE("dns: dnsbl sessions do not block each other: 30 clients in one 0.3 s lookup") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.delay(kQ + "bl.test", 0.3);
  Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test\n"}}));
  REQUIRE(s.started());
  std::vector<std::unique_ptr<Client>> clients;
  double t0 = now();
  for (int i = 0; i < 30; ++i) clients.push_back(std::make_unique<Client>(s.port()));
  for (auto &c : clients) CHECK(c->reply(5) == kBanner);
  CHECK(now() - t0 < 1.2);
  // In check-at rcpt mode the banner does not wait for the lookups: they may still be on
  // their way to the stub when the last banner arrives.
  for (double end = now() + 2; dns.queries(kQ + "bl.test", DnsStub::A) < 30 && now() < end;)
    usleep(10 * 1000);
  CHECK(dns.queries(kQ + "bl.test", DnsStub::A) == 30);
}

TEST_CASE("dns: dnsbl_allow skips the lookup (CIDR, qpsmtpd's prefix form, IPv4-mapped)") {
  for (const char *allow :
       {"10.0.0.0/8\n127.0.0.0/8\n", "127.0.0.\n", "127.0.0.1\n", "::ffff:127.0.0.0/104\n"}) {
    CAPTURE(allow);
    DnsStub dns;
    REQUIRE(dns.started());
    dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
    Server s(
        opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test\n"}, {"dnsbl_allow", allow}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
    CHECK(s.wait_log("dnsbl: skip, 127.0.0.1 is in dnsbl_allow"));
    CHECK(dns.queries() == 0);
  }
  // An allow list that does not cover the client changes nothing.
  DnsStub dns;
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  Server s(opts(dns, "dnsbl\n" + kAccept,
                {{"dnsbl_zones", "bl.test\n"}, {"dnsbl_allow", "127.0.1.0/24\n::1\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  envelope(c);
  CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("550 5.7.1 ", 0) == 0);
}

TEST_CASE(
    "dns: dnsbl skips immune clients: whitelisthost or relay client at connect, and at RCPT") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  SUBCASE("whitelisthost set before dnsbl's connect hook: no lookup at all") {
    Server s(opts(dns, "verdict:1 connect=DECLINED connect.note=whitelisthost:1\ndnsbl\n" + kAccept,
                  {{"dnsbl_zones", "bl.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
    CHECK(s.wait_log("dnsbl: skip, whitelisted host"));
    CHECK(dns.queries() == 0);
  }
  SUBCASE("a relay client (the relay plugin, listed before dnsbl): no lookup at all") {
    Server s(opts(dns, "relay\ndnsbl\n" + kAccept,
                  {{"dnsbl_zones", "bl.test\n"}, {"relayclients", "127.0.0.1\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
    CHECK(s.wait_log("dnsbl: skip, relay client"));
    CHECK(dns.queries() == 0);
  }
  SUBCASE("whitelisthost set later (at HELO): listed, but RCPT passes") {
    Server s(opts(dns, "verdict:1 ehlo=DECLINED ehlo.note=whitelisthost:1\ndnsbl\n" + kAccept,
                  {{"dnsbl_zones", "bl.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
    CHECK(s.wait_log("dnsbl: skip, whitelisted host (listed: bl.test: Blocked - see bl.test)"));
    CHECK(dns.queries(kQ + "bl.test", DnsStub::A) == 1);
  }
}

TEST_CASE("dns: dnsbl check-at connect: 550 at connect, then close") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  struct Row {
    const char *args;
    const char *reply;
  };
  const Row rows[] = {
      {"check-at connect", "550 5.7.1 Go away"},
      {"check-at CONNECT reject_type disconnect", "550 5.7.1 Go away"},
      {"check-at connect reject_type temp", "450 4.7.1 Go away"},
      {"check-at connect reject_type temp_disconnect", "450 4.7.1 Go away"},
  };
  for (const Row &row : rows) {
    CAPTURE(row.args);
    Server s(opts(dns, std::string("dnsbl ") + row.args + "\n" + kAccept,
                  {{"dnsbl_zones", "bl.test - Go away\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == row.reply);
    CHECK(c.closed());
    CHECK(s.wait_log("dnsbl: fail, bl.test: Go away"));
  }
  // Not listed: an ordinary session.
  DnsStub clean;
  Server s(
      opts(clean, "dnsbl check-at connect\n" + kAccept, {{"dnsbl_zones", "bl.test - Go away\n"}}));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  envelope(c);
  CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
  CHECK(clean.queries(kQ + "bl.test", DnsStub::A) == 1);
}

TEST_CASE(
    "dns: dnsbl reject_type at RCPT: temp 450, disconnect 550 + close, temp_disconnect 421 + "
    "close") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  struct Row {
    const char *args;
    const char *reply;
    bool closes;
  };
  const Row rows[] = {
      {"reject_type perm", "550 5.7.1 Listed", false},
      {"reject_type soft", "450 4.7.1 Listed", false},
      {"reject_type disconnect", "550 5.7.1 Listed", true},
      {"reject_type temp_disconnect", "421 4.7.1 Listed", true},
      {"disconnect", "550 5.7.1 Listed", true},  // qpsmtpd's legacy single argument
  };
  for (const Row &row : rows) {
    CAPTURE(row.args);
    Server s(opts(dns, std::string("dnsbl ") + row.args + "\n" + kAccept,
                  {{"dnsbl_zones", "bl.test - Listed\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") == row.reply);
    if (row.closes)
      CHECK(c.closed());
    else
      CHECK(c.cmd("NOOP").rfind("250 ", 0) == 0);
  }
}

TEST_CASE("dns: dnsbl reject 0 logs only; reject naughty defers to the naughty note") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  for (const char *mode : {"0", "naughty"}) {
    CAPTURE(mode);
    Server s(opts(dns, std::string("dnsbl reject ") + mode + " check-at connect\n" + kAccept,
                  {{"dnsbl_zones", "bl.test - Listed at bl.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    REQUIRE(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
    CHECK(send_message(c, "a@sender.example", {"u@example.com"}, kBody).rfind("250 ", 0) == 0);
    if (std::string(mode) == "0")
      CHECK(s.wait_log("dnsbl: fail, tolerated, bl.test: Listed at bl.test"));
    else
      CHECK(s.wait_log("dnsbl: fail, NAUGHTY, bl.test: Listed at bl.test"));
  }
}

TEST_CASE("dns: dnsbl message: TXT record, then the default; dnsbl_rejectmsg lines come first") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "txt.test", DnsStub::A, {"127.0.0.2"});
  dns.add(kQ + "txt.test", DnsStub::TXT, {"See https://txt.test/lookup/127.0.0.1"});
  dns.add(kQ + "bare.test", DnsStub::A, {"127.0.0.2"});
  SUBCASE("TXT") {
    Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "txt.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 See https://txt.test/lookup/127.0.0.1");
    CHECK(dns.queries(kQ + "txt.test", DnsStub::TXT) == 1);
  }
  SUBCASE("txt 0: no TXT question, the default text") {
    Server s(opts(dns, "dnsbl txt 0\n" + kAccept, {{"dnsbl_zones", "txt.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 Blocked - see txt.test");
    CHECK(dns.queries(kQ + "txt.test", DnsStub::TXT) == 0);
  }
  SUBCASE("no TXT record: the default text") {
    Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bare.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 Blocked - see bare.test");
    CHECK(dns.queries(kQ + "bare.test", DnsStub::TXT) == 1);
  }
  SUBCASE("qpsmtpd's zone:message form and dnsbl_rejectmsg") {
    Server s(opts(
        dns, "dnsbl\n" + kAccept,
        {{"dnsbl_zones", "bare.test:You (%IP%) are listed at bare.test\n"},
         {"dnsbl_rejectmsg", "If you think you have been blocked in error,\ntell your ISP.\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") ==
          "550-5.7.1 If you think you have been blocked in error,\n"
          "550-5.7.1 tell your ISP.\n"
          "550 5.7.1 You (127.0.0.1) are listed at bare.test");
  }
}

TEST_CASE("dns: dnsbl expected answers: default 127.0.0.0/24, exact, CIDR and bitmask") {
  struct Row {
    const char *zone_line;
    const char *answer;
    bool listed;
  };
  const Row rows[] = {
      {"bl.test", "127.0.0.2", true},
      {"bl.test", "127.0.0.11", true},
      {"bl.test", "127.255.255.254", false},  // Spamhaus' "query refused" code, not a listing
      {"bl.test", "192.0.2.1", false},        // a wildcarding resolver, not a listing
      {"bl.test 127.0.0.4", "127.0.0.2", false},
      {"bl.test 127.0.0.4", "127.0.0.4", true},
      {"bl.test 127.0.0.2,127.0.0.3", "127.0.0.3", true},
      {"bl.test 127.0.1.0/24", "127.0.1.9", true},
      {"bl.test &4", "127.0.0.6", true},
      {"bl.test &0x04", "127.0.0.10", false},
  };
  for (const Row &row : rows) {
    CAPTURE(row.zone_line);
    CAPTURE(row.answer);
    DnsStub dns;
    REQUIRE(dns.started());
    dns.add(kQ + "bl.test", DnsStub::A, {row.answer});
    Server s(
        opts(dns, "dnsbl txt 0\n" + kAccept, {{"dnsbl_zones", std::string(row.zone_line) + "\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    std::string r = c.cmd("RCPT TO:<u@example.com>");
    CHECK(r.rfind(row.listed ? "550 5.7.1 Blocked - see bl.test" : "250 ", 0) == 0);
    if (!row.listed)
      CHECK(bl_logged(s, std::string("bl.test answered ") + row.answer +
                             " for 127.0.0.1, not an expected answer"));
  }
}

TEST_CASE("dns: dnsbl for an IPv6 client asks the nibble name") {
  DnsStub dns;
  REQUIRE(dns.started());
  const std::string nibbles = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.";
  dns.add(nibbles + "bl.test", DnsStub::A, {"127.0.0.2"});
  Options o = opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test - Listed: %IP%\n"}});
  o.args = {"--listen", "[::1]:0"};
  Server s(o);
  REQUIRE(s.started());
  REQUIRE(s.wait_log("listening on [::1]:"));
  std::string log = s.log();
  int port6 = atoi(log.c_str() + log.find("listening on [::1]:") + strlen("listening on [::1]:"));
  REQUIRE(port6 > 0);
  Client6 c(port6);
  REQUIRE(c.connected());
  CHECK(c.reply() == kBanner);
  CHECK(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@sender.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 Listed: ::1");
  CHECK(dns.queries(nibbles + "bl.test", DnsStub::A) == 1);
  CHECK(dns.queries() == 1);
}

TEST_CASE("dns: dnsbl survives clients that leave during the lookup") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.delay(kQ + "bl.test", 0.3);
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  Server s(
      opts(dns, "dnsbl check-at connect\n" + kAccept, {{"dnsbl_zones", "bl.test - Listed\n"}}));
  REQUIRE(s.started());
  for (int i = 0; i < 10; ++i) {
    Client gone(s.port());
    REQUIRE(gone.connected());
  }  // all closed at once, before any answer
  usleep(500 * 1000);
  Client c(s.port());
  CHECK(c.reply() == "550 5.7.1 Listed");
  CHECK(s.running());
  CHECK(dns.queries(kQ + "bl.test", DnsStub::A) == 11);
}

TEST_CASE("dns: dnsbl configuration errors stop startup with a message") {
  struct Bad {
    const char *plugins;
    std::map<std::string, std::string> files;
    const char *message;
  };
  const Bad cases[] = {
      {"dnsbl reject maybe", {{"dnsbl_zones", "bl.test\n"}}, "bad value 'maybe' for 'reject'"},
      {"dnsbl reject_type tempfail",
       {{"dnsbl_zones", "bl.test\n"}},
       "bad value 'tempfail' for 'reject_type'"},
      {"dnsbl check-at data", {{"dnsbl_zones", "bl.test\n"}}, "bad value 'data' for 'check-at'"},
      {"dnsbl timeout 0", {{"dnsbl_zones", "bl.test\n"}}, "bad value '0' for 'timeout'"},
      {"dnsbl timeout 2 bogus 1", {{"dnsbl_zones", "bl.test\n"}}, "unknown argument 'bogus'"},
      {"dnsbl",
       {{"dnsbl_zones", "bad..zone\n"}},
       "conf/dnsbl_zones:1: 'bad..zone' is not a DNS zone name"},
      {"dnsbl",
       {{"dnsbl_zones", "# zones\n\nbl.test 127.0.0.300 text\n"}},
       "conf/dnsbl_zones:3: '127.0.0.300' is not an expected answer"},
      {"dnsbl",
       {{"dnsbl_zones", "bl.test\n"}, {"dnsbl_allow", "# ours\n10.0.0.0/33\n"}},
       "conf/dnsbl_allow:2: '10.0.0.0/33' is not an IPv4/IPv6 address"},
  };
  for (const Bad &b : cases) {
    CAPTURE(b.plugins);
    Options o;
    o.plugins = std::string(b.plugins) + "\n";
    o.files = b.files;
    o.toml = "[dns]\nservers = [\"127.0.0.1:9\"]\nreverse_lookup = false\n";
    std::string dir = make_tree(o);
    RunResult r = run_uvsmtpd(
        {"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
    CHECK(r.status == 1);
    CHECK(has(r.output, "plugin 'dnsbl' failed to initialise: "));
    CHECK(has(r.output, b.message));
    remove_tree(dir);
  }
  // No dnsbl_zones: the plugin loads and does nothing.
  DnsStub dns;
  Server s(opts(dns, "dnsbl\n" + kAccept));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  CHECK(s.wait_log("no zones in dnsbl_zones (file missing): nothing to check"));
  CHECK(dns.queries() == 0);
}

TEST_CASE("dns: dnsbl lookups cut short by hook_timeout end cleanly; counters") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.never_answer(kQ + "slow.test");
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  auto options = [&](const std::string &plugins, const std::string &top) {
    Options o = opts(dns, plugins, {{"dnsbl_zones", "slow.test\nbl.test - Listed\n"}});
    o.toml = top + o.toml;  // [dns] stays the last table
    return o;
  };
  {  // the plugin's timeout above the core's hook_timeout: the core answers 451 at 0.3 s
    Server s(options("dnsbl timeout 1 check-at connect\n" + kAccept, "hook_timeout = 0.3\n"));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply().rfind("451 4.3.0 ", 0) == 0);
    CHECK(since(c) < 0.9);
    CHECK(c.closed());
    // The plugin still hears back (timeout at 1 s) and releases its handle; with no call left
    // to log through, the line names the session in its text.
    CHECK(bl_logged(s, "slow.test: no answer within 1s, treated as not listed", 3));
    CHECK(has(s.log(), "dnsbl: (session "));
    s.signal(SIGTERM);
    CHECK(s.wait_exit() == 0);
    CHECK(s.count_log("dnsbl: checked 1, listed 1, skipped 0, timeouts 1, errors 0") == 1);
    CHECK(!has(s.log(), "Sanitizer"));
  }
  {  // counters over a few sessions
    DnsStub quick;
    quick.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
    Server s(
        opts(quick, "dnsbl check-at connect\n" + kAccept, {{"dnsbl_zones", "bl.test\nnx.test\n"}}));
    REQUIRE(s.started());
    for (int i = 0; i < 3; ++i) {
      Client c(s.port());
      CHECK(c.reply() == "550 5.7.1 Blocked - see bl.test");
    }
    s.signal(SIGTERM);
    CHECK(s.wait_exit() == 0);
    CHECK(s.count_log("dnsbl: checked 3, listed 3, skipped 0, timeouts 0, errors 0") == 1);
    CHECK(!has(s.log(), "Sanitizer"));
  }
}

// Regression test for a fixed core bug (Server::maybe_finish, LoopServices::post): shutdown
// used to close the services before the resolver, so the -ECANCELED callbacks' complete() calls
// were dropped and their uvs_pending leaked (LeakSanitizer: 96 bytes from pending::create, exit
// status 1 under ASan). Now the resolver shuts down first and close() drains the completions.
TEST_CASE("dns: SIGTERM while dnsbl lookups wait: the session ends, the server exits cleanly") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.never_answer(kQ + "slow.test");
  Options o =
      opts(dns, "dnsbl timeout 5 check-at connect\n" + kAccept, {{"dnsbl_zones", "slow.test\n"}});
  o.toml = "shutdown_grace = 0.3\n" + o.toml;
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(s.wait_log("dnsbl: looking up " + kQ + "slow.test A"));
  s.signal(SIGTERM);
  c.reply(3);
  CHECK(c.closed(3));
  CHECK(s.wait_exit(8) == 0);
  CHECK(bl_logged(s, "slow.test: lookup failed (Operation canceled), treated as not listed"));
  CHECK(!has(s.log(), "Sanitizer"));
}

// A pending call keeps its generation (and so its plugin instance) alive: a reload does not
// retire (fini) an instance while one of its calls is still pending; fini runs once the plugin
// has completed it.
TEST_CASE("dns: a reload retires dnsbl while an abandoned lookup is still in flight") {
  // hook_timeout (0.3 s) abandons the connect hook; the session closes; SIGHUP retires the old
  // plugin instance (fini) while its question is still waiting for the 1 s timeout.
  DnsStub dns;
  REQUIRE(dns.started());
  dns.never_answer(kQ + "slow.test");
  Options o =
      opts(dns, "dnsbl timeout 1 check-at connect\n" + kAccept, {{"dnsbl_zones", "slow.test\n"}});
  o.toml = "hook_timeout = 0.3\n" + o.toml;
  Server s(o);
  REQUIRE(s.started());
  {
    Client c(s.port());
    REQUIRE(s.wait_log("dnsbl: looking up " + kQ + "slow.test A"));
    s.signal(SIGHUP);
    CHECK(c.reply().rfind("451 4.3.0 ", 0) == 0);
    CHECK(c.closed());
  }
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  // Past the 1 s question timeout the old instance (still alive) completes its call...
  CHECK(bl_logged(s, "slow.test: no answer within 1s, treated as not listed", 3));
  CHECK(s.count_log("dnsbl (retired)") == 0);
  // ...and only then is it retired.
  CHECK(s.wait_log("dnsbl: checked 1, listed 0, skipped 0, timeouts 1, errors 0", 3));
  CHECK(s.running());
  Client c(s.port());  // the new instance works
  CHECK(c.reply(3).rfind("451 4.3.0 ", 0) == 0);
  s.signal(SIGTERM);
  s.wait_exit(8);
  CHECK(!has(s.log(), "AddressSanitizer"));
}

// ---- dnsbl check-at rcpt on a 1.3 server: session-owned lookups, the banner is not held -----

TEST_CASE("dns: dnsbl check-at rcpt: the banner is not held; a RCPT before the answer waits") {
  DnsStub dns;
  REQUIRE(dns.started());
  SUBCASE("listed: the waiting RCPT gets 550 5.7.1, the next ones at once; postmaster passes") {
    dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
    dns.delay(kQ + "bl.test", 0.6);
    Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test - Listed at bl.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    CHECK(since(c) < 0.3);  // the answer is 0.6 s away
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 Listed at bl.test");
    CHECK(since(c) >= 0.6 - kEarly);
    CHECK(s.wait_log("dnsbl: RCPT waits for 1 answer"));
    double t0 = now();
    CHECK(c.cmd("RCPT TO:<v@example.com>") == "550 5.7.1 Listed at bl.test");
    CHECK(c.cmd("RCPT TO:<postmaster@example.com>").rfind("250 ", 0) == 0);
    CHECK(now() - t0 < 0.3);
    CHECK(s.count_log("dnsbl: RCPT waits") == 1);
    CHECK(s.wait_log("dnsbl: listed, bl.test: Listed at bl.test (recipients will be refused)"));
    CHECK(dns.queries(kQ + "bl.test", DnsStub::A) == 1);
  }
  SUBCASE("listed, message from the TXT record: asked when the RCPT reads the answers") {
    dns.add(kQ + "txt.test", DnsStub::A, {"127.0.0.2"});
    dns.add(kQ + "txt.test", DnsStub::TXT, {"See https://txt.test/lookup/127.0.0.1"});
    dns.delay(kQ + "txt.test", 0.3);
    Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "txt.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    CHECK(since(c) < 0.25);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 See https://txt.test/lookup/127.0.0.1");
    CHECK(since(c) >= 0.6 - kEarly);  // the A answer, then the TXT answer
    CHECK(dns.queries(kQ + "txt.test", DnsStub::TXT) == 1);
  }
  SUBCASE("not listed: the waiting RCPT is accepted once the answer is in") {
    dns.delay(kQ + "bl.test", 0.5);
    Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    CHECK(since(c) < 0.3);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
    CHECK(since(c) >= 0.5 - kEarly);
    CHECK(bl_logged(s, "pass, 127.0.0.1 not listed in 1 zone"));
  }
}

TEST_CASE("dns: dnsbl check-at rcpt: no answer: the RCPT waits the plugin's timeout, then passes") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.never_answer(kQ + "slow.test");
  {
    Server s(opts(dns, "dnsbl timeout 0.4\n" + kAccept, {{"dnsbl_zones", "slow.test\n"}}));
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    CHECK(since(c) < 0.3);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("250 ", 0) == 0);
    double t = since(c);
    CHECK(t >= 0.4 - kEarly);
    CHECK(t < 1.2);
    CHECK(bl_logged(s, "slow.test: no answer within 0.4s, treated as not listed"));
    CHECK(bl_logged(s, "pass, 127.0.0.1 not listed"));
  }
  {  // hook_timeout shorter than the plugin's timeout: the core answers the waiting RCPT 451
    Options o = opts(dns, "dnsbl timeout 1\n" + kAccept, {{"dnsbl_zones", "slow.test\n"}});
    o.toml = "hook_timeout = 0.3\n" + o.toml;
    Server s(o);
    REQUIRE(s.started());
    Client c(s.port());
    CHECK(c.reply() == kBanner);
    envelope(c);
    CHECK(c.cmd("RCPT TO:<u@example.com>").rfind("451 4.3.0 ", 0) == 0);
    REQUIRE(bl_logged(s, "slow.test: no answer within 1s, treated as not listed", 3));
    CHECK(c.cmd("RCPT TO:<v@example.com>").rfind("250 ", 0) == 0);
    s.signal(SIGTERM);
    CHECK(s.wait_exit() == 0);
    CHECK(!has(s.log(), "Sanitizer"));
  }
}

TEST_CASE("dns: dnsbl check-at rcpt: sessions that end before the answers do not crash") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add(kQ + "bl.test", DnsStub::A, {"127.0.0.2"});
  dns.delay(kQ + "bl.test", 0.4);
  Server s(opts(dns, "dnsbl\n" + kAccept, {{"dnsbl_zones", "bl.test - Listed\n"}}));
  REQUIRE(s.started());
  for (int i = 0; i < 10; ++i) {
    Client gone(s.port());
    CHECK(gone.reply() == kBanner);
  }  // each closes before its answer
  {
    Client waiting(s.port());
    CHECK(waiting.reply() == kBanner);
    envelope(waiting);
    waiting.send("RCPT TO:<u@example.com>\r\n");
  }                    // closes while its RCPT waits
  usleep(800 * 1000);  // the answers have come and gone
  CHECK(s.running());
  Client c(s.port());
  CHECK(c.reply() == kBanner);
  envelope(c);
  CHECK(c.cmd("RCPT TO:<u@example.com>") == "550 5.7.1 Listed");
  s.signal(SIGTERM);
  CHECK(s.wait_exit() == 0);
  CHECK(s.count_log("dnsbl: checked 12, ") == 1);
  CHECK(!has(s.log(), "Sanitizer"));
}

// ---- dns_query_conn (ABI 1.3): a lookup owned by the session, no suspended call ------------

TEST_CASE("dns: dns_query_conn at connect does not hold the banner; rcpt reads the answer") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add("conn.test", DnsStub::A, {"192.0.2.7"});
  dns.delay("conn.test", 0.6);
  Server s(opts(dns, "dns_conn_probe conn.test\n"));
  REQUIRE(s.started());
  Client c(s.port());
  std::string banner = c.reply();
  CHECK(banner.rfind("220 ", 0) == 0);
  CHECK(since(c) < 0.4);  // the answer is 0.6 s away: nothing waited for it
  CHECK(s.wait_log("dns_conn_probe: start id>0=1 einval_type=" + std::to_string(-EINVAL) +
                   " einval_cb=" + std::to_string(-EINVAL) +
                   " einval_name=" + std::to_string(-EINVAL)));
  envelope(c);
  // Before the answer: the rcpt hook sees nothing yet.
  CHECK(c.cmd("RCPT TO:<x@example.com>") == "450 4.7.1 dnsc done=0 status=0 first=-");
  REQUIRE(s.wait_log("dns_conn_probe: answer status=0 count=1 first=192.0.2.7"));
  CHECK(since(c) >= 0.6 - kEarly);
  CHECK(c.cmd("RCPT TO:<y@example.com>") == "450 4.7.1 dnsc done=1 status=0 first=192.0.2.7");
  CHECK(dns.queries("conn.test", DnsStub::A) == 1);
  c.cmd("QUIT");
}

TEST_CASE("dns: dns_query_conn: a session that ends first cancels it; dns_cancel_conn") {
  DnsStub dns;
  REQUIRE(dns.started());
  dns.add("slow.test", DnsStub::A, {"192.0.2.8"});
  dns.delay("slow.test", 0.5);
  SUBCASE("the session closes before the answer") {
    Server s(opts(dns, "dns_conn_probe slow.test\n"));
    REQUIRE(s.started());
    for (int i = 0; i < 5; ++i) {
      Client c(s.port());
      REQUIRE(c.reply().rfind("220 ", 0) == 0);
      CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
    }
    CHECK(s.wait_log("dns_conn_probe: start id>0=1", 5, 5));
    // The stub answers after 0.5 s; nobody may hear it (the lookup state was freed).
    double until = now() + 1.0;
    while (now() < until && dns.queries("slow.test") < 5) usleep(10000);
    usleep(800000);
    CHECK(s.count_log("dns_conn_probe: answer") == 0);
    Client c(s.port());  // the server is alive and well
    CHECK(c.reply().rfind("220 ", 0) == 0);
    c.cmd("QUIT");
  }
  SUBCASE("the plugin cancels it; a second cancel is -ENOENT") {
    Server s(opts(dns, "dns_conn_probe slow.test cancel\n"));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(c.reply().rfind("220 ", 0) == 0);
    envelope(c);
    CHECK(s.wait_log("dns_conn_probe: cancel=0 again=" + std::to_string(-ENOENT)));
    usleep(800000);
    CHECK(c.cmd("RCPT TO:<x@example.com>") == "450 4.7.1 dnsc done=0 status=0 first=-");
    CHECK(s.count_log("dns_conn_probe: answer") == 0);
  }
}
