// tests/integration/test_milter.cpp: the milter plugin against a scripted milter
// (fake_milter.hpp): what each stage sends (macros, header fields, body chunks), the milter's
// decisions at each stage, its end-of-message edits as stored by queue/maildir, and its faults
// (slow, gone, garbage, down) with both default actions.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <filesystem>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "fake_milter.hpp"
#include "harness.hpp"
#include "mail_root.hpp"
#include "queue_helpers.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

// conf/plugins: the milter (with options), every RCPT accepted, queue/maildir into root.
Options milter_opts(const FakeMilter &m, const MailRoot &root, const std::string &opts = "") {
  Options o;
  o.plugins = "milter " + m.spec() + (opts.empty() ? "" : " " + opts) +
              "\nverdict rcpt=OK\nqueue/maildir " + root.path + "\n";
  return o;
}

bool greeted(Client &c) {
  return c.reply().rfind("220 ", 0) == 0 && c.cmd("EHLO client.test").rfind("250", 0) == 0;
}

// A started server for milter m (milter_opts) and a client past EHLO; a test binds it as
// `auto &&[s, c] = Running(m, root);`.
struct Running {
  Server s;
  Client c;
  Running(const FakeMilter &m, const MailRoot &root, const std::string &opts = "")
      : s(milter_opts(m, root, opts)), c(s.port()) {
    REQUIRE(s.started());
    REQUIRE(greeted(c));
  }
};

// A milter script: `reply` to command cmd, continue to everything else.
FakeMilter::Script answer(char cmd, std::vector<MilterPkt> reply) {
  return [cmd, reply](const MilterPkt &in) -> std::vector<MilterPkt> {
    if (in.cmd == cmd) return reply;
    return {mpkt('c')};
  };
}

const std::string kMsg =
    "From: <s@client.test>\r\n"
    "To: <alice@one.test>\r\n"
    "Subject: hello\r\n"
    "X-Remove: yes\r\n"
    "X-Folded: one\r\n"
    " two\r\n"
    "\r\n"
    "body line\r\n";

std::string value_of(const std::vector<std::pair<std::string, std::string>> &m,
                     const std::string &k) {
  for (const auto &kv : m)
    if (kv.first == k) return kv.second;
  return "<none>";
}

std::string z(const std::string &s) {
  return s + std::string(1, '\0');
}

}  // namespace

TEST_CASE(
    "milter: every stage reaches the milter with Postfix's macros; continue queues the message") {
  MailRoot root;
  FakeMilter m;
  REQUIRE(m.port() > 0);
  auto &&[s, c] = Running(m, root);
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  std::string qid = r.substr(std::string("250 2.0.0 Queued as ").size());
  CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  REQUIRE(m.wait_for('Q'));
  // connect: the client's name (none: "[ip]"), family '4', port, address; then the macros
  auto conn = m.of('C');
  REQUIRE(conn.size() == 1);
  CHECK(conn[0].data.rfind(z("[127.0.0.1]") + "4", 0) == 0);
  CHECK(conn[0].data.substr(conn[0].data.size() - 10) == z("127.0.0.1"));
  auto cm = m.macros('C');
  CHECK(value_of(cm, "j") != "<none>");
  CHECK(value_of(cm, "{client_addr}") == "127.0.0.1");
  CHECK(value_of(cm, "{daemon_name}") == "uvsmtpd");
  CHECK(value_of(cm, "_") == "unknown [127.0.0.1]");
  CHECK(m.of('H').at(0).data == z("client.test"));
  CHECK(m.of('M').at(0).data == z("<s@client.test>"));
  CHECK(value_of(m.macros('M'), "{mail_addr}") == "s@client.test");
  CHECK(m.of('R').at(0).data == z("<alice@one.test>"));
  CHECK(value_of(m.macros('R'), "{rcpt_addr}") == "alice@one.test");
  CHECK(value_of(m.macros('R'), "i") == qid);
  CHECK(m.of('T').size() == 1);
  // header fields without the server's Received:, one space eaten, folding as a bare LF
  auto h = m.of('L');
  REQUIRE(h.size() == 5);
  CHECK(h[0].data == z("From") + z("<s@client.test>"));
  CHECK(h[2].data == z("Subject") + z("hello"));
  CHECK(h[4].data == z("X-Folded") + z("one\n two"));
  CHECK(m.of('N').size() == 1);
  CHECK(m.of('B').at(0).data == "body line\r\n");
  CHECK(m.of('E').size() == 1);
  CHECK(value_of(m.macros('E'), "i") == qid);
  auto got = root.of("alice", "one.test");
  REQUIRE(got.size() == 1);
  CHECK(got[0].find("Subject: hello\r\n") != std::string::npos);
}

TEST_CASE(
    "milter: decisions at each stage: reject one recipient, tempfail MAIL, a multi-line reply at "
    "the end") {
  MailRoot root;
  FakeMilter m([](const MilterPkt &in) -> std::vector<MilterPkt> {
    if (in.cmd == 'R' && in.data.find("<bad@one.test>") == 0) return {mpkt('r')};
    if (in.cmd == 'M' && in.data.find("<soft@client.test>") == 0) return {mpkt('t')};
    if (in.cmd == 'E') return {mpkt('y', z("554-5.7.1 Spam detected\r\n554 5.7.1 100%% sure"))};
    return {mpkt('c')};
  });
  auto &&[s, c] = Running(m, root);
  CHECK(c.cmd("MAIL FROM:<soft@client.test>") == "451 4.7.1 Service unavailable - try again later");
  CHECK(c.cmd("MAIL FROM:<s@client.test>").rfind("250", 0) == 0);
  CHECK(c.cmd("RCPT TO:<bad@one.test>") == "550 5.7.1 Command rejected");
  CHECK(c.cmd("RCPT TO:<alice@one.test>").rfind("250", 0) == 0);
  CHECK(c.cmd("DATA").rfind("354", 0) == 0);
  c.send(kMsg + ".\r\n");
  CHECK(c.reply(10) == "554-5.7.1 Spam detected\n554 5.7.1 100% sure");
  CHECK(root.of("alice", "one.test").empty());
  // the aborted MAIL and the refused message are followed by SMFIC_ABORT
  CHECK(m.wait_for('A', 5, 2));
}

TEST_CASE(
    "milter: discard drops the message after a 250; accept at connect ends the conversation") {
  MailRoot root;
  FakeMilter m(answer('R', {mpkt('d')}));
  Server s(milter_opts(m, root));
  REQUIRE(s.started());
  {
    Client c(s.port());
    REQUIRE(greeted(c));
    std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
    CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
    CHECK(s.wait_log("milter " + m.spec() + ": message discarded"));
    CHECK(root.of("alice", "one.test").empty());
    CHECK(m.of('T').empty());  // nothing more after the discard for this message
  }
  FakeMilter acc([](const MilterPkt &in) -> std::vector<MilterPkt> {
    if (in.cmd == 'C') return {mpkt('a')};
    return {mpkt('r')};  // would refuse anything it were asked
  });
  MailRoot root2;
  auto &&[s2, c] = Running(acc, root2);
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(acc.of('H').empty());
  CHECK(root2.of("alice", "one.test").size() == 1);
}

TEST_CASE("milter: a refusal at connect answers every later command") {
  MailRoot root;
  FakeMilter m(answer('C', {mpkt('y', z("550 5.7.0 Your network is not welcome"))}));
  Server s(milter_opts(m, root));
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply().rfind("220 ", 0) == 0);
  CHECK(c.cmd("EHLO client.test") == "550 5.7.0 Your network is not welcome");
  CHECK(c.cmd("HELO client.test") == "550 5.7.0 Your network is not welcome");
}

TEST_CASE("milter: end-of-message edits: header fields, body, sender and recipients as stored") {
  MailRoot root;
  FakeMilter m([](const MilterPkt &in) -> std::vector<MilterPkt> {
    if (in.cmd != 'E') return {mpkt('c')};
    return {mpkt_str2('h', "X-Milter", "yes"),
            mpkt_idx('i', 0, "X-Top", "first"),
            mpkt_idx('i', 3, "X-Third", "before subject"),
            mpkt_idx('m', 1, "Subject", "changed"),
            mpkt_idx('m', 1, "X-Remove", ""),
            mpkt_str2('h', "X-Long", "part one\n\tpart two"),
            mpkt('q', z("held for review")),
            mpkt('b', "new body\r\n"),
            mpkt('b', "second line\n"),
            mpkt('e', z("<new@sender.test>")),
            mpkt('+', z("<carol@three.test>")),
            mpkt('-', z("<alice@one.test>")),
            mpkt('c')};
  });
  auto &&[s, c] = Running(m, root);
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(root.of("alice", "one.test").empty());
  auto got = root.of("carol", "three.test");
  REQUIRE(got.size() == 1);
  std::string msg = got[0];
  // SMFIR_INSHEADER 3: the fourth field counting the server's Received: (as Postfix counts
  // its own), X-Top already inserted at the top of the client's fields
  size_t top = msg.find(
      "X-Top: first\r\nFrom: <s@client.test>\r\nX-Third: before subject\r\n"
      "To: <alice@one.test>\r\nSubject: changed\r\nX-Folded: one\r\n two\r\n"
      "X-Milter: yes\r\nX-Long: part one\r\n\tpart two\r\n\r\n"
      "new body\r\nsecond line\r\n");
  CHECK_MESSAGE(top != std::string::npos, msg);
  CHECK(msg.find("X-Remove") == std::string::npos);
  CHECK(msg.find("Received: ") < msg.find("X-Top: first"));  // the server's stays first
  CHECK(s.wait_log("from=<new@sender.test> orig_from=<s@client.test> by milter"));
  CHECK(s.wait_log("milter " + m.spec() + ": quarantine: held for review"));
}

TEST_CASE("milter: a large body goes in chunks of at most 64 KiB; skip ends the body early") {
  MailRoot root;
  std::string body;
  while (body.size() < 150000)
    body += "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq\r\n";
  FakeMilter m;
  Server s(milter_opts(m, root));
  REQUIRE(s.started());
  {
    Client c(s.port());
    REQUIRE(greeted(c));
    std::string r =
        send_message(c, "s@client.test", {"alice@one.test"}, "Subject: big\r\n\r\n" + body);
    CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  }
  auto chunks = m.of('B');
  REQUIRE(chunks.size() == 3);
  std::string all;
  for (const auto &p : chunks) {
    CHECK(p.data.size() <= 65535);
    all += p.data;
  }
  CHECK(all == body);
  FakeMilter sk(
      [](const MilterPkt &in) -> std::vector<MilterPkt> {
        return {mpkt(in.cmd == 'B' ? 's' : 'c')};
      },
      0x400 /* SMFIP_SKIP */);
  MailRoot root2;
  auto &&[s2, c] = Running(sk, root2);
  std::string r =
      send_message(c, "s@client.test", {"alice@one.test"}, "Subject: big\r\n\r\n" + body);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(sk.of('B').size() == 1);
  CHECK(sk.of('E').size() == 1);
}

TEST_CASE("milter: steps the milter declines (no headers, no body) and replies it will not send") {
  MailRoot root;
  // SMFIP_NOHDRS | SMFIP_NOBODY | SMFIP_NR_RCPT | SMFIP_NR_EOH
  FakeMilter m(
      [](const MilterPkt &in) -> std::vector<MilterPkt> {
        if (in.cmd == 'R' || in.cmd == 'N') return {};
        return {mpkt('c')};
      },
      0x20 | 0x10 | 0x8000 | 0x40000);
  auto &&[s, c] = Running(m, root);
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(m.of('L').empty());
  CHECK(m.of('B').empty());
  CHECK(m.of('R').size() == 1);
  CHECK(m.of('E').size() == 1);
}

TEST_CASE("milter: a slow milter: the stage's timeout, then default_action tempfail or accept") {
  auto slow = answer('M', {msleep(3000), mpkt('c')});
  {
    MailRoot root;
    FakeMilter m(slow);
    auto &&[s, c] = Running(m, root, "command_timeout=0.5");
    auto t0 = std::chrono::steady_clock::now();
    CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(took >= 0.4);
    CHECK(took < 2.5);
    CHECK(s.wait_log("milter " + m.spec() +
                     ": no reply to the mail event in time; default_action tempfail"));
    CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
  }
  MailRoot root;
  FakeMilter m(slow);
  auto &&[s, c] = Running(m, root, "command_timeout=0.5 default_action=accept");
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("default_action accept"));
  CHECK(root.of("alice", "one.test").size() == 1);
}

TEST_CASE("milter: a milter that disconnects mid-message, speaks garbage, or is down") {
  {
    MailRoot root;
    FakeMilter m(answer('B', {mclose()}));
    auto &&[s, c] = Running(m, root);
    std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
    CHECK(r == "451 4.7.1 Service unavailable - try again later");
    CHECK(s.wait_log("the milter closed the connection; default_action tempfail"));
    CHECK(c.cmd("NOOP").rfind("250", 0) == 0);  // the session goes on
  }
  {
    MailRoot root;
    FakeMilter m(answer('H', {mpkt('Z', "nonsense")}));
    auto &&[s, c] = Running(m, root);  // HELO is not refused for a failed milter
    CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
    CHECK(s.wait_log("protocol error: an unknown reply after the helo event"));
  }
  {
    MailRoot root;
    FakeMilter m(answer('H', {mraw(std::string("\0\0\0\0garbage", 11))}));
    auto &&[s, c] = Running(m, root);
    CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
    CHECK(s.wait_log("protocol error: a packet length of 0 or over 1 MiB"));
  }
  MailRoot root;
  int dead = free_port(SOCK_STREAM);
  Options o;
  o.plugins = "milter inet:127.0.0.1:" + std::to_string(dead) +
              "\nverdict rcpt=OK\nqueue/maildir " + root.path + "\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
  CHECK(s.wait_log("cannot connect: connection refused; default_action tempfail"));
}

TEST_CASE("milter: a 421 reply code closes the session") {
  MailRoot root;
  FakeMilter m(answer('R', {mpkt('y', z("421 4.3.2 Going down for maintenance"))}));
  auto &&[s, c] = Running(m, root);
  CHECK(c.cmd("MAIL FROM:<s@client.test>").rfind("250", 0) == 0);
  CHECK(c.cmd("RCPT TO:<alice@one.test>") == "421 4.3.2 Going down for maintenance");
  CHECK(c.closed());
}

TEST_CASE("milter: shutdown answers 421 and closes the session") {
  MailRoot root;
  FakeMilter m(answer('M', {mpkt('4')}));
  auto &&[s, c] = Running(m, root);
  CHECK(c.cmd("MAIL FROM:<s@client.test>").rfind("421 4.7.0 ", 0) == 0);
  CHECK(c.closed());
}

TEST_CASE("milter: bad conf/plugins lines are refused at startup with the reason") {
  MailRoot root;
  const char *bad[][2] = {
      {"milter", "usage: milter"},
      {"milter tcp:1.2.3.4:5", "a milter is inet:HOST:PORT or unix:/path"},
      {"milter inet:mx.example:11332", "the host must be an IP address"},
      {"milter inet:127.0.0.1:0", "the port must be a number from 1 to 65535"},
      {"milter unix:relative/path", "the socket path must be absolute"},
      {"milter inet:127.0.0.1:1 default_action=reject",
       "default_action 'reject' must be tempfail or accept"},
      {"milter inet:127.0.0.1:1 command_timeout=0",
       "command_timeout '0' must be a number of seconds"},
      {"milter inet:127.0.0.1:1 colour=blue", "unknown option 'colour'"},
  };
  for (auto &b : bad) {
    Options o;
    o.plugins = std::string(b[0]) + "\n";
    std::string dir = make_tree(o);
    RunResult rr = run_uvsmtpd(
        {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    CHECK_MESSAGE(rr.status == 1, b[0]);
    CHECK_MESSAGE(rr.output.find(b[1]) != std::string::npos, rr.output);
    CHECK_MESSAGE(rr.output.find("plugins:1") != std::string::npos, rr.output);
    remove_tree(dir);
  }
}

TEST_CASE("milter: quarantine holds the message in the outbound queue") {
  TempDir q("milterq");
  FakeMilter m(answer('E', {mpkt('q', z("suspicious attachment")), mpkt('c')}));
  Options o;
  o.plugins = "milter " + m.spec() + "\nverdict rcpt=OK\nqueue/outbound " + q.path + "/queue\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  std::string id = queued_as_id(r);
  REQUIRE_MESSAGE(!id.empty(), r);
  CHECK(s.wait_log(id + ": held (quarantine: suspicious attachment)"));
  RunResult l = queue_tool(q.path + "/queue", "list");
  CHECK_MESSAGE(l.output.find("1 held") != std::string::npos, l.output);
  CHECK(queue_tool(q.path + "/queue", "release " + id).status == 0);
}

TEST_CASE("milter: several milters run in conf/plugins order, each seeing the edits before it") {
  MailRoot root;
  auto adder = [](const std::string &name) {
    return [name](const MilterPkt &in) -> std::vector<MilterPkt> {
      if (in.cmd == 'E') return {mpkt_str2('h', name, "yes"), mpkt('c')};
      return {mpkt('c')};
    };
  };
  FakeMilter one(adder("X-First")), two(adder("X-Second"));
  Options o;
  o.plugins = "milter:1 " + one.spec() + "\nmilter:2 " + two.spec() +
              "\nverdict rcpt=OK\nqueue/maildir " + root.path + "\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  auto got = root.of("alice", "one.test");
  REQUIRE(got.size() == 1);
  CHECK(got[0].find("X-Folded: one\r\n two\r\nX-First: yes\r\nX-Second: yes\r\n\r\n") !=
        std::string::npos);
  bool saw_first = false;
  for (const auto &h : two.of('L'))
    if (h.data == z("X-First") + z("yes")) saw_first = true;
  CHECK(saw_first);
  CHECK(one.of('L').size() == 5);
}

TEST_CASE("milter: a client that leaves while the milter works, and the core's hook timeout") {
  MailRoot root;
  FakeMilter m(answer('E', {msleep(1500), mpkt('c')}));
  Options o = milter_opts(m, root, "content_timeout=5");
  o.toml = "hook_timeout = 1\n";
  Server s(o);
  REQUIRE(s.started());
  {
    Client c(s.port());
    REQUIRE(greeted(c));
    CHECK(c.cmd("MAIL FROM:<s@client.test>").rfind("250", 0) == 0);
    CHECK(c.cmd("RCPT TO:<alice@one.test>").rfind("250", 0) == 0);
    CHECK(c.cmd("DATA").rfind("354", 0) == 0);
    c.send(kMsg + ".\r\n");
    REQUIRE(m.wait_for('E'));
  }  // gone before the milter answers
  CHECK(s.wait_log("the session no longer waits (client gone or hook_timeout)"));
  Client c(s.port());
  REQUIRE(greeted(c));
  // the core's hook_timeout (1 s) comes before the milter's answer (1.5 s)
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK(r == "451 4.3.0 Temporary failure, please try again later");
  // the milter connection was dropped with the call: the next MAIL gets default_action
  CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
  CHECK(root.of("alice", "one.test").empty());
  CHECK(s.running());
}

TEST_CASE("milter: macro lists the milter sends in the negotiation replace the defaults") {
  MailRoot root;
  auto u32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  // SMFIM_CONNECT: {client_addr} only; SMFIM_ENVFROM: i, {mail_addr} and a name without braces
  std::string lists = u32(0) + z("{client_addr}") + u32(2) + z("{mail_addr} client_port");
  FakeMilter m(nullptr, 0, 0x1ff, lists);
  auto &&[s, c] = Running(m, root);
  std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  auto cm = m.macros('C');
  REQUIRE(cm.size() == 1);
  CHECK(cm[0].first == "{client_addr}");
  auto mm = m.macros('M');
  REQUIRE(mm.size() == 2);
  CHECK(mm[0].first == "{mail_addr}");
  CHECK(mm[1].first == "{client_port}");
  CHECK(value_of(m.macros('R'), "{rcpt_addr}") == "alice@one.test");  // no list: the defaults
}

TEST_CASE("milter: a negotiation the client cannot accept is a failure") {
  struct Case {
    uint32_t actions;
    std::string log;
  };
  for (const Case &k :
       {Case{0x1ff | 0x200, "the milter asks for actions 0x3ff beyond what this client offers"}}) {
    MailRoot root;
    FakeMilter m(nullptr, 0, k.actions);
    auto &&[s, c] = Running(m, root);
    CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
    CHECK(s.wait_log(k.log + "; default_action tempfail"));
    CHECK(m.of('C').empty());
  }
}

TEST_CASE("milter: SIGTERM with idle sessions whose milter is busy exits promptly") {
  MailRoot root;
  // no reply to HELO (SMFIP_NR_HELO): the milter then sits on it and reads nothing more
  FakeMilter m(answer('H', {msleep(20000)}), 0x2000);
  Server s(milter_opts(m, root));
  REQUIRE(s.started());
  Client a(s.port()), b(s.port());
  REQUIRE(greeted(a));
  REQUIRE(greeted(b));
  REQUIRE(m.wait_for('H', 5, 2));
  auto t0 = std::chrono::steady_clock::now();
  s.signal(SIGTERM);
  CHECK(s.wait_exit(15) == 0);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(took < 6);
}

TEST_CASE(
    "milter: each session has its own milter connection, opened at connect, closed at the end") {
  MailRoot root;
  FakeMilter m;
  Server s(milter_opts(m, root));
  REQUIRE(s.started());
  {
    std::vector<std::unique_ptr<Client>> cs;
    for (int i = 0; i < 10; i++) {
      cs.push_back(std::make_unique<Client>(s.port()));
      REQUIRE(greeted(*cs.back()));
    }
    CHECK(m.connections() == 10);
    // interleaved transactions: each milter conversation stays its session's
    for (auto &c : cs) CHECK(c->cmd("MAIL FROM:<s@client.test>").rfind("250", 0) == 0);
    for (auto &c : cs) CHECK(c->cmd("RCPT TO:<alice@one.test>").rfind("250", 0) == 0);
    for (auto &c : cs) {
      CHECK(c->cmd("DATA").rfind("354", 0) == 0);
      c->send(kMsg + ".\r\n");
      CHECK(c->reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
    }
    for (auto &c : cs) CHECK(c->cmd("QUIT").rfind("221", 0) == 0);
  }
  CHECK(m.wait_for('Q', 5, 10));
  for (int i = 0; i < 50 && m.closed() < 10; i++) usleep(100000);
  CHECK(m.closed() == 10);
  CHECK(m.of('E').size() == 10);
  CHECK(root.of("alice", "one.test").size() == 10);
}

TEST_CASE("milter: an older milter (version 2) gets no DATA event; a newer one (7) is refused") {
  MailRoot root;
  FakeMilter old;
  old.set_version(2);
  Server s(milter_opts(old, root));
  REQUIRE(s.started());
  {
    Client c(s.port());
    REQUIRE(greeted(c));
    std::string r = send_message(c, "s@client.test", {"alice@one.test"}, kMsg);
    CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
    CHECK(old.of('T').empty());
    CHECK(old.of('E').size() == 1);
  }
  FakeMilter newer;
  newer.set_version(7);
  MailRoot root2;
  auto &&[s2, c] = Running(newer, root2);
  CHECK(c.cmd("MAIL FROM:<s@client.test>") == "451 4.7.1 Service unavailable - try again later");
  CHECK(s2.wait_log("the milter speaks protocol version 7; this client 2 to 6"));
}
