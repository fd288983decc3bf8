// tests/unit/test_dsn.cpp: delivery status notifications (server/delivery/dsn.*): the RFC 3464
// fields per message and per recipient, the returned original (whole, headers only, RET=HDRS,
// over max_return), delay warnings, UTF-8 (RFC 6532/6533), line limits, boundaries that cannot
// collide, the null-sender rule, NOTIFY, the notice's envelope, and a parse with Python's email
// package (dsn_parse.py).
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <utility>
#include <vector>

#include "delivery/dsn.hpp"
#include "queue/queue_entry.hpp"
#include "tmp_dir.hpp"

using namespace uvs;
using namespace uvs::delivery;

namespace {

const int64_t kArrival = 1796624337;  // Mon, 7 Dec 2026 ... (any fixed time)
const int64_t kNow = kArrival + 3600;

queue::Envelope envelope() {
  queue::Envelope e;
  e.id = "5YHV1P62FJ03TY";
  e.arrival = kArrival;
  e.sender = "sender@client.test";
  e.client_ip = "192.0.2.7";
  e.client_name = "mail.client.test";
  e.helo = "mail.client.test";
  e.protocol = "ESMTP";
  queue::Recipient a;
  a.address = "alice@example.net";
  e.rcpts.push_back(a);
  return e;
}

const std::string kHeaders =
    "Received: from mail.client.test ([192.0.2.7]) by mx.test\r\n"
    "From: Sender <sender@client.test>\r\n"
    "To: alice@example.net\r\n"
    "Subject: quarterly figures\r\n"
    "Message-ID: <abc.123@client.test>\r\n"
    "\r\n";
const std::string kBody = "Hello Alice,\r\n\r\nthe figures are attached.\r\n";
// DsnInput holds string_views: the original must outlive it (no temporaries).
const std::string kWhole = kHeaders + kBody;

DsnRecipient failed(const std::string &addr) {
  DsnRecipient r;
  r.address = addr;
  r.action = "failed";
  r.status = "5.1.1";
  r.remote_mta = "mx.example.net[192.0.2.1]:25";
  r.diagnostic = "smtp; 550 5.1.1 <" + addr + ">: Recipient address rejected";
  r.last_attempt = kNow - 5;
  return r;
}

// The input most tests compose from: reported by mx.test at kNow, the original's header section
// kHeaders and the whole original `whole` (both must outlive the input, see DsnInput).
DsnInput input(const queue::Envelope &e, std::vector<DsnRecipient> rcpts,
               const std::string &whole = kWhole) {
  return DsnInput{.env = e,
                  .reporting_mta = "mx.test",
                  .original_headers = kHeaders,
                  .original_message = whole,
                  .rcpts = std::move(rcpts),
                  .now = kNow};
}

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// Every line ends in CRLF (no bare CR or LF) and has at most 998 octets.
void check_lines(const std::string &m) {
  REQUIRE(m.size() >= 2);
  CHECK(m.compare(m.size() - 2, 2, "\r\n") == 0);
  size_t pos = 0;
  while (pos < m.size()) {
    size_t eol = m.find("\r\n", pos);
    REQUIRE(eol != std::string::npos);
    std::string line = m.substr(pos, eol - pos);
    CHECK(line.find('\n') == std::string::npos);
    CHECK(line.find('\r') == std::string::npos);
    CHECK(line.size() <= 998);
    pos = eol + 2;
  }
}

// The value of the first header field `name` in the notice's own header section.
std::string top_field(const std::string &m, const std::string &name) {
  std::string head = m.substr(0, m.find("\r\n\r\n") + 2);
  size_t p = head.find("\r\n" + name + ": ");
  if (head.compare(0, name.size() + 2, name + ": ") == 0)
    p = 0;
  else if (p != std::string::npos)
    p += 2;
  else
    return "";
  size_t start = p + name.size() + 2;
  std::string v = head.substr(start, head.find("\r\n", start) - start);
  return v;
}

std::string boundary_of(const std::string &m) {
  size_t p = m.find("boundary=\"");
  if (p == std::string::npos) return "";
  p += 10;
  return m.substr(p, m.find('"', p) - p);
}

// Where dsn_parse.py is, seen from where the unit tests run.
std::string parse_script() {
  namespace fs = std::filesystem;
  for (const fs::path &c : {fs::path("dsn_parse.py"), fs::path("tests/unit/dsn_parse.py"),
                            fs::path("../../tests/unit/dsn_parse.py"),
                            fs::path(__FILE__).parent_path() / "dsn_parse.py"})
    if (fs::exists(c)) return c.string();
  return "";
}

// Runs dsn_parse.py on the notice; its output ("ok" or "FAIL: ...").
std::string python_check(const std::string &notice, const std::string &args) {
  unit::TmpDir tmp;
  std::string path = tmp.write("notice.eml", notice);
  std::string script = parse_script();
  REQUIRE_MESSAGE(!script.empty(), "tests/unit/dsn_parse.py not found");
  std::string cmd = "python3 '" + script + "' '" + path + "' " + args + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    out = "exit: " + out;
    MESSAGE("the notice:\n" << notice);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

TEST_CASE("dsn: never a bounce of a bounce: should_bounce is false for the null sender") {
  queue::Envelope e = envelope();
  CHECK(should_bounce(e));
  e.sender = "";
  CHECK_FALSE(should_bounce(e));
}

TEST_CASE("dsn: NOTIFY decides which outcomes get a notice (RFC 3461 4.1)") {
  queue::Recipient r;
  CHECK(wants_notice(r, "failed"));  // not given: FAILURE,DELAY
  CHECK(wants_notice(r, "delayed"));
  CHECK_FALSE(wants_notice(r, "delivered"));
  r.notify = "NEVER";
  CHECK_FALSE(wants_notice(r, "failed"));
  CHECK_FALSE(wants_notice(r, "delayed"));
  r.notify = "SUCCESS,FAILURE";
  CHECK(wants_notice(r, "failed"));
  CHECK_FALSE(wants_notice(r, "delayed"));
  CHECK(wants_notice(r, "delivered"));
  r.notify = "delay";
  CHECK(wants_notice(r, "delayed"));
  CHECK_FALSE(wants_notice(r, "failed"));
}

TEST_CASE("dsn: a bounce has the RFC 5322 / 3834 headers and the RFC 3464 fields") {
  queue::Envelope e = envelope();
  e.dsn_envid = "QQ314159";
  DsnRecipient a = failed("alice@example.net");
  a.orcpt = "rfc822;alice+2Bx@example.net";  // xtext: alice+x@example.net
  DsnRecipient b = failed("bob@example.org");
  b.remote_mta = "";
  b.status = "";
  b.diagnostic = "mail for example.org loops back to myself";
  b.last_attempt = 0;
  DsnInput in = input(e, {a, b});
  std::string m = compose_dsn(in);
  check_lines(m);

  CHECK(top_field(m, "From") == "MAILER-DAEMON@mx.test (Mail Delivery System)");
  CHECK(top_field(m, "To") == "<sender@client.test>");
  CHECK(top_field(m, "Subject") == "Undelivered Mail Returned to Sender");
  CHECK(top_field(m, "Auto-Submitted") == "auto-replied");
  CHECK(top_field(m, "MIME-Version") == "1.0");
  CHECK(top_field(m, "Date") == "Mon, 7 Dec 2026 07:18:57 +0000 (UTC)");
  CHECK(top_field(m, "In-Reply-To") == "<abc.123@client.test>");
  CHECK(top_field(m, "References") == "<abc.123@client.test>");
  std::string mid = top_field(m, "Message-ID");
  CHECK(mid.front() == '<');
  CHECK(has(mid, "@mx.test>"));
  CHECK(has(top_field(m, "Content-Type"), "multipart/report; report-type=delivery-status;"));
  CHECK(top_field(m, "Content-Transfer-Encoding") == "");  // all ASCII: 7bit

  // The human-readable part.
  CHECK(has(m, "Content-Type: text/plain; charset=us-ascii\r\n"));
  CHECK(has(m, "This is the mail system at host mx.test.\r\n"));
  CHECK(has(m, "<alice@example.net>: host mx.example.net[192.0.2.1]:25 said: 550 5.1.1"));
  CHECK(has(m, "<bob@example.org>: mail for example.org loops back to myself\r\n"));

  // The machine-readable part: per message, then per recipient.
  CHECK(has(m, "Content-Type: message/delivery-status\r\n"));
  CHECK(has(m, "\r\nReporting-MTA: dns; mx.test\r\n"));
  CHECK(has(m, "\r\nX-Uvsmtpd-Queue-ID: 5YHV1P62FJ03TY\r\n"));
  CHECK(has(m, "\r\nX-Uvsmtpd-Sender: rfc822; sender@client.test\r\n"));
  CHECK(has(m, "\r\nOriginal-Envelope-Id: QQ314159\r\n"));
  CHECK(has(m, "\r\nReceived-From-MTA: dns; mail.client.test ([192.0.2.7])\r\n"));
  CHECK(has(m, "\r\nArrival-Date: Mon, 7 Dec 2026 06:18:57 +0000 (UTC)\r\n"));
  CHECK(has(m,
            "\r\n\r\nFinal-Recipient: rfc822; alice@example.net\r\n"
            "Original-Recipient: rfc822; alice+x@example.net\r\n"
            "Action: failed\r\n"
            "Status: 5.1.1\r\n"
            "Remote-MTA: dns; mx.example.net\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <alice@example.net>: Recipient address\r\n"
            " rejected\r\n"
            "Last-Attempt-Date: Mon, 7 Dec 2026 07:18:52 +0000 (UTC)\r\n"));
  CHECK(has(m,
            "\r\n\r\nFinal-Recipient: rfc822; bob@example.org\r\n"
            "Action: failed\r\n"
            "Status: 5.0.0\r\n"
            "Diagnostic-Code: X-Uvsmtpd; mail for example.org loops back to myself\r\n"));

  // The original, whole.
  CHECK(has(m, "Content-Type: message/rfc822\r\n\r\n" + kHeaders + kBody + "\r\n--"));
  CHECK(python_check(m,
                     "--rcpt alice@example.net --rcpt bob@example.org --action failed "
                     "--original full --subject 'quarterly figures' --envid QQ314159") == "ok");
}

TEST_CASE("dsn: the original's header section only for RET=HDRS, over max_return, or a long line") {
  queue::Envelope e = envelope();
  std::string whole = kHeaders + kBody;
  DsnInput in = input(e, {failed("alice@example.net")}, whole);
  std::string headers_part = "Content-Type: text/rfc822-headers\r\n\r\n" +
                             kHeaders.substr(0, kHeaders.size() - 2) + "\r\n--";

  SUBCASE("RET=FULL, under the limit: whole") {
    e.dsn_ret = "FULL";
    std::string m = compose_dsn(in);
    CHECK(has(m, "message/rfc822"));
    CHECK(has(m, kBody));
  }
  SUBCASE("RET=HDRS") {
    e.dsn_ret = "HDRS";
    std::string m = compose_dsn(in);
    CHECK(has(m, headers_part));
    CHECK_FALSE(has(m, "the figures are attached"));
    CHECK(has(m, "section is attached below."));
    CHECK_FALSE(has(m, "It is attached below."));
    CHECK(python_check(m,
                       "--rcpt alice@example.net --action failed --original headers "
                       "--subject 'quarterly figures'") == "ok");
  }
  SUBCASE("over max_return") {
    in.max_return = whole.size() - 1;
    std::string m = compose_dsn(in);
    CHECK(has(m, headers_part));
    CHECK_FALSE(has(m, "the figures are attached"));
    in.max_return = whole.size();
    CHECK(has(compose_dsn(in), "the figures are attached"));
  }
  SUBCASE("no message bytes given") {
    in.original_message = {};
    CHECK(has(compose_dsn(in), headers_part));
  }
  SUBCASE("a body line over 998 octets") {
    std::string big = kHeaders + std::string(1200, 'x') + "\r\n";
    in.original_message = big;
    std::string m = compose_dsn(in);
    check_lines(m);
    CHECK(has(m, headers_part));
  }
}

TEST_CASE("dsn: the boundary never occurs in the parts") {
  queue::Envelope e = envelope();
  DsnInput in = input(e, {failed("alice@example.net")});
  std::string b1 = boundary_of(compose_dsn(in));
  REQUIRE(!b1.empty());
  CHECK(b1.size() <= 70);
  // The next notice's boundary would be the same but for the serial number: put the next few
  // candidates in the original.
  size_t dot = b1.rfind('.', b1.find('/'));
  unsigned serial = static_cast<unsigned>(std::stoul(b1.substr(dot + 1)));
  std::string body = kBody;
  for (unsigned s = serial + 1; s < serial + 5; ++s)
    body += "--" + b1.substr(0, dot + 1) + std::to_string(s) + b1.substr(b1.find('/')) + "\r\n";
  std::string original = kHeaders + body;
  in.original_message = original;
  std::string m = compose_dsn(in);
  std::string b2 = boundary_of(m);
  REQUIRE(!b2.empty());
  CHECK(b2 != b1);
  CHECK(original.find("--" + b2) == std::string::npos);
  size_t count = 0;
  for (size_t p = m.find("\r\n--" + b2); p != std::string::npos; p = m.find("\r\n--" + b2, p + 1))
    ++count;
  CHECK(count == 4);  // three parts and the close delimiter
  CHECK(python_check(m,
                     "--rcpt alice@example.net --action failed --original full "
                     "--subject 'quarterly figures'") == "ok");
}

TEST_CASE("dsn: a delay warning: Action delayed, Status 4.x.x, Will-Retry-Until, headers only") {
  queue::Envelope e = envelope();
  DsnRecipient r;
  r.address = "alice@example.net";
  r.action = "delayed";
  r.status = "4.4.1";
  r.remote_mta = "mx.example.net[192.0.2.1]:25";
  r.diagnostic = "smtp; 421 4.4.1 Try again later";
  r.last_attempt = kNow;
  DsnInput in = input(e, {r});
  in.delay_warning = true;
  in.now = kArrival + 4 * 3600;
  in.retry_until = kArrival + 5 * 86400;
  std::string m = compose_dsn(in);
  check_lines(m);
  CHECK(top_field(m, "Subject") == "Delayed Mail (still being retried)");
  CHECK(has(m, "\r\nAction: delayed\r\nStatus: 4.4.1\r\n"));
  CHECK(has(m, "\r\nWill-Retry-Until: Sat, 12 Dec 2026 06:18:57 +0000 (UTC)\r\n"));
  CHECK(has(m, "This is a warning only; you do not need to send your message again."));
  CHECK(has(m, "after 4 hours."));
  CHECK(has(m, "Content-Type: text/rfc822-headers\r\n"));
  CHECK_FALSE(has(m, "the figures are attached"));
  CHECK(python_check(m, "--rcpt alice@example.net --action delayed --original headers") == "ok");
}

TEST_CASE("dsn: SMTPUTF8: message/global, utf-8 address type, global delivery status") {
  queue::Envelope e = envelope();
  e.smtputf8 = true;
  e.sender = "j\xc3\xb6rg@client.test";
  std::string headers =
      "From: J\xc3\xb6rg <j\xc3\xb6rg@client.test>\r\n"
      "Subject: Gr\xc3\xbc\xc3\x9f"
      "e\r\n\r\n";
  std::string whole = headers + "K\xc3\xa4se\r\n";
  DsnRecipient r = failed("\xc3\xa9l\xc3\xa8ve@example.net");
  DsnInput in{.env = e,
              .reporting_mta = "mx.test",
              .original_headers = headers,
              .original_message = whole,
              .rcpts = {r},
              .now = kNow};
  std::string m = compose_dsn(in);
  check_lines(m);
  CHECK(top_field(m, "To") == "<j\xc3\xb6rg@client.test>");
  CHECK(top_field(m, "Content-Transfer-Encoding") == "8bit");
  CHECK(has(m, "Content-Type: message/global-delivery-status\r\n"));
  CHECK(has(m, "\r\nFinal-Recipient: utf-8; \xc3\xa9l\xc3\xa8ve@example.net\r\n"));
  CHECK(has(m, "\r\nX-Uvsmtpd-Sender: utf-8; j\xc3\xb6rg@client.test\r\n"));
  CHECK(has(m, "Content-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + whole));
  CHECK(has(m, "Content-Type: text/plain; charset=utf-8\r\n"));
  CHECK(python_check(m, "--rcpt \xc3\xa9l\xc3\xa8ve@example.net --action failed --original full") ==
        "ok");

  queue::Envelope ne = dsn_envelope(in, m, "6ABC");
  CHECK(ne.smtputf8);  // the To: field is UTF-8
  CHECK(ne.body_8bitmime);

  e.dsn_ret = "HDRS";
  CHECK(has(compose_dsn(in), "Content-Type: text/global-headers\r\n"));
}

TEST_CASE("dsn: an 8-bit original without SMTPUTF8 is message/rfc822 with 8bit encoding") {
  queue::Envelope e = envelope();
  e.body_8bitmime = true;
  std::string whole = kHeaders + "caf\xe9\r\n";  // Latin-1
  DsnInput in = input(e, {failed("alice@example.net")}, whole);
  std::string m = compose_dsn(in);
  CHECK(has(m, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + whole));
  CHECK(top_field(m, "Content-Transfer-Encoding") == "8bit");
  CHECK(has(m, "Content-Type: message/delivery-status\r\n"));
  queue::Envelope ne = dsn_envelope(in, m, "6ABC");
  CHECK_FALSE(ne.smtputf8);
  CHECK(ne.body_8bitmime);
}

TEST_CASE("dsn: long and hostile values are folded within 998 octets and stay one field") {
  queue::Envelope e = envelope();
  DsnRecipient r = failed("alice@example.net");
  r.diagnostic = "smtp; 550 " + std::string(2500, 'y') + " end\r\nInjected: field";
  DsnInput in = input(e, {r});
  std::string m = compose_dsn(in);
  check_lines(m);
  CHECK_FALSE(has(m, "\r\nInjected: field"));
  CHECK(has(m, "end Injected: field"));
  CHECK(python_check(m, "--rcpt alice@example.net --action failed --original full") == "ok");
}

TEST_CASE("dsn: a success report and the postmaster copy") {
  queue::Envelope e = envelope();
  DsnRecipient r;
  r.address = "alice@example.net";
  r.action = "delivered";
  r.remote_mta = "mx.example.net[192.0.2.1]:25";
  r.diagnostic = "250 2.0.0 Ok: queued as 123";
  DsnInput in = input(e, {r});
  std::string m = compose_dsn(in);
  CHECK(top_field(m, "Subject") == "Successful Mail Delivery Report");
  CHECK(has(m, "\r\nAction: delivered\r\nStatus: 2.0.0\r\n"));
  CHECK(has(m, "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 123\r\n"));
  CHECK(python_check(m, "--rcpt alice@example.net --action delivered --original full") == "ok");

  // A null-sender message that failed: no bounce to "", but the postmaster copy.
  e.sender = "";
  REQUIRE_FALSE(should_bounce(e));
  in.rcpts = {failed("alice@example.net")};
  in.postmaster = "postmaster@mx.test";
  m = compose_dsn(in);
  CHECK(top_field(m, "To") == "<postmaster@mx.test>");
  CHECK(top_field(m, "Subject") == "Postmaster Copy: Undelivered Mail");
  CHECK(has(m, "\r\nX-Uvsmtpd-Sender: rfc822;\r\n"));
  CHECK(python_check(m, "--rcpt alice@example.net --action failed --original full") == "ok");
  queue::Envelope ne = dsn_envelope(in, m, "7XYZ");
  REQUIRE(ne.rcpts.size() == 1);
  CHECK(ne.rcpts[0].address == "postmaster@mx.test");
}

TEST_CASE("dsn: the notice's envelope: null sender, the original sender, storable") {
  queue::Envelope e = envelope();
  DsnInput in = input(e, {failed("alice@example.net")});
  std::string m = compose_dsn(in);
  queue::Envelope ne = dsn_envelope(in, m, "6BOUNCE01");
  CHECK(ne.id == "6BOUNCE01");
  CHECK(ne.sender == "");
  CHECK_FALSE(should_bounce(ne));  // a bounce that fails is never bounced
  REQUIRE(ne.rcpts.size() == 1);
  CHECK(ne.rcpts[0].address == "sender@client.test");
  CHECK(ne.rcpts[0].state == queue::RcptState::pending);
  CHECK(ne.size == static_cast<int64_t>(m.size()));
  CHECK(ne.arrival == kNow);
  CHECK(ne.next_try == kNow);
  CHECK_FALSE(ne.smtputf8);
  CHECK_FALSE(ne.body_8bitmime);
  queue::Envelope back;
  std::string err;
  REQUIRE_MESSAGE(queue::parse(queue::serialize(ne), back, err), err);
  CHECK(back.sender == "");
  CHECK(back.rcpts[0].address == "sender@client.test");
}

TEST_CASE("dsn: a long host name keeps the boundary within 70 characters of RFC 2046 bchars") {
  queue::Envelope e = envelope();
  std::string host(120, 'h');
  host += ".example";
  DsnInput in{.env = e,
              .reporting_mta = host,
              .original_headers = kHeaders,
              .original_message = kWhole,
              .rcpts = {failed("alice@example.net")},
              .now = kNow};
  std::string m = compose_dsn(in);
  std::string b = boundary_of(m);
  REQUIRE(!b.empty());
  CHECK(b.size() <= 70);
  CHECK(b.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?") ==
        std::string::npos);
  check_lines(m);
  CHECK(python_check(m, "--rcpt alice@example.net --action failed --original full") == "ok");
}

TEST_CASE("dsn: without original_headers the header section comes from the message") {
  queue::Envelope e = envelope();
  e.dsn_ret = "HDRS";
  DsnInput in{.env = e,
              .reporting_mta = "mx.test",
              .original_message = kWhole,
              .rcpts = {failed("alice@example.net")},
              .now = kNow};
  std::string m = compose_dsn(in);
  CHECK(has(m, "Content-Type: text/rfc822-headers\r\n\r\n" +
                   kHeaders.substr(0, kHeaders.size() - 2) + "\r\n--"));
  CHECK_FALSE(has(m, "the figures are attached"));
  CHECK(top_field(m, "In-Reply-To") == "<abc.123@client.test>");
}

TEST_CASE("dsn: Received-From-MTA: the verified name, else the HELO name, else the address") {
  queue::Envelope e = envelope();
  DsnInput in{.env = e,
              .reporting_mta = "mx.test",
              .original_message = kWhole,
              .rcpts = {failed("alice@example.net")},
              .now = kNow};
  CHECK(has(compose_dsn(in), "\r\nReceived-From-MTA: dns; mail.client.test ([192.0.2.7])\r\n"));
  e.client_name = "";
  e.helo = "helo.client.test";
  CHECK(has(compose_dsn(in), "\r\nReceived-From-MTA: dns; helo.client.test ([192.0.2.7])\r\n"));
  e.helo = "";
  CHECK(has(compose_dsn(in), "\r\nReceived-From-MTA: dns; [192.0.2.7]\r\n"));
  e.client_ip = "";
  CHECK_FALSE(has(compose_dsn(in), "Received-From-MTA"));
}
