// hooks/hook_names.cpp: the name tables behind hook_names.hpp.
#include "hooks/hook_names.hpp"

namespace uvs {
namespace {
constexpr std::string_view kHooks[] = {
    "?",    "pre-connection", "connect", "helo", "ehlo",  "mail", "rcpt",
    "data", "data_headers_end", "data_post", "queue", "queue_post", "reset_transaction",
    "quit", "disconnect", "unrecognized_command", "vrfy", "noop", "help", "deny", "ok", "auth"};
constexpr std::string_view kVerdicts[] = {"DECLINED", "OK",   "DENY",   "DENYSOFT",
                                          "DENY_DISCONNECT", "DENYSOFT_DISCONNECT",
                                          "DONE",     "PENDING"};
}  // namespace

bool hook_known(int h) { return h >= 1 && h <= kHookMax; }
std::string_view hook_name(int h) { return hook_known(h) ? kHooks[h] : kHooks[0]; }
bool verdict_known(int v) { return v >= UVS_DECLINED && v <= UVS_PENDING; }
std::string_view verdict_name(int v) { return verdict_known(v) ? kVerdicts[v] : "INVALID"; }

}  // namespace uvs
