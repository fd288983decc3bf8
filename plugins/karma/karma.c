/* plugins/karma/karma.c: karma kept across connections, as qpsmtpd's karma plugin keeps it,
 * in the shared state (uvs_api.kv_*, ABI 1.5). At disconnect, the session's karma (the
 * connection note the plugins change with adjust_karma) makes the client IP naughty (karma <=
 * -negative: refused for `penalty` seconds) or nice (karma >= positive), and moves its history
 * (nice minus naughty sessions, kept `history-days`). At connect, a naughty IP is refused with
 * 421 4.7.0 and the connection closed; any other gets its history in the connection note
 * karma_history (earlytalker skips a client whose karma_history is over 5). Relay clients are
 * neither refused nor recorded. docs/plugins/karma.md has the options. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "uvsmtpd/plugin.h"
#include "../common/plugin_util.h"
#include "../common/state_util.h"

static const uvs_api *api;

#define KA_MAX_PENALTY 2592000.0 /* 30 days */
#define KA_MAX_DAYS 3650

static const char kNaughtyText[] =
    "Your address is refused for now after recent policy failures, please try again later";
static const char kFailText[] = "Temporary local problem, please try again later";

typedef struct ka_state {
  uvs_plugin *self;
  long negative, positive;
  uint64_t penalty_ms, history_ms;
  int reject;
  int fail_closed;
  unsigned long long refused, naughty, nice, failed;
} ka_state;

typedef struct ka_job {
  ka_state *st;
  uvs_pending *p;
  char ip[80];
  char key[100];
} ka_job;

static void done(ka_job *job, uvs_verdict v, int code, const char *enh, const char *text) {
  api->complete(job->p, v, code, enh, text);
  free(job);
}

static int state_failed(ka_job *job, uvs_call *c, int status) {
  ka_state *st = job->st;
  if (status == -ECANCELED) {
    done(job, UVS_DECLINED, 0, NULL, NULL);
    return 1;
  }
  if (status == 0 || status == -ENOENT) return 0;
  st->failed++;
  if (st->fail_closed) {
    api->log(st->self, c, UVS_LOG_WARNING,
             "shared state unavailable (error %d): refused for now (state-fail closed)", status);
    done(job, UVS_DENYSOFT_DISCONNECT, 421, "4.3.0", kFailText);
  } else {
    api->log(st->self, c, UVS_LOG_WARNING,
             "shared state unavailable (error %d): passed (state-fail open)", status);
    done(job, UVS_DECLINED, 0, NULL, NULL);
  }
  return 1;
}

static void on_history(int status, const char *value, size_t len, int64_t number, void *ud) {
  (void)len;
  (void)number;
  ka_job *job = (ka_job *)ud;
  uvs_call *c = api->pending_call(job->p);
  if (state_failed(job, c, status)) return;
  if (status == 0 && c) {
    api->note_set(c, UVS_NOTE_CONNECTION, "karma_history", value);
    api->log(job->st->self, c, UVS_LOG_INFO, "history %s", value);
  }
  done(job, UVS_DECLINED, 0, NULL, NULL);
}

static void on_penalty(int status, const char *value, size_t len, int64_t number, void *ud) {
  (void)value;
  (void)len;
  (void)number;
  ka_job *job = (ka_job *)ud;
  ka_state *st = job->st;
  uvs_call *c = api->pending_call(job->p);
  if (state_failed(job, c, status)) return;
  if (status == 0) {
    if (st->reject) {
      st->refused++;
      api->log(st->self, c, UVS_LOG_INFO, "refused: %s is naughty (in its penalty time)", job->ip);
      done(job, UVS_DENYSOFT_DISCONNECT, 421, "4.7.0", kNaughtyText);
      return;
    }
    api->log(st->self, c, UVS_LOG_INFO, "%s is naughty (in its penalty time; reject 0)", job->ip);
    if (c) api->note_set(c, UVS_NOTE_CONNECTION, "karma_naughty", "1");
  }
  if (!c) {
    done(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  snprintf(job->key, sizeof job->key, "history:%s", job->ip);
  int rc = api->kv_get(st->self, job->key, on_history, job);
  if (rc < 0) state_failed(job, c, -EIO);
}

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  ka_state *st = (ka_state *)ud;
  if (api->relay_client(c) > 0) return UVS_DECLINED;
  ka_job *job = (ka_job *)calloc(1, sizeof *job);
  if (!job) return UVS_DECLINED;
  job->st = st;
  if (su_client_key(api->peer_ip(c), 1, job->ip, sizeof job->ip) < 0) {
    free(job);
    return UVS_DECLINED;
  }
  job->p = api->suspend(c);
  if (!job->p) {
    free(job);
    return UVS_DECLINED;
  }
  snprintf(job->key, sizeof job->key, "penalty:%s", job->ip);
  int rc = api->kv_get(st->self, job->key, on_penalty, job);
  if (rc < 0) state_failed(job, c, -EIO);
  return UVS_PENDING;
}

/* The session's karma moves the client's history; a naughty session starts a penalty. */
static uvs_verdict on_disconnect(uvs_call *c, void *ud) {
  ka_state *st = (ka_state *)ud;
  if (api->relay_client(c) > 0) return UVS_DECLINED;
  const char *k = api->note_get(c, UVS_NOTE_CONNECTION, "karma");
  long karma = k ? strtol(k, NULL, 10) : 0;
  char ip[80], key[100];
  if (su_client_key(api->peer_ip(c), 1, ip, sizeof ip) < 0) return UVS_DECLINED;
  int delta = 0;
  if (karma <= -st->negative) {
    st->naughty++;
    delta = -1;
    snprintf(key, sizeof key, "penalty:%s", ip);
    int rc = api->kv_set(st->self, key, "1", 1, st->penalty_ms, NULL, NULL);
    api->log(st->self, c, UVS_LOG_INFO, "naughty (karma %ld): %s refused for %.0f s%s", karma, ip,
             (double)st->penalty_ms / 1000.0, rc < 0 ? " (not recorded)" : "");
  } else if (karma >= st->positive) {
    st->nice++;
    delta = 1;
    api->log(st->self, c, UVS_LOG_DEBUG, "nice (karma %ld)", karma);
  }
  if (delta) {
    snprintf(key, sizeof key, "history:%s", ip);
    api->kv_incr(st->self, key, delta, st->history_ms, NULL, NULL);
  }
  return UVS_DECLINED;
}

/* ---- arguments -------------------------------------------------------------------------- */

#define FAIL(self, ...) (api->set_errorf((self), __VA_ARGS__), -EINVAL)

static int parse_long(const char *v, long min, long max, long *out) {
  char *end = NULL;
  if (!v || !*v) return -1;
  long n = strtol(v, &end, 10);
  if (*end || n < min || n > max) return -1;
  *out = n;
  return 0;
}

static int parse_args(void *state, uvs_plugin *self) {
  ka_state *st = (ka_state *)state;
  int argc = api->plugin_argc(self);
  int rc = su_args_even(api, self, "penalty 86400");
  if (rc != 0) return rc;
  st->negative = 1;
  st->positive = 1;
  st->penalty_ms = 86400000;
  st->history_ms = 30 * 86400000ull;
  st->reject = 1;
  for (int i = 0; i < argc; i += 2) {
    const char *key = api->plugin_argv(self, i);
    const char *val = api->plugin_argv(self, i + 1);
    if (!strcasecmp(key, "negative") || !strcasecmp(key, "positive")) {
      long n;
      if (parse_long(val, 1, 1000, &n) != 0)
        return FAIL(self, "bad value '%s' for '%s': expected a number from 1 to 1000", val, key);
      *(strcasecmp(key, "negative") ? &st->positive : &st->negative) = n;
    } else if (!strcasecmp(key, "penalty")) {
      rc = su_duration_arg(api, self, key, val, 0, 0, KA_MAX_PENALTY, &st->penalty_ms);
      if (rc != 0) return rc;
    } else if (!strcasecmp(key, "history-days")) {
      rc = su_duration_arg(api, self, key, val, 1, 0, KA_MAX_DAYS, &st->history_ms);
      if (rc != 0) return rc;
    } else if (!strcasecmp(key, "reject")) {
      if (strcmp(val, "0") && strcmp(val, "1"))
        return FAIL(self, "bad value '%s' for 'reject': expected 0 or 1", val);
      st->reject = val[0] == '1';
    } else if (!strcasecmp(key, "state-fail")) {
      rc = su_fail_arg(api, self, val, &st->fail_closed);
      if (rc != 0) return rc;
    } else {
      return FAIL(self,
                  "unknown argument '%s' (known: negative, positive, penalty, history-days, "
                  "reject, state-fail)",
                  key);
    }
  }
  return 0;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int rc;
  ka_state *st = (ka_state *)su_state_new(api, self, UVS_API_HAS(api, kv_get), "kv_get", sizeof *st,
                                          parse_args, &rc);
  if (!st) return rc;
  st->self = self;
  api->register_hook(self, UVS_HOOK_CONNECT, on_connect, st);
  api->register_hook(self, UVS_HOOK_DISCONNECT, on_disconnect, st);
  api->plugin_set_data(self, st);
  return 0;
}

static void fini(uvs_plugin *self) {
  ka_state *st = (ka_state *)api->plugin_data(self);
  if (!st) return;
  api->log(self, NULL, UVS_LOG_NOTICE,
           "refused %llu, naughty %llu, nice %llu, back-end failures %llu", st->refused,
           st->naughty, st->nice, st->failed);
  api->plugin_set_data(self, NULL);
  free(st);
}

UVS_PLUGIN("karma", "1.0", init, fini);
