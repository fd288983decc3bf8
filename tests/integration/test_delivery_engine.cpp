// tests/integration/test_delivery_engine.cpp: the delivery engine end to end: the real uvsmtpd
// with queue/outbound takes a message, the engine resolves the destination through the DNS stub
// and delivers to fake MX servers on 127.0.0.2.. (tests/integration/fake_mx.*): success, a 4xx
// then a retry, a 5xx and the RFC 3464 bounce to the sender (checked with Python's email
// package), the next MX when the first refuses, the null MX, the per-destination connection
// cap, STARTTLS when offered, kill -9 during delivery in a loop (nothing lost), every
// `uvsmtpd queue` command including flush through the control socket, and the relay policy.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "dns_stub.hpp"
#include "fake_mx.hpp"
#include "harness.hpp"
#include "queue_helpers.hpp"
#include "tls_certs.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

// Every entry file (.env / .hold) in the queue.
std::vector<std::string> entries(const std::string &queue) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(queue + "/q", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string p = it->path().filename().string();
    if (p.size() > 4 && (p.ends_with(".env") || p.ends_with(".hold"))) out.push_back(p);
  }
  return out;
}

// Every message file (.msg) in the queue.
size_t message_files(const std::string &queue) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(queue + "/q", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename().string().ends_with(".msg")) ++n;
  return n;
}

bool wait_for(const std::function<bool()> &pred, double timeout) {
  for (int i = 0; i < static_cast<int>(timeout * 50); ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// A queue, a DNS stub and a common MX port: the destinations' fake MXs listen on 127.0.0.N:port.
struct Env {
  TempDir tmp{"deliv"};
  std::string queue;
  DnsStub dns;
  int port = 0;
  Env() {
    queue = tmp.path + "/queue";
    port = free_port(SOCK_STREAM);
    // dest.test: MX mx1 (127.0.0.2); back.test (the senders' domain): MX 127.0.0.3.
    dns.add("dest.test", DnsStub::MX, {"10 mx1.dest.test"});
    dns.add("mx1.dest.test", DnsStub::A, {"127.0.0.2"});
    dns.add("back.test", DnsStub::MX, {"10 mx.back.test"});
    dns.add("mx.back.test", DnsStub::A, {"127.0.0.3"});
  }
  Options opts(const std::string &delivery = "", const std::string &plugins = "verdict rcpt=OK\n") {
    Options o;
    o.plugins = plugins + "queue/outbound " + queue + "\n";
    o.toml = "[delivery]\nsmtp_port = " + std::to_string(port) +
             "\nretry_min = 1\nretry_max = 2\nrescan_interval = 1\n" + delivery + dns.toml();
    return o;
  }
};

std::string msg(const std::string &subject, const std::string &to = "alice@dest.test") {
  return "From: <sender@back.test>\r\nTo: <" + to + ">\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + subject + "@back.test>\r\n\r\nHello.\r\n.leading dot\r\n";
}

std::string send(int port, const std::vector<std::string> &rcpts, const std::string &subject,
                 const std::string &from = "sender@back.test") {
  Client c(port);
  if (c.code() != 220) return "";
  if (c.cmd("EHLO client.test").rfind("250", 0) != 0) return "";
  return queued_as_id(send_message(c, from, rcpts, dot_stuff(msg(subject, rcpts[0]))));
}

}  // namespace

TEST_CASE("delivery: a message is delivered to the MX, logged as sent, and leaves the queue") {
  Env env;
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE_MESSAGE(mx.started(), mx.error());
  Server s(env.opts());
  REQUIRE(s.started());
  REQUIRE(s.wait_log("delivery: queue "));
  struct stat sb {};
  REQUIRE(stat((env.queue + "/control").c_str(), &sb) == 0);
  CHECK(S_ISSOCK(sb.st_mode));
  CHECK((sb.st_mode & 0777) == 0600);
  std::string id = send(s.port(), {"alice@dest.test", "bob@dest.test"}, "one");
  REQUIRE(!id.empty());
  REQUIRE(mx.wait_messages(1));
  auto m = mx.messages()[0];
  CHECK(m.from == "sender@back.test");
  CHECK(m.rcpts == std::vector<std::string>{"alice@dest.test", "bob@dest.test"});
  CHECK(m.data.find("Subject: one\r\n") != std::string::npos);
  CHECK(m.data.find("\r\n.leading dot\r\n") != std::string::npos);  // dot-stuffing undone
  CHECK(m.data.rfind("Received: ", 0) == 0);
  CHECK(m.helo == "mx.test.invalid");
  CHECK(s.wait_log("control: new " + id));  // queue/outbound's datagram started it
  CHECK(s.wait_log(
      id + ": to=<alice@dest.test> relay=mx1.dest.test[127.0.0.2]:" + std::to_string(env.port)));
  CHECK(s.wait_log("status=sent (250 2.0.0", 5, 2));
  CHECK(s.wait_log(id + ": removed"));
  CHECK(entries(env.queue).empty());
  // The envelope left at once; the message file follows with the next batch of retired
  // entries (one directory fsync for all of them, about a second later).
  CHECK(wait_for([&] { return message_files(env.queue) == 0; }, 5));
}

TEST_CASE("delivery: small messages go from memory, large ones from their file: both intact") {
  Env env;
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE_MESSAGE(mx.started(), mx.error());
  Server s(env.opts());
  REQUIRE(s.started());
  REQUIRE(s.wait_log("delivery: queue "));
  // Just under and well over the 64 KiB the engine reads with the envelope.
  for (size_t lines : {size_t{2500}, size_t{6000}}) {
    std::string body;
    for (size_t i = 0; i < lines; ++i)
      body += (i % 9 == 0 ? ".dotted line " : "line ") + std::to_string(i) + " of the body\r\n";
    std::string subject = "size" + std::to_string(lines);
    std::string text = "From: <sender@back.test>\r\nTo: <alice@dest.test>\r\nSubject: " + subject +
                       "\r\n\r\n" + body;
    Client c(s.port());
    REQUIRE(c.code() == 220);
    REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
    std::string id =
        queued_as_id(send_message(c, "sender@back.test", {"alice@dest.test"}, dot_stuff(text)));
    REQUIRE(!id.empty());
  }
  REQUIRE(mx.wait_messages(2));
  for (const auto &m : mx.messages()) {
    size_t lines = m.data.find("Subject: size2500\r\n") != std::string::npos ? 2500 : 6000;
    CAPTURE(lines);
    if (lines == 2500)
      CHECK((m.data.size() > 40000 && m.data.size() < 65536));  // read with the envelope
    else
      CHECK(m.data.size() > 2 * 65536);  // read from the file as it is sent
    CHECK(m.data.find(".dotted line 0 of the body\r\n") != std::string::npos);  // unstuffed
    std::string last = "line " + std::to_string(lines - 1) + " of the body\r\n";
    CHECK(m.data.size() >= last.size());
    CHECK(m.data.compare(m.data.size() - last.size(), last.size(), last) == 0);
  }
  CHECK(wait_for([&] { return entries(env.queue).empty(); }, 5));
}

TEST_CASE("delivery: routes: LMTP to a fixed host; SIGHUP changes the routes and the EHLO name") {
  Env env;
  MxScript lmtp;
  lmtp.lmtp = true;
  lmtp.lmtp_replies = {{"full@*", "452 4.2.2 Mailbox full"}};
  FakeMx lm("127.0.0.6", 0, lmtp);
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE(lm.started());
  REQUIRE(mx.started());
  std::string route = "[[delivery.route]]\ndomain = \"dest.test\"\nto = \"lmtp:[127.0.0.6]:" +
                      std::to_string(lm.port()) + "\"\n";
  Options o = env.opts();
  o.toml = o.toml.substr(0, o.toml.find("[dns]")) + route + o.toml.substr(o.toml.find("[dns]"));
  Server s(o);
  REQUIRE(s.started());
  std::string id = send(s.port(), {"alice@dest.test", "full@dest.test"}, "lmtp");
  REQUIRE(lm.wait_messages(1));
  CHECK(lm.messages()[0].helo == "mx.test.invalid");
  CHECK(lm.messages()[0].rcpts == std::vector<std::string>{"alice@dest.test", "full@dest.test"});
  CHECK(s.wait_log(id + ": to=<alice@dest.test> relay=127.0.0.6:" + std::to_string(lm.port())));
  CHECK(s.wait_log(id + ": to=<full@dest.test> relay="));
  CHECK(s.wait_log("status=deferred (452 4.2.2 Mailbox full"));
  CHECK(mx.connections() == 0);  // the MX is not asked: the route wins
  // Reload: no route (dest.test by MX again), another EHLO name.
  REQUIRE(s.reload_toml(route, "hostname = \"out.test.invalid\"\n"));
  std::string id2 = send(s.port(), {"bob@dest.test"}, "after-reload");
  REQUIRE(mx.wait_messages(1));
  CHECK(mx.messages()[0].helo == "out.test.invalid");
  CHECK(s.wait_log(id2 + ": removed"));
}

TEST_CASE("delivery: 4xx is retried after retry_min, then delivered") {
  Env env;
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE(mx.started());
  MxScript busy;
  busy.rcpt_replies = {{"*", "451 4.7.1 Try again later"}};
  mx.set_script_for(1, busy);
  // The retry comes after the idle connection was closed (kept 2 s for reuse): a new one.
  Options o = env.opts();
  o.toml.replace(o.toml.find("retry_min = 1\nretry_max = 2"), 27, "retry_min = 3\nretry_max = 3");
  Server s(o);
  REQUIRE(s.started());
  std::string id = send(s.port(), {"alice@dest.test"}, "retry");
  REQUIRE(!id.empty());
  REQUIRE(s.wait_log(id + ": to=<alice@dest.test> relay="));
  CHECK(s.wait_log("status=deferred (451 4.7.1 Try again later"));
  REQUIRE(mx.wait_messages(1, 15));
  CHECK(mx.connections() >= 2);
  CHECK(s.wait_log("status=sent"));
  CHECK(s.wait_log(id + ": removed"));
}

TEST_CASE("delivery: 5xx bounces: an RFC 3464 notice from the null sender reaches the sender") {
  Env env;
  MxScript script;
  script.rcpt_replies = {{"nobody@*", "550 5.1.1 <nobody@dest.test>: no such user"}};
  FakeMx mx("127.0.0.2", env.port, script);
  FakeMx back("127.0.0.3", env.port);
  REQUIRE(mx.started());
  REQUIRE(back.started());
  Server s(env.opts());
  REQUIRE(s.started());
  std::string id = send(s.port(), {"alice@dest.test", "nobody@dest.test"}, "bounce");
  REQUIRE(!id.empty());
  REQUIRE(mx.wait_messages(1));
  CHECK(mx.messages()[0].rcpts == std::vector<std::string>{"alice@dest.test"});
  CHECK(s.wait_log(id + ": to=<nobody@dest.test> relay="));
  CHECK(s.wait_log("status=bounced (550 5.1.1"));
  REQUIRE(s.wait_log(id + ": sender non-delivery notification: "));
  REQUIRE(back.wait_messages(1));
  auto b = back.messages()[0];
  CHECK(b.from.empty());
  CHECK(b.rcpts == std::vector<std::string>{"sender@back.test"});
  CHECK(b.data.find("multipart/report") != std::string::npos);
  CHECK(b.data.find("nobody@dest.test") != std::string::npos);
  CHECK(b.data.find("Status: 5.1.1") != std::string::npos);
  // Python's email package: a well-formed report with the original attached.
  std::string file = env.tmp.path + "/bounce.eml";
  spit(file, b.data);
  RunResult py =
      sh("python3 '" + source_root() + "/tests/unit/dsn_parse.py' '" + file +
         "' --rcpt nobody@dest.test --action failed --original full --subject bounce 2>&1");
  CHECK_MESSAGE(py.status == 0, py.output);
  CHECK(s.wait_log(id + ": removed"));
  CHECK(wait_for([&] { return entries(env.queue).empty(); }, 5));
}

TEST_CASE("delivery: delay_warning: one RFC 3464 delay notice while the message is retried") {
  Env env;
  MxScript busy;
  busy.rcpt_replies = {{"*", "451 4.2.1 Mailbox busy"}};
  FakeMx mx("127.0.0.2", env.port, busy);
  FakeMx back("127.0.0.3", env.port);
  REQUIRE(mx.started());
  REQUIRE(back.started());
  Server s(env.opts("delay_warning = 2\n"));
  REQUIRE(s.started());
  std::string id = send(s.port(), {"slow@dest.test"}, "delayed");
  REQUIRE(!id.empty());
  REQUIRE(s.wait_log(id + ": sender delay notification: ", 15));
  REQUIRE(back.wait_messages(1));
  auto b = back.messages()[0];
  CHECK(b.from.empty());
  CHECK(b.rcpts == std::vector<std::string>{"sender@back.test"});
  std::string file = env.tmp.path + "/delay.eml";
  spit(file, b.data);
  RunResult py = sh("python3 '" + source_root() + "/tests/unit/dsn_parse.py' '" + file +
                    "' --rcpt slow@dest.test --action delayed --original headers 2>&1");
  CHECK_MESSAGE(py.status == 0, py.output);
  // Only one, though the retries go on.
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));
  CHECK(s.count_log("sender delay notification") == 1);
  CHECK(s.count_log(id + ": to=<slow@dest.test> relay=") >= 3);
  CHECK(entries(env.queue).size() == 1);  // still queued
}

TEST_CASE("delivery: the first MX refuses (connection, 421 greeting): the next MX gets it") {
  Env env;
  env.dns.add("multi.test", DnsStub::MX,
              {"10 dead.multi.test", "20 busy.multi.test", "30 mx1.dest.test"});
  env.dns.add("dead.multi.test", DnsStub::A, {"127.0.0.4"});  // nothing listens there
  env.dns.add("busy.multi.test", DnsStub::A, {"127.0.0.5"});
  MxScript greet421;
  greet421.greeting_code = 421;
  greet421.greeting_text = "busy.multi.test Service not available";
  FakeMx busy("127.0.0.5", env.port, greet421);
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE(busy.started());
  REQUIRE(mx.started());
  Server s(env.opts());
  REQUIRE(s.started());
  std::string id = send(s.port(), {"carol@multi.test"}, "next");
  REQUIRE(!id.empty());
  REQUIRE(mx.wait_messages(1));
  CHECK(busy.connections() == 1);
  CHECK(mx.messages()[0].rcpts == std::vector<std::string>{"carol@multi.test"});
  CHECK(s.wait_log("relay=mx1.dest.test[127.0.0.2]"));
  CHECK(s.wait_log(id + ": removed"));
}

TEST_CASE("delivery: a null MX domain bounces at once with 556 5.1.10") {
  Env env;
  env.dns.add("nomail.test", DnsStub::MX, {"0 ."});
  FakeMx back("127.0.0.3", env.port);
  REQUIRE(back.started());
  Server s(env.opts());
  REQUIRE(s.started());
  std::string id = send(s.port(), {"dave@nomail.test"}, "nullmx");
  REQUIRE(!id.empty());
  CHECK(s.wait_log(id + ": to=<dave@nomail.test> relay=none"));
  CHECK(s.wait_log("status=bounced (556 5.1.10"));
  REQUIRE(back.wait_messages(1));
  CHECK(back.messages()[0].data.find("Status: 5.1.10") != std::string::npos);
  CHECK(s.wait_log(id + ": removed"));
}

TEST_CASE("delivery: an MX that is this server: 'loops back to myself', deferred, not connected") {
  Env env;
  // The server listens on 127.0.0.1:<port> and MX hosts are reached on that same port.
  env.port = free_port(SOCK_STREAM);
  env.dns.add("loop.test", DnsStub::MX, {"10 self.loop.test"});
  env.dns.add("self.loop.test", DnsStub::A, {"127.0.0.1"});
  env.dns.add("named.test", DnsStub::MX, {"10 mx.test.invalid"});  // our hostname
  env.dns.add("mx.test.invalid", DnsStub::A, {"127.0.0.9"});
  Options o = env.opts();
  o.cli_listen = false;
  o.toml = "[[listen]]\naddress = \"127.0.0.1:" + std::to_string(env.port) + "\"\n" + o.toml;
  Server s(o);
  REQUIRE(s.started());
  REQUIRE(s.ports(1).at(0) == env.port);
  std::string id = send(env.port, {"a@loop.test", "b@named.test"}, "loop");
  REQUIRE(!id.empty());
  CHECK(s.wait_log(id + ": to=<a@loop.test> relay=none"));
  CHECK(s.wait_log("status=deferred (451 4.4.6 mail for loop.test loops back to myself)"));
  CHECK(s.wait_log("status=deferred (451 4.4.6 mail for named.test loops back to myself)"));
  CHECK(entries(env.queue).size() == 1);  // still queued for a later try
}

TEST_CASE(
    "delivery: a burst of queued messages is announced to the engine, none left for the rescan") {
  // Linux queues at most net.unix.max_dgram_qlen (10) datagrams on the control socket, and the
  // engine reads them on the same loop that answers the clients: queue/outbound keeps what it
  // could not send and sends it again, batched. With no periodic rescan to fall back on, every
  // message must still go out at once.
  Env env;
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE(mx.started());
  Options o = env.opts();
  auto at = o.toml.find("rescan_interval = 1\n");
  REQUIRE(at != std::string::npos);
  o.toml.replace(at, 19, "rescan_interval = 3600\n");
  Server s(o);
  REQUIRE(s.started());
  REQUIRE(s.wait_log("delivery: queue "));
  const int clients = 40, each = 3;
  std::vector<std::thread> ts;
  std::atomic<int> queued{0};
  for (int c = 0; c < clients; ++c)
    ts.emplace_back([&, c] {
      Client cl(s.port());
      if (cl.code() != 220 || cl.cmd("EHLO client.test").rfind("250", 0) != 0) return;
      for (int i = 0; i < each; ++i) {
        std::string subj = "burst" + std::to_string(c) + "-" + std::to_string(i);
        std::string r = send_message(cl, "sender@back.test", {"x@dest.test"},
                                     dot_stuff(msg(subj, "x@dest.test")));
        if (!queued_as_id(r).empty()) ++queued;
      }
    });
  for (auto &t : ts) t.join();
  REQUIRE(queued.load() == clients * each);
  CHECK(mx.wait_messages(clients * each, 20));
  CHECK(mx.messages().size() == static_cast<size_t>(clients * each));
  CHECK(wait_for([&] { return entries(env.queue).empty(); }, 10));
}

TEST_CASE("delivery: destination_concurrency caps simultaneous connections to one destination") {
  Env env;
  MxScript slow;
  slow.reply_delay = 0.3;
  FakeMx mx("127.0.0.2", env.port, slow);
  REQUIRE(mx.started());
  Server s(env.opts("destination_concurrency = 2\n"));
  REQUIRE(s.started());
  const int n = 6;
  for (int i = 0; i < n; ++i)
    REQUIRE(!send(s.port(), {"x@dest.test"}, "cap" + std::to_string(i)).empty());
  REQUIRE(mx.wait_messages(n, 30));
  CHECK(mx.max_concurrent() <= 2);
  CHECK(mx.max_concurrent() == 2);  // the cap is used, not just respected
  CHECK(wait_for([&] { return entries(env.queue).empty(); }, 10));
}

TEST_CASE("delivery: STARTTLS is used when the MX offers it, and logged") {
  Env env;
  const auto &certs = tls::certs();
  REQUIRE_MESSAGE(certs.ok(), certs.error);
  MxScript tls;
  tls.tls_cert = certs.leaf.cert;
  tls.tls_key = certs.leaf.key;
  FakeMx mx("127.0.0.2", env.port, tls);
  REQUIRE(mx.started());
  Server s(env.opts());
  REQUIRE(s.started());
  std::string id = send(s.port(), {"alice@dest.test"}, "tls");
  REQUIRE(mx.wait_messages(1));
  CHECK(mx.messages()[0].tls);
  CHECK(s.wait_log(id + ": TLS to mx1.dest.test[127.0.0.2]:" + std::to_string(env.port) + ": TLS"));
  CHECK(s.wait_log("status=sent"));
}

TEST_CASE("delivery: kill -9 during delivery, restarted in a loop: every message delivered") {
  Env env;
  MxScript slow;
  slow.reply_delay = 0.05;
  FakeMx mx("127.0.0.2", env.port, slow);
  REQUIRE(mx.started());
  const int n = 12;
  std::set<std::string> subjects;
  {
    // Queue them with delivery off, then let the restarts deliver.
    Options o = env.opts("enabled = false\n");
    Server s(o);
    REQUIRE(s.started());
    for (int i = 0; i < n; ++i) {
      std::string subj = "kill" + std::to_string(i);
      REQUIRE(!send(s.port(), {"k" + std::to_string(i) + "@dest.test"}, subj).empty());
      subjects.insert(subj);
    }
  }
  for (int round = 0; round < 6 && !entries(env.queue).empty(); ++round) {
    Server s(env.opts());
    REQUIRE(s.started());
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 70 * round));
    s.signal(SIGKILL);
    s.wait_exit(5);
  }
  {
    Server s(env.opts());  // the last run, not killed
    REQUIRE(s.started());
    CHECK(wait_for([&] { return entries(env.queue).empty(); }, 20));
  }
  std::set<std::string> got;
  for (const auto &m : mx.messages()) {
    size_t at = m.data.find("Subject: ");
    if (at != std::string::npos)
      got.insert(m.data.substr(at + 9, m.data.find("\r\n", at) - at - 9));
  }
  CHECK(got == subjects);  // none lost (a message in flight at a kill may come twice)
  CHECK(mx.messages().size() >= static_cast<size_t>(n));
}

TEST_CASE("delivery: SIGTERM: a transaction in progress finishes within the grace period") {
  Env env;
  MxScript slow;
  slow.reply_delay = 0.4;  // about 3 s for the whole dialogue
  FakeMx mx("127.0.0.2", env.port, slow);
  REQUIRE(mx.started());
  {
    Server s(env.opts());
    REQUIRE(s.started());
    std::string id = send(s.port(), {"alice@dest.test"}, "graceful");
    REQUIRE(!id.empty());
    REQUIRE(mx.wait_connections(1));
    s.signal(SIGTERM);
    CHECK(s.wait_log("delivery: 1 connection(s) finishing"));
    CHECK(s.wait_exit(20) == 0);
    CHECK(s.count_log(id + ": to=<alice@dest.test> relay=") == 1);
    CHECK(s.count_log("status=sent") == 1);
    CHECK(s.count_log(id + ": removed") == 1);
  }
  CHECK(mx.messages().size() == 1);
  CHECK(entries(env.queue).empty());

  // A transaction that does not end in time: closed, the message stays queued (pending).
  MxScript hang;
  hang.hang_at = MxStep::dot;
  mx.set_script(hang);
  REQUIRE(mx.wait_idle());
  {
    Options o = env.opts();
    o.toml = "shutdown_grace = 1\n" + o.toml;  // a top-level key: before the tables
    Server s(o);
    REQUIRE(s.started());
    std::string id = send(s.port(), {"bob@dest.test"}, "hung");
    REQUIRE(!id.empty());
    REQUIRE(mx.wait_connections(2));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    s.signal(SIGTERM);
    CHECK(s.wait_log("delivery: grace period over: closing 1 connection(s)", 10));
    CHECK(s.wait_exit(10) == 0);
    CHECK(s.count_log(id + ": to=<bob@dest.test> relay=") == 0);
    CHECK(entries(env.queue).size() == 1);
  }
}

TEST_CASE("delivery: every queue command with the server running; flush goes through the socket") {
  Env env;
  MxScript busy;
  busy.rcpt_replies = {{"*", "451 4.3.0 later"}};
  FakeMx mx("127.0.0.2", env.port, busy);
  REQUIRE(mx.started());
  // Retries an hour apart: only a flush makes the next attempt now.
  Options o = env.opts();
  o.toml.replace(o.toml.find("retry_min = 1\nretry_max = 2"), 27,
                 "retry_min = 3600\nretry_max = 7200");
  Server s(o);
  REQUIRE(s.started());
  // The fake MX's next answers; its connection kept for reuse is closed first, so the next
  // attempt opens a new one.
  auto answer = [&](const MxScript &sc) {
    mx.set_script(sc);
    REQUIRE(mx.wait_idle());
  };
  // A message its first attempt deferred (the MX answers 451 to every RCPT).
  auto deferred = [&](const std::string &rcpt, const std::string &subject) {
    answer(busy);
    std::string qid = send(s.port(), {rcpt}, subject);
    REQUIRE(s.wait_log(qid + ": to=<" + rcpt + "> relay="));
    return qid;
  };
  std::string id = send(s.port(), {"alice@dest.test"}, "tool");
  REQUIRE(!id.empty());
  REQUIRE(s.wait_log("status=deferred (451 4.3.0 later"));
  RunResult r = queue_tool(env.queue, "list");
  CHECK(r.status == 0);
  CHECK(r.output.find(id) != std::string::npos);
  CHECK(r.output.find("later") != std::string::npos);
  r = queue_tool(env.queue, "show " + id);
  CHECK(r.output.find("id: " + id) == 0);
  CHECK(r.output.find("attempts: 1") != std::string::npos);
  answer(MxScript{});
  int before = mx.connections();
  r = queue_tool(env.queue, "flush " + id);
  CHECK(r.output == id + ": due now\n");
  CHECK(s.wait_log(id + ": flush requested"));
  REQUIRE(mx.wait_messages(1));
  CHECK(mx.connections() == before + 1);
  CHECK(s.wait_log(id + ": removed"));

  // Held: not delivered even when flushed; released and flushed: delivered.
  std::string id2 = deferred("bob@dest.test", "tool2");
  CHECK(queue_tool(env.queue, "hold " + id2).output == id2 + ": held\n");
  answer(MxScript{});
  r = queue_tool(env.queue, "flush");
  CHECK(r.output == "0 message(s) due now, 1 held left as they are\n");
  CHECK(s.wait_log("flush of the whole queue requested"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(mx.messages().size() == 1);
  CHECK(queue_tool(env.queue, "release " + id2).output == id2 + ": released\n");
  CHECK(queue_tool(env.queue, "flush").status == 0);
  REQUIRE(mx.wait_messages(2));
  CHECK(s.wait_log(id2 + ": removed"));

  // delete: the entry is gone and never delivered.
  std::string id3 = deferred("carl@dest.test", "tool3");
  CHECK(queue_tool(env.queue, "delete " + id3).output == id3 + ": deleted\n");
  answer(MxScript{});
  CHECK(queue_tool(env.queue, "flush").status == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(mx.messages().size() == 2);
  CHECK(entries(env.queue).empty());
}

TEST_CASE("delivery: relay policy: a non-relay client cannot queue mail for a foreign domain") {
  Env env;
  FakeMx mx("127.0.0.2", env.port);
  REQUIRE(mx.started());
  Options o = env.opts("", "relay\nrcpt_ok\n");
  o.files["rcpthosts"] = "local.test\n";
  o.files["relayclients"] = "192.0.2.0/24\n";  // not this client
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.code() == 220);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  REQUIRE(c.cmd("MAIL FROM:<a@back.test>").rfind("250", 0) == 0);
  std::string r = c.cmd("RCPT TO:<victim@dest.test>");
  CHECK_MESSAGE(r.rfind("550 5.7.1", 0) == 0, r);
  CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(mx.connections() == 0);
  CHECK(entries(env.queue).empty());
}
