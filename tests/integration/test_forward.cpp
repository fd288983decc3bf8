// tests/integration/test_forward.cpp: queue/smtp-forward against real downstreams (a second uvsmtpd, scripted sockets).
#include <doctest/doctest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <regex>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "fake_server.hpp"
#include "harness.hpp"

using namespace itest;

namespace {

// ---- a scripted downstream on a raw socket ------------------------------------------------

// A scripted SMTP/LMTP server: what it answers, and what it saw.
struct Sink {
  bool lmtp = false;
  std::string greeting = "220 sink.test ESMTP fake";
  std::vector<std::string> ext = {"PIPELINING", "SIZE 10000000", "8BITMIME", "ENHANCEDSTATUSCODES"};
  std::string ehlo_reply;  // non-empty: the reply to EHLO (e.g. "502 5.5.2 no ESMTP")
  std::function<std::string(const std::string &)> rcpt = [](const std::string &) {
    return std::string("250 2.1.5 Ok");
  };
  enum { reply, close_conn, silent } after_data_cmd = reply, after_dot = reply;
  // After the dot: one reply (SMTP) or one per accepted recipient (LMTP); default all 250.
  std::function<std::vector<std::string>(const std::vector<std::string> &)> dot;

  std::mutex m;
  std::vector<std::string> cmds;  // every command line received
  std::vector<std::string> data;  // raw DATA bytes, one entry per message
  bool pipelined = false;         // a command arrived batched behind another
  bool got_data_cmd = false;

  std::function<void(Conn &)> handler() {
    return [this](Conn &c) { serve(c); };
  }
  std::vector<std::string> commands() {
    std::lock_guard<std::mutex> l(m);
    return cmds;
  }
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> l(m);
    return data;
  }

  void serve(Conn &c) {
    c.send(greeting + "\r\n");
    if (greeting.rfind("220", 0) != 0) {
      std::string l;
      if (c.line(l)) record(l, false);  // QUIT
      c.send("221 bye\r\n");
      return;
    }
    std::vector<std::string> accepted;
    for (;;) {
      std::string l;
      bool batched = false;
      if (!c.line(l, &batched)) return;
      record(l, batched);
      std::string verb = l.substr(0, 4);
      for (auto &ch : verb) ch = static_cast<char>(toupper(ch));
      if (verb == "EHLO" || verb == "LHLO") {
        if (!ehlo_reply.empty()) {
          c.send(ehlo_reply + "\r\n");
          continue;
        }
        std::string r = "250" + std::string(ext.empty() ? " " : "-") + "sink.test\r\n";
        for (size_t i = 0; i < ext.size(); ++i) r += "250" + std::string(i + 1 < ext.size() ? "-" : " ") + ext[i] + "\r\n";
        c.send(r);
      } else if (verb == "HELO") {
        c.send("250 sink.test\r\n");
      } else if (verb == "MAIL") {
        accepted.clear();
        c.send("250 2.1.0 Ok\r\n");
      } else if (verb == "RCPT") {
        auto lt = l.find('<'), gt = l.rfind('>');
        std::string addr = lt != std::string::npos && gt != std::string::npos ? l.substr(lt + 1, gt - lt - 1) : "";
        std::string r = rcpt(addr);
        if (r[0] == '2') accepted.push_back(addr);
        c.send(r + "\r\n");
      } else if (verb == "DATA") {
        {
          std::lock_guard<std::mutex> g(m);
          got_data_cmd = true;
        }
        if (after_data_cmd == close_conn) return;
        if (after_data_cmd == silent) return c.drain();
        c.send("354 End data with <CR><LF>.<CR><LF>\r\n");
        std::string raw;
        if (!c.data(raw)) return;
        {
          std::lock_guard<std::mutex> g(m);
          data.push_back(raw);
        }
        if (after_dot == close_conn) return;
        if (after_dot == silent) return c.drain();
        std::vector<std::string> rs;
        if (dot) rs = dot(accepted);
        else if (lmtp)
          for (auto &a : accepted) rs.push_back("250 2.0.0 <" + a + "> Saved");
        else
          rs.push_back("250 2.0.0 Ok: queued as FAKE1");
        std::string out;
        for (auto &r : rs) out += r + "\r\n";
        c.send(out);
      } else if (verb == "QUIT") {
        c.send("221 2.0.0 Bye\r\n");
        return;
      } else if (verb == "RSET") {
        c.send("250 2.0.0 Ok\r\n");
      } else {
        c.send("502 5.5.2 Error: command not recognized\r\n");
      }
    }
  }

 private:
  void record(const std::string &l, bool batched) {
    std::lock_guard<std::mutex> g(m);
    cmds.push_back(l);
    if (batched) pipelined = true;
  }
};

// ---- helpers ------------------------------------------------------------------------------

const std::string kBody = "Subject: forward test\r\nFrom: alice@up.test\r\n\r\nhello smarthost\r\n";

Options downstream(const std::string &verdict_args) {
  Options o;
  o.plugins = "verdict " + verdict_args + " trace=1\n";
  return o;
}

Options upstream(const std::string &target, const std::string &extra = "", const std::string &toml = "") {
  Options o;
  o.plugins = "verdict rcpt=OK\nqueue/smtp-forward " + target + " timeout 5 " + extra + "\n";
  o.toml = toml;
  return o;
}
Options upstream(int port, const std::string &extra = "", const std::string &toml = "") {
  return upstream("127.0.0.1 " + std::to_string(port), extra, toml);
}

// Greets, EHLOs as the upstream's own name (so both Received headers have the same length) and
// sends one message; returns the reply to the end of data.
std::string deliver(int port, const std::vector<std::string> &rcpts, const std::string &body,
                    const std::string &from = "alice@up.test") {
  Client c(port);
  if (!c.connected() || c.code() != 220) return "no greeting";
  if (c.cmd("EHLO mx.test.invalid").rfind("250", 0) != 0) return "EHLO failed";
  return send_message(c, from, rcpts, body);
}

long long logged_size(const Server &s) {
  static const std::regex re(": accepted message-id=\\S+ size=([0-9]+) ");
  std::smatch m;
  std::string l = s.log();
  if (!std::regex_search(l, m, re)) return -1;
  return std::stoll(m[1]);
}

// Dot-unstuffs raw DATA bytes (terminator included).
std::string unstuff(const std::string &raw) {
  std::string body = raw.substr(0, raw.size() - 3);  // ".\r\n"
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find("\r\n", pos);
    size_t end = nl == std::string::npos ? body.size() : nl + 2;
    std::string line = body.substr(pos, end - pos);
    if (!line.empty() && line[0] == '.') line.erase(0, 1);
    out += line;
    pos = end;
  }
  return out;
}

// Every CR is followed by LF and every LF preceded by CR.
bool only_crlf(const std::string &s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) return false;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  close(fd);  // nobody listens there now
  return ntohs(a.sin_port);
}

// Waits until the scripted server has finished its conversation (it saw QUIT or the close).
bool settle(const FakeServer &f, double timeout = 5) {
  double deadline = now() + timeout;
  while (now() < deadline) {
    if (f.connections() > 0 && f.idle()) return true;
    usleep(5000);
  }
  return false;
}

bool starts(const std::string &s, const std::string &prefix) { return s.rfind(prefix, 0) == 0; }
bool has(const std::string &s, const std::string &needle) { return s.find(needle) != std::string::npos; }

}  // namespace

// ---- against a real downstream uvsmtpd ----------------------------------------------------

TEST_CASE("forward: success: 250 upstream, the downstream queues it once, same size") {
  Server down(downstream("rcpt=OK queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());

  std::string body = kBody;
  SUBCASE("small message, two recipients") {}
  SUBCASE("3 MB message (many 64 KiB chunks)") {
    std::string line(76, 'x');
    body = "Subject: big\r\n\r\n";
    while (body.size() < 3 * 1024 * 1024) body += line + "\r\n";
  }
  std::string r = deliver(up.port(), {"bob@down.test", "carol@down.test"}, body);
  CHECK(starts(r, "250 2.0.0 Queued as "));
  REQUIRE(down.wait_log(": accepted message-id="));
  CHECK(down.count_log(": accepted message-id=") == 1);
  CHECK(down.wait_log(" nrcpt=2 rcpt="));
  CHECK(down.wait_log(" queue=verdict: 250 2.0.0 Queued as "));
  long long u = logged_size(up), d = logged_size(down);
  REQUIRE(u > 0);
  // MAIL carried SIZE= the upstream's spooled size; no BODY= for a 7-bit message.
  CHECK(down.count_log("trace verdict mail arg=FROM:<alice@up.test> SIZE=" + std::to_string(u) + " address=") == 1);
  CHECK(down.count_log("trace verdict rcpt arg=TO:<bob@down.test> address=bob@down.test") == 1);
  CHECK(down.count_log("trace verdict rcpt arg=TO:<carol@down.test> address=carol@down.test") == 1);
  // Both add a Received header of the same length (same host name, HELO, peer and id format):
  // the downstream copy is the upstream's spool plus one more header, byte for byte in size.
  long long received = u - static_cast<long long>(body.size());
  CHECK(d == u + received);
  CHECK(up.wait_log("forwarded to 127.0.0.1:" + std::to_string(down.port()) + ": 250"));
}

TEST_CASE("forward: several messages in one upstream session, each forwarded once") {
  Server down(downstream("rcpt=OK queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  Client c(up.port());
  REQUIRE(c.code() == 220);
  REQUIRE(starts(c.cmd("EHLO mx.test.invalid"), "250"));
  for (int i = 0; i < 3; ++i) CHECK(starts(send_message(c, "a@up.test", {"b@down.test"}, kBody), "250 "));
  CHECK(starts(c.cmd("QUIT"), "221"));
  CHECK(down.wait_log(": accepted message-id=", 5, 3));
  CHECK(down.count_log(": accepted message-id=") == 3);
}

TEST_CASE("forward: concurrent sessions forward in parallel on the loop") {
  Server down(downstream("rcpt=OK queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  constexpr int kN = 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kN; ++i)
    ts.emplace_back([&, i] {
      if (starts(deliver(up.port(), {"u" + std::to_string(i) + "@down.test"}, kBody), "250 ")) ++ok;
    });
  for (auto &t : ts) t.join();
  CHECK(ok == kN);
  CHECK(down.wait_log(": accepted message-id=", 5, kN));
  CHECK(down.count_log(": accepted message-id=") == kN);
}

TEST_CASE("forward: BODY=8BITMIME is sent only for a message with 8-bit bytes") {
  Server down(downstream("rcpt=OK queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  std::string body8 = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve body\r\n";
  CHECK(starts(deliver(up.port(), {"bob@down.test"}, body8), "250 "));
  REQUIRE(down.wait_log(": accepted message-id="));
  CHECK(down.count_log(" BODY=8BITMIME address=alice@up.test") == 1);
  CHECK(starts(deliver(up.port(), {"bob@down.test"}, kBody), "250 "));
  REQUIRE(down.wait_log(": accepted message-id=", 5, 2));
  CHECK(down.count_log("trace verdict mail arg=") == 2);
  CHECK(down.count_log(" BODY=8BITMIME address=") == 1);
}

TEST_CASE("forward: downstream 4xx at RCPT is a 4xx upstream, nothing queued") {
  Server down(downstream("rcpt=DENYSOFT rcpt.code=450 rcpt.enh=4.2.1 rcpt.text=mailbox_busy queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
  CHECK(r == "450 4.2.1 <bob@down.test>: mailbox busy");
  CHECK(down.wait_log("trace verdict quit"));
  CHECK(down.count_log(": accepted message-id=") == 0);
  CHECK(down.count_log("trace verdict data ") == 0);
}

TEST_CASE("forward: downstream 5xx at RCPT stays 5xx (qpsmtpd #150/#151)") {
  Server down(downstream("rcpt=DENY rcpt.code=550 rcpt.enh=5.1.1 rcpt.text=no_such_user queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  SUBCASE("one recipient") {
    CHECK(deliver(up.port(), {"bob@down.test"}, kBody) == "550 5.1.1 <bob@down.test>: no such user");
  }
  SUBCASE("all of two recipients") {
    CHECK(deliver(up.port(), {"bob@down.test", "carol@down.test"}, kBody) ==
          "550 5.1.1 <bob@down.test>: no such user (all 2 recipients refused)");
  }
  CHECK(down.wait_log("trace verdict quit"));
  CHECK(down.count_log(": accepted message-id=") == 0);
  CHECK(up.wait_log("DENY 550 5.1.1"));
}

TEST_CASE("forward: downstream 5xx at MAIL stays 5xx, its default text kept") {
  Server down(downstream("mail=DENY queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  CHECK(deliver(up.port(), {"bob@down.test"}, kBody) == "550 5.7.1 <alice@up.test>, denied");
  CHECK(down.count_log(": accepted message-id=") == 0);
}

TEST_CASE("forward: downstream refusal at the end of data") {
  SUBCASE("DENY at data_post is a 5xx") {
    Server down(downstream("rcpt=OK data_post=DENY data_post.code=554 data_post.enh=5.7.1 data_post.text=spam_detected"));
    REQUIRE(down.started());
    Server up(upstream(down.port()));
    REQUIRE(up.started());
    CHECK(deliver(up.port(), {"bob@down.test"}, kBody) == "554 5.7.1 spam detected");
    CHECK(down.count_log(": accepted message-id=") == 0);
  }
  SUBCASE("DENYSOFT at data_post is a 4xx") {
    Server down(downstream("rcpt=OK data_post=DENYSOFT data_post.text=scanner_busy"));
    REQUIRE(down.started());
    Server up(upstream(down.port()));
    REQUIRE(up.started());
    CHECK(deliver(up.port(), {"bob@down.test"}, kBody) == "452 4.7.1 scanner busy");
  }
  SUBCASE("no queue plugin downstream: its 451 is a 451") {
    Server down(downstream("rcpt=OK"));
    REQUIRE(down.started());
    Server up(upstream(down.port()));
    REQUIRE(up.started());
    CHECK(deliver(up.port(), {"bob@down.test"}, kBody) ==
          "451 4.3.0 Queuing declined or disabled; try again later");
  }
  SUBCASE("DENY_DISCONNECT at data_post: the 5xx reply counts, the close after it does not") {
    Server down(downstream("rcpt=OK data_post=DENY_DISCONNECT data_post.text=go_away"));
    REQUIRE(down.started());
    Server up(upstream(down.port()));
    REQUIRE(up.started());
    CHECK(deliver(up.port(), {"bob@down.test"}, kBody) == "552 5.7.1 go away");
  }
}

// ---- failures of the connection ----------------------------------------------------------

TEST_CASE("forward: downstream closing mid-transaction is a 4xx") {
  Sink sink;
  SUBCASE("closes after DATA, before 354") { sink.after_data_cmd = Sink::close_conn; }
  SUBCASE("closes after the end of data, without a reply") { sink.after_dot = Sink::close_conn; }
  FakeServer fake(sink.handler());
  REQUIRE(fake.ok());
  Server up(upstream(fake.port()));
  REQUIRE(up.started());
  std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
  CHECK(starts(r, "451 4.4.2 Smarthost 127.0.0.1:" + std::to_string(fake.port()) + " closed the connection"));
}

TEST_CASE("forward: downstream closing mid-transaction: a real uvsmtpd that exits") {
  // A downstream whose rcpt hook is slow is killed while our client waits: connection reset.
  auto down = std::make_unique<Server>(downstream("rcpt=OK rcpt.async=timer rcpt.delay=3000 queue=OK"));
  REQUIRE(down->started());
  Server up(upstream(down->port()));
  REQUIRE(up.started());
  std::thread killer([&] {
    down->wait_log("trace verdict rcpt", 5);
    down.reset();  // SIGKILL
  });
  std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
  killer.join();
  CHECK(starts(r, "451 4.4.2 Smarthost 127.0.0.1:"));
}

TEST_CASE("forward: unreachable downstream is a quick 4xx") {
  Server up(upstream(free_port()));
  REQUIRE(up.started());
  double t0 = now();
  std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
  CHECK(starts(r, "451 4.4.1 Smarthost 127.0.0.1:"));
  CHECK(has(r, "unreachable: connection refused"));
  CHECK(now() - t0 < 2.0);
}

TEST_CASE("forward: a downstream that never speaks times out with a 4xx") {
  SUBCASE("no greeting (accepted by the kernel, never read)") {
    FakeServer mute(nullptr, false, false);
    REQUIRE(mute.ok());
    Server up(upstream("127.0.0.1 " + std::to_string(mute.port()), "timeout 1"));
    REQUIRE(up.started());
    double t0 = now();
    std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
    double t = now() - t0;
    CHECK(r == "451 4.4.2 Smarthost 127.0.0.1:" + std::to_string(mute.port()) +
                   " timed out waiting for the reply to the greeting");
    CHECK(t >= 0.9);
    CHECK(t < 3.0);
  }
  SUBCASE("no reply to the end of data (data_timeout)") {
    Sink sink;
    sink.after_dot = Sink::silent;
    FakeServer fake(sink.handler());
    Server up(upstream("127.0.0.1 " + std::to_string(fake.port()), "data_timeout 1"));
    REQUIRE(up.started());
    std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
    CHECK(has(r, "451 4.4.2 Smarthost 127.0.0.1:"));
    CHECK(has(r, "timed out waiting for the reply to the end of data"));
    CHECK(up.wait_log("the end of data was sent: the smarthost may have accepted the message"));
  }
}

TEST_CASE("forward: greeting or EHLO refused is a 4xx (the relay's problem, not the message's)") {
  Sink sink;
  std::string expect;
  SUBCASE("554 greeting") {
    sink.greeting = "554 5.7.1 not you";
    expect = "refused the session at the greeting: 554 5.7.1 not you";
  }
  SUBCASE("EHLO 4xx") {
    sink.ehlo_reply = "421 4.3.2 busy";
    expect = "refused the session at EHLO: 421 4.3.2 busy";
  }
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port()));
  REQUIRE(up.started());
  std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
  CHECK(starts(r, "451 4.4.0 Smarthost 127.0.0.1:"));
  CHECK(has(r, expect));
}

// ---- the wire ----------------------------------------------------------------------------

TEST_CASE("forward: dot-stuffing round trip") {
  // The client stuffs, the upstream core unstuffs into its spool, the plugin must stuff again.
  const std::string original = "Subject: dots\r\n\r\n.hidden line\r\n..two dots\r\n.\r\nlast . line\r\n";
  const std::string stuffed = "Subject: dots\r\n\r\n..hidden line\r\n...two dots\r\n..\r\nlast . line\r\n";
  SUBCASE("on the wire (scripted sink)") {
    Sink sink;
    FakeServer fake(sink.handler());
    Server up(upstream(fake.port()));
    REQUIRE(up.started());
    CHECK(starts(deliver(up.port(), {"bob@down.test"}, stuffed), "250 "));
    REQUIRE(settle(fake));
    auto msgs = sink.messages();
    REQUIRE(msgs.size() == 1);
    const std::string &raw = msgs[0];
    CHECK(has(raw, "\r\n..hidden line\r\n...two dots\r\n..\r\nlast . line\r\n.\r\n"));
    CHECK(starts(raw, "Received: from "));
    CHECK(only_crlf(raw));
    std::string got = unstuff(raw);
    CHECK(got.substr(got.size() - original.size()) == original);
    CHECK(static_cast<long long>(got.size()) == logged_size(up));
    CHECK(up.wait_log("3 line(s) dot-stuffed"));
  }
  SUBCASE("through a real downstream uvsmtpd (sizes)") {
    Server down(downstream("rcpt=OK queue=OK"));
    REQUIRE(down.started());
    Server up(upstream(down.port()));
    REQUIRE(up.started());
    CHECK(starts(deliver(up.port(), {"bob@down.test"}, stuffed), "250 "));
    REQUIRE(down.wait_log(": accepted message-id="));
    long long u = logged_size(up), d = logged_size(down);
    CHECK(d == u + (u - static_cast<long long>(original.size())));
  }
}

TEST_CASE("forward: stray CR and LF leave as spaces, a bare-LF dot line is stuffed") {
  // With bare_newline normalize the upstream keeps a bare CR as data and stores "LF . CRLF" as
  // a "." line: neither may reach the smarthost as such (smuggling, security.md §1.4).
  Sink sink;
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port(), "", "[bare_newline]\npolicy = \"normalize\"\n"));
  REQUIRE(up.started());
  std::string body = "Subject: stray\r\n\r\na\rb\r\nsmuggle\n.\r\nMAIL FROM:<evil@x>\r\nend\r\n";
  CHECK(starts(deliver(up.port(), {"bob@down.test"}, body), "250 "));
  REQUIRE(settle(fake));
  auto msgs = sink.messages();
  REQUIRE(msgs.size() == 1);
  const std::string &raw = msgs[0];
  CHECK(only_crlf(raw));
  CHECK(has(raw, "\r\na b\r\nsmuggle\r\n..\r\nMAIL FROM:<evil@x>\r\nend\r\n.\r\n"));
  auto cmds = sink.commands();
  CHECK(std::count_if(cmds.begin(), cmds.end(), [](const std::string &c) { return starts(c, "MAIL"); }) == 1);
  CHECK(up.wait_log("1 stray CR/LF replaced"));
}

TEST_CASE("forward: PIPELINING is used when offered, one command at a time otherwise") {
  Sink sink;
  bool offered = true;
  SUBCASE("offered") {}
  SUBCASE("not offered") {
    offered = false;
    sink.ext = {"SIZE 10000000", "8BITMIME"};
  }
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port()));
  REQUIRE(up.started());
  CHECK(starts(deliver(up.port(), {"a@down.test", "b@down.test", "c@down.test"}, kBody), "250 "));
  REQUIRE(settle(fake));
  auto cmds = sink.commands();
  REQUIRE(cmds.size() >= 7);
  CHECK(starts(cmds[0], "EHLO mx.test.invalid"));
  CHECK(starts(cmds[1], "MAIL FROM:<alice@up.test> SIZE="));
  CHECK(cmds[2] == "RCPT TO:<a@down.test>");
  CHECK(cmds[4] == "RCPT TO:<c@down.test>");
  CHECK(cmds[5] == "DATA");
  CHECK(cmds[6] == "QUIT");
  CHECK(sink.pipelined == offered);
}

TEST_CASE("forward: a message over the smarthost's announced SIZE limit: 552 5.3.4, MAIL not sent") {
  Sink sink;
  sink.ext = {"PIPELINING", "SIZE 100", "8BITMIME"};
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port()));
  REQUIRE(up.started());
  std::string r = deliver(up.port(), {"bob@down.test"}, kBody + std::string(200, 'x') + "\r\n");
  CHECK(starts(r, "552 5.3.4 Message size "));
  CHECK(has(r, "exceeds the size limit 100 of the server"));
  REQUIRE(settle(fake));
  for (const auto &c : sink.commands()) CHECK_FALSE(starts(c, "MAIL"));
}

TEST_CASE("forward: EHLO refused with 5xx falls back to HELO (no extensions used)") {
  Sink sink;
  sink.ehlo_reply = "502 5.5.2 no ESMTP here";
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port(), "helo relay.up.test"));
  REQUIRE(up.started());
  CHECK(starts(deliver(up.port(), {"bob@down.test"}, kBody), "250 "));
  REQUIRE(settle(fake));
  auto cmds = sink.commands();
  REQUIRE(cmds.size() >= 3);
  CHECK(cmds[0] == "EHLO relay.up.test");
  CHECK(cmds[1] == "HELO relay.up.test");
  CHECK(cmds[2] == "MAIL FROM:<alice@up.test>");
  CHECK_FALSE(sink.pipelined);
}

TEST_CASE("forward: mixed recipient results refuse the whole message, DATA is never sent") {
  Sink sink;
  sink.rcpt = [](const std::string &a) -> std::string {
    if (starts(a, "bad")) return "550 5.1.1 <" + a + ">: Recipient address rejected: User unknown";
    if (starts(a, "busy")) return "450 4.2.1 try again later";
    return "250 2.1.5 Ok";
  };
  std::vector<std::string> rcpts;
  std::string expect;
  SUBCASE("250 + 550: 5xx") {
    rcpts = {"good@down.test", "bad@down.test"};
    expect = "550 5.1.1 <bad@down.test>: Recipient address rejected: User unknown "
             "(1 of 2 recipients refused; not forwarded to any)";
  }
  SUBCASE("250 + 550 + 450: any 4xx wins, 4xx") {
    rcpts = {"good@down.test", "bad@down.test", "busy@down.test"};
    expect = "450 4.2.1 <busy@down.test>: try again later (2 of 3 recipients refused; not forwarded to any)";
  }
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port()));
  REQUIRE(up.started());
  CHECK(deliver(up.port(), rcpts, kBody) == expect);
  REQUIRE(settle(fake));
  CHECK_FALSE(sink.got_data_cmd);
  CHECK(sink.messages().empty());
}

TEST_CASE("forward: SMTPUTF8 addresses") {
  Sink sink;
  bool offered = true;
  SUBCASE("offered: MAIL carries SMTPUTF8") { sink.ext.push_back("SMTPUTF8"); }
  SUBCASE("not offered: 553 5.6.7, nothing sent") { offered = false; }
  FakeServer fake(sink.handler());
  Server up(upstream(fake.port()));
  REQUIRE(up.started());
  Client c(up.port());
  REQUIRE(c.code() == 220);
  REQUIRE(starts(c.cmd("EHLO mx.test.invalid"), "250"));
  REQUIRE(starts(c.cmd("MAIL FROM:<j\xc3\xb6rg@up.test> SMTPUTF8"), "250"));
  REQUIRE(starts(c.cmd("RCPT TO:<bob@down.test>"), "250"));
  REQUIRE(starts(c.cmd("DATA"), "354"));
  c.send(kBody + ".\r\n");
  std::string r = c.reply(10);
  REQUIRE(settle(fake));
  if (offered) {
    CHECK(starts(r, "250 "));
    auto cmds = sink.commands();
    REQUIRE(cmds.size() >= 2);
    CHECK(has(cmds[1], "MAIL FROM:<j\xc3\xb6rg@up.test> SIZE="));
    CHECK(has(cmds[1], " SMTPUTF8"));
  } else {
    CHECK(starts(r, "553 5.6.7 SMTPUTF8 is required, but was not offered by smarthost 127.0.0.1:"));
    CHECK_FALSE(sink.got_data_cmd);
  }
}

TEST_CASE("forward: name lookup and IPv6 smarthosts") {
  Sink sink;
  SUBCASE("localhost (uv_getaddrinfo; every address tried in turn)") {
    FakeServer fake(sink.handler());
    Server up(upstream("localhost " + std::to_string(fake.port())));
    REQUIRE(up.started());
    CHECK(starts(deliver(up.port(), {"bob@down.test"}, kBody), "250 "));
    CHECK(sink.messages().size() == 1);
  }
  SUBCASE("[::1] and ::1") {
    FakeServer fake(sink.handler(), true);
    if (!fake.ok()) {
      MESSAGE("no IPv6 loopback here; skipped");
      return;
    }
    for (std::string host : {"[::1]", "::1"}) {
      Server up(upstream(host + " " + std::to_string(fake.port())));
      REQUIRE(up.started());
      CHECK(starts(deliver(up.port(), {"bob@down.test"}, kBody), "250 "));
    }
    CHECK(sink.messages().size() == 2);
  }
  SUBCASE("a name that does not resolve: 4.4.3") {
    Server up(upstream("no-such-host.invalid 25", "connect_timeout 2"));
    REQUIRE(up.started());
    std::string r = deliver(up.port(), {"bob@down.test"}, kBody);
    CHECK(starts(r, "451 4.4.3 Smarthost no-such-host.invalid:25: name lookup"));
  }
}

// ---- LMTP ----------------------------------------------------------------------------------

TEST_CASE("forward: LMTP with per-recipient results after the end of data") {
  Sink sink;
  sink.lmtp = true;
  std::string expect;
  SUBCASE("all 250: 250") { expect = "250 "; }
  SUBCASE("250 + 552: 5xx, naming the failed recipient") {
    sink.dot = [](const std::vector<std::string> &rs) {
      std::vector<std::string> out;
      for (auto &a : rs) out.push_back(starts(a, "full") ? "552 5.2.2 <" + a + "> Quota exceeded" : "250 2.0.0 <" + a + "> Saved");
      return out;
    };
    expect = "552 5.2.2 <full@down.test> Quota exceeded (1 of 2 recipients refused; already delivered to the other 1)";
  }
  SUBCASE("452 + 552: 4xx wins") {
    sink.dot = [](const std::vector<std::string> &rs) {
      std::vector<std::string> out;
      for (auto &a : rs) out.push_back(starts(a, "full") ? "552 5.2.2 Quota exceeded" : "452 4.2.2 Try later");
      return out;
    };
    expect = "452 4.2.2 <ok@down.test>: Try later (all 2 recipients refused)";
  }
  FakeServer fake(sink.handler());
  Server up(upstream("127.0.0.1 " + std::to_string(fake.port()), "lmtp 1"));
  REQUIRE(up.started());
  std::string r = deliver(up.port(), {"ok@down.test", "full@down.test"}, kBody);
  CHECK(starts(r, expect));
  REQUIRE(settle(fake));
  auto cmds = sink.commands();
  REQUIRE(!cmds.empty());
  CHECK(cmds[0] == "LHLO mx.test.invalid");
  CHECK(sink.messages().size() == 1);
  CHECK(cmds.back() == "QUIT");
}

TEST_CASE("forward: LMTP refusal at RCPT is like SMTP's") {
  Sink sink;
  sink.lmtp = true;
  sink.rcpt = [](const std::string &a) -> std::string {
    return starts(a, "bad") ? "550 5.1.1 <" + a + ">: User doesn't exist" : "250 2.1.5 OK";
  };
  FakeServer fake(sink.handler());
  Server up(upstream("127.0.0.1 " + std::to_string(fake.port()), "lmtp 1"));
  REQUIRE(up.started());
  CHECK(deliver(up.port(), {"bad@down.test"}, kBody) == "550 5.1.1 <bad@down.test>: User doesn't exist");
  REQUIRE(settle(fake));
  CHECK_FALSE(sink.got_data_cmd);
}

// ---- the upstream side going away ------------------------------------------------------

TEST_CASE("forward: the client leaving before the end of data aborts the downstream transaction") {
  Server down(downstream("rcpt=OK rcpt.async=timer rcpt.delay=1500 queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  {
    Client c(up.port());
    REQUIRE(c.code() == 220);
    REQUIRE(starts(c.cmd("EHLO mx.test.invalid"), "250"));
    REQUIRE(starts(c.cmd("MAIL FROM:<a@up.test>"), "250"));
    REQUIRE(starts(c.cmd("RCPT TO:<b@down.test>"), "250"));
    REQUIRE(starts(c.cmd("DATA"), "354"));
    c.send(kBody + ".\r\n");
    REQUIRE(down.wait_log("trace verdict rcpt"));
  }  // closes while the downstream still thinks about RCPT
  CHECK(up.wait_log("aborting the smarthost transaction", 5));
  CHECK(down.wait_log("trace verdict quit", 5));
  CHECK(down.count_log("trace verdict data ") == 0);
  CHECK(down.count_log(": accepted message-id=") == 0);
}

TEST_CASE("forward: the client leaving after the end of data was sent: finished, logged") {
  Server down(downstream("rcpt=OK data_post=OK data_post.async=timer data_post.delay=1500 queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port()));
  REQUIRE(up.started());
  {
    Client c(up.port());
    REQUIRE(c.code() == 220);
    REQUIRE(starts(c.cmd("EHLO mx.test.invalid"), "250"));
    REQUIRE(starts(c.cmd("MAIL FROM:<a@up.test>"), "250"));
    REQUIRE(starts(c.cmd("RCPT TO:<b@down.test>"), "250"));
    REQUIRE(starts(c.cmd("DATA"), "354"));
    c.send(kBody + ".\r\n");
    REQUIRE(down.wait_log("trace verdict data_post"));
  }
  CHECK(down.wait_log(": accepted message-id=", 5));
  CHECK(up.wait_log("accepted the message after the client went away", 5));
  CHECK(up.wait_log("forwarded to 127.0.0.1:", 5));
}

TEST_CASE("forward: the core's hook timeout before the end of data: 451 upstream, nothing delivered") {
  Server down(downstream("rcpt=OK rcpt.async=timer rcpt.delay=2500 queue=OK"));
  REQUIRE(down.started());
  Server up(upstream(down.port(), "", "hook_timeout = 1\n"));
  REQUIRE(up.started());
  double t0 = now();
  std::string r = deliver(up.port(), {"b@down.test"}, kBody);
  CHECK(r == "451 4.3.0 Temporary failure, please try again later");
  CHECK(now() - t0 < 2.0);
  CHECK(up.wait_log("aborting the smarthost transaction", 5));
  CHECK(down.wait_log("trace verdict quit", 5));
  CHECK(down.count_log(": accepted message-id=") == 0);
}

// ---- configuration ------------------------------------------------------------------------

TEST_CASE("forward: bad arguments stop the server at startup") {
  struct Row {
    const char *line;
    const char *error;
  };
  const Row rows[] = {
      {"queue/smtp-forward", "usage: queue/smtp-forward <host>"},
      {"queue/smtp-forward 127.0.0.1 70000", "port must be 1..65535"},
      {"queue/smtp-forward 127.0.0.1 25 timeout", "option 'timeout' needs a value"},
      {"queue/smtp-forward 127.0.0.1 25 timeout -1", "timeout must be a number of seconds"},
      {"queue/smtp-forward 127.0.0.1 25 lmtp yes", "lmtp must be 0 or 1"},
      {"queue/smtp-forward 127.0.0.1 25 xclient 1", "unknown option 'xclient'"},
  };
  for (const Row &row : rows) {
    CAPTURE(row.line);
    std::string dir = make_tree(Options{.plugins = std::string(row.line) + "\n"});
    RunResult res = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    remove_tree(dir);
    CHECK(res.status != 0);
    CHECK(has(res.output, row.error));
  }
}

// ---- message edits (ABI 1.3) are what gets forwarded ---------------------------------------

TEST_CASE("forward: the message a plugin edited at data_headers_end/data_post is the one forwarded") {
  char tmpl[] = "/tmp/uvsmtpd-test.fwdedit.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string mail = tmpl;
  Options d;
  d.plugins = "verdict rcpt=OK\nqueue/maildir " + mail + "\n";
  Server down(d);
  REQUIRE(down.started());
  Options u = upstream(down.port());
  u.plugins = "verdict rcpt=OK\nedit_probe\nqueue/smtp-forward 127.0.0.1 " +
              std::to_string(down.port()) + " timeout 5\n";
  Server up(u);
  REQUIRE(up.started());
  std::string r = deliver(up.port(), {"bob@down.test"},
                          "From: <alice@up.test>\r\nTo: <bob@down.test>\r\nSubject: original\r\n"
                          "X-Remove: first\r\n\r\nold body\r\n");
  CHECK(starts(r, "250 2.0.0 Queued as "));
  REQUIRE(down.wait_log("delivered "));
  std::string stored;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(mail + "/down.test/bob/new", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    stored = slurp(it->path().string());  // the only file
  const std::string expected =
      "Authentication-Results: mx.test.invalid; none\r\n"
      "X-Test: 1\r\n"
      "From: <alice@up.test>\r\n"
      "X-Before-To: yes\r\n"
      "To: <bob@down.test>\r\n"
      "Subject: edited subject\r\n"
      "X-Folded: one\r\n two\r\n"
      "\r\n"
      "new body\r\n"
      "line 2\r\n";
  REQUIRE(stored.size() > expected.size());
  CHECK(stored.substr(stored.size() - expected.size()) == expected);
  // the two Received: fields (downstream's, then upstream's) come before the edited header
  size_t first = stored.find("Received: ");
  size_t second = stored.find("Received: ", first + 1);
  CHECK(first != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(second < stored.find("Authentication-Results: "));
  CHECK(!has(stored, "X-Remove"));
  std::filesystem::remove_all(mail, ec);
}
