/* plugins/auth/dovecot/dovecot.c: the auth/dovecot plugin: arguments, the auth hook, request
 * lifetimes (timeout, cancel, answer). The socket side is dc_conn.c, the protocol dc_proto.c. */
/*
 * conf/plugins: `auth/dovecot <socket path> [timeout_ms]` (default 5000). For every AUTH the hook
 * suspends the call, builds `AUTH <id> PLAIN service=smtp nologin no-penalty lip= rip= lport=
 * rport= [secured] session= resp=<base64(authzid NUL user NUL password)>` (LOGIN is sent as PLAIN:
 * the session has both strings) and hands it to the connection. Dovecot's OK → OK (235), FAIL →
 * DENY (535), FAIL with the temp flag → DENYSOFT (454); no answer within the timeout, or Dovecot
 * down → DENYSOFT (454). The password is only in the AUTH line, which is wiped once written;
 * neither it nor the line is ever logged. docs/plugins/auth-dovecot.md has the details.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "dc.h"
#include "dc_proto.h"

const uvs_api *dc_api;
#define api dc_api

#define DEFAULT_TIMEOUT_MS 5000u

static void unlink_req(dc_req *r) {
  dc_state *st = r->st;
  if (r->prev)
    r->prev->next = r->next;
  else
    st->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    st->reqs_tail = r->prev;
  r->prev = r->next = NULL;
}

void dc_finish(dc_req *r, uvs_verdict v, int code, const char *enh, const char *text) {
  unlink_req(r);
  api->complete(r->p, v, code, enh, text); /* -ECANCELED when the session gave up: fine */
  if (r->line) {
    explicit_bzero(r->line, r->len);
    free(r->line);
  }
  free(r);
}

/* Ends r with 454 (or, when the core let go of it already, with nothing to send). A connection
 * that has said nothing since r went out (or has not finished its handshake) is stuck: it is
 * dropped, so the next request connects again. Not when r is younger than a quarter second (a
 * session closed at shutdown right after asking says nothing about Dovecot). */
static void give_up(dc_req *r, const char *why) {
  dc_state *st = r->st;
  dc_conn *c = st->conn;
  uint64_t now = uv_now(st->loop);
  int stuck = 0;
  if (c && now - r->created_at >= (st->timeout_ms < 250 ? st->timeout_ms : 250))
    stuck = !c->ready || (r->sent && c->last_read <= r->sent_at);
  dc_finish(r, UVS_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
  if (stuck && st->conn == c) dc_conn_fail(c, why);
}

static void on_timeout(uvs_pending *p, void *ud) {
  dc_req *r = ud;
  dc_state *st = r->st;
  api->log(st->self, api->pending_call(p), UVS_LOG_WARNING,
           "user=<%s>: no answer from %s within %llu ms; answering 454", r->user, st->path,
           (unsigned long long)st->timeout_ms);
  give_up(r, "no answer from Dovecot; reconnecting");
}

static void on_cancel(uvs_pending *p, void *ud) {
  dc_req *r = ud;
  (void)p;
  /* the core answered already (hook timeout, session closed): a later answer is ignored */
  api->log(r->st->self, NULL, UVS_LOG_DEBUG, "[%s] user=<%s>: the session no longer waits", r->sid,
           r->user);
  give_up(r, "no answer from Dovecot before the hook timeout; reconnecting");
}

static uvs_verdict on_auth(uvs_call *call, void *ud) {
  dc_state *st = ud;
  const char *user = api->call_address(call);
  const char *password = api->auth_password(call);
  if (!user || !*user || !password) return UVS_DECLINED;
  dc_req *r = calloc(1, sizeof *r);
  if (!r) return UVS_DENYSOFT;
  r->st = st;
  r->created_at = uv_now(st->loop);
  r->id = ++st->next_id;
  if (r->id == 0) r->id = ++st->next_id;
  snprintf(r->user, sizeof r->user, "%s", user);
  for (char *q = r->user; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
  snprintf(r->sid, sizeof r->sid, "%s", api->session_id(call));
  dc_auth a = {
      .id = r->id,
      .authzid = api->call_param(call, "authzid"),
      .user = user,
      .password = password,
      .service = "smtp",
      .lip = api->local_ip(call),
      .rip = api->peer_ip(call),
      .lport = api->local_port(call),
      .rport = api->peer_port(call),
      .secured = api->tls_active(call) > 0,
      .session = r->sid,
  };
  r->line = dc_auth_line(&a, &r->len);
  if (!r->line) {
    int e = errno;
    if (e == E2BIG)
      api->log(st->self, call, UVS_LOG_INFO,
               "user=<%s>: credentials too long for Dovecot's protocol", r->user);
    else
      api->log(st->self, call, UVS_LOG_ERR, "cannot build the request: %s", strerror(e));
    free(r);
    return e == E2BIG ? UVS_DENY : UVS_DENYSOFT;
  }
  r->p = api->suspend(call);
  if (!r->p) {
    explicit_bzero(r->line, r->len);
    free(r->line);
    free(r);
    return UVS_DENYSOFT;
  }
  r->prev = st->reqs_tail;
  if (st->reqs_tail)
    st->reqs_tail->next = r;
  else
    st->reqs = r;
  st->reqs_tail = r;
  api->pending_timer(r->p, st->timeout_ms, on_timeout, r);
  api->pending_on_cancel(r->p, on_cancel, r);
  api->log(st->self, call, UVS_LOG_DEBUG, "user=<%s> mechanism=%s: asking Dovecot (request %u)",
           r->user, api->call_arg(call), r->id);
  dc_kick(st); /* may complete r at once (nothing to connect to): applied after we return */
  return UVS_PENDING;
}

static void state_free(dc_state *st) {
  if (!st) return;
  /* no request is open here: a pending call keeps the instance alive */
  if (st->conn) dc_conn_close(st->conn);
  free(st->path);
  free(st);
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  if (argc < 1 || argc > 2) {
    api->set_error(self, "usage: auth/dovecot <socket path> [timeout_ms]");
    return -EINVAL;
  }
  const char *path = api->plugin_argv(self, 0);
  struct sockaddr_un sun;
  if (path[0] != '/' || strlen(path) >= sizeof sun.sun_path) {
    api->set_errorf(self, "the socket path '%s' must be absolute and shorter than %zu bytes", path,
                    sizeof sun.sun_path);
    return -EINVAL;
  }
  uint64_t timeout = DEFAULT_TIMEOUT_MS;
  if (argc == 2) {
    const char *s = api->plugin_argv(self, 1);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-' || s[0] == '\0' || v < 1 || v > 600000) {
      api->set_errorf(self,
                      "timeout_ms '%s' must be a whole number of milliseconds from 1 to 600000", s);
      return -EINVAL;
    }
    timeout = v;
  }
  int64_t hook_ms = api->hook_timeout_ms(self);
  if (hook_ms > 0 && timeout >= (uint64_t)hook_ms)
    api->log(self, NULL, UVS_LOG_WARNING,
             "timeout_ms %llu is not below hook_timeout (%lld ms): the core's 451 comes first",
             (unsigned long long)timeout, (long long)hook_ms);
  uv_loop_t *loop = api->event_loop(self);
  if (!loop) {
    api->set_error(self, "the server has no event loop");
    return -EINVAL;
  }
  dc_state *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path))) {
    free(st);
    return -ENOMEM;
  }
  st->self = self;
  st->loop = loop;
  st->timeout_ms = timeout;
  int rc = api->register_hook(self, UVS_HOOK_AUTH, on_auth, st);
  if (rc < 0) {
    api->set_error(self, "cannot register the auth hook");
    state_free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO, "checking passwords with Dovecot at %s (timeout %llu ms)",
           path, (unsigned long long)timeout);
  return 0;
}

static void fini(uvs_plugin *self) {
  state_free(api->plugin_data(self));
}

UVS_PLUGIN("auth/dovecot", "1.0", init, fini);
