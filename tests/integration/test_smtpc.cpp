// tests/integration/test_smtpc.cpp: the SMTP client library (server/smtpc) on a libuv loop of
// the test, against a real uvsmtpd (plain and STARTTLS) and scripted servers on 127.0.0.1.
#include <algorithm>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "fake_server.hpp"
#include "harness.hpp"
#include "smtpc.h"
#include "tls_fixture.hpp"

using namespace itest;

namespace {

// ---- a scripted server ----------------------------------------------------------------------

// What a scripted server answers, and what it saw (per connection: its command lines).
struct Script {
  std::string greeting = "220 fake.test ESMTP";
  bool lmtp = false;
  std::vector<std::string> ext = {"PIPELINING", "SIZE 10000000", "8BITMIME", "ENHANCEDSTATUSCODES"};
  std::string ehlo_reply;       // non-empty: the reply to EHLO/LHLO instead of 250 + ext
  bool starttls_break = false;  // 220 to STARTTLS, then bytes that are not TLS, then close
  bool mail_silent = false;     // never answer MAIL (or anything after it)
  std::string mail_reply = "250 2.1.0 Ok";
  bool close_after_mail = false;  // close after the reply to MAIL
  bool drop_after_rcpt = false;   // close when the first RCPT arrives
  std::function<std::string(const std::string &)> rcpt = [](const std::string &) {
    return std::string("250 2.1.5 Ok");
  };
  std::vector<std::string> lmtp_dot;  // LMTP: the replies after the dot, one per accepted recipient
  std::string data_reply;    // non-empty: the reply to DATA (a 354 even without a recipient)
  bool data_silent = false;  // never answer DATA

  std::mutex m;
  std::vector<std::vector<std::string>> conns;  // commands, per connection
  std::vector<std::string> messages;            // DATA bytes
  std::vector<std::string> batched;  // commands that came with more bytes behind them (pipelined)

  std::vector<std::string> commands(size_t i) {
    std::lock_guard<std::mutex> l(m);
    return i < conns.size() ? conns[i] : std::vector<std::string>{};
  }
  size_t nconns() {
    std::lock_guard<std::mutex> l(m);
    return conns.size();
  }
  size_t nmessages() {
    std::lock_guard<std::mutex> l(m);
    return messages.size();
  }
  void record(const std::string &l) {
    std::lock_guard<std::mutex> g(m);
    conns.back().push_back(l);
  }
  FakeServer::Handler handler() {
    return [this](Conn &c) { serve(c); };
  }

  void serve(Conn &c) {
    {
      std::lock_guard<std::mutex> g(m);
      conns.emplace_back();
    }
    c.send(greeting + "\r\n");
    if (greeting.rfind("220", 0) != 0) {
      std::string l;
      if (c.line(l, nullptr, 10)) record(l);
      c.send("221 bye\r\n");
      return;
    }
    int accepted = 0;
    std::string l;
    bool more = false;
    while (c.line(l, &more, 10)) {
      record(l);
      if (more) {
        std::lock_guard<std::mutex> g(m);
        batched.push_back(l);
      }
      std::string verb = l.substr(0, l.find(' '));
      for (auto &ch : verb) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
      if (verb == "EHLO" || verb == "LHLO") {
        if (!ehlo_reply.empty()) {
          c.send(ehlo_reply + "\r\n");
          continue;
        }
        std::string r = "250-fake.test\r\n";
        for (size_t i = 0; i < ext.size(); ++i)
          r += (i + 1 < ext.size() ? "250-" : "250 ") + ext[i] + "\r\n";
        if (ext.empty()) r = "250 fake.test\r\n";
        c.send(r);
      } else if (verb == "HELO") {
        c.send("250 fake.test\r\n");
      } else if (verb == "STARTTLS") {
        c.send("220 2.0.0 go ahead\r\n");
        if (starttls_break) {
          c.some(5);  // the ClientHello
          c.send("this is not TLS\r\n");
          return;
        }
      } else if (verb == "MAIL") {
        accepted = 0;
        if (mail_silent) {  // a server hung at MAIL: no reply to anything after it either
          c.drain(10);
          return;
        }
        c.send(mail_reply + "\r\n");
        if (close_after_mail) return;
      } else if (verb == "RCPT") {
        if (drop_after_rcpt) return;
        std::string r = rcpt(l);
        if (r[0] == '2') ++accepted;
        c.send(r + "\r\n");
      } else if (verb == "DATA") {
        if (data_silent) continue;
        if (!data_reply.empty() && data_reply.rfind("354", 0) != 0) {
          c.send(data_reply + "\r\n");
          continue;
        }
        if (accepted == 0 && data_reply.empty()) {
          c.send("554 5.5.1 no valid recipients\r\n");
          continue;
        }
        c.send("354 go\r\n");
        std::string raw;
        if (!c.data(raw, 10)) return;
        {
          std::lock_guard<std::mutex> g(m);
          messages.push_back(raw);
        }
        if (lmtp) {
          for (int i = 0; i < accepted; ++i)
            c.send(
                (static_cast<size_t>(i) < lmtp_dot.size() ? lmtp_dot[i] : "250 2.0.0 delivered") +
                "\r\n");
        } else {
          c.send("250 2.0.0 Ok: queued as F" + std::to_string(messages.size()) + "\r\n");
        }
      } else if (verb == "RSET") {
        accepted = 0;
        c.send("250 2.0.0 Ok\r\n");
      } else if (verb == "QUIT") {
        c.send("221 2.0.0 bye\r\n");
        return;
      } else {
        c.send("502 5.5.2 unknown\r\n");
      }
    }
  }
};

// ---- the client side: a loop of the test and the callbacks' results -------------------------

sockaddr_storage loopback(int port) {
  sockaddr_storage ss{};
  auto *a = reinterpret_cast<sockaddr_in *>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<uint16_t>(port));
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ss;
}

struct Ready {
  bool called = false;
  int calls = 0;
  smtpc_conn *c = nullptr;
  int status = 0;
  smtpc_reply why{};
};
void on_ready(smtpc_conn *c, int status, const smtpc_reply *why, void *ud) {
  auto *r = static_cast<Ready *>(ud);
  r->called = true;
  r->calls++;
  r->c = c;
  r->status = status;
  if (why) r->why = *why;
}

struct Sent {
  bool called = false;
  int status = 0;
  smtpc_reply final{};
  std::vector<smtpc_reply> rr;
};
void on_sent(smtpc_conn *, int status, const smtpc_reply *final, const smtpc_reply *rr, int n,
             void *ud) {
  auto *s = static_cast<Sent *>(ud);
  s->called = true;
  s->status = status;
  s->final = *final;
  s->rr.assign(rr, rr + n);
}

std::string reply_str(const smtpc_reply &r) {
  return std::to_string(r.code) + " " + r.enh + " " + r.text;
}

// A message in a temp file, opened read-only.
struct MsgFile {
  std::string path;
  int fd = -1;
  int64_t size = 0;
  explicit MsgFile(const std::string &body) {
    char tmpl[] = "/tmp/uvsmtpd-smtpc.XXXXXX";
    int w = mkstemp(tmpl);
    path = tmpl;
    REQUIRE(w >= 0);
    REQUIRE(write(w, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
    close(w);
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    size = static_cast<int64_t>(body.size());
  }
  ~MsgFile() {
    if (fd >= 0) close(fd);
    unlink(path.c_str());
  }
};

const std::string kBody =
    "Subject: smtpc test\r\nFrom: a@client.test\r\n\r\nhello\r\n.leading dot\r\n";

class SmtpcClient {
 public:
  SmtpcClient() {
    uv_loop_init(&loop_);
    o.loop = &loop_;
    o.helo = "client.test";
    o.connect_ms = o.greeting_ms = o.helo_ms = o.mail_ms = o.rcpt_ms = o.data_ms = o.block_ms =
        o.dot_ms = 5000;
  }
  ~SmtpcClient() {
    if (ready.c && !closed_) smtpc_close(ready.c);
    // every handle and request calls back, then the loop is empty
    double deadline = now() + 10;
    while (uv_loop_alive(&loop_) && now() < deadline) spin();
    CHECK_FALSE(uv_loop_alive(&loop_));
    CHECK(uv_loop_close(&loop_) == 0);
  }
  void spin() {
    uv_run(&loop_, UV_RUN_NOWAIT);
    usleep(500);
  }
  bool run_until(const std::function<bool()> &done, double timeout = 10) {
    double deadline = now() + timeout;
    while (!done()) {
      if (now() > deadline) return false;
      spin();
    }
    return true;
  }
  // Connects to the ports in order; waits for the ready callback.
  bool connect(const std::vector<int> &ports) {
    std::vector<sockaddr_storage> a;
    for (int p : ports) a.push_back(loopback(p));
    return connect_addrs(a);
  }
  bool connect_addrs(const std::vector<sockaddr_storage> &a) {
    REQUIRE(smtpc_connect(&o, a.data(), static_cast<int>(a.size()), on_ready, &ready, &handle) ==
            0);
    REQUIRE(handle != nullptr);
    REQUIRE(run_until([&] { return ready.called; }));
    if (!ready.c) handle = nullptr;  // gone after a failure callback
    return ready.c != nullptr;
  }
  Sent send(const std::vector<std::string> &rcpts, const std::string &body, unsigned flags = 0,
            const std::string &from = "a@client.test") {
    MsgFile m(body);
    std::vector<const char *> r;
    for (auto &x : rcpts) r.push_back(x.c_str());
    Sent s;
    int rc = smtpc_send(ready.c, from.c_str(), r.data(), static_cast<int>(r.size()), m.fd, m.size,
                        flags, on_sent, &s);
    REQUIRE(rc == 0);
    CHECK_FALSE(s.called);  // never from inside smtpc_send
    REQUIRE(run_until([&] { return s.called; }, 20));
    return s;
  }
  // The same from memory (smtpc_send_mem).
  Sent send_mem(const std::vector<std::string> &rcpts, const std::string &body) {
    std::vector<const char *> r;
    for (auto &x : rcpts) r.push_back(x.c_str());
    Sent s;
    int rc = smtpc_send_mem(ready.c, "a@client.test", r.data(), static_cast<int>(r.size()),
                            body.data(), body.size(), 0, on_sent, &s);
    REQUIRE(rc == 0);
    CHECK_FALSE(s.called);
    REQUIRE(run_until([&] { return s.called; }, 20));
    return s;
  }
  void close() {
    smtpc_close(ready.c);
    closed_ = true;
  }
  smtpc_opts o{};
  Ready ready;
  smtpc_conn *handle = nullptr;

 private:
  uv_loop_t loop_;
  bool closed_ = false;
};

// A finished connection takes no second transaction: smtpc_send() refuses it at once.
bool no_second_send(SmtpcClient &c) {
  MsgFile m(kBody);
  const char *rc[] = {"b@server.test"};
  Sent s2;
  return smtpc_send(c.ready.c, "a@client.test", rc, 1, m.fd, m.size, 0, on_sent, &s2) == -ENOTCONN;
}

bool has_cmd(const std::vector<std::string> &cmds, const std::string &prefix) {
  for (auto &c : cmds)
    if (c.rfind(prefix, 0) == 0) return true;
  return false;
}

SSL_CTX *client_ctx(bool verify) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx);
  if (verify) {
    REQUIRE(SSL_CTX_load_verify_locations(ctx, tls::pki().ca.c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

}  // namespace

// ---- a real uvsmtpd ---------------------------------------------------------------------------

TEST_CASE("smtpc: a real uvsmtpd: EHLO extensions, one transaction, per-recipient 250") {
  Options opt;
  opt.plugins = "verdict rcpt=OK queue=OK trace=1\n";
  Server s(opt);
  REQUIRE(s.started());
  SmtpcClient c;
  REQUIRE(c.connect({s.port()}));
  unsigned ext = smtpc_ext(c.ready.c);
  CHECK((ext & SMTPC_EXT_PIPELINING) != 0);
  CHECK((ext & SMTPC_EXT_8BITMIME) != 0);
  CHECK((ext & SMTPC_EXT_SIZE) != 0);
  CHECK(smtpc_tls(c.ready.c) == nullptr);
  CHECK(std::string(smtpc_peer(c.ready.c)) == "127.0.0.1:" + std::to_string(s.port()));
  Sent r = c.send({"b@server.test", "c@server.test"}, kBody);
  CHECK(r.status == 0);
  CHECK(r.final.code == 250);
  CHECK(r.final.stage == SMTPC_S_DOT);
  REQUIRE(r.rr.size() == 2);
  CHECK(r.rr[0].code == 250);
  CHECK(r.rr[1].stage == SMTPC_S_DOT);
  CHECK(s.wait_log(": accepted message-id="));
  CHECK(s.wait_log("trace verdict mail arg=FROM:<a@client.test> SIZE="));
  c.close();
  CHECK(s.wait_log("trace verdict quit"));  // QUIT on close
}

TEST_CASE("smtpc: STARTTLS with a real uvsmtpd: TLS, EHLO again, the message goes over TLS") {
  const auto &pki = tls::pki();
  Server s(tls::tls_opts(tls::tls_toml({{.mode = "starttls"}}, pki.leaf.cert, pki.leaf.key),
                         "verdict rcpt=OK queue=OK trace=1\n"));
  auto ports = tls::start_ports(s, 1);
  SSL_CTX *ctx = client_ctx(true);
  {
    SmtpcClient c;
    c.o.ssl_ctx = ctx;
    c.o.tls_servername = "localhost";
    SUBCASE("required (encrypt)") {
      c.o.starttls = 2;
    }
    SUBCASE("opportunistic (may)") {
      c.o.starttls = 1;
    }
    REQUIRE(c.connect({ports[0]}));
    const char *t = smtpc_tls(c.ready.c);
    REQUIRE(t != nullptr);
    CHECK(std::string(t).find("TLS") != std::string::npos);
    CHECK((smtpc_ext(c.ready.c) & SMTPC_EXT_STARTTLS) ==
          0);  // the EHLO after TLS no longer offers it
    Sent r = c.send({"b@server.test"}, kBody);
    CHECK(r.status == 0);
    CHECK(r.final.code == 250);
    CHECK(s.wait_log(": accepted message-id="));
    CHECK(tls::log_line_with(s, {"TLS established with 127.0.0.1"}));
    // a second transaction on the TLS connection, 2 MB: many 64 KiB blocks through TLS
    std::string big = "Subject: big\r\n\r\n";
    while (big.size() < 2 * 1024 * 1024) big += std::string(76, 'x') + "\r\n.dot line\r\n";
    Sent r2 = c.send({"b@server.test"}, big);
    CHECK(r2.status == 0);
    CHECK(r2.final.code == 250);
    CHECK(s.wait_log(": accepted message-id=", 10, 2));
  }
  SSL_CTX_free(ctx);
}

TEST_CASE(
    "smtpc: STARTTLS required with a verifying SSL_CTX: a certificate for another name fails") {
  const auto &pki = tls::pki();
  Server s(tls::tls_opts(tls::tls_toml({{.mode = "starttls"}}, pki.leaf.cert, pki.leaf.key),
                         "verdict rcpt=OK queue=OK trace=1\n"));
  auto ports = tls::start_ports(s, 1);
  SSL_CTX *ctx = client_ctx(true);
  {
    SmtpcClient c;
    c.o.ssl_ctx = ctx;
    c.o.tls_servername = "mx.elsewhere.test";
    c.o.starttls = 2;
    CHECK_FALSE(c.connect({ports[0]}));
    CHECK(c.ready.why.origin == SMTPC_E_TLS);
    CHECK(std::string(c.ready.why.text).find("certificate verification failed") !=
          std::string::npos);
    CHECK(s.count_log("trace verdict mail") == 0);
  }
  SSL_CTX_free(ctx);
}

TEST_CASE("smtpc: STARTTLS required: a server without it is a failure, no MAIL sent") {
  Script sc;
  FakeServer f(sc.handler());
  SSL_CTX *ctx = client_ctx(false);
  {
    SmtpcClient c;
    c.o.ssl_ctx = ctx;
    c.o.starttls = 2;
    CHECK_FALSE(c.connect({f.port()}));
    CHECK(c.ready.status < 0);
    CHECK(c.ready.why.origin == SMTPC_E_TLS);
    CHECK(std::string(c.ready.why.enh) == "4.7.4");
    CHECK(std::string(c.ready.why.text).find("TLS is required") != std::string::npos);
    CHECK_FALSE(has_cmd(sc.commands(0), "MAIL"));
  }
  SSL_CTX_free(ctx);
}

TEST_CASE("smtpc: a failed STARTTLS handshake") {
  Script sc;
  sc.ext.push_back("STARTTLS");
  sc.starttls_break = true;
  FakeServer f(sc.handler());
  SSL_CTX *ctx = client_ctx(false);
  SUBCASE("opportunistic: the same address again in plaintext") {
    SmtpcClient c;
    c.o.ssl_ctx = ctx;
    c.o.starttls = 1;
    REQUIRE(c.connect({f.port()}));
    CHECK(smtpc_tls(c.ready.c) == nullptr);
    CHECK(sc.nconns() == 2);
    CHECK(has_cmd(sc.commands(0), "STARTTLS"));
    CHECK_FALSE(has_cmd(sc.commands(1), "STARTTLS"));
    Sent r = c.send({"b@server.test"}, kBody);
    CHECK(r.final.code == 250);
    CHECK(sc.nmessages() == 1);
  }
  SUBCASE("required: a failure") {
    SmtpcClient c;
    c.o.ssl_ctx = ctx;
    c.o.starttls = 2;
    CHECK_FALSE(c.connect({f.port()}));
    CHECK(c.ready.why.origin == SMTPC_E_TLS);
    CHECK(std::string(c.ready.why.text).find("TLS handshake failed") != std::string::npos);
    CHECK(sc.nconns() == 1);
  }
  SSL_CTX_free(ctx);
}

// ---- the addresses in order -------------------------------------------------------------------

TEST_CASE("smtpc: addresses tried in order: refused, 4xx greeting, then the one that works") {
  Script busy;
  busy.greeting = "421 4.3.2 busy";
  FakeServer b(busy.handler());
  Script good;
  FakeServer g(good.handler());
  int dead = free_port(SOCK_STREAM);  // nothing listens there
  SmtpcClient c;
  REQUIRE(c.connect({dead, b.port(), g.port()}));
  CHECK(c.ready.calls == 1);
  CHECK(std::string(smtpc_peer(c.ready.c)) == "127.0.0.1:" + std::to_string(g.port()));
  CHECK(busy.nconns() == 1);
  Sent r = c.send({"b@server.test"}, kBody);
  CHECK(r.final.code == 250);
}

TEST_CASE("smtpc: every address failed: the last failure") {
  Script refuse;
  refuse.greeting = "554 5.7.1 go away";
  FakeServer f(refuse.handler());
  int dead = free_port(SOCK_STREAM);
  SUBCASE("a 554 greeting last: its code and text") {
    SmtpcClient c;
    CHECK_FALSE(c.connect({dead, f.port()}));
    CHECK(c.ready.calls == 1);
    CHECK(c.ready.status == 554);
    CHECK(c.ready.why.origin == SMTPC_SERVER);
    CHECK(c.ready.why.stage == SMTPC_S_GREETING);
    CHECK(reply_str(c.ready.why) == "554 5.7.1 go away");
    CHECK(std::string(c.ready.why.peer) == "127.0.0.1:" + std::to_string(f.port()));
  }
  SUBCASE("connection refused last: -errno, 'connection refused', named host in the peer") {
    SmtpcClient c;
    const char *names[] = {"mx1.test", "mx2.test"};
    c.o.host_names = names;
    CHECK_FALSE(c.connect({f.port(), dead}));
    CHECK(c.ready.status == -ECONNREFUSED);
    CHECK(c.ready.why.origin == SMTPC_E_CONNECT);
    CHECK(std::string(c.ready.why.text) == "connection refused");
    CHECK(std::string(c.ready.why.peer) == "mx2.test[127.0.0.1]:" + std::to_string(dead));
  }
}

TEST_CASE("smtpc: EHLO refused falls back to HELO (no extensions)") {
  Script sc;
  sc.ehlo_reply = "502 5.5.2 no ESMTP here";
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  CHECK(smtpc_ext(c.ready.c) == 0);
  Sent r = c.send({"b@server.test"}, kBody, SMTPC_F_8BIT);
  CHECK(r.final.code == 250);
  auto cmds = sc.commands(0);
  CHECK(has_cmd(cmds, "EHLO client.test"));
  CHECK(has_cmd(cmds, "HELO client.test"));
  CHECK(has_cmd(cmds, "MAIL FROM:<a@client.test>"));
  CHECK_FALSE(has_cmd(cmds, "MAIL FROM:<a@client.test> "));  // no SIZE=, no BODY=
}

// ---- the client's own checks --------------------------------------------------------------------

TEST_CASE("smtpc: a message over the server's SIZE limit: 552 5.3.4 for each recipient, no MAIL") {
  Script sc;
  sc.ext = {"PIPELINING", "SIZE 1000"};
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  CHECK(smtpc_size_limit(c.ready.c) == 1000);
  Sent r = c.send({"b@server.test", "c@server.test"}, std::string(5000, 'x') + "\r\n");
  CHECK(r.status == 0);
  REQUIRE(r.rr.size() == 2);
  for (auto &x : r.rr) {
    CHECK(x.code == 552);
    CHECK(std::string(x.enh) == "5.3.4");
    CHECK(x.origin == SMTPC_E_POLICY);
  }
  CHECK_FALSE(has_cmd(sc.commands(0), "MAIL"));
  Sent ok = c.send({"b@server.test"}, kBody);  // the connection is still usable
  CHECK(ok.final.code == 250);
  CHECK(has_cmd(sc.commands(0), "MAIL FROM:<a@client.test> SIZE=" + std::to_string(kBody.size())));
}

TEST_CASE("smtpc: 8-bit messages and 8BITMIME") {
  Script sc;
  SUBCASE("offered: BODY=8BITMIME") {
    FakeServer f(sc.handler());
    SmtpcClient c;
    REQUIRE(c.connect({f.port()}));
    const std::string m8 = "Subject: caf\xc3\xa9\r\n\r\nx\r\n";
    Sent r = c.send({"b@server.test"}, m8, SMTPC_F_8BIT | SMTPC_F_8BIT_REFUSE);
    CHECK(r.final.code == 250);
    CHECK(has_cmd(sc.commands(0), "MAIL FROM:<a@client.test> SIZE=" + std::to_string(m8.size()) +
                                      " BODY=8BITMIME"));
  }
  SUBCASE("not offered, refuse: 554 5.6.3, no MAIL") {
    sc.ext = {"PIPELINING"};
    FakeServer f(sc.handler());
    SmtpcClient c;
    REQUIRE(c.connect({f.port()}));
    Sent r = c.send({"b@server.test"}, "caf\xc3\xa9\r\n", SMTPC_F_8BIT | SMTPC_F_8BIT_REFUSE);
    CHECK(reply_str(r.rr[0]).rfind("554 5.6.3 ", 0) == 0);
    CHECK(r.rr[0].origin == SMTPC_E_POLICY);
    CHECK_FALSE(has_cmd(sc.commands(0), "MAIL"));
  }
  SUBCASE("not offered, send as is: no BODY=") {
    sc.ext = {"PIPELINING"};
    FakeServer f(sc.handler());
    SmtpcClient c;
    REQUIRE(c.connect({f.port()}));
    Sent r = c.send({"b@server.test"}, "caf\xc3\xa9\r\n", SMTPC_F_8BIT);
    CHECK(r.final.code == 250);
    CHECK(has_cmd(sc.commands(0), "MAIL FROM:<a@client.test>"));
    CHECK_FALSE(has_cmd(sc.commands(0), "MAIL FROM:<a@client.test> BODY"));
  }
  SUBCASE("SMTPUTF8 needed, not offered: 553 5.6.7, no MAIL") {
    FakeServer f(sc.handler());
    SmtpcClient c;
    REQUIRE(c.connect({f.port()}));
    Sent r = c.send({"b@server.test"}, kBody, SMTPC_F_SMTPUTF8, "j\xc3\xb6@client.test");
    CHECK(reply_str(r.final).rfind("553 5.6.7 ", 0) == 0);
    CHECK_FALSE(has_cmd(sc.commands(0), "MAIL"));
  }
}

// ---- failures during a transaction
// ----------------------------------------------------------------

TEST_CASE("smtpc: a server that drops the connection after RCPT") {
  Script sc;
  sc.drop_after_rcpt = true;
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test"}, kBody);
  CHECK(r.status < 0);
  CHECK(r.final.origin == SMTPC_E_CLOSED);
  CHECK(r.final.code == 451);
  CHECK(std::string(r.final.text) == "closed the connection during MAIL FROM/RCPT TO");
  REQUIRE(r.rr.size() == 1);
  CHECK(r.rr[0].origin == SMTPC_E_CLOSED);
  CHECK(no_second_send(c));  // the connection is dead: no second transaction
}

TEST_CASE("smtpc: 421 to MAIL: every recipient gets the 421, the connection is finished") {
  Script sc;
  sc.mail_reply = "421 4.7.0 too many connections";
  sc.close_after_mail = true;
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test", "c@server.test"}, kBody);
  CHECK(r.status == 0);
  REQUIRE(r.rr.size() == 2);
  CHECK(reply_str(r.rr[0]) == "421 4.7.0 too many connections");
  CHECK(reply_str(r.rr[1]) == "421 4.7.0 too many connections");
  CHECK(r.rr[1].origin == SMTPC_SERVER);
  CHECK(no_second_send(c));
}

TEST_CASE("smtpc: a slow server times out (RFC 5321 4.5.3.2 timeouts, small here)") {
  Script sc;
  // One transaction with the given timeouts against sc; how long it took.
  auto timed = [&sc](unsigned mail_ms, unsigned data_ms, double &took) {
    FakeServer f(sc.handler());
    SmtpcClient c;
    c.o.mail_ms = c.o.rcpt_ms = mail_ms;
    c.o.data_ms = data_ms;
    REQUIRE(c.connect({f.port()}));
    double t0 = now();
    Sent r = c.send({"b@server.test"}, kBody);
    took = now() - t0;
    CHECK(r.status == -ETIMEDOUT);
    CHECK(r.final.origin == SMTPC_E_TIMEOUT);
    return r;
  };
  double took = 0;
  SUBCASE("no reply to MAIL") {
    sc.mail_silent = true;
    Sent r = timed(300, 300, took);
    CHECK(std::string(r.final.text) == "timed out waiting for the reply to MAIL FROM and RCPT TO");
    CHECK(took >= 0.25);
    CHECK(took < 2.0);
  }
  SUBCASE("no reply to a pipelined DATA: DATA's timeout, not RCPT's") {
    sc.data_silent = true;
    Sent r = timed(10000, 300, took);
    CHECK(std::string(r.final.text) == "timed out waiting for the reply to DATA");
    CHECK(r.rr[0].stage == SMTPC_S_DATA);
    CHECK(took >= 0.25);
    CHECK(took < 5.0);
  }
  SUBCASE("no greeting: the attempt fails, the next address is tried") {
    FakeServer mute(sc.handler(), false, false);
    Script good;
    FakeServer g(good.handler());
    SmtpcClient c;
    c.o.greeting_ms = 300;
    double t0 = now();
    REQUIRE(c.connect({mute.port(), g.port()}));
    CHECK(now() - t0 >= 0.25);
    CHECK(std::string(smtpc_peer(c.ready.c)) == "127.0.0.1:" + std::to_string(g.port()));
  }
}

TEST_CASE("smtpc: closing before the session is ready: no callback") {
  Script sc;
  FakeServer mute(sc.handler(), false, false);
  SmtpcClient c;
  const sockaddr_storage a = loopback(mute.port());
  REQUIRE(smtpc_connect(&c.o, &a, 1, on_ready, &c.ready, &c.handle) == 0);
  c.run_until([] { return false; }, 0.2);
  smtpc_close(c.handle);
  c.run_until([] { return false; }, 0.3);
  CHECK_FALSE(c.ready.called);
}

// ---- connection reuse and per-recipient results -----------------------------------------------

TEST_CASE(
    "smtpc: connection reuse: 3 transactions on one connection, RSET after an unfinished one") {
  Script sc;
  sc.rcpt = [](const std::string &l) {
    return l.find("nobody@") != std::string::npos ? std::string("550 5.1.1 no such user")
                                                  : std::string("250 2.1.5 Ok");
  };
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent a = c.send({"b@server.test"}, kBody);
  CHECK(a.final.code == 250);
  Sent b = c.send({"nobody@server.test"}, kBody);  // refused: no DATA, the transaction stays open
  CHECK(b.status == 0);
  CHECK(reply_str(b.rr[0]) == "550 5.1.1 no such user");
  CHECK(b.rr[0].stage == SMTPC_S_RCPT);
  CHECK(b.final.stage == SMTPC_S_RCPT);
  Sent d =
      c.send({"b@server.test", "nobody@server.test"}, kBody);  // one of two: DATA for the other
  CHECK(d.final.code == 250);
  CHECK(d.rr[0].code == 250);
  CHECK(d.rr[0].stage == SMTPC_S_DOT);
  CHECK(d.rr[1].code == 550);
  c.close();
  CHECK(c.run_until([&] { return has_cmd(sc.commands(0), "QUIT"); }));
  CHECK(f.connections() == 1);
  CHECK(sc.nmessages() == 2);
  auto cmds = sc.commands(0);
  int mails = 0, rsets = 0;
  for (auto &x : cmds) mails += x.rfind("MAIL", 0) == 0, rsets += x == "RSET";
  CHECK(mails == 3);
  CHECK(rsets == 1);
}

TEST_CASE("smtpc: PIPELINING: MAIL, RCPT and DATA in one group, one round trip less") {
  Script sc;
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test", "c@server.test"}, kBody);
  CHECK(r.final.code == 250);
  CHECK(r.rr[1].stage == SMTPC_S_DOT);
  REQUIRE(sc.nmessages() == 1);
  // MAIL and both RCPTs had DATA behind them when the server read them: one write, no wait.
  std::lock_guard<std::mutex> g(sc.m);
  CHECK(sc.batched.size() == 3);
  CHECK(sc.batched[0].rfind("MAIL FROM:<", 0) == 0);
  CHECK(sc.batched[2] == "RCPT TO:<c@server.test>");
}

TEST_CASE(
    "smtpc: PIPELINING: every recipient refused: DATA's 554 ends it, the RCPT replies count") {
  Script sc;
  sc.rcpt = [](const std::string &) { return std::string("550 5.1.1 no such user"); };
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test"}, kBody);
  CHECK(r.status == 0);
  CHECK(reply_str(r.rr[0]) == "550 5.1.1 no such user");
  CHECK(r.rr[0].stage == SMTPC_S_RCPT);
  CHECK(sc.nmessages() == 0);
  {
    std::lock_guard<std::mutex> g(sc.m);  // DATA came behind the RCPT, in the same group
    CHECK(std::find(sc.batched.begin(), sc.batched.end(), "RCPT TO:<b@server.test>") !=
          sc.batched.end());
  }
  sc.rcpt = [](const std::string &) { return std::string("250 2.1.5 Ok"); };
  Sent r2 = c.send({"b@server.test"}, kBody);  // the connection goes on (RSET first)
  CHECK(r2.final.code == 250);
  CHECK(sc.nmessages() == 1);
  CHECK(has_cmd(sc.commands(0), "RSET"));
}

TEST_CASE(
    "smtpc: PIPELINING: a 354 although no recipient was accepted: no message, connection dropped") {
  Script sc;
  sc.rcpt = [](const std::string &) { return std::string("550 5.1.1 no such user"); };
  sc.data_reply = "354 go";  // a broken server: it would now read a message
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test"}, kBody);
  CHECK(r.status < 0);
  CHECK(reply_str(r.rr[0]) == "550 5.1.1 no such user");  // its own reply stays
  CHECK(sc.nmessages() == 0);                             // nothing was sent as a message
  CHECK(no_second_send(c));
}

TEST_CASE("smtpc: PIPELINING: a 4xx to MAIL stays temporary for every recipient (not the 503s)") {
  Script sc;
  sc.mail_reply = "451 4.3.0 try again later";
  sc.rcpt = [](const std::string &) { return std::string("503 5.5.1 need MAIL command"); };
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test", "c@server.test"}, kBody);
  CHECK(r.status == 0);
  CHECK(reply_str(r.final) == "451 4.3.0 try again later");
  CHECK(reply_str(r.rr[0]) == "451 4.3.0 try again later");
  CHECK(reply_str(r.rr[1]) == "451 4.3.0 try again later");
  CHECK(r.rr[1].stage == SMTPC_S_MAIL);
  CHECK(sc.nmessages() == 0);
}

TEST_CASE("smtpc: PIPELINING: DATA refused after accepted recipients: its reply for each") {
  for (const char *reply : {"451 4.3.0 try again later", "421 4.3.2 shutting down"}) {
    CAPTURE(reply);
    Script sc;
    sc.data_reply = reply;
    FakeServer f(sc.handler());
    SmtpcClient c;
    REQUIRE(c.connect({f.port()}));
    Sent r = c.send({"b@server.test", "c@server.test"}, kBody);
    CHECK(r.status == 0);
    CHECK(reply_str(r.rr[0]) == reply);
    CHECK(reply_str(r.rr[1]) == reply);
    CHECK(r.rr[0].stage == SMTPC_S_DATA);
    CHECK(sc.nmessages() == 0);
    if (reply[0] == '4' && reply[1] == '2') {
      CHECK(no_second_send(c));  // 421: the server closes the session
    } else {
      sc.data_reply.clear();
      CHECK(c.send({"b@server.test"}, kBody).final.code == 250);  // RSET, then the next one
    }
  }
}

TEST_CASE("smtpc: a message from memory goes out exactly as the same message from a file") {
  std::string big;  // over three of the client's 64 KiB chunks, dots and stray line ends
  for (int i = 0; big.size() < 200000; ++i)
    big += (i % 7 == 0 ? ".dot line " : "line ") + std::to_string(i) + (i % 11 ? "\r\n" : "\n");
  for (const std::string &body :
       {std::string(kBody), big, std::string(), std::string("no final line end"),
        std::string(".\r\n..\r\nend\r")}) {
    CAPTURE(body.size());
    Script sc;
    FakeServer f(sc.handler());
    SmtpcClient c;
    REQUIRE(c.connect({f.port()}));
    Sent a = c.send({"b@server.test"}, body);
    Sent b = c.send_mem({"b@server.test"}, body);
    CHECK(a.final.code == 250);
    CHECK(b.final.code == 250);
    CHECK(b.rr[0].stage == SMTPC_S_DOT);
    REQUIRE(sc.nmessages() == 2);
    std::lock_guard<std::mutex> g(sc.m);
    CHECK(sc.messages[0] == sc.messages[1]);
    CHECK(sc.messages[1].size() >= body.size());
  }
}

TEST_CASE("smtpc: all-or-nothing: no DATA when one recipient is refused") {
  Script sc;
  sc.rcpt = [](const std::string &l) {
    return l.find("nobody@") != std::string::npos ? std::string("550 5.1.1 no such user")
                                                  : std::string("250 2.1.5 Ok");
  };
  FakeServer f(sc.handler());
  SmtpcClient c;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test", "nobody@server.test"}, kBody, SMTPC_F_ALL_OR_NOTHING);
  CHECK(r.final.code == 550);
  CHECK(r.rr[0].code == 250);
  CHECK(r.rr[0].stage == SMTPC_S_RCPT);
  CHECK_FALSE(has_cmd(sc.commands(0), "DATA"));
}

TEST_CASE("smtpc: LMTP: LHLO, one reply per accepted recipient after the dot") {
  Script sc;
  sc.lmtp = true;
  sc.rcpt = [](const std::string &l) {
    return l.find("nobody@") != std::string::npos ? std::string("550 5.1.1 no such user")
                                                  : std::string("250 2.1.5 Ok");
  };
  sc.lmtp_dot = {"250 2.0.0 <b@server.test> delivered", "452 4.2.2 <d@server.test> over quota"};
  FakeServer f(sc.handler());
  SmtpcClient c;
  c.o.lmtp = 1;
  REQUIRE(c.connect({f.port()}));
  Sent r = c.send({"b@server.test", "nobody@server.test", "d@server.test"}, kBody);
  CHECK(r.status == 0);
  REQUIRE(r.rr.size() == 3);
  CHECK(reply_str(r.rr[0]) == "250 2.0.0 <b@server.test> delivered");
  CHECK(r.rr[0].stage == SMTPC_S_DOT);
  CHECK(reply_str(r.rr[1]) == "550 5.1.1 no such user");
  CHECK(r.rr[1].stage == SMTPC_S_RCPT);
  CHECK(reply_str(r.rr[2]) == "452 4.2.2 <d@server.test> over quota");
  CHECK(r.final.code == 452);
  CHECK(has_cmd(sc.commands(0), "LHLO client.test"));
}

TEST_CASE("smtpc: LMTP over a unix socket") {
  tls::TempDir dir;
  std::string path = dir.path + "/lmtp.sock";
  Script sc;
  sc.lmtp = true;
  FakeServer f(sc.handler(), path);
  SmtpcClient c;
  c.o.lmtp = 1;
  sockaddr_storage ss{};
  auto *un = reinterpret_cast<sockaddr_un *>(&ss);
  un->sun_family = AF_UNIX;
  snprintf(un->sun_path, sizeof un->sun_path, "%s", path.c_str());
  REQUIRE(c.connect_addrs({ss}));
  CHECK(std::string(smtpc_peer(c.ready.c)) == "unix:" + path);
  Sent r = c.send({"b@server.test", "c@server.test"}, kBody);
  CHECK(r.final.code == 250);
  CHECK(r.rr[1].code == 250);
  CHECK(sc.nmessages() == 1);
}
