// tests/integration/test_delivery_postfix.cpp: the delivery engine against a real Postfix
// (tests/integration/postfix_fixture.*): uvsmtpd with queue/outbound takes a message, finds
// Postfix as the MX of pf.test through the DNS stub (127.0.0.3, `[delivery] smtp_port`) and
// delivers over STARTTLS into a Postfix maildir; a recipient Postfix rejects with 550 5.1.1 is
// bounced to the sender (a fake MX on 127.0.0.2, by route) with Postfix as the Remote-MTA.
// postfix(1) needs root: as another user the cases are skipped with a message (as test_cli's
// root-only cases are); CI runs as root.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "dns_stub.hpp"
#include "fake_mx.hpp"
#include "harness.hpp"
#include "postfix_fixture.hpp"
#include "tls_certs.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

std::string queued_id(const std::string &reply) {
  const std::string key = "Ok: queued as ";
  auto pos = reply.find(key);
  if (pos == std::string::npos) return "";
  std::string id = reply.substr(pos + key.size());
  return id.substr(0, id.find_first_of(" \r\n"));
}

size_t queue_entries(const std::string &queue) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(queue + "/q", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string p = it->path().filename().string();
    if (p.ends_with(".env") || p.ends_with(".hold")) n++;
  }
  return n;
}

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// Postfix as pf.test's MX (mx.pf.test = 127.0.0.3), the senders' domain back.test routed to a
// fake MX on 127.0.0.2, and uvsmtpd's options for both.
struct Env {
  std::string tmp;
  std::string queue;
  DnsStub dns;
  Env() {
    char tmpl[] = "/tmp/uvsmtpd-test.pfdest.XXXXXX";
    if (mkdtemp(tmpl)) tmp = tmpl;
    queue = tmp + "/queue";
    dns.add("pf.test", DnsStub::MX, {"10 mx.pf.test"});
    dns.add("mx.pf.test", DnsStub::A, {"127.0.0.3"});
  }
  ~Env() {
    std::error_code ec;
    if (!tmp.empty() && !getenv("UVS_KEEP_TEST_DIRS")) fs::remove_all(tmp, ec);
  }
  Options opts(int pf_port, int back_port) {
    Options o;
    o.plugins = "verdict rcpt=OK\nqueue/outbound " + queue + "\n";
    o.toml = "[delivery]\nsmtp_port = " + std::to_string(pf_port) +
             "\nretry_min = 1\nretry_max = 2\nrescan_interval = 1\n"
             "[[delivery.route]]\ndomain = \"back.test\"\nto = \"smtp:[127.0.0.2]:" +
             std::to_string(back_port) + "\"\n" + dns.toml();
    return o;
  }
};

std::string msg(const std::string &subject, const std::string &to) {
  return "From: <sender@back.test>\r\nTo: <" + to + ">\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + subject + "@back.test>\r\n\r\nHello Postfix.\r\n.leading dot\r\n";
}

std::string send(int port, const std::vector<std::string> &rcpts, const std::string &subject) {
  Client c(port);
  if (c.code() != 220) return "";
  if (c.cmd("EHLO client.test").rfind("250", 0) != 0) return "";
  return queued_id(send_message(c, "sender@back.test", rcpts, dot_stuff(msg(subject, rcpts[0]))));
}

// The mail log is written by postlogd a moment after the event.
bool wait_maillog(const Postfix &pf, const std::string &needle, double timeout = 5) {
  for (int i = 0; i < static_cast<int>(timeout * 20); ++i) {
    if (has(pf.maillog(), needle)) return true;
    usleep(50000);
  }
  return has(pf.maillog(), needle);
}

bool root_or_skip() {
  if (geteuid() == 0) return true;
  MESSAGE("not root: the real-Postfix delivery case is skipped (postfix(1) start needs root)");
  return false;
}

// What every case runs: a real Postfix as pf.test's MX (alice's mailbox; STARTTLS with the test
// PKI's leaf), a fake MX for back.test (where bounces go), and uvsmtpd delivering to both.
struct Setup {
  Env env;
  Postfix pf{
      {.users = {"alice"}, .tls_cert = tls::certs().leaf.cert, .tls_key = tls::certs().leaf.key}};
  FakeMx back{"127.0.0.2", 0};
  std::unique_ptr<Server> s;
  Setup() {
    REQUIRE_MESSAGE(tls::certs().ok(), tls::certs().error);
    REQUIRE_MESSAGE(pf.start(), pf.error());
    REQUIRE(back.started());
    s = std::make_unique<Server>(env.opts(pf.port(), back.port()));
    REQUIRE(s->started());
  }
};

}  // namespace

TEST_CASE("delivery_postfix: a message reaches a real Postfix over STARTTLS (TLSv1.3)") {
  if (!root_or_skip()) return;
  Setup t;
  Env &env = t.env;
  Postfix &pf = t.pf;
  FakeMx &back = t.back;
  Server &s = *t.s;
  std::string id = send(s.port(), {"alice@pf.test"}, "to-postfix");
  REQUIRE(!id.empty());
  REQUIRE_MESSAGE(pf.wait_mailbox("alice", 1), pf.maillog());
  std::string stored = pf.mailbox("alice")[0];
  // Postfix stores LF line ends; the body and headers as sent, the leading dot unstuffed.
  CHECK(has(stored, "Subject: to-postfix\n"));
  CHECK(has(stored, "\n\nHello Postfix.\n.leading dot\n"));
  CHECK(has(stored, "Return-Path: <sender@back.test>\n"));
  // smtpd_tls_received_header: Postfix's Received: names the protocol and the cipher.
  CHECK_MESSAGE(has(stored, "(using TLSv1.3 with cipher "), stored);
  CHECK(has(stored, "by mx.pf.test (Postfix) with ESMTPS id "));
  CHECK_MESSAGE(wait_maillog(pf, "TLS connection established from"), pf.maillog());
  std::string relay = "mx.pf.test[127.0.0.3]:" + std::to_string(pf.port());
  CHECK_MESSAGE(s.wait_log(id + ": TLS to " + relay + ": TLSv1.3"), s.log());
  CHECK(s.wait_log(id + ": to=<alice@pf.test> relay=" + relay));
  CHECK(s.wait_log("status=sent (250 2.0.0 Ok: queued as "));
  CHECK(s.wait_log(id + ": removed"));
  CHECK(queue_entries(env.queue) == 0);
  CHECK(back.connections() == 0);
}

TEST_CASE("delivery_postfix: a recipient Postfix rejects (550 5.1.1) is bounced with a DSN") {
  if (!root_or_skip()) return;
  Setup t;
  Env &env = t.env;
  Postfix &pf = t.pf;
  FakeMx &back = t.back;
  Server &s = *t.s;
  std::string id = send(s.port(), {"alice@pf.test", "nobody@pf.test"}, "pf-bounce");
  REQUIRE(!id.empty());
  REQUIRE_MESSAGE(pf.wait_mailbox("alice", 1), pf.maillog());
  CHECK(s.wait_log(id + ": to=<nobody@pf.test> relay=mx.pf.test[127.0.0.3]"));
  CHECK(s.wait_log("status=bounced (550 5.1.1 <nobody@pf.test>: Recipient address rejected"));
  CHECK_MESSAGE(
      wait_maillog(pf, ": reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 <nobody@pf.test>"),
      pf.maillog());
  REQUIRE(back.wait_messages(1, 15));
  auto b = back.messages()[0];
  CHECK(b.from.empty());
  CHECK(b.rcpts == std::vector<std::string>{"sender@back.test"});
  CHECK_MESSAGE(has(b.data, "Remote-MTA: dns; mx.pf.test"), b.data);
  CHECK_MESSAGE(has(b.data, "Diagnostic-Code: smtp; 550 5.1.1"), b.data);
  CHECK(has(b.data, "User unknown in virtual mailbox table"));
  std::string file = env.tmp + "/bounce.eml";
  spit(file, b.data);
  RunResult py =
      sh("python3 '" + source_root() + "/tests/unit/dsn_parse.py' '" + file +
         "' --rcpt nobody@pf.test --action failed --original full --subject pf-bounce 2>&1");
  CHECK_MESSAGE(py.status == 0, py.output);
  CHECK(s.wait_log(id + ": removed"));
  for (int i = 0; i < 100 && queue_entries(env.queue) != 0; ++i) usleep(50000);
  CHECK(queue_entries(env.queue) == 0);
}
