// plugin_host/api_envelope.cpp: the envelope edits of ABI 1.5 (mail_from_replace, rcpt_add,
// rcpt_delete): the hook check (data_post only, also through pending_call), the address checks
// (as MAIL FROM and RCPT TO check theirs), then the session applies them (CallHost).
#include "plugin_host/api_envelope.hpp"

#include <cerrno>
#include <new>
#include <string>

#include "hooks/call.hpp"
#include "smtp/address.hpp"

namespace uvs {

namespace {

int hook_check(const uvs_call *c, const char *addr) {
  if (!c || !c->host || !addr) return -EINVAL;
  if (c->hook != UVS_HOOK_DATA_POST) return -EPERM;
  return 0;
}

// The path as MAIL FROM:<addr> would accept it, written canonically (no source route, no
// parameters); "" is the null sender.
bool sender_ok(const std::string &addr) {
  if (addr.empty()) return true;
  if (addr.size() > smtp::kMaxPath) return false;
  smtp::PathParse p = smtp::parse_mail_arg("FROM:<" + addr + ">");
  return p.ok && !p.path.null && p.params.empty() && p.path.route.empty() && p.path.address == addr;
}

// The address as RCPT TO:<addr> would accept it (a bare postmaster included).
bool recipient_ok(const std::string &addr) {
  if (addr.empty() || addr.size() > smtp::kMaxPath) return false;
  smtp::PathParse p = smtp::parse_rcpt_arg("TO:<" + addr + ">");
  return p.ok && p.params.empty() && p.path.route.empty() && p.path.address == addr;
}

}  // namespace

int api_mail_from_replace(uvs_call *c, const char *addr) noexcept {
  int rc = hook_check(c, addr);
  if (rc < 0) return rc;
  try {
    std::string a(addr);
    if (!sender_ok(a)) return -EINVAL;
    return c->host->mail_from_replace(a, c->plugin ? c->plugin->instance : "");
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}

int api_rcpt_add(uvs_call *c, const char *addr) noexcept {
  int rc = hook_check(c, addr);
  if (rc < 0) return rc;
  try {
    std::string a(addr);
    if (!recipient_ok(a)) return -EINVAL;
    return c->host->rcpt_add(a, c->plugin ? c->plugin->instance : "");
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}

int api_rcpt_delete(uvs_call *c, const char *addr) noexcept {
  int rc = hook_check(c, addr);
  if (rc < 0) return rc;
  try {
    std::string a(addr);
    if (!recipient_ok(a)) return -EINVAL;
    return c->host->rcpt_delete(a, c->plugin ? c->plugin->instance : "");
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}

}  // namespace uvs
