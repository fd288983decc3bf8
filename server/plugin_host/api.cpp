// plugin_host/api.cpp: the uvs_api function table: every entry point plugins call. Each one is
// noexcept, checks its arguments and returns 0 / a count, or a negative errno.
#include <cerrno>
#include <cstddef>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "config/flat_file.hpp"
#include "hooks/conn_dns.hpp"
#include "hooks/hook_names.hpp"
#include "hooks/runner.hpp"
#include "hooks/services.hpp"
#include "log/log.hpp"
#include "plugin_host/api_envelope.hpp"
#include "plugin_host/api_kv.hpp"
#include "plugin_host/host.hpp"
#include "tls/details.hpp"

namespace uvs {
namespace {

const char *cstr(const std::string *s) { return s ? s->c_str() : nullptr; }
bool valid_scope(int scope) { return scope == UVS_NOTE_CONNECTION || scope == UVS_NOTE_TRANSACTION; }

// -- plugin level --
int api_register_hook(uvs_plugin *p, uvs_hook hook, uvs_hook_fn fn, void *ud) noexcept {
  if (!p || !fn) return -EINVAL;
  if (!p->registering) return -EPERM;  // only during init
  if (!hook_known(hook)) return -ENOSYS;
  p->registering->by_hook[hook].push_back(Handler{p, fn, ud});
  return 0;
}

int api_set_error(uvs_plugin *p, const char *msg) noexcept {
  if (!p) return -EINVAL;
  p->error = msg ? msg : "";
  return 0;
}
// 1.2/1.3: set_error with a format, expanded in full into a string sized by a first vsnprintf
// pass.
int api_set_errorfv(uvs_plugin *p, const char *fmt, va_list ap) noexcept {
  if (!p) return -EINVAL;
  if (!fmt) return api_set_error(p, nullptr);
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  try {
    if (n < 0) {  // an expansion error (a bad conversion): keep the format as the message
      p->error = fmt;
      return -EINVAL;
    }
    std::string msg(static_cast<size_t>(n) + 1, '\0');
    vsnprintf(msg.data(), msg.size(), fmt, ap);
    msg.resize(static_cast<size_t>(n));
    p->error = std::move(msg);
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
  return 0;
}
int api_set_errorf(uvs_plugin *p, const char *fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  int rc = api_set_errorfv(p, fmt, ap);
  va_end(ap);
  return rc;
}
const char *api_plugin_name(const uvs_plugin *p) noexcept { return p ? p->instance.c_str() : nullptr; }
int api_plugin_argc(const uvs_plugin *p) noexcept { return p ? static_cast<int>(p->args.size()) : -EINVAL; }
const char *api_plugin_argv(const uvs_plugin *p, int i) noexcept {
  if (!p || i < 0 || static_cast<size_t>(i) >= p->args.size()) return nullptr;
  return p->args[i].c_str();
}
void api_plugin_set_data(uvs_plugin *p, void *data) noexcept {
  if (p) p->data = data;
}
void *api_plugin_data(const uvs_plugin *p) noexcept { return p ? p->data : nullptr; }

bool config_name_ok(const char *name) {
  return name && *name && !strstr(name, "..") && name[0] != '/';
}

// The lines of a flat list file in the plugin's config dir, each handed to fn until it returns
// non-zero: the number of lines handed over, or a negative errno. config_lines(_at) share it.
template <typename Fn>
int each_config_line(uvs_plugin *p, const char *name, Fn &&fn) {
  if (!p || !config_name_ok(name)) return -EINVAL;
  std::vector<config::FlatLine> lines;
  int rc = config::read_flat_file_at(p->config_dir + "/" + name, lines);
  if (rc < 0) return rc;
  int n = 0;
  for (const auto &l : lines) {
    ++n;
    if (fn(l) != 0) break;
  }
  return n;
}

int api_config_lines(uvs_plugin *p, const char *name, uvs_line_fn cb, void *ud) noexcept {
  if (!cb) return -EINVAL;
  return each_config_line(p, name,
                          [&](const config::FlatLine &l) { return cb(l.text.c_str(), ud); });
}
const char *api_me(const uvs_plugin *p) noexcept { return p ? p->me.c_str() : nullptr; }

void api_logv(uvs_plugin *p, const uvs_call *c, int level, const char *fmt, va_list ap) noexcept {
  if (!fmt || !log::enabled(level)) return;
  try {
    // Text lines show "[session queue-id]"; JSON lines have "session" and "queue_id" fields.
    std::string sid = (c && c->host) ? c->host->session_id() : std::string();
    const std::string *qid = (c && c->host) ? c->host->queue_id() : nullptr;
    std::vector<log::Field> fields;
    if (qid && log::json())
      fields.push_back({"queue_id", log::json_string(*qid)});
    else if (qid)
      sid += " " + *qid;
    log::vformat(level, sid, p ? p->instance : std::string("plugin"), fmt, ap, fields);
  } catch (const std::bad_alloc &) {
  }
}
void api_log(uvs_plugin *p, const uvs_call *c, int level, const char *fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  api_logv(p, c, level, fmt, ap);
  va_end(ap);
}

// -- the call --
uvs_hook api_call_hook(const uvs_call *c) noexcept { return c ? c->hook : static_cast<uvs_hook>(0); }
const char *api_call_arg(const uvs_call *c) noexcept { return (c && c->args) ? c->args->arg.c_str() : ""; }
const char *api_call_address(const uvs_call *c) noexcept {
  return (c && c->args) ? c->args->address.c_str() : "";
}
const char *api_call_param(const uvs_call *c, const char *key) noexcept {
  if (!c || !c->args || !c->args->params || !key) return nullptr;
  std::string k(key);
  for (auto &ch : k) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
  const smtp::EsmtpParam *p = smtp::find_param(*c->args->params, k);
  if (!p) return nullptr;
  return p->value ? p->value->c_str() : "";
}
const char *api_session_id(const uvs_call *c) noexcept { return c ? c->host->session_id().c_str() : nullptr; }
const char *api_peer_ip(const uvs_call *c) noexcept { return c ? c->host->peer_ip().c_str() : nullptr; }
int api_peer_port(const uvs_call *c) noexcept { return c ? c->host->peer_port() : -EINVAL; }
const char *api_local_ip(const uvs_call *c) noexcept { return c ? c->host->local_ip().c_str() : nullptr; }
int api_local_port(const uvs_call *c) noexcept { return c ? c->host->local_port() : -EINVAL; }
const char *api_helo_name(const uvs_call *c) noexcept { return c ? cstr(c->host->helo()) : nullptr; }
int api_is_esmtp(const uvs_call *c) noexcept { return c ? c->host->esmtp() : -EINVAL; }
const char *api_mail_from(const uvs_call *c) noexcept { return c ? cstr(c->host->mail_from()) : nullptr; }
int api_rcpt_count(const uvs_call *c) noexcept {
  return c ? static_cast<int>(c->host->rcpts().size()) : -EINVAL;
}
const char *api_rcpt_at(const uvs_call *c, int i) noexcept {
  if (!c || i < 0 || static_cast<size_t>(i) >= c->host->rcpts().size()) return nullptr;
  return c->host->rcpts()[i].c_str();
}
int api_tls_active(const uvs_call *c) noexcept { return c ? c->host->tls_active() : -EINVAL; }
const char *api_auth_user(const uvs_call *c) noexcept { return c ? cstr(c->host->auth_user()) : nullptr; }
// 1.4: the auth hook's password (borrowed from the session, which wipes it after the verdict)
// and the mechanism (the one being tried inside the auth hook, the successful one after).
const char *api_auth_password(const uvs_call *c) noexcept {
  return (c && c->hook == UVS_HOOK_AUTH && c->args) ? c->args->password : nullptr;
}
const char *api_queue_id(const uvs_call *c) noexcept { return c ? cstr(c->host->queue_id()) : nullptr; }
const char *api_auth_mechanism(const uvs_call *c) noexcept {
  if (!c) return nullptr;
  if (c->hook == UVS_HOOK_AUTH && c->args) return c->args->arg.c_str();
  return cstr(c->host->auth_mechanism());
}

// -- message --
int64_t api_message_size(const uvs_call *c) noexcept { return c ? c->host->message_size() : -EINVAL; }
int64_t api_message_read(const uvs_call *c, int64_t off, void *buf, size_t len) noexcept {
  if (!c || !buf || off < 0) return -EINVAL;
  return c->host->message_read(off, buf, len);
}
const char *api_header_get(const uvs_call *c, const char *name, int i) noexcept {
  if (!c || !name || i < 0) return nullptr;
  return cstr(c->host->header(name, i));
}

// -- reply --
int api_reply(uvs_call *c, int code, const char *enhanced, const char *text) noexcept {
  if (!c) return -EINVAL;
  if (code != 0 && (code < 200 || code > 599)) return -EINVAL;
  std::string enh = enhanced ? enhanced : "";
  if (!enh.empty() && (!enhanced_ok(enh) || (code != 0 && enh[0] - '0' != code / 100))) return -EINVAL;
  std::string t = text ? text : "";
  if (!reply_text_ok(t)) return -EINVAL;
  c->reply.code = code;
  c->reply.enhanced = enh;
  c->reply.lines.clear();
  if (!t.empty() || code != 0) c->reply.lines.push_back(t);
  return 0;
}
int api_reply_line(uvs_call *c, const char *text) noexcept {
  if (!c || !text || !reply_text_ok(text)) return -EINVAL;
  if (c->reply.lines.size() >= 64) return -E2BIG;
  c->reply.lines.emplace_back(text);
  return 0;
}

int api_send_continuation(uvs_call *c, const char *text) noexcept {
  if (!c || !text || !reply_text_ok(text)) return -EINVAL;
  if (c->hook != UVS_HOOK_CONNECT) return -EPERM;
  int rc = c->host->send_continuation(text);
  return rc < 0 ? -EPERM : 0;
}

// -- notes --
int api_note_set(uvs_call *c, int scope, const char *key, const char *value) noexcept {
  if (!c || !key || !*key || !valid_scope(scope)) return -EINVAL;
  if (value)
    c->host->notes(scope).set(key, value);
  else
    c->host->notes(scope).erase(key);
  return 0;
}
const char *api_note_get(const uvs_call *c, int scope, const char *key) noexcept {
  if (!c || !key || !valid_scope(scope)) return nullptr;
  return cstr(c->host->notes(scope).get(key));
}
int api_note_set_ptr(uvs_call *c, int scope, const char *key, void *ptr, uvs_free_fn dtor) noexcept {
  if (!c || !key || !*key || !valid_scope(scope)) return -EINVAL;
  c->host->notes(scope).set_ptr(key, ptr, dtor);
  return 0;
}
void *api_note_get_ptr(const uvs_call *c, int scope, const char *key) noexcept {
  if (!c || !key || !valid_scope(scope)) return nullptr;
  return c->host->notes(scope).get_ptr(key);
}
int api_relay_client(const uvs_call *c) noexcept { return c ? c->host->relay_client() : -EINVAL; }
int api_set_relay_client(uvs_call *c, int on) noexcept {
  if (!c) return -EINVAL;
  c->host->set_relay_client(on != 0);
  return 0;
}
bool truthy(const std::string *s) { return s && !s->empty() && *s != "0"; }
int api_is_immune(const uvs_call *c) noexcept {
  if (!c) return -EINVAL;
  return c->host->relay_client() || truthy(c->host->notes(UVS_NOTE_CONNECTION).get("whitelisthost")) ||
         truthy(c->host->notes(UVS_NOTE_TRANSACTION).get("whitelistsender"));
}
int api_adjust_karma(uvs_call *c, int delta) noexcept {
  if (!c) return -EINVAL;
  Notes &n = c->host->notes(UVS_NOTE_CONNECTION);
  const std::string *cur = n.get("karma");
  long v = cur ? strtol(cur->c_str(), nullptr, 10) : 0;
  v += delta;
  n.set("karma", std::to_string(v));
  if (log::enabled(log::info))
    log::format(log::info, c->host->session_id(), c->plugin ? c->plugin->instance : "", "karma %d (%ld)",
                delta, v);
  return static_cast<int>(v);
}

// -- async --
uvs_pending *api_suspend(uvs_call *c) noexcept {
  if (!c || !c->may_suspend || c->pending || !c->services) return nullptr;
  c->pending = pending::create(c->services, c);
  return c->pending;
}
int api_complete(uvs_pending *p, uvs_verdict v, int code, const char *enhanced, const char *text) noexcept {
  if (!p) return -EINVAL;
  if (p->complete_called.exchange(true)) return -EALREADY;
  bool waiting = p->waiting.load();
  std::string t = text ? text : "";
  std::string e = enhanced ? enhanced : "";
  bool bad = (code != 0 && (code < 200 || code > 599)) || !reply_text_ok(t) ||
             (!e.empty() && (!enhanced_ok(e) || (code != 0 && e[0] - '0' != code / 100)));
  if (bad) {
    code = 0;
    e.clear();
    t.clear();
  }
  p->svc->post(LoopServices::Completion{p, static_cast<int>(v), code, std::move(e), std::move(t)});
  if (bad) return -EINVAL;
  return waiting ? 0 : -ECANCELED;
}
uvs_call *api_pending_call(uvs_pending *p) noexcept {
  if (!p || p->completed) return nullptr;
  return p->call;
}
int api_pending_timer(uvs_pending *p, uint64_t ms, uvs_pending_fn cb, void *ud) noexcept {
  return pending::timer(p, ms, cb, ud);
}
int api_wait_for_input(uvs_pending *p, uint64_t ms, uvs_input_fn cb, void *ud) noexcept {
  return pending::wait_for_input(p, ms, cb, ud);
}
int api_run_blocking(uvs_pending *p, uvs_work_fn work, uvs_pending_fn done, void *ud) noexcept {
  return pending::run_blocking(p, work, done, ud);
}

// -- 1.1 --
const char *api_remote_host(const uvs_call *c) noexcept { return c ? cstr(c->host->remote_host()) : nullptr; }
int api_dns_query(uvs_pending *p, const char *name, int type, uint64_t timeout_ms, uvs_dns_fn cb,
                  void *ud) noexcept {
  return pending::dns_query(p, name, type, timeout_ms, cb, ud);
}
void *api_event_loop(const uvs_plugin *p) noexcept { return p ? p->loop : nullptr; }
int api_message_fd(const uvs_call *c) noexcept { return c ? c->host->message_fd() : -EINVAL; }
int api_config_lines_at(uvs_plugin *p, const char *name, uvs_line_at_fn cb, void *ud) noexcept {
  if (!cb) return -EINVAL;
  return each_config_line(p, name, [&](const config::FlatLine &l) {
    return cb(l.text.c_str(), l.file.c_str(), l.line, ud);
  });
}

// -- 1.3 --
bool has_8bit(const std::string &s) {
  for (unsigned char ch : s)
    if (ch >= 0x80) return true;
  return false;
}
// A replacement must be what RCPT TO:<addr> accepts as a mailbox: no route, no bare postmaster,
// and written canonically (the parser's address is the text itself).
bool replacement_ok(const std::string &addr, bool may_8bit) {
  if (addr.empty() || addr.size() > smtp::kMaxPath) return false;
  smtp::PathParse p = smtp::parse_rcpt_arg("TO:<" + addr + ">");
  return p.ok && p.params.empty() && p.path.route.empty() && !p.path.domain.empty() &&
         p.path.address == addr && (may_8bit || !p.path.has_8bit);
}
int api_rcpt_replace(uvs_call *c, const char *const *addrs, int n) noexcept {
  if (!c) return -EINVAL;
  if (c->hook != UVS_HOOK_RCPT || !c->args) return -EPERM;
  if (!addrs || n < 1) return -EINVAL;
  try {
    bool may_8bit = has_8bit(c->args->address);  // the transaction declared SMTPUTF8
    std::vector<std::string> list;
    list.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      if (!addrs[i]) return -EINVAL;
      std::string a(addrs[i]);
      if (!replacement_ok(a, may_8bit)) return -EINVAL;
      list.push_back(std::move(a));
    }
    c->rcpt_replace = std::move(list);
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
  return 0;
}

// 1.3: the TLS parameters. The smallest size a caller may pass is the 1.3 struct: up to its last
// field, which stays the minimum when later minors append; fields past the server's own struct
// are left as the caller set them.
constexpr size_t kTlsInfoMinSize =
    offsetof(uvs_tls_info, client_fingerprint_sha256) + sizeof(const char *);
static_assert(kTlsInfoMinSize <= sizeof(uvs_tls_info));
int api_tls_info(const uvs_call *c, uvs_tls_info *out) noexcept {
  if (!c || !out || out->size < kTlsInfoMinSize) return -EINVAL;
  const tls::TlsDetails *d = c->host->tls_details();
  if (!d) return -ENOENT;
  out->protocol = d->protocol.c_str();
  out->cipher = d->cipher.c_str();
  out->bits = d->bits;
  out->sni = d->sni.c_str();
  out->client_cert = d->client_cert_presented ? 1 : 0;
  out->client_cert_verified = d->client_cert_verified ? 1 : 0;
  out->client_subject = d->client_subject.c_str();
  out->client_fingerprint_sha256 = d->client_fingerprint_sha256.c_str();
  return 0;
}

// 1.3: plugin-level timers, worker-thread notes, the cancel callback, hook_timeout.
uvs_timer *api_timer_start(uvs_plugin *p, uint64_t ms, uint64_t repeat_ms, uvs_timer_fn cb,
                           void *ud) noexcept {
  if (!p) return nullptr;
  return p->timers.start(p->loop, ms, repeat_ms, cb, ud);
}
int api_timer_stop(uvs_timer *t) noexcept { return PluginTimers::stop(t); }
int api_pending_note_set(uvs_pending *p, int scope, const char *key, const char *value) noexcept {
  return pending::note_set(p, scope, key, value);
}
int api_pending_on_cancel(uvs_pending *p, uvs_pending_fn cb, void *ud) noexcept {
  return pending::on_cancel(p, cb, ud);
}
int64_t api_hook_timeout_ms(const uvs_plugin *p) noexcept { return p ? p->hook_timeout_ms : -EINVAL; }

// 1.3: connection-scoped DNS, owned by the session (cancelled when it ends).
int64_t api_dns_query_conn(uvs_call *c, const char *name, int type, uint64_t timeout_ms,
                           uvs_dns_conn_fn cb, void *ud) noexcept {
  if (!c || !c->host) return -EINVAL;
  ConnDns *d = c->host->conn_dns();
  if (!d) return -ENOSYS;
  try {
    return d->start(name, type, timeout_ms, cb, ud);
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}
int api_dns_cancel_conn(uvs_call *c, int64_t id) noexcept {
  if (!c || !c->host) return -EINVAL;
  ConnDns *d = c->host->conn_dns();
  return d ? d->cancel(id) : -ENOENT;
}

// 1.3: message edits, at data_headers_end and data_post only (the session checks the rest).
int edit_hook_check(const uvs_call *c) {
  if (!c || !c->host) return -EINVAL;
  if (c->hook != UVS_HOOK_DATA_HEADERS_END && c->hook != UVS_HOOK_DATA_POST) return -EPERM;
  return 0;
}
int header_edit(uvs_call *c, smtp::HeaderOp op, const char *at, int i, const char *name,
                const char *value) noexcept {
  int rc = edit_hook_check(c);
  if (rc < 0) return rc;
  try {
    return c->host->header_edit(op, at ? at : "", i, name ? name : "",
                                value ? value : "");
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}
int api_header_add(uvs_call *c, const char *name, const char *value, int where) noexcept {
  int rc = edit_hook_check(c);
  if (rc < 0) return rc;
  if (!name || !value || (where != UVS_HEADER_TOP && where != UVS_HEADER_BOTTOM)) return -EINVAL;
  return header_edit(c, where == UVS_HEADER_TOP ? smtp::HeaderOp::add_top : smtp::HeaderOp::add_bottom, nullptr, 0, name, value);
}
int api_header_insert(uvs_call *c, const char *before, int i, const char *name,
                      const char *value) noexcept {
  int rc = edit_hook_check(c);
  if (rc < 0) return rc;
  if (!before || !name || !value || i < 0) return -EINVAL;
  return header_edit(c, smtp::HeaderOp::insert_before, before, i, name, value);
}
int api_header_delete(uvs_call *c, const char *name, int i) noexcept {
  int rc = edit_hook_check(c);
  if (rc < 0) return rc;
  if (!name || i < 0) return -EINVAL;
  return header_edit(c, smtp::HeaderOp::erase, name, i, nullptr, nullptr);
}
int api_header_replace(uvs_call *c, const char *name, int i, const char *value) noexcept {
  int rc = edit_hook_check(c);
  if (rc < 0) return rc;
  if (!name || !value || i < 0) return -EINVAL;
  return header_edit(c, smtp::HeaderOp::replace, name, i, name, value);
}
int api_body_replace_fd(uvs_call *c, int fd) noexcept {
  int rc = edit_hook_check(c);
  if (rc < 0) return rc;
  if (fd < 0) return -EINVAL;
  try {
    return c->host->body_replace(fd);
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  }
}

// 1.5 envelope edits: plugin_host/api_envelope.cpp; shared state: plugin_host/api_kv.cpp.

// Positional: the order is the ABI. A member left out at the end would be NULL in a table whose
// size claims it; -Wextra (-Wmissing-field-initializers) flags that, and the build has no warnings.
const uvs_api kApi = {
    sizeof(uvs_api), UVS_ABI_MAJOR, UVS_ABI_MINOR,  // this server's, whatever a plugin's stamp
    api_register_hook, api_set_error, api_plugin_name, api_plugin_argc, api_plugin_argv,
    api_plugin_set_data, api_plugin_data, api_config_lines, api_me, api_log,
    api_call_hook, api_call_arg, api_call_address, api_call_param, api_session_id, api_peer_ip,
    api_peer_port, api_local_ip, api_local_port, api_helo_name, api_is_esmtp, api_mail_from,
    api_rcpt_count, api_rcpt_at, api_tls_active, api_auth_user,
    api_message_size, api_message_read, api_header_get,
    api_reply, api_reply_line, api_send_continuation,
    api_note_set, api_note_get, api_note_set_ptr, api_note_get_ptr, api_relay_client,
    api_set_relay_client, api_is_immune, api_adjust_karma,
    api_suspend, api_complete, api_pending_call, api_pending_timer, api_wait_for_input,
    api_run_blocking,
    api_remote_host, api_dns_query, api_event_loop, api_message_fd, api_config_lines_at,
    api_set_errorf,
    api_rcpt_replace, api_tls_info, api_timer_start, api_timer_stop, api_pending_note_set,
    api_pending_on_cancel, api_logv, api_set_errorfv, api_hook_timeout_ms,
    api_dns_query_conn, api_dns_cancel_conn,
    api_header_add, api_header_insert, api_header_delete, api_header_replace,
    api_body_replace_fd,
    api_auth_password, api_auth_mechanism, api_queue_id,
    api_mail_from_replace, api_rcpt_add, api_rcpt_delete,
    api_kv_get, api_kv_set, api_kv_incr, api_kv_del,
};

}  // namespace

const uvs_api *plugin_api() { return &kApi; }

}  // namespace uvs
