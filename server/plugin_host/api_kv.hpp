// plugin_host/api_kv.hpp: the shared-state entries of the uvs_api table (1.5: kv_get, kv_set,
// kv_incr, kv_del), implemented in api_kv.cpp over state::Service.
#pragma once
#include <string>

#include "uvsmtpd/plugin.h"

namespace uvs {

int api_kv_get(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud) noexcept;
int api_kv_set(uvs_plugin *p, const char *key, const char *value, size_t len, uint64_t ttl_ms,
               uvs_kv_fn cb, void *ud) noexcept;
int api_kv_incr(uvs_plugin *p, const char *key, int64_t delta, uint64_t ttl_ms, uvs_kv_fn cb,
                void *ud) noexcept;
int api_kv_del(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud) noexcept;

// The full key a plugin's key is stored under: "uvsmtpd:<plugin name>:<key>".
std::string kv_full_key(const uvs_plugin *p, const char *key);

}  // namespace uvs
