// plugin_host/api_kv.cpp: uvs_api.kv_* (1.5): checks the arguments, namespaces the key by the
// plugin's name, keeps the instance alive while the operation is under way (its plugin set,
// so fini waits) and hands the request to the process's state service.
#include "plugin_host/api_kv.hpp"

#include <cerrno>
#include <memory>
#include <new>

#include "hooks/call.hpp"
#include "state/service.hpp"

namespace uvs {

namespace {

constexpr size_t kMaxKey = 512;
constexpr size_t kMaxValue = 1024 * 1024;

bool key_ok(const char *key) {
  if (!key || !*key) return false;
  size_t n = 0;
  for (const char *k = key; *k; ++k, ++n) {
    auto c = static_cast<unsigned char>(*k);
    if (n >= kMaxKey || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// An instance loaded from conf/plugins has an owner (its plugin set); one added in process
// (unit tests, add_builtin) has none and needs no keeping.
bool has_owner(const uvs_plugin *p) {
  const std::weak_ptr<const void> none;
  return p->owner.owner_before(none) || none.owner_before(p->owner);
}

int start(uvs_plugin *p, const char *key, state::Request r, uvs_kv_fn cb, void *ud) {
  if (!p || !key_ok(key)) return -EINVAL;
  try {
    std::shared_ptr<const void> keep;
    if (has_owner(p)) {
      keep = p->owner.lock();
      // Its set is being destroyed (fini running): nothing could run for it later.
      if (!keep) return -ECANCELED;
    }
    state::Service *svc = state::current();
    if (!svc) return -ECANCELED;  // the server is gone
    r.key = kv_full_key(p, key);
    r.done = [cb, ud, keep = std::move(keep)](int status, const std::string *value,
                                              int64_t number) {
      if (cb) cb(status, value ? value->c_str() : nullptr, value ? value->size() : 0, number, ud);
    };
    svc->submit(std::move(r));
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
  return 0;
}

}  // namespace

std::string kv_full_key(const uvs_plugin *p, const char *key) {
  const std::string name = p->info && p->info->name ? p->info->name : p->module;
  return "uvsmtpd:" + name + ":" + key;
}

int api_kv_get(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud) noexcept {
  if (!cb) return -EINVAL;
  state::Request r;
  r.op = state::Op::get;
  return start(p, key, std::move(r), cb, ud);
}

int api_kv_set(uvs_plugin *p, const char *key, const char *value, size_t len, uint64_t ttl_ms,
               uvs_kv_fn cb, void *ud) noexcept {
  if ((!value && len) || len > kMaxValue) return -EINVAL;
  try {
    state::Request r;
    r.op = state::Op::set;
    r.value.assign(value ? value : "", len);
    r.ttl_ms = ttl_ms;
    return start(p, key, std::move(r), cb, ud);
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}

int api_kv_incr(uvs_plugin *p, const char *key, int64_t delta, uint64_t ttl_ms, uvs_kv_fn cb,
                void *ud) noexcept {
  state::Request r;
  r.op = state::Op::incr;
  r.delta = delta;
  r.ttl_ms = ttl_ms;
  return start(p, key, std::move(r), cb, ud);
}

int api_kv_del(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud) noexcept {
  state::Request r;
  r.op = state::Op::del;
  return start(p, key, std::move(r), cb, ud);
}

}  // namespace uvs
