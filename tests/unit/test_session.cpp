// tests/unit/test_session.cpp: the SMTP session's state machine without sockets, over a
// FakeConnection: command sequences with their exact replies, pipelining groups and the RFC 2920
// synchronisation check, RSET and a repeated EHLO resetting the transaction, the command
// deadline, EOF, and what STARTTLS is while there is no TLS.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <uv.h>

#include "config/generation.hpp"
#include "fake_connection.hpp"
#include "hooks/services.hpp"
#include "log/log.hpp"
#include "plugin_host/host.hpp"
#include "session/session.hpp"
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
  test::FakeConnection *conn = nullptr;
  std::unique_ptr<Session> s;
  bool closed = false;
  const uvs_api *api = plugin_api();
  int saved_level = log::level();

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
    config::Listen listener;
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
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "503 5.5.1 Error: send HELO/EHLO first\r\n");
  CHECK(f.say("EHLO c\r\n") == kEhloReply);
  CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "503 5.5.1 Use MAIL before RCPT\r\n");
  CHECK(f.say("DATA\r\n") == "503 5.5.1 MAIL first\r\n");
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
  CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "503 5.5.1 Error: nested MAIL command\r\n");
  CHECK(f.say("DATA\r\n") == "503 5.5.1 RCPT first\r\n");
  CHECK(f.say("RSET now\r\n") == "501 5.5.4 Syntax: RSET\r\n");
  CHECK(f.say("FROB\r\n") == "500 5.5.1 Unrecognized command\r\n");
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
  SUBCASE("RSET") {
    SessionFixture f;
    f.add(UVS_HOOK_RESET_TRANSACTION, [&](uvs_call *) { return ++resets, UVS_DECLINED; });
    f.start();
    f.say("EHLO c\r\n");
    f.say("MAIL FROM:<a@example.test>\r\n");
    f.say("RCPT TO:<b@example.test>\r\n");
    CHECK(f.s->mail_from() != nullptr);
    CHECK(f.say("RSET\r\n") == "250 2.0.0 OK\r\n");
    CHECK(resets == 1);
    CHECK(f.s->mail_from() == nullptr);
    CHECK(f.s->rcpts().empty());
    CHECK(f.say("RCPT TO:<b@example.test>\r\n") == "503 5.5.1 Use MAIL before RCPT\r\n");
    CHECK(f.say("MAIL FROM:<a@example.test>\r\n") == "250 2.1.0 <a@example.test>, sender OK\r\n");
  }
  SUBCASE("EHLO again") {
    SessionFixture f;
    f.add(UVS_HOOK_RESET_TRANSACTION, [&](uvs_call *) { return ++resets, UVS_DECLINED; });
    f.start();
    f.say("EHLO c\r\n");
    f.say("MAIL FROM:<a@example.test>\r\n");
    f.say("RCPT TO:<b@example.test>\r\n");
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
// Place for the STARTTLS tests once the TLS filter is wired in: 220 2.0.0 then start_tls() on
// the connection; input pipelined behind STARTTLS is refused (RFC 3207 4.2 / the smuggling
// class of CVE-2011-0411); on_tls_ready() resets HELO/EHLO, the transaction and the
// transaction notes (the client must EHLO again; MAIL first is 503); a second STARTTLS is 503;
// on_tls_failed() closes; require_tls gives 530 5.7.0 for MAIL before STARTTLS.
