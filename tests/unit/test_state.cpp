// tests/unit/test_state.cpp: the embedded shared-state back end (state/mem_table, the
// embedded service on a libuv loop) and the kv_* API's checks and lifetime rules.
#include <cerrno>
#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <uv.h>
#include <vector>

#include "config/generation.hpp"
#include "plugin_host/api_kv.hpp"
#include "plugin_host/host.hpp"
#include "state/mem_table.hpp"
#include "state/service.hpp"

using uvs::state::MemTable;

TEST_CASE("state: MemTable get, set, del and expiry (lazy and swept)") {
  MemTable t(100);
  std::string v;
  CHECK(t.get("k", 0, &v) == -ENOENT);
  CHECK(t.set("k", "v1", 0, 0) == 0);
  CHECK(t.get("k", 1000000, &v) == 0);
  CHECK(v == "v1");
  CHECK(t.set("e", "x", 100, 1000) == 0);
  CHECK(t.get("e", 1099, &v) == 0);
  CHECK(t.get("e", 1100, &v) == -ENOENT);  // expired at 1000 + 100
  CHECK(t.size() == 1);                    // dropped on access
  CHECK(t.set("e", "x", 100, 2000) == 0);
  CHECK(t.set("f", "y", 50, 2000) == 0);
  CHECK(t.sweep(2049) == 0);
  CHECK(t.sweep(2050) == 1);
  CHECK(t.sweep(2100) == 1);
  CHECK(t.size() == 1);
  // set replaces the value and the expiry (0: none any more)
  CHECK(t.set("g", "1", 10, 0) == 0);
  CHECK(t.set("g", "2", 0, 5) == 0);
  CHECK(t.get("g", 100000, &v) == 0);
  CHECK(v == "2");
  CHECK(t.del("g") == 0);
  CHECK(t.del("g") == 0);
  CHECK(t.get("g", 0, &v) == -ENOENT);
}

TEST_CASE("state: MemTable incr: created at 0 with the TTL, later increments keep the window") {
  MemTable t(100);
  int64_t n = 0;
  CHECK(t.incr("c", 1, 1000, 0, &n) == 0);
  CHECK(n == 1);
  CHECK(t.incr("c", 5, 1000, 900, &n) == 0);  // does not move the expiry to 1900
  CHECK(n == 6);
  CHECK(t.incr("c", -2, 0, 999, &n) == 0);
  CHECK(n == 4);
  CHECK(t.incr("c", 1, 1000, 1000, &n) == 0);  // expired at 1000: a new window
  CHECK(n == 1);
  std::string v;
  CHECK(t.get("c", 1999, &v) == 0);
  CHECK(v == "1");
  CHECK(t.get("c", 2000, &v) == -ENOENT);
  // no TTL: never expires
  CHECK(t.incr("p", 3, 0, 0, &n) == 0);
  CHECK(t.get("p", UINT64_MAX - 1, &v) == 0);
  // not an integer, or an overflow: -EINVAL and the entry unchanged
  t.set("s", "abc", 0, 0);
  CHECK(t.incr("s", 1, 0, 0, &n) == -EINVAL);
  t.set("s", "12x", 0, 0);
  CHECK(t.incr("s", 1, 0, 0, &n) == -EINVAL);
  t.set("m", std::to_string(INT64_MAX), 0, 0);
  CHECK(t.incr("m", 1, 0, 0, &n) == -EINVAL);
  CHECK(t.get("m", 0, &v) == 0);
  CHECK(v == std::to_string(INT64_MAX));
  t.set("neg", "-7", 0, 0);
  CHECK(t.incr("neg", 2, 0, 0, &n) == 0);
  CHECK(n == -5);
}

TEST_CASE("state: MemTable is bounded: expired entries go first, then the soonest to expire") {
  MemTable t(3);
  t.set("a", "1", 500, 0);
  t.set("b", "1", 100, 0);
  t.set("c", "1", 0, 0);
  CHECK(t.size() == 3);
  t.set("d", "1", 0, 10);  // full: b expires soonest
  CHECK(t.size() == 3);
  CHECK(t.evictions() == 1);
  std::string v;
  CHECK(t.get("b", 10, &v) == -ENOENT);
  CHECK(t.get("a", 10, &v) == 0);
  t.set("e", "1", 0, 600);  // a has expired by now: swept, not evicted
  CHECK(t.evictions() == 1);
  CHECK(t.size() == 3);
  t.set("f", "1", 0, 600);  // nothing expires: an arbitrary entry goes
  CHECK(t.size() == 3);
  CHECK(t.evictions() == 2);
  // an existing key is replaced in place, never evicting
  t.set("f", "2", 0, 600);
  CHECK(t.evictions() == 2);
}

namespace {

struct Answer {
  int calls = 0;
  int status = 1;
  std::string value;
  bool had_value = false;
  int64_t number = 0;
};

void record(int status, const char *value, size_t len, int64_t number, void *ud) {
  auto *a = static_cast<Answer *>(ud);
  a->calls++;
  a->status = status;
  a->had_value = value != nullptr;
  if (value) {
    a->value.assign(value, len);
    CHECK(value[len] == '\0');
  }
  a->number = number;
}

void run_once(uv_loop_t *loop) {
  for (int i = 0; i < 5; ++i) uv_run(loop, UV_RUN_NOWAIT);
}

}  // namespace

TEST_CASE("state: kv_* over the embedded service: answers later, never inside the call") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    uvs::state::Service svc(&loop, uvs::config::StateSettings{});
    uvs::state::install(&svc);
    uvs::PluginSet set;
    uvs_plugin *p = uvs::add_builtin(set, "unit");
    const uvs_api *api = uvs::plugin_api();
    Answer set_a, get_a, incr_a, miss_a, del_a;
    CHECK(api->kv_set(p, "k", "va\0lue", 6, 0, record, &set_a) == 0);
    CHECK(api->kv_get(p, "k", record, &get_a) == 0);
    CHECK(api->kv_incr(p, "n", 7, 1000, record, &incr_a) == 0);
    CHECK(api->kv_get(p, "absent", record, &miss_a) == 0);
    CHECK(set_a.calls == 0);  // not inside the call
    CHECK(get_a.calls == 0);
    run_once(&loop);
    CHECK(set_a.calls == 1);
    CHECK(set_a.status == 0);
    CHECK_FALSE(set_a.had_value);
    CHECK(get_a.status == 0);
    CHECK(get_a.value == std::string("va\0lue", 6));
    CHECK(incr_a.status == 0);
    CHECK(incr_a.number == 7);
    CHECK(miss_a.status == -ENOENT);
    CHECK_FALSE(miss_a.had_value);
    // the plugin's name space: another plugin's "k" is another key
    uvs_plugin *q = uvs::add_builtin(set, "other");
    Answer other;
    CHECK(api->kv_get(q, "k", record, &other) == 0);
    CHECK(uvs::kv_full_key(p, "k") == "uvsmtpd:unit:k");
    CHECK(api->kv_del(p, "k", nullptr, nullptr) == 0);  // cb may be NULL
    CHECK(api->kv_get(p, "k", record, &del_a) == 0);
    run_once(&loop);
    CHECK(other.status == -ENOENT);
    CHECK(del_a.status == -ENOENT);
    // argument checks, synchronous
    CHECK(api->kv_get(nullptr, "k", record, nullptr) == -EINVAL);
    CHECK(api->kv_get(p, nullptr, record, nullptr) == -EINVAL);
    CHECK(api->kv_get(p, "", record, nullptr) == -EINVAL);
    CHECK(api->kv_get(p, "k", nullptr, nullptr) == -EINVAL);
    CHECK(api->kv_get(p, "a\nb", record, nullptr) == -EINVAL);
    CHECK(api->kv_get(p, "a\x7f", record, nullptr) == -EINVAL);
    CHECK(api->kv_get(p, std::string(513, 'k').c_str(), record, nullptr) == -EINVAL);
    Answer long_key;
    CHECK(api->kv_get(p, std::string(512, 'k').c_str(), record, &long_key) == 0);
    std::string big(1024 * 1024 + 1, 'x');
    CHECK(api->kv_set(p, "big", big.data(), big.size(), 0, nullptr, nullptr) == -EINVAL);
    CHECK(api->kv_set(p, "big", big.data(), big.size() - 1, 0, nullptr, nullptr) == 0);
    CHECK(api->kv_set(p, "nul", nullptr, 1, 0, nullptr, nullptr) == -EINVAL);
    Answer bad_incr;
    api->kv_set(p, "s", "text", 4, 0, nullptr, nullptr);
    CHECK(api->kv_incr(p, "s", 1, 0, record, &bad_incr) == 0);
    run_once(&loop);
    CHECK(long_key.status == -ENOENT);
    CHECK(bad_incr.status == -EINVAL);
    // the server stops: later operations answer -ECANCELED (still later, on the loop)
    svc.stop();
    Answer after;
    CHECK(api->kv_get(p, "k", record, &after) == 0);
    CHECK(after.calls == 0);
    run_once(&loop);
    CHECK(after.status == -ECANCELED);
  }
  // the service is gone: nothing can run later
  CHECK(uvs::state::current() == nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("state: a pending kv operation keeps its plugin set alive; from fini: -ECANCELED") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    uvs::state::Service svc(&loop, uvs::config::StateSettings{});
    uvs::state::install(&svc);
    auto set = std::make_shared<uvs::PluginSet>();
    uvs_plugin *p = uvs::add_builtin(*set, "owned");
    p->owner = set;
    std::weak_ptr<uvs::PluginSet> watch = set;
    Answer a;
    CHECK(uvs::plugin_api()->kv_set(p, "k", "v", 1, 0, record, &a) == 0);
    set.reset();                   // the generation lets go (a reload retired it)
    CHECK_FALSE(watch.expired());  // the operation holds it
    run_once(&loop);
    CHECK(a.status == 0);
    CHECK(watch.expired());  // released once answered
    // An instance whose set is being destroyed (its fini running) cannot start one.
    uvs_plugin orphan;
    {
      auto gone = std::make_shared<uvs::PluginSet>();
      orphan.owner = gone;
    }
    CHECK(uvs::plugin_api()->kv_get(&orphan, "k", record, &a) == -ECANCELED);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
