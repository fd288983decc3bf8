// tests/unit/test_runner.cpp: the hook chain runner with in-process handlers and a fake session:
// order, first non-DECLINED wins, observers, invalid verdicts, reply validation, suspension and
// completion (loop and thread), the timeout, cancellation, and the (hook, verdict) reply table.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <thread>
#include <uv.h>

#include "hooks/replies.hpp"
#include "hooks/runner.hpp"
#include "hooks/services.hpp"
#include "plugin_host/host.hpp"
#include "tls/details.hpp"

using namespace uvs;

namespace {

class FakeHost : public CallHost {
 public:
  const std::string &session_id() const override { return id; }
  const std::string &peer_ip() const override { return ip; }
  int peer_port() const override { return 1234; }
  const std::string &local_ip() const override { return ip; }
  int local_port() const override { return 25; }
  const std::string *helo() const override { return nullptr; }
  bool esmtp() const override { return false; }
  const std::string *mail_from() const override { return nullptr; }
  const std::vector<std::string> &rcpts() const override { return rc; }
  Notes &notes(int scope) override { return scope ? txn : conn; }
  bool relay_client() const override { return relay; }
  void set_relay_client(bool on) override { relay = on; }
  int watch_input(std::function<void(int)> cb) override {
    watcher = std::move(cb);
    return 0;
  }
  void unwatch_input() override { watcher = nullptr; }
  const tls::TlsDetails *tls_details() const override { return tls; }

  std::string id = "test", ip = "127.0.0.1";
  std::vector<std::string> rc;
  Notes conn, txn;
  bool relay = false;
  std::function<void(int)> watcher;
  const tls::TlsDetails *tls = nullptr;
};

// A handler made of a std::function, registered through a built-in plugin instance.
using Fn = std::function<uvs_verdict(uvs_call *)>;
uvs_verdict thunk(uvs_call *c, void *ud) { return (*static_cast<Fn *>(ud))(c); }

struct Fixture {
  uv_loop_t loop;
  std::unique_ptr<LoopServices> svc;
  PluginSet set;
  std::vector<std::unique_ptr<Fn>> fns;
  FakeHost host;
  ChainRun *slot = nullptr;
  const uvs_api *api = plugin_api();

  Fixture() {
    uv_loop_init(&loop);
    svc = std::make_unique<LoopServices>(&loop, 0.2);
  }
  ~Fixture() {
    if (slot) slot->cancel();
    svc.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  void add(const std::string &name, uvs_hook hook, Fn fn) {
    uvs_plugin *p = add_builtin(set, name);
    fns.push_back(std::make_unique<Fn>(std::move(fn)));
    set.table.by_hook[hook].push_back(Handler{p, thunk, fns.back().get()});
  }
  // Runs the chain; spins the loop until done (or timeout); returns the result.
  HookResult run(uvs_hook hook, bool *was_sync = nullptr) {
    bool done = false;
    HookResult out;
    ChainRun::start(svc.get(), host, set.table, hook, HookArgs{"arg", "addr", nullptr},
                    [&](HookResult r) {
                      done = true;
                      out = std::move(r);
                    },
                    &slot);
    if (was_sync) *was_sync = done;
    while (!done) uv_run(&loop, UV_RUN_ONCE);
    return out;
  }
};

}  // namespace

TEST_CASE("runner: no handler is DECLINED; order; first non-DECLINED wins") {
  Fixture f;
  CHECK(f.run(UVS_HOOK_RCPT).verdict == UVS_DECLINED);
  std::vector<std::string> calls;
  f.add("a", UVS_HOOK_RCPT, [&](uvs_call *) { calls.push_back("a"); return UVS_DECLINED; });
  f.add("b", UVS_HOOK_RCPT, [&](uvs_call *) { calls.push_back("b"); return UVS_DENY; });
  f.add("c", UVS_HOOK_RCPT, [&](uvs_call *) { calls.push_back("c"); return UVS_OK; });
  bool sync = false;
  HookResult r = f.run(UVS_HOOK_RCPT, &sync);
  CHECK(sync);
  CHECK(r.verdict == UVS_DENY);
  CHECK(r.plugin == "b");
  CHECK(calls == std::vector<std::string>{"a", "b"});
}

TEST_CASE("runner: rcpt_replace reaches the result only with the deciding OK") {
  Fixture f;
  const char *first[] = {"x@example.test"};
  const char *second[] = {"a@example.test", "b@example.test"};
  f.add("a", UVS_HOOK_RCPT, [&](uvs_call *c) {
    CHECK(f.api->rcpt_replace(c, first, 1) == 0);
    return UVS_DECLINED;  // dropped: the next handler starts afresh
  });
  f.add("b", UVS_HOOK_RCPT, [&](uvs_call *c) {
    CHECK(f.api->rcpt_replace(c, second, 2) == 0);
    return UVS_OK;
  });
  HookResult r = f.run(UVS_HOOK_RCPT);
  CHECK(r.verdict == UVS_OK);
  CHECK(r.rcpt_replace == std::vector<std::string>{"a@example.test", "b@example.test"});

  Fixture g;  // a refusal carries no replacement
  g.add("d", UVS_HOOK_RCPT, [&](uvs_call *c) {
    g.api->rcpt_replace(c, first, 1);
    return UVS_DENY;
  });
  CHECK(g.run(UVS_HOOK_RCPT).rcpt_replace.empty());

  Fixture h;  // only in the rcpt hook
  h.add("e", UVS_HOOK_MAIL, [&](uvs_call *c) {
    CHECK(h.api->rcpt_replace(c, first, 1) == -EPERM);
    return UVS_OK;
  });
  CHECK(h.run(UVS_HOOK_MAIL).rcpt_replace.empty());
}

TEST_CASE("runner: tls_active and tls_info (ABI 1.3) follow the host's TLS details") {
  Fixture f;
  f.add("plain", UVS_HOOK_MAIL, [&](uvs_call *c) {
    CHECK(f.api->tls_active(c) == 0);
    uvs_tls_info ti{};
    ti.size = sizeof ti;
    CHECK(f.api->tls_info(c, &ti) == -ENOENT);
    CHECK(ti.protocol == nullptr);  // untouched
    return UVS_DECLINED;
  });
  f.run(UVS_HOOK_MAIL);

  tls::TlsDetails d;
  d.protocol = "TLSv1.3";
  d.cipher = "TLS_AES_256_GCM_SHA384";
  d.bits = 256;
  d.sni = "mx.example.test";
  d.client_cert_presented = true;
  d.client_cert_verified = false;
  d.client_subject = "CN=client.example.test";
  d.client_fingerprint_sha256 = std::string(64, 'a');
  Fixture g;
  g.host.tls = &d;
  g.add("tls", UVS_HOOK_MAIL, [&](uvs_call *c) {
    CHECK(g.api->tls_active(c) == 1);
    uvs_tls_info ti{};
    ti.size = sizeof ti;
    REQUIRE(g.api->tls_info(c, &ti) == 0);
    CHECK(std::string(ti.protocol) == "TLSv1.3");
    CHECK(std::string(ti.cipher) == "TLS_AES_256_GCM_SHA384");
    CHECK(ti.bits == 256);
    CHECK(std::string(ti.sni) == "mx.example.test");
    CHECK(ti.client_cert == 1);
    CHECK(ti.client_cert_verified == 0);
    CHECK(std::string(ti.client_subject) == "CN=client.example.test");
    CHECK(std::string(ti.client_fingerprint_sha256) == std::string(64, 'a'));
    CHECK(ti.size == sizeof ti);  // the caller's size stays

    // a bigger struct (a newer plugin): the known fields are filled, the rest left alone
    struct Bigger {
      uvs_tls_info base;
      int later;
    } big{};
    big.base.size = sizeof big;
    big.later = 7;
    CHECK(g.api->tls_info(c, &big.base) == 0);
    CHECK(big.base.bits == 256);
    CHECK(big.later == 7);

    uvs_tls_info small{};
    small.size = sizeof small - 1;
    CHECK(g.api->tls_info(c, &small) == -EINVAL);
    CHECK(small.protocol == nullptr);
    CHECK(g.api->tls_info(c, nullptr) == -EINVAL);
    CHECK(g.api->tls_info(nullptr, &ti) == -EINVAL);
    return UVS_DECLINED;
  });
  g.run(UVS_HOOK_MAIL);
}

TEST_CASE("runner: deny and ok observers fire after each handler") {
  Fixture f;
  std::vector<std::string> seen;
  f.add("a", UVS_HOOK_MAIL, [](uvs_call *) { return UVS_DECLINED; });
  f.add("b", UVS_HOOK_MAIL, [](uvs_call *) { return UVS_DENYSOFT; });
  f.add("obs-ok", UVS_HOOK_OK, [&](uvs_call *c) {
    seen.push_back(std::string("ok:") + f.api->call_arg(c) + ":" + f.api->call_address(c));
    return UVS_DENY;  // ignored
  });
  f.add("obs-deny", UVS_HOOK_DENY, [&](uvs_call *c) {
    seen.push_back(std::string("deny:") + f.api->call_arg(c) + ":" + f.api->call_address(c));
    CHECK(f.api->suspend(c) == nullptr);  // observers cannot suspend
    return UVS_OK;
  });
  CHECK(f.run(UVS_HOOK_MAIL).verdict == UVS_DENYSOFT);
  CHECK(seen == std::vector<std::string>{"ok:a:0", "deny:b:3"});
}

TEST_CASE("runner: invalid verdicts and PENDING without suspend become DENYSOFT") {
  Fixture f;
  f.add("bad", UVS_HOOK_RCPT, [](uvs_call *) { return static_cast<uvs_verdict>(42); });
  HookResult r = f.run(UVS_HOOK_RCPT);
  CHECK(r.verdict == UVS_DENYSOFT);
  Fixture g;
  g.add("liar", UVS_HOOK_RCPT, [](uvs_call *) { return UVS_PENDING; });
  CHECK(g.run(UVS_HOOK_RCPT).verdict == UVS_DENYSOFT);
}

TEST_CASE("runner: reply text is validated against the verdict") {
  Fixture f;
  f.add("a", UVS_HOOK_RCPT, [&](uvs_call *c) {
    CHECK(f.api->reply(c, 550, "5.7.1", "bad\r\ntext") == -EINVAL);
    CHECK(f.api->reply(c, 550, "4.7.1", "class mismatch") == -EINVAL);
    CHECK(f.api->reply(c, 700, nullptr, "x") == -EINVAL);
    CHECK(f.api->reply(c, 550, "5.7.1", "first") == 0);
    CHECK(f.api->reply_line(c, "second") == 0);
    return UVS_DENY;
  });
  HookResult r = f.run(UVS_HOOK_RCPT);
  REQUIRE(r.has_reply);
  CHECK(r.reply.wire() == "550-5.7.1 first\r\n550 5.7.1 second\r\n");
  Decision d = decide(UVS_HOOK_RCPT, r, "<u@x>");
  CHECK(d.kind == Decision::replace);
  CHECK(d.reply.wire() == "550-5.7.1 first\r\n550 5.7.1 second\r\n");

  Fixture g;  // a 250 with DENY does not fit: the default reply is used
  g.add("a", UVS_HOOK_RCPT, [&](uvs_call *c) {
    g.api->reply(c, 250, nullptr, "ok?");
    return UVS_DENY;
  });
  HookResult r2 = g.run(UVS_HOOK_RCPT);
  CHECK_FALSE(r2.has_reply);
  CHECK(decide(UVS_HOOK_RCPT, r2).reply.wire() == "550 5.7.1 relaying denied\r\n");
}

TEST_CASE("runner: suspend and complete from the loop, then the chain goes on") {
  Fixture f;
  std::vector<std::string> calls;
  f.add("async", UVS_HOOK_RCPT, [&](uvs_call *c) {
    calls.push_back("async");
    uvs_pending *p = f.api->suspend(c);
    REQUIRE(p != nullptr);
    CHECK(f.api->suspend(c) == nullptr);  // once per call
    f.api->pending_timer(p, 10, [](uvs_pending *p, void *) {
      plugin_api()->complete(p, UVS_DECLINED, 0, nullptr, nullptr);
    }, nullptr);
    return UVS_PENDING;
  });
  f.add("next", UVS_HOOK_RCPT, [&](uvs_call *c) {
    calls.push_back("next");
    f.api->reply(c, 0, nullptr, "fine by me");
    return UVS_OK;
  });
  bool sync = true;
  HookResult r = f.run(UVS_HOOK_RCPT, &sync);
  CHECK_FALSE(sync);
  CHECK(r.verdict == UVS_OK);
  CHECK(r.reply.lines == std::vector<std::string>{"fine by me"});
  CHECK(calls == std::vector<std::string>{"async", "next"});
  CHECK(f.slot == nullptr);
  CHECK(f.svc->live_pending() == 0);
}

TEST_CASE("runner: complete from another thread with a reply") {
  Fixture f;
  std::thread worker;
  f.add("thread", UVS_HOOK_DATA_POST, [&](uvs_call *c) {
    uvs_pending *p = f.api->suspend(c);
    worker = std::thread([p] {
      CHECK(plugin_api()->complete(p, UVS_DENY, 554, "5.7.0", "no thanks") == 0);
      CHECK(plugin_api()->complete(p, UVS_DENY, 0, nullptr, nullptr) == -EALREADY);
    });
    return UVS_PENDING;
  });
  HookResult r = f.run(UVS_HOOK_DATA_POST);
  worker.join();
  CHECK(r.verdict == UVS_DENY);
  CHECK(r.reply.code == 554);
  CHECK(decide(UVS_HOOK_DATA_POST, r).reply.wire() == "554 5.7.0 no thanks\r\n");
}

TEST_CASE("runner: a forgotten completion times out with 451 4.3.0; late complete is safe") {
  Fixture f;  // hook timeout 0.2 s
  uvs_pending *kept = nullptr;
  f.add("sleepy", UVS_HOOK_RCPT, [&](uvs_call *c) {
    kept = f.api->suspend(c);
    return UVS_PENDING;
  });
  HookResult r = f.run(UVS_HOOK_RCPT);
  CHECK(r.verdict == UVS_DENYSOFT);
  CHECK(decide(UVS_HOOK_RCPT, r).reply.wire() ==
        "451 4.3.0 Temporary failure, please try again later\r\n");
  REQUIRE(kept);
  CHECK(f.api->pending_call(kept) == nullptr);
  CHECK(f.api->complete(kept, UVS_OK, 0, nullptr, nullptr) == -ECANCELED);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  CHECK(f.svc->live_pending() == 0);
}

TEST_CASE("runner: cancel while pending; the input watch ends with EOF") {
  Fixture f;
  uvs_pending *kept = nullptr;
  int input_result = -1;
  f.add("watcher", UVS_HOOK_CONNECT, [&](uvs_call *c) {
    kept = f.api->suspend(c);
    CHECK(f.api->wait_for_input(kept, 5000, [](uvs_pending *, int res, void *ud) {
      *static_cast<int *>(ud) = res;
    }, &input_result) == 0);
    return UVS_PENDING;
  });
  bool done = false;
  ChainRun::start(f.svc.get(), f.host, f.set.table, UVS_HOOK_CONNECT, HookArgs{},
                  [&](HookResult) { done = true; }, &f.slot);
  REQUIRE(f.slot != nullptr);
  CHECK(f.host.watcher != nullptr);
  f.slot->cancel();  // the session goes away
  CHECK(f.slot == nullptr);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  CHECK(input_result == UVS_INPUT_EOF);
  CHECK_FALSE(done);
  CHECK(f.api->complete(kept, UVS_OK, 0, nullptr, nullptr) == -ECANCELED);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  CHECK(f.svc->live_pending() == 0);
}

TEST_CASE("runner: wait_for_input reports data and timeouts") {
  Fixture f;
  int result = -1;
  f.add("w", UVS_HOOK_CONNECT, [&](uvs_call *c) {
    uvs_pending *p = f.api->suspend(c);
    f.api->wait_for_input(p, 30, [](uvs_pending *p, int res, void *ud) {
      *static_cast<int *>(ud) = res;
      plugin_api()->complete(p, UVS_DECLINED, 0, nullptr, nullptr);
    }, &result);
    return UVS_PENDING;
  });
  SUBCASE("timeout") {
    f.run(UVS_HOOK_CONNECT);
    CHECK(result == UVS_INPUT_TIMEOUT);
  }
  SUBCASE("data") {
    bool done = false;
    ChainRun::start(f.svc.get(), f.host, f.set.table, UVS_HOOK_CONNECT, HookArgs{},
                    [&](HookResult) { done = true; }, &f.slot);
    REQUIRE(f.host.watcher);
    auto w = std::move(f.host.watcher);
    w(UVS_INPUT_DATA);
    while (!done) uv_run(&f.loop, UV_RUN_ONCE);
    CHECK(result == UVS_INPUT_DATA);
  }
}

TEST_CASE("runner: run_blocking runs work on the pool and done on the loop") {
  Fixture f;
  static std::thread::id loop_thread, work_thread, done_thread;
  loop_thread = std::this_thread::get_id();
  f.add("w", UVS_HOOK_QUEUE, [&](uvs_call *c) {
    uvs_pending *p = f.api->suspend(c);
    f.api->run_blocking(p, [](void *) { work_thread = std::this_thread::get_id(); },
                        [](uvs_pending *p, void *) {
                          done_thread = std::this_thread::get_id();
                          plugin_api()->complete(p, UVS_OK, 250, "2.0.0", "stored");
                        },
                        nullptr);
    return UVS_PENDING;
  });
  HookResult r = f.run(UVS_HOOK_QUEUE);
  CHECK(r.verdict == UVS_OK);
  CHECK(work_thread != loop_thread);
  CHECK(done_thread == loop_thread);
  CHECK(with_plugin_text(r, 250, "2.0.0", "Queued").wire() == "250 2.0.0 stored\r\n");
}

TEST_CASE("runner: notes, karma and is_immune through the API") {
  Fixture f;
  f.add("n", UVS_HOOK_CONNECT, [&](uvs_call *c) {
    CHECK(f.api->is_immune(c) == 0);
    f.api->note_set(c, UVS_NOTE_CONNECTION, "whitelisthost", "1");
    CHECK(f.api->is_immune(c) == 1);
    CHECK(f.api->adjust_karma(c, -1) == -1);
    CHECK(f.api->adjust_karma(c, -1) == -2);
    CHECK(std::string(f.api->note_get(c, UVS_NOTE_CONNECTION, "karma")) == "-2");
    static int freed = 0;
    f.api->note_set_ptr(c, UVS_NOTE_TRANSACTION, "p", &freed, [](void *p) { ++*static_cast<int *>(p); });
    f.api->note_set(c, UVS_NOTE_TRANSACTION, "p", "replaced");
    CHECK(freed == 1);
    CHECK(f.api->note_set(c, 7, "x", "y") == -EINVAL);
    return UVS_DECLINED;
  });
  f.run(UVS_HOOK_CONNECT);
}

TEST_CASE("replies: the (hook, verdict) table") {
  struct Row {
    uvs_hook hook;
    uvs_verdict v;
    const char *wire;  // nullptr = proceed
    bool close, reset;
  };
  const Row rows[] = {
      {UVS_HOOK_CONNECT, UVS_DENY, "550 5.7.1 Connection denied\r\n", true, false},
      {UVS_HOOK_CONNECT, UVS_DENYSOFT, "450 4.7.1 Connection temporarily denied\r\n", true, false},
      {UVS_HOOK_CONNECT, UVS_OK, nullptr, false, false},
      {UVS_HOOK_HELO, UVS_DENY, "550 5.7.1 Access denied\r\n", false, false},
      {UVS_HOOK_MAIL, UVS_DENY, "550 5.7.1 <a@b>, denied\r\n", false, false},
      {UVS_HOOK_MAIL, UVS_DENYSOFT_DISCONNECT, "421 4.7.1 <a@b>, temporarily denied\r\n", true, false},
      {UVS_HOOK_RCPT, UVS_DECLINED, "450 4.7.1 No plugin decided if relaying is allowed\r\n", false, false},
      {UVS_HOOK_RCPT, UVS_DENY_DISCONNECT, "550 5.7.1 delivery denied\r\n", true, false},
      {UVS_HOOK_RCPT, UVS_OK, nullptr, false, false},
      {UVS_HOOK_DATA, UVS_DENY, "554 5.7.1 Message denied\r\n", false, true},
      {UVS_HOOK_DATA, UVS_DENYSOFT, "451 4.7.1 Message denied temporarily\r\n", false, true},
      {UVS_HOOK_DATA_HEADERS_END, UVS_DENY, nullptr, false, false},
      {UVS_HOOK_DATA_HEADERS_END, UVS_DENY_DISCONNECT, "554 5.7.1 Message denied\r\n", true, true},
      {UVS_HOOK_DATA_POST, UVS_DENY, "552 5.7.1 Message denied\r\n", false, true},
      {UVS_HOOK_QUEUE, UVS_DECLINED, "451 4.3.0 Queuing declined or disabled; try again later\r\n", false, true},
      {UVS_HOOK_QUEUE, UVS_DENYSOFT, "452 4.3.0 Message denied temporarily\r\n", false, true},
      {UVS_HOOK_VRFY, UVS_DENY, "554 5.7.1 Access Denied\r\n", false, true},
      {UVS_HOOK_NOOP, UVS_DENY, "500 5.5.1 Command refused\r\n", false, false},
      {UVS_HOOK_UNRECOGNIZED_COMMAND, UVS_DENY_DISCONNECT, "521 5.5.1 Unrecognized command\r\n", true, false},
  };
  for (const Row &row : rows) {
    CAPTURE(static_cast<int>(row.hook));
    CAPTURE(static_cast<int>(row.v));
    HookResult r;
    r.verdict = row.v;
    Decision d = decide(row.hook, r, "<a@b>");
    if (!row.wire) {
      CHECK(d.kind == Decision::proceed);
      continue;
    }
    CHECK(d.kind == Decision::replace);
    CHECK(d.reply.wire() == row.wire);
    CHECK(d.close == row.close);
    CHECK(d.reset == row.reset);
  }
  HookResult done;
  done.verdict = UVS_DONE;
  CHECK(decide(UVS_HOOK_RCPT, done).kind == Decision::silent);
  CHECK(decide(UVS_HOOK_QUIT, done).close);
}

// ---- ABI 1.3: notes from a worker thread, the cancel callback, plugin-level timers ----------

TEST_CASE("runner: pending_note_set from a thread is applied before the verdict; dropped after a timeout") {
  Fixture f;
  std::thread worker;
  std::string seen_by_observer;
  f.host.conn.set("gone", "soon");
  f.add("thread", UVS_HOOK_RCPT, [&](uvs_call *c) {
    uvs_pending *p = f.api->suspend(c);
    CHECK(f.api->pending_note_set(p, 2, "k", "v") == -EINVAL);
    CHECK(f.api->pending_note_set(p, UVS_NOTE_CONNECTION, "", "v") == -EINVAL);
    CHECK(f.api->pending_note_set(nullptr, UVS_NOTE_CONNECTION, "k", "v") == -EINVAL);
    worker = std::thread([p] {
      const uvs_api *api = plugin_api();
      CHECK(api->pending_note_set(p, UVS_NOTE_CONNECTION, "result", "first") == 0);
      CHECK(api->pending_note_set(p, UVS_NOTE_CONNECTION, "result", "42") == 0);  // in order
      CHECK(api->pending_note_set(p, UVS_NOTE_TRANSACTION, "txn", "t") == 0);
      CHECK(api->pending_note_set(p, UVS_NOTE_CONNECTION, "gone", nullptr) == 0);
      CHECK(api->complete(p, UVS_OK, 0, nullptr, nullptr) == 0);
    });
    return UVS_PENDING;
  });
  f.add("observer", UVS_HOOK_OK, [&](uvs_call *c) {
    const char *v = f.api->note_get(c, UVS_NOTE_CONNECTION, "result");
    seen_by_observer = v ? v : "(null)";
    return UVS_DECLINED;
  });
  HookResult r = f.run(UVS_HOOK_RCPT);
  worker.join();
  CHECK(r.verdict == UVS_OK);
  CHECK(seen_by_observer == "42");
  REQUIRE(f.host.conn.get("result"));
  CHECK(*f.host.conn.get("result") == "42");
  REQUIRE(f.host.txn.get("txn"));
  CHECK(f.host.conn.get("gone") == nullptr);

  // a call the core gave up on: its notes go nowhere
  Fixture g;
  uvs_pending *kept = nullptr;
  g.add("sleepy", UVS_HOOK_RCPT, [&](uvs_call *c) {
    kept = g.api->suspend(c);
    return UVS_PENDING;
  });
  CHECK(g.run(UVS_HOOK_RCPT).timed_out);
  CHECK(g.api->pending_note_set(kept, UVS_NOTE_CONNECTION, "late", "x") == 0);
  CHECK(g.api->complete(kept, UVS_OK, 0, nullptr, nullptr) == -ECANCELED);
  uv_run(&g.loop, UV_RUN_NOWAIT);
  CHECK(g.host.conn.get("late") == nullptr);
  CHECK(g.svc->live_pending() == 0);
}

namespace {
struct CancelLog {
  int calls = 0;
  uvs_call *call_seen = reinterpret_cast<uvs_call *>(1);
};
void count_cancel(uvs_pending *p, void *ud) {
  auto *log = static_cast<CancelLog *>(ud);
  ++log->calls;
  log->call_seen = plugin_api()->pending_call(p);
  CHECK(plugin_api()->pending_on_cancel(p, count_cancel, ud) == -ECANCELED);
}
}  // namespace

TEST_CASE("runner: pending_on_cancel runs once when the core lets go, never after complete") {
  SUBCASE("the hook timeout") {
    Fixture f;
    CancelLog log;
    uvs_pending *kept = nullptr;
    f.add("sleepy", UVS_HOOK_RCPT, [&](uvs_call *c) {
      kept = f.api->suspend(c);
      CHECK(f.api->pending_on_cancel(kept, count_cancel, &log) == 0);
      CHECK(f.api->pending_on_cancel(kept, nullptr, &log) == -EINVAL);
      CHECK(f.api->pending_on_cancel(nullptr, count_cancel, &log) == -EINVAL);
      return UVS_PENDING;
    });
    CHECK(f.run(UVS_HOOK_RCPT).timed_out);
    CHECK(log.calls == 1);
    CHECK(log.call_seen == nullptr);
    CHECK(f.api->complete(kept, UVS_OK, 0, nullptr, nullptr) == -ECANCELED);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK(log.calls == 1);
  }
  SUBCASE("the session goes away") {
    Fixture f;
    CancelLog log;
    uvs_pending *kept = nullptr;
    f.add("waiting", UVS_HOOK_CONNECT, [&](uvs_call *c) {
      kept = f.api->suspend(c);
      CHECK(f.api->pending_on_cancel(kept, count_cancel, &log) == 0);
      return UVS_PENDING;
    });
    ChainRun::start(f.svc.get(), f.host, f.set.table, UVS_HOOK_CONNECT, HookArgs{},
                    [](HookResult) {}, &f.slot);
    REQUIRE(f.slot != nullptr);
    CHECK(log.calls == 0);
    f.slot->cancel();
    CHECK(log.calls == 1);
    CHECK(f.api->complete(kept, UVS_OK, 0, nullptr, nullptr) == -ECANCELED);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK(f.svc->live_pending() == 0);
  }
  SUBCASE("completed (from a thread, or inside the hook): no cancel, even at a later cancel()") {
    Fixture f;
    CancelLog log;
    std::thread worker;
    f.add("quick", UVS_HOOK_RCPT, [&](uvs_call *c) {
      uvs_pending *p = f.api->suspend(c);
      CHECK(f.api->pending_on_cancel(p, count_cancel, &log) == 0);
      worker = std::thread([p] { CHECK(plugin_api()->complete(p, UVS_DECLINED, 0, nullptr, nullptr) == 0); });
      return UVS_PENDING;
    });
    f.add("inhook", UVS_HOOK_RCPT, [&](uvs_call *c) {
      uvs_pending *p = f.api->suspend(c);
      CHECK(f.api->pending_on_cancel(p, count_cancel, &log) == 0);
      CHECK(f.api->complete(p, UVS_DENY, 550, nullptr, "at once") == 0);
      return UVS_PENDING;
    });
    bool sync = true;
    HookResult r = f.run(UVS_HOOK_RCPT, &sync);
    worker.join();
    CHECK_FALSE(sync);  // a complete() inside the hook is applied after it returns
    CHECK(r.verdict == UVS_DENY);
    CHECK(r.plugin == "inhook");
    CHECK(log.calls == 0);
  }
  SUBCASE("suspend() followed by another verdict: the core lets go at once") {
    Fixture f;
    CancelLog log;
    uvs_pending *kept = nullptr;
    f.add("confused", UVS_HOOK_RCPT, [&](uvs_call *c) {
      kept = f.api->suspend(c);
      CHECK(f.api->pending_on_cancel(kept, count_cancel, &log) == 0);
      return UVS_OK;
    });
    CHECK(f.run(UVS_HOOK_RCPT).verdict == UVS_DENYSOFT);
    CHECK(log.calls == 1);
    CHECK(f.api->complete(kept, UVS_OK, 0, nullptr, nullptr) == -ECANCELED);
    uv_run(&f.loop, UV_RUN_NOWAIT);
  }
}

namespace {
struct TimerLog {
  const uvs_api *api = plugin_api();
  int ticks = 0;
  int stop_at = 0;
  int once = 0;
};
void tick(uvs_timer *t, void *ud) {
  auto *log = static_cast<TimerLog *>(ud);
  if (++log->ticks == log->stop_at) CHECK(log->api->timer_stop(t) == 0);
}
void once(uvs_timer *t, void *ud) {
  ++static_cast<TimerLog *>(ud)->once;
  CHECK(plugin_api()->timer_stop(t) == 0);  // inside a one-shot's own callback: fine
}
}  // namespace

TEST_CASE("runner: plugin timers: once, repeating, stopped in the callback, unreferenced, retired") {
  Fixture f;
  uvs_plugin *p = add_builtin(f.set, "timers");
  TimerLog log;
  CHECK(f.api->timer_start(p, 1, 0, once, &log) == nullptr);  // no loop: a built-in instance
  p->loop = &f.loop;
  CHECK(f.api->timer_start(p, 1, 0, nullptr, &log) == nullptr);
  CHECK(f.api->timer_start(nullptr, 1, 0, once, &log) == nullptr);
  CHECK(f.api->timer_stop(nullptr) == -EINVAL);
  log.stop_at = 3;
  REQUIRE(f.api->timer_start(p, 1, 1, tick, &log));
  REQUIRE(f.api->timer_start(p, 2, 0, once, &log));
  // unreferenced: UV_RUN_DEFAULT would return at once; spin until the work is seen
  for (int i = 0; i < 200 && (log.ticks < 3 || log.once < 1); ++i) {
    uv_run(&f.loop, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(log.ticks == 3);
  CHECK(log.once == 1);
  CHECK(p->timers.live() == 0);  // both handles freed
  // a live timer is stopped by retire() (before fini); its handle still takes timer_stop
  uvs_timer *t = f.api->timer_start(p, 1, 1, tick, &log);
  REQUIRE(t);
  p->timers.retire();
  int before = log.ticks;
  for (int i = 0; i < 10; ++i) {
    uv_run(&f.loop, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(log.ticks == before);
  CHECK(f.api->timer_stop(t) == 0);
  CHECK(f.api->timer_start(p, 1, 0, once, &log) == nullptr);  // retired: no new timers
}
