// tests/unit/test_session.cpp: the SMTP session's state machine without sockets, over a
// FakeConnection: command sequences with their exact replies, pipelining groups and the RFC 2920
// synchronisation check, RSET and a repeated EHLO resetting the transaction, the command
// deadline, EOF, what STARTTLS is while there is no TLS, and STARTTLS / implicit TLS with a
// real TlsContext (test_certs.hpp) and a handshake the test ends itself (FakeConnection).
#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <utility>
#include <uv.h>

#include "config/generation.hpp"
#include "fake_connection.hpp"
#include "hooks/services.hpp"
#include "log/log.hpp"
#include "log/sink.hpp"
#include "plugin_host/host.hpp"
#include "session/session.hpp"
#include "test_certs.hpp"
#include "tls/context.hpp"
#include "tmp_dir.hpp"

using namespace uvs;

namespace {

using Fn = std::function<uvs_verdict(uvs_call *)>;
uvs_verdict thunk(uvs_call *c, void *ud) {
  return (*static_cast<Fn *>(ud))(c);
}

struct SessionFixture {
  unit::TmpDir spool;
  uv_loop_t loop;
  std::unique_ptr<LoopServices> svc;
  std::shared_ptr<Generation> gen;
  std::vector<std::unique_ptr<Fn>> fns;
  SessionContext ctx;
  config::Listen listener;  // tls = "starttls", require_tls = false, sync_check (see start())
  test::FakeConnection *conn = nullptr;
  std::unique_ptr<Session> s;
  bool closed = false;
  const uvs_api *api = plugin_api();
  int saved_level = log::level();
  bool accept_tls = false;  // the connection's start_tls() succeeds (set before start())

  SessionFixture() {
    log::set_level(log::warning);  // no connect/disconnect lines in the test output
    uv_loop_init(&loop);
    svc = std::make_unique<LoopServices>(&loop, 5.0);
    gen = std::make_shared<Generation>();
    gen->settings = config::default_settings();
    gen->settings.hostname = "mx.test";
    gen->settings.reverse_lookup = false;
    gen->settings.spool_dir = spool.dir;
    gen->settings.max_message_size = 10240000;
    gen->plugins = std::make_shared<PluginSet>();
    ctx.loop = &loop;
    ctx.services = svc.get();
    ctx.resolver = nullptr;
    ctx.closed = [this](Session *) { closed = true; };
    add(UVS_HOOK_RCPT, [](uvs_call *) { return UVS_OK; });  // a relay decision for every rcpt
  }
  ~SessionFixture() {
    s.reset();
    gen.reset();
    svc.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    log::set_level(saved_level);
  }
  // An in-process plugin handler for a hook (before start()).
  void add(uvs_hook hook, Fn fn) {
    uvs_plugin *p = add_builtin(*gen->plugins, "test" + std::to_string(fns.size()));
    fns.push_back(std::make_unique<Fn>(std::move(fn)));
    gen->plugins->table.by_hook[hook].push_back(Handler{p, thunk, fns.back().get()});
  }
  // Accepts the fake connection and greets; returns the greeting.
  std::string start(bool sync_check = true) {
    auto c = std::make_unique<test::FakeConnection>();
    conn = c.get();
    conn->accept_tls = accept_tls;
    listener.sync_check = sync_check;
    s = std::make_unique<Session>(ctx, gen, std::move(c), listener, 1);
    s->start();
    run();
    return conn->take_output();
  }
  // Lets the loop and the connection deliver until nothing moves.
  void run() {
    for (int i = 0; i < 50; ++i) {
      bool moved = conn->pump();
      uv_run(&loop, UV_RUN_NOWAIT);
      if (!moved && i > 2) break;
    }
  }
  // The client sends `bytes` (one read); returns the replies written meanwhile.
  std::string say(const std::string &bytes) {
    conn->inject(bytes);
    run();
    return conn->take_output();
  }
};

const std::string kEhloReply =
    "250-mx.test Hello [192.0.2.1]\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n";

}  // namespace

TEST_CASE("session: EHLO, MAIL, RCPT, DATA, body, QUIT with their replies") {
  SessionFixture f;
  f.add(UVS_HOOK_QUEUE, [](uvs_call *) { return UVS_OK; });
  CHECK(f.start() == "220 mx.test ESMTP uvsmtpd\r\n");
  CHECK(f.say("EHLO client.test\r\n") == kEhloReply);
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
  CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "250 2.1.5 <b@example.test>, recipient ok\r\n");
  CHECK(f.say("DATA\r\n") == "354 go ahead\r\n");
  CHECK(f.s->queue_id() != nullptr);
  std::string id = *f.s->queue_id();
  CHECK(f.say("Subject: hi\r\n\r\nbody\r\n").empty());
  CHECK(f.say(".\r\n") == "250 2.0.0 Queued as " + id + "\r\n");
  CHECK(f.s->queue_id() == nullptr);  // the transaction is over
  CHECK(f.say("QUIT\r\n") == "221 2.0.0 mx.test Service closing transmission channel\r\n");
  CHECK(f.conn->graceful());
}

TEST_CASE("session: no queue plugin: 451 at the end of DATA, and the session goes on") {
  SessionFixture f;
  f.start();
  f.say("EHLO c\r\n");
  f.say("MAIL FROM:<>\r\n");
  f.say("RCPT TO:<postmaster>\r\n");
  CHECK(f.say("DATA\r\n") == "354 go ahead\r\n");
  CHECK(f.say("x\r\n.\r\n") == "451 4.3.0 Queuing declined or disabled; try again later\r\n");
  CHECK(f.say("NOOP\r\n") == "250 2.0.0 OK\r\n");
}

TEST_CASE("session: commands out of order get 503 5.5.1 from the command table") {
  SessionFixture f;
  f.start();
  // each input, in this order, and the whole reply it gets
  const std::pair<std::string, std::string> steps[] = {
      {"MAIL FROM:<a@example.test>\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n"},
      {"EHLO c\r\n", kEhloReply},
      {"RCPT TO:<b@example.test>\r\n", "503 5.5.1 Use MAIL before RCPT\r\n"},
      {"DATA\r\n", "503 5.5.1 MAIL first\r\n"},
      {"MAIL FROM:<a@example.test>\r\n", "250 2.1.0 <a@example.test>, sender OK\r\n"},
      {"MAIL FROM:<a@example.test>\r\n", "503 5.5.1 Error: nested MAIL command\r\n"},
      {"DATA\r\n", "503 5.5.1 RCPT first\r\n"},
      {"RSET now\r\n", "501 5.5.4 Syntax: RSET\r\n"},
      {"FROB\r\n", "500 5.5.1 Unrecognized command\r\n"},
  };
  for (const auto &[in, out] : steps) {
    CAPTURE(in);
    CHECK(f.say(in) == out);
  }
}

TEST_CASE("session: a pipelining group is answered in order, in one write") {
  SessionFixture f;
  f.start();
  f.say("EHLO c\r\n");
  CHECK(f.say("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
              "RCPT TO:<c@example.test>\r\nRSET\r\nMAIL FROM:<d@example.test>\r\n"
              "RCPT TO:<e@example.test>\r\nDATA\r\n") ==
        "250 2.1.0 <a@example.test>, sender OK\r\n"
        "250 2.1.5 <b@example.test>, recipient ok\r\n"
        "250 2.1.5 <c@example.test>, recipient ok\r\n"
        "250 2.0.0 OK\r\n"
        "250 2.1.0 <d@example.test>, sender OK\r\n"
        "250 2.1.5 <e@example.test>, recipient ok\r\n"
        "354 go ahead\r\n");
  CHECK(f.s->rcpts() == std::vector<std::string>{"e@example.test"});
}

TEST_CASE("session: input behind a group-ending command is 554 5.5.0 and the end") {
  const std::string kSync = "554 5.5.0 Error: SMTP protocol synchronization\r\n";
  SUBCASE("in the same read") {
    SessionFixture f;
    f.start();
    CHECK(f.say("EHLO c\r\nMAIL FROM:<a@example.test>\r\n") == kSync);
    CHECK(f.conn->graceful());
  }
  SUBCASE("still in the kernel (MSG_PEEK)") {
    SessionFixture f;
    f.start();
    f.say("EHLO c\r\n");
    f.conn->inject("NOOP\r\n");
    f.conn->inject("NOOP\r\n");  // a second read, not yet taken
    f.run();
    CHECK(f.conn->take_output() == kSync);
    CHECK(f.conn->graceful());
  }
  SUBCASE("DATA with content behind it: no 354") {
    SessionFixture f;
    f.start();
    f.say("EHLO c\r\n");
    CHECK(
        f.say("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nSubject: x\r\n") ==
        "250 2.1.0 <a@example.test>, sender OK\r\n250 2.1.5 <b@example.test>, recipient ok\r\n" +
            kSync);
  }
  SUBCASE("after HELO every command ends its group (no PIPELINING offered)") {
    SessionFixture f;
    f.start();
    CHECK(f.say("HELO c\r\n") == "250 mx.test Hello [192.0.2.1]\r\n");
    CHECK(f.say("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n") == kSync);
  }
  SUBCASE("input that arrives while the hook of such a command is pending") {
    SessionFixture f;
    uvs_pending *held = nullptr;
    f.add(UVS_HOOK_NOOP, [&](uvs_call *c) {
      held = f.api->suspend(c);
      return UVS_PENDING;
    });
    f.start();
    f.say("EHLO c\r\n");
    CHECK(f.say("NOOP\r\n").empty());  // the hook holds the reply
    REQUIRE(held != nullptr);
    f.conn->inject("QUIT\r\n");  // the client does not wait for it
    f.api->complete(held, UVS_DECLINED, 0, nullptr, nullptr);
    f.run();
    CHECK(f.conn->take_output() == kSync);
  }
  SUBCASE("off for the listener: each command is answered") {
    SessionFixture f;
    f.start(false);
    CHECK(f.say("EHLO c\r\nNOOP\r\nNOOP\r\n") == kEhloReply + "250 2.0.0 OK\r\n250 2.0.0 OK\r\n");
    CHECK_FALSE(f.conn->graceful());
  }
}

TEST_CASE("session: RSET and a repeated EHLO end the transaction") {
  int resets = 0;
  SessionFixture f;  // a transaction with a sender and a recipient, for each SUBCASE afresh
  f.add(UVS_HOOK_RESET_TRANSACTION, [&](uvs_call *) { return ++resets, UVS_DECLINED; });
  f.start();
  f.say("EHLO c\r\n");
  f.say("MAIL FROM:<a@example.test>\r\n");
  f.say("RCPT TO:<b@example.test>\r\n");
  SUBCASE("RSET") {
    CHECK(f.s->mail_from() != nullptr);
    CHECK(f.say("RSET\r\n") == "250 2.0.0 OK\r\n");
    CHECK(resets == 1);
    CHECK(f.s->mail_from() == nullptr);
    CHECK(f.s->rcpts().empty());
    CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "503 5.5.1 Use MAIL before RCPT\r\n");
    CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
  }
  SUBCASE("EHLO again") {
    CHECK(f.say("EHLO other\r\n") == kEhloReply);
    CHECK(resets == 1);
    CHECK(*f.s->helo() == "other");
    CHECK(f.s->mail_from() == nullptr);
    CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "503 5.5.1 Use MAIL before RCPT\r\n");
  }
}

TEST_CASE("session: EOF closes; the command deadline gives 421 4.4.2") {
  SUBCASE("EOF") {
    SessionFixture f;
    f.start();
    f.say("EHLO c\r\n");
    f.conn->inject_eof();
    f.run();
    CHECK(f.conn->take_output().empty());
    CHECK(f.conn->graceful());
  }
  SUBCASE("timeout") {
    SessionFixture f;
    f.gen->settings.timeout_command = 0.05;
    f.start();
    f.say("EHLO c\r\n");
    uint64_t t0 = uv_now(&f.loop);
    while (!f.conn->graceful() && uv_now(&f.loop) - t0 < 2000) uv_run(&f.loop, UV_RUN_ONCE);
    CHECK(f.conn->take_output() == "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    CHECK(f.conn->graceful());
  }
}

TEST_CASE("session: STARTTLS while there is no TLS: not offered, unrecognized") {
  SessionFixture f;
  f.start();
  std::string ehlo = f.say("EHLO c\r\n");
  CHECK(ehlo.find("STARTTLS") == std::string::npos);
  CHECK(f.say("STARTTLS\r\n") == "500 5.5.1 Unrecognized command\r\n");
  CHECK(f.conn->start_tls_calls == 0);
  CHECK(f.conn->tls() == nullptr);
  CHECK(f.say("NOOP\r\n") == "250 2.0.0 OK\r\n");
}

// ---- STARTTLS (RFC 3207) ----------------------------------------------------------------
// A real TlsContext (from the test certificates) in SessionContext::tls, and a FakeConnection
// whose start_tls() succeeds: the test ends the handshake with finish_tls() or fail_tls().

namespace {

std::shared_ptr<const tls::TlsContext> load_test_context() {
  config::TlsSettings st;
  st.certificate = unit::certs().p("mx.pem");
  st.key = unit::certs().p("mx.key");
  st.watch = false;
  std::string err;
  std::shared_ptr<const tls::TlsContext> c = tls::TlsContext::load(st, err);
  INFO(err);
  REQUIRE(c);
  return c;
}

struct TlsFixture : SessionFixture {
  std::shared_ptr<const tls::TlsContext> tls_ctx = load_test_context();
  TlsFixture() {
    ctx.tls = [this] { return tls_ctx; };
    accept_tls = true;
  }
  static tls::TlsDetails details() {
    tls::TlsDetails d;
    d.protocol = "TLSv1.3";
    d.cipher = "TLS_AES_256_GCM_SHA384";
    d.bits = 256;
    return d;
  }
  // EHLO, STARTTLS and a finished handshake.
  void into_tls() {
    say("EHLO c\r\n");
    REQUIRE(say("STARTTLS\r\n") == "220 2.0.0 Ready to start TLS\r\n");
    conn->finish_tls(details());
    run();
  }
};

// Sends the log to a file at level notice for one test, then back to stderr.
struct LogToFile {
  unit::TmpDir tmp;
  std::string path = tmp.dir + "/log";
  LogToFile() {
    std::string err;
    REQUIRE_MESSAGE(log::open_sink(log::Destination::file, path, 0, err), err);
    log::set_level(log::notice);
  }
  ~LogToFile() {
    std::string err;
    log::open_sink(log::Destination::standard_error, "", 0, err);
  }
  std::string text() const {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
};

const std::string kEhloWithStarttls =
    kEhloReply.substr(0, kEhloReply.size() - std::string("250 SMTPUTF8\r\n").size()) +
    "250-SMTPUTF8\r\n250 STARTTLS\r\n";
const std::string kReady = "220 2.0.0 Ready to start TLS\r\n";
const std::string kSyncError = "554 5.5.0 Error: SMTP protocol synchronization\r\n";

}  // namespace

TEST_CASE(
    "session tls: STARTTLS is offered after EHLO only with a certificate, on a starttls "
    "listener, before TLS") {
  SUBCASE("a certificate and tls = \"starttls\"") {
    TlsFixture f;
    f.start();
    CHECK(f.say("EHLO c\r\n") == kEhloWithStarttls);
    CHECK(f.say("HELO c\r\n") == "250 mx.test Hello [192.0.2.1]\r\n");  // HELO lists nothing
  }
  SUBCASE(
      "tls = \"none\", or no certificate in force (a null context): neither offered nor a "
      "command") {
    for (bool no_cert : {false, true}) {
      CAPTURE(no_cert);
      TlsFixture f;
      if (no_cert)
        f.tls_ctx = nullptr;
      else
        f.listener.tls = "none";
      f.start();
      CHECK(f.say("EHLO c\r\n") == kEhloReply);
      CHECK(f.say("STARTTLS\r\n") == "500 5.5.1 Unrecognized command\r\n");
      CHECK(f.conn->start_tls_calls == 0);
    }
  }
  SUBCASE("not once TLS is on") {
    TlsFixture f;
    f.start();
    f.into_tls();
    REQUIRE(f.conn->tls() != nullptr);
    CHECK(f.say("EHLO c\r\n") == kEhloReply);
  }
}

TEST_CASE("session tls: STARTTLS with an argument is 501, before EHLO or inside TLS 503") {
  TlsFixture f;
  f.start();
  CHECK(f.say("STARTTLS\r\n") == "503 5.5.1 Error: send EHLO first\r\n");
  f.say("EHLO c\r\n");
  CHECK(f.say("STARTTLS x\r\n") == "501 5.5.4 Syntax: STARTTLS\r\n");
  CHECK(f.conn->start_tls_calls == 0);
  CHECK(f.say("STARTTLS\r\n") == kReady);
  f.conn->finish_tls(TlsFixture::details());
  f.run();
  CHECK(f.say("STARTTLS\r\n") == "503 5.5.1 Error: send EHLO first\r\n");
  f.say("EHLO c\r\n");
  CHECK(f.say("STARTTLS\r\n") == "503 5.5.1 Error: TLS already active\r\n");
  CHECK(f.conn->start_tls_calls == 1);
  CHECK(f.say("NOOP\r\n") == "250 2.0.0 OK\r\n");
}

TEST_CASE("session tls: 220 before the handshake; after it the session starts afresh") {
  int resets = 0;
  TlsFixture f;
  f.add(UVS_HOOK_RESET_TRANSACTION, [&](uvs_call *) { return ++resets, UVS_DECLINED; });
  f.start();
  f.s->notes(UVS_NOTE_CONNECTION).set("seen", "yes");
  f.say("EHLO c\r\n");
  bool with_txn = false;
  SUBCASE("with a transaction open") {
    with_txn = true;
  }
  SUBCASE("without a transaction") {}
  if (with_txn) {
    CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
    CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "250 2.1.5 <b@example.test>, recipient ok\r\n");
    f.s->notes(UVS_NOTE_TRANSACTION).set("txn", "1");
  }
  f.conn->trace.clear();
  CHECK(f.say("STARTTLS\r\n") == kReady);
  // The 220 is written in plaintext before the handshake starts, and nothing after it.
  CHECK(f.conn->trace == std::vector<std::string>{"write " + kReady, "start_tls"});
  CHECK(f.conn->tls_context == f.tls_ctx);
  CHECK(f.conn->reading());  // the handshake needs the client's bytes
  f.conn->finish_tls(TlsFixture::details());
  f.run();
  CHECK(f.conn->take_output().empty());  // no greeting inside TLS (RFC 3207 4.2)
  CHECK(resets == (with_txn ? 1 : 0));
  CHECK(f.s->helo() == nullptr);
  CHECK(f.s->mail_from() == nullptr);
  CHECK(f.s->rcpts().empty());
  CHECK(f.s->notes(UVS_NOTE_TRANSACTION).get("txn") == nullptr);
  REQUIRE(f.s->notes(UVS_NOTE_CONNECTION).get("seen") != nullptr);
  CHECK(*f.s->notes(UVS_NOTE_CONNECTION).get("seen") == "yes");
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "503 5.5.1 Error: send HELO/EHLO first\r\n");
  CHECK(f.say("EHLO c\r\n") == kEhloReply);
  CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "503 5.5.1 Use MAIL before RCPT\r\n");
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
}

TEST_CASE("session tls: bytes pipelined behind STARTTLS never reach the TLS session") {
  SUBCASE("sync check on, same read: 554 5.5.0, closed, no handshake") {
    TlsFixture f;
    f.start();
    f.say("EHLO c\r\n");
    CHECK(f.say("STARTTLS\r\nMAIL FROM:<a@example.test>\r\n") == kSyncError);
    CHECK(f.conn->graceful());
    CHECK(f.conn->start_tls_calls == 0);
  }
  SUBCASE("sync check on, still in the kernel: 554 5.5.0, closed, no handshake") {
    TlsFixture f;
    f.start();
    f.say("EHLO c\r\n");
    f.conn->inject("STARTTLS\r\n");
    f.conn->inject("MAIL FROM:<a@example.test>\r\n");
    f.run();
    CHECK(f.conn->take_output() == kSyncError);
    CHECK(f.conn->graceful());
    CHECK(f.conn->start_tls_calls == 0);
  }
  SUBCASE("sync check off: discarded, never answered, logged") {
    TlsFixture f;
    f.start(false);
    LogToFile logged;
    f.say("EHLO c\r\n");
    CHECK(f.say("STARTTLS\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n") ==
          kReady);
    CHECK(f.conn->start_tls_calls == 1);
    f.conn->finish_tls(TlsFixture::details());
    f.run();
    CHECK(f.conn->take_output().empty());
    CHECK(f.s->mail_from() == nullptr);
    CHECK_FALSE(f.conn->graceful());
    std::string text = logged.text();
    CHECK_MESSAGE(text.find("discarded") != std::string::npos, text);
    CHECK(f.say("EHLO c\r\n") == kEhloReply);
  }
}

TEST_CASE("session tls: require_tls: MAIL before STARTTLS is 530 5.7.0, accepted inside TLS") {
  TlsFixture f;
  f.listener.require_tls = true;
  f.start();
  CHECK(f.say("EHLO c\r\n") == kEhloWithStarttls);
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") ==
        "530 5.7.0 Must issue a STARTTLS command first\r\n");
  CHECK(f.s->mail_from() == nullptr);
  CHECK(f.say("STARTTLS\r\n") == kReady);
  f.conn->finish_tls(TlsFixture::details());
  f.run();
  f.say("EHLO c\r\n");
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
}

TEST_CASE("session tls: a failed, timed-out or abandoned handshake closes without plaintext") {
  TlsFixture f;
  SUBCASE("failure") {
    f.start();
    f.say("EHLO c\r\n");
    CHECK(f.say("STARTTLS\r\n") == kReady);
    f.conn->fail_tls("wrong version number");
    f.run();
    CHECK(f.conn->take_output().empty());
    CHECK((f.conn->graceful() || f.conn->closed()));
  }
  SUBCASE("timeout (tls_handshake)") {
    f.gen->settings.timeout_tls_handshake = 0.05;
    f.gen->settings.timeout_command = 10;
    f.start();
    f.say("EHLO c\r\n");
    CHECK(f.say("STARTTLS\r\n") == kReady);
    uint64_t t0 = uv_now(&f.loop);
    while (!f.conn->graceful() && !f.conn->closed() && uv_now(&f.loop) - t0 < 2000)
      uv_run(&f.loop, UV_RUN_ONCE);
    CHECK((f.conn->graceful() || f.conn->closed()));
    CHECK(uv_now(&f.loop) - t0 >= 40);
    CHECK(uv_now(&f.loop) - t0 < 1500);
    CHECK(f.conn->take_output().empty());
  }
  SUBCASE("EOF during the handshake") {
    f.start();
    f.say("EHLO c\r\n");
    CHECK(f.say("STARTTLS\r\n") == kReady);
    f.conn->inject_eof();
    f.run();
    CHECK(f.conn->take_output().empty());
    CHECK((f.conn->graceful() || f.conn->closed()));
  }
}

TEST_CASE("session tls: implicit TLS: the handshake first, the banner inside TLS") {
  TlsFixture f;
  f.listener.tls = "implicit";
  SUBCASE("handshake done") {
    CHECK(f.start().empty());
    CHECK(f.conn->start_tls_calls == 1);
    CHECK(f.conn->trace == std::vector<std::string>{"start_tls"});
    CHECK(f.conn->tls_context == f.tls_ctx);
    f.conn->finish_tls(TlsFixture::details());
    f.run();
    CHECK(f.conn->take_output() == "220 mx.test ESMTP uvsmtpd\r\n");
    CHECK(f.say("EHLO c\r\n") == kEhloReply);  // no STARTTLS inside TLS
    CHECK(f.say("STARTTLS\r\n") == "503 5.5.1 Error: TLS already active\r\n");
  }
  SUBCASE("handshake failed, timed out or abandoned: closed without a word or a hook") {
    // No pre-connection or connect hook ran, so neither does disconnect.
    int hooks = 0;
    f.add(UVS_HOOK_PRE_CONNECTION, [&](uvs_call *) { return ++hooks, UVS_DECLINED; });
    f.add(UVS_HOOK_DISCONNECT, [&](uvs_call *) { return ++hooks, UVS_DECLINED; });
    f.gen->settings.timeout_tls_handshake = 0.05;
    CHECK(f.start().empty());
    std::string how;
    SUBCASE("failed") {
      how = "failed";
      f.conn->fail_tls("http request");
      f.run();
    }
    SUBCASE("timed out") {
      how = "timed out";
      uint64_t t0 = uv_now(&f.loop);
      while (!f.conn->graceful() && !f.conn->closed() && uv_now(&f.loop) - t0 < 2000)
        uv_run(&f.loop, UV_RUN_ONCE);
    }
    SUBCASE("EOF") {
      how = "EOF";
      f.conn->inject_eof();
      f.run();
    }
    INFO(how);
    CHECK(f.conn->take_output().empty());
    CHECK((f.conn->graceful() || f.conn->closed()));
    f.s.reset();
    CHECK(hooks == 0);
  }
  SUBCASE("no certificate: closed at once") {
    f.tls_ctx = nullptr;
    CHECK(f.start().empty());
    CHECK(f.conn->start_tls_calls == 0);
    CHECK(f.conn->closed());
  }
}

TEST_CASE("session tls: the Received header of a message over TLS says ESMTPS and the cipher") {
  TlsFixture f;
  std::string message;
  f.add(UVS_HOOK_QUEUE, [&](uvs_call *c) {
    int64_t size = f.api->message_size(c);
    message.resize(static_cast<size_t>(size > 0 ? size : 0));
    CHECK(f.api->message_read(c, 0, message.data(), message.size()) == size);
    return UVS_OK;
  });
  f.start();
  f.into_tls();
  f.say("EHLO client.test\r\n");
  f.say("MAIL FROM:<a@example.test>\r\n");
  f.say("RCPT TO:<b@example.test>\r\n");
  CHECK(f.say("DATA\r\n") == "354 go ahead\r\n");
  std::string reply = f.say("Subject: hi\r\n\r\nbody\r\n.\r\n");
  CHECK(reply.rfind("250 2.0.0 Queued as ", 0) == 0);
  INFO(message);
  REQUIRE(message.rfind("Received: from ", 0) == 0);
  std::string received = message.substr(0, message.find("\r\nSubject:"));
  CHECK(received.find("(HELO client.test)") != std::string::npos);
  CHECK(received.find(
            "\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n") !=
        std::string::npos);
  CHECK(received.find(" with ESMTPS id ") != std::string::npos);
  CHECK(message.find("\r\n\r\nbody\r\n") != std::string::npos);
}
