/* tests/plugins/auth_static.c: a test back end for SMTP AUTH (tests/integration/test_auth.cpp).
 *
 * Arguments: user password pairs ("alice s3cret bob hunter2"). In the auth hook:
 *   - user "tempfail": DENYSOFT (454);
 *   - user "slow": suspends and decides 200 ms later from a pending_timer, reading the password
 *     again through pending_call() (so the core must keep it until complete());
 *   - a listed user with the right password: OK; a listed user with a wrong one: DENY;
 *   - an unknown user: DECLINED (the core answers 535 when nobody said OK).
 * Logs at NOTICE what it saw, never the password itself:
 *   "auth_static: mechanism=<m> user=<u> authzid=<z|(null)> password_len=<n>
 *    auth_user=<(null)> auth_mechanism=<m>" and "auth_static: verdict=<V> user=<u>".
 * In the mail hook it logs "auth_static: mail auth_user=<u> auth_mechanism=<m> param_auth=<v>"
 * (declining), so tests can see the session's state after AUTH.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct state {
  int n;       /* pairs */
  char **argv; /* borrowed from the plugin's arguments */
} state;

#define S(x) ((x) ? (x) : "(null)")

static uvs_verdict check(const state *st, const char *user, const char *password) {
  if (!user || !password) return UVS_DECLINED;
  for (int i = 0; i + 1 < st->n * 2; i += 2)
    if (strcmp(st->argv[i], user) == 0)
      return strcmp(st->argv[i + 1], password) == 0 ? UVS_OK : UVS_DENY;
  return UVS_DECLINED;
}

static const char *verdict_name(uvs_verdict v) {
  switch (v) {
    case UVS_OK: return "OK";
    case UVS_DENY: return "DENY";
    case UVS_DENYSOFT: return "DENYSOFT";
    default: return "DECLINED";
  }
}

typedef struct slow_job {
  const state *st;
} slow_job;

static void on_slow(uvs_pending *p, void *ud) {
  slow_job *j = (slow_job *)ud;
  uvs_call *c = api->pending_call(p);
  uvs_verdict v = UVS_DENYSOFT;
  if (c) {
    const char *pw = api->auth_password(c);
    api->log(NULL, c, UVS_LOG_NOTICE, "auth_static: slow pending password_len=%d",
             pw ? (int)strlen(pw) : -1);
    v = check(j->st, api->call_address(c), pw);
    api->log(NULL, c, UVS_LOG_NOTICE, "auth_static: verdict=%s user=%s", verdict_name(v),
             api->call_address(c));
  }
  free(j);
  api->complete(p, v, 0, NULL, NULL);
}

static uvs_verdict on_auth(uvs_call *c, void *ud) {
  const state *st = (const state *)ud;
  const char *user = api->call_address(c);
  const char *pw = api->auth_password(c);
  api->log(NULL, c, UVS_LOG_NOTICE,
           "auth_static: mechanism=%s user=%s authzid=%s password_len=%d auth_user=%s "
           "auth_mechanism=%s",
           api->call_arg(c), user, S(api->call_param(c, "authzid")), pw ? (int)strlen(pw) : -1,
           S(api->auth_user(c)), S(api->auth_mechanism(c)));
  if (strcmp(user, "tempfail") == 0) return UVS_DENYSOFT;
  if (strcmp(user, "slow") == 0) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    slow_job *j = (slow_job *)calloc(1, sizeof *j);
    j->st = st;
    api->pending_timer(p, 200, on_slow, j);
    return UVS_PENDING;
  }
  uvs_verdict v = check(st, user, pw);
  api->log(NULL, c, UVS_LOG_NOTICE, "auth_static: verdict=%s user=%s", verdict_name(v), user);
  return v;
}

static uvs_verdict on_mail(uvs_call *c, void *ud) {
  (void)ud;
  api->log(NULL, c, UVS_LOG_NOTICE,
           "auth_static: mail auth_user=%s auth_mechanism=%s auth_password=%s param_auth=%s",
           S(api->auth_user(c)), S(api->auth_mechanism(c)), S(api->auth_password(c)),
           S(api->call_param(c, "AUTH")));
  return UVS_DECLINED;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  if (argc % 2 != 0) {
    api->set_error(self, "arguments must be user password pairs");
    return -EINVAL;
  }
  state *st = (state *)calloc(1, sizeof *st);
  st->n = argc / 2;
  st->argv = (char **)calloc((size_t)argc + 1, sizeof *st->argv);
  for (int i = 0; i < argc; ++i) st->argv[i] = strdup(api->plugin_argv(self, i));
  api->plugin_set_data(self, st);
  api->register_hook(self, UVS_HOOK_AUTH, on_auth, st);
  api->register_hook(self, UVS_HOOK_MAIL, on_mail, st);
  return 0;
}

static void fini(uvs_plugin *self) {
  state *st = (state *)api->plugin_data(self);
  if (!st) return;
  for (int i = 0; i < st->n * 2; ++i) free(st->argv[i]);
  free(st->argv);
  free(st);
}

UVS_PLUGIN("auth_static", "1.0", init, fini);
