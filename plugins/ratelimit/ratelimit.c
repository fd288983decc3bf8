/* plugins/ratelimit/ratelimit.c: connection and message rate limits per fixed window, counted
 * in the shared state (uvs_api.kv_incr, ABI 1.5), so that every server sharing the back end
 * counts together: connections per client IP (over the limit: 421 4.7.0 at connect, and the
 * connection is closed) and messages per client IP or per sender (counted at MAIL; over the
 * limit: 451 4.7.1 to that MAIL). Relay clients and authenticated users are not limited.
 * docs/plugins/ratelimit.md has the options. */
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

#define RL_MAX_WINDOW 2592000.0 /* 30 days */
#define RL_KEY_MAX 500

static const char kFailText[] = "Temporary local problem, please try again later";

typedef struct rl_state {
  uvs_plugin *self;
  int64_t connections, messages; /* limits per window; 0 = off */
  int by_sender;                 /* messages counted per sender instead of per client IP */
  uint64_t window_ms;
  int fail_closed;
  unsigned long long refused_conn, refused_msg, failed;
} rl_state;

typedef struct rl_job {
  rl_state *st;
  uvs_pending *p;
  int at_connect;
  char what[RL_KEY_MAX + 16]; /* the key, for log lines */
} rl_job;

static void done(rl_job *job, uvs_verdict v, int code, const char *enh, const char *text) {
  api->complete(job->p, v, code, enh, text);
  free(job);
}

static void fail_policy(rl_job *job, uvs_call *c, int err) {
  rl_state *st = job->st;
  st->failed++;
  if (!st->fail_closed) {
    api->log(st->self, c, UVS_LOG_WARNING,
             "shared state unavailable (error %d): not counted, passed (state-fail open)", err);
    done(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  api->log(st->self, c, UVS_LOG_WARNING,
           "shared state unavailable (error %d): refused for now (state-fail closed)", err);
  if (job->at_connect) {
    done(job, UVS_DENYSOFT_DISCONNECT, 421, "4.3.0", kFailText);
    return;
  }
  done(job, UVS_DENYSOFT, 451, "4.3.0", kFailText);
}

static void on_count(int status, const char *value, size_t len, int64_t number, void *ud) {
  (void)value;
  (void)len;
  rl_job *job = (rl_job *)ud;
  rl_state *st = job->st;
  uvs_call *c = api->pending_call(job->p);
  if (status == -ECANCELED) {
    done(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (status != 0) {
    fail_policy(job, c, status);
    return;
  }
  int64_t limit = job->at_connect ? st->connections : st->messages;
  if (number <= limit) {
    api->log(st->self, c, UVS_LOG_DEBUG, "%s: %" PRId64 " of %" PRId64, job->what, number, limit);
    done(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  char text[200];
  if (job->at_connect) {
    st->refused_conn++;
    api->log(st->self, c, UVS_LOG_INFO,
             "refused: %s: %" PRId64 " connections, limit %" PRId64 " per %.0f s", job->what,
             number, limit, (double)st->window_ms / 1000.0);
    snprintf(text, sizeof text, "Too many connections from %s, please try again later",
             c ? api->peer_ip(c) : "your address");
    done(job, UVS_DENYSOFT_DISCONNECT, 421, "4.7.0", text);
    return;
  }
  st->refused_msg++;
  api->log(st->self, c, UVS_LOG_INFO,
           "refused: %s: %" PRId64 " messages, limit %" PRId64 " per %.0f s", job->what, number,
           limit, (double)st->window_ms / 1000.0);
  done(job, UVS_DENYSOFT, 451, "4.7.1", "Message rate limit exceeded, please try again later");
}

static uvs_verdict count(rl_state *st, uvs_call *c, int at_connect, const char *key) {
  rl_job *job = (rl_job *)calloc(1, sizeof *job);
  if (!job) return UVS_DECLINED;
  job->st = st;
  job->at_connect = at_connect;
  snprintf(job->what, sizeof job->what, "%s", key);
  job->p = api->suspend(c);
  if (!job->p) {
    free(job);
    return UVS_DECLINED;
  }
  int rc = api->kv_incr(st->self, key, 1, st->window_ms, on_count, job);
  if (rc < 0) fail_policy(job, c, rc);
  return UVS_PENDING;
}

static int exempt(rl_state *st, const uvs_call *c) {
  if (api->relay_client(c) > 0 || api->auth_user(c)) {
    api->log(st->self, c, UVS_LOG_DEBUG, "skip, %s",
             api->auth_user(c) ? "authenticated" : "relay client");
    return 1;
  }
  return 0;
}

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  rl_state *st = (rl_state *)ud;
  if (exempt(st, c)) return UVS_DECLINED;
  char ip[80], key[128];
  if (su_client_key(api->peer_ip(c), 1, ip, sizeof ip) < 0) return UVS_DECLINED;
  snprintf(key, sizeof key, "conn:%s", ip);
  return count(st, c, 1, key);
}

static uvs_verdict on_mail(uvs_call *c, void *ud) {
  rl_state *st = (rl_state *)ud;
  if (exempt(st, c)) return UVS_DECLINED;
  char key[RL_KEY_MAX + 16];
  if (st->by_sender) {
    const char *from = api->call_address(c);
    int n = snprintf(key, sizeof key, "msg:from:%s", from && *from ? from : "<>");
    if (n < 0 || (size_t)n >= sizeof key)
      snprintf(key, sizeof key, "msg:from:h%016" PRIx64, su_hash64(from));
    su_lower(key);
  } else {
    char ip[80];
    if (su_client_key(api->peer_ip(c), 1, ip, sizeof ip) < 0) return UVS_DECLINED;
    snprintf(key, sizeof key, "msg:ip:%s", ip);
  }
  return count(st, c, 0, key);
}

/* ---- arguments -------------------------------------------------------------------------- */

#define FAIL(self, ...) (api->set_errorf((self), __VA_ARGS__), -EINVAL)

static int parse_count(const char *v, int64_t *out) {
  char *end = NULL;
  if (!v || !*v || *v == '-' || *v == '+') return -1;
  long long n = strtoll(v, &end, 10);
  if (*end || n < 0 || n > 1000000000LL) return -1;
  *out = n;
  return 0;
}

static int parse_args(void *state, uvs_plugin *self) {
  rl_state *st = (rl_state *)state;
  int argc = api->plugin_argc(self);
  int rc = su_args_even(api, self, "connections 20 window 60");
  if (rc != 0) return rc;
  st->window_ms = 60000;
  for (int i = 0; i < argc; i += 2) {
    const char *key = api->plugin_argv(self, i);
    const char *val = api->plugin_argv(self, i + 1);
    if (!strcasecmp(key, "connections") || !strcasecmp(key, "messages")) {
      int64_t n;
      if (parse_count(val, &n) != 0)
        return FAIL(self, "bad value '%s' for '%s': expected a count from 0 (off) to 1000000000",
                    val, key);
      *(strcasecmp(key, "connections") ? &st->messages : &st->connections) = n;
    } else if (!strcasecmp(key, "messages-by")) {
      if (!strcasecmp(val, "ip"))
        st->by_sender = 0;
      else if (!strcasecmp(val, "sender"))
        st->by_sender = 1;
      else
        return FAIL(self, "bad value '%s' for 'messages-by': expected ip or sender", val);
    } else if (!strcasecmp(key, "window")) {
      rc = su_duration_arg(api, self, key, val, 0, 0, RL_MAX_WINDOW, &st->window_ms);
      if (rc != 0) return rc;
    } else if (!strcasecmp(key, "state-fail")) {
      rc = su_fail_arg(api, self, val, &st->fail_closed);
      if (rc != 0) return rc;
    } else {
      return FAIL(
          self,
          "unknown argument '%s' (known: connections, messages, messages-by, window, state-fail)",
          key);
    }
  }
  if (!st->connections && !st->messages)
    return FAIL(self, "nothing to limit: give 'connections N' and/or 'messages N' (N > 0)");
  return 0;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int rc;
  rl_state *st = (rl_state *)su_state_new(api, self, UVS_API_HAS(api, kv_incr), "kv_incr",
                                          sizeof *st, parse_args, &rc);
  if (!st) return rc;
  st->self = self;
  if (st->connections) api->register_hook(self, UVS_HOOK_CONNECT, on_connect, st);
  if (st->messages) api->register_hook(self, UVS_HOOK_MAIL, on_mail, st);
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_DEBUG,
           "connections %" PRId64 ", messages %" PRId64 " per %s, window %.3f s, state-fail %s",
           st->connections, st->messages, st->by_sender ? "sender" : "ip",
           (double)st->window_ms / 1000.0, st->fail_closed ? "closed" : "open");
  return 0;
}

static void fini(uvs_plugin *self) {
  rl_state *st = (rl_state *)api->plugin_data(self);
  if (!st) return;
  api->log(self, NULL, UVS_LOG_NOTICE,
           "refused %llu connections and %llu messages, back-end failures %llu", st->refused_conn,
           st->refused_msg, st->failed);
  api->plugin_set_data(self, NULL);
  free(st);
}

UVS_PLUGIN("ratelimit", "1.0", init, fini);
