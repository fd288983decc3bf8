// hooks/hook_names.hpp: hook and verdict names (for logs, docs and the plugin host).
#pragma once
#include <string_view>
#include "uvsmtpd/plugin.h"

namespace uvs {

inline constexpr int kHookMax = UVS_HOOK_AUTH;  // highest hook id this server knows

bool hook_known(int hook);
std::string_view hook_name(int hook);  // "rcpt", "data_post", ... ("?" if unknown)
bool verdict_known(int v);
std::string_view verdict_name(int v);  // "DENYSOFT", ...

}  // namespace uvs
