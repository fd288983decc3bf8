/* plugins/greylist/greylist.c: greylisting (RFC 6647) at RCPT over the shared state
 * (uvs_api.kv_*, ABI 1.5): the first attempt of a (client network, sender, recipient) triplet
 * is deferred with 451 4.7.1; a retry after `delay` and within `window` passes, and the
 * triplet is then whitelisted for `whitelist-days`. Relay clients and authenticated users are
 * not greylisted. A triplet found whitelisted is also remembered in this process for `cache`
 * seconds, so that a regular correspondent costs no back-end lookup per RCPT.
 * docs/plugins/greylist.md has the options. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "uvsmtpd/plugin.h"
#include "../common/plugin_util.h"
#include "../common/state_util.h"

static const uvs_api *api;

#define GL_MAX_SECONDS 2592000.0 /* 30 days */
#define GL_MAX_DAYS 3650
#define GL_KEY_MAX 500
#define GL_CACHE_SLOTS 8192 /* whitelisted triplets remembered locally (a power of two) */

static const char kGreyText[] = "Greylisted, please try again later";
static const char kFailText[] = "Temporary local problem, please try again later";
static const char kPassValue[] = "pass";

/* One slot of the local cache: a triplet key's hash and when the slot stops counting. */
typedef struct gl_cached {
  uint64_t hash, until_ms;
} gl_cached;

typedef struct gl_state {
  uvs_plugin *self;
  uint64_t delay_ms, window_ms, whitelist_ms;
  uint64_t cache_ms; /* 0: no local cache */
  gl_cached *cache;  /* GL_CACHE_SLOTS slots, direct-mapped by hash; NULL when off */
  int exact;         /* client: exact address instead of its /24 or /64 */
  int fail_closed;   /* state-fail closed */
  unsigned long long greylisted, passed, whitelisted, cached, failed;
} gl_state;

typedef struct gl_job {
  gl_state *st;
  uvs_pending *p;
  char key[GL_KEY_MAX + 16];
} gl_job;

/* "t:<client>:<sender>:<recipient>", lower-cased; a hash of the addresses when too long. */
static int triplet_key(gl_state *st, uvs_call *c, char *out, size_t cap) {
  char client[80];
  if (su_client_key(api->peer_ip(c), st->exact, client, sizeof client) < 0) return -1;
  const char *from = api->mail_from(c);
  const char *to = api->call_address(c);
  int n = snprintf(out, cap, "t:%s:%s:%s", client, from ? from : "", to ? to : "");
  if (n < 0 || (size_t)n >= cap || n > GL_KEY_MAX) { /* kv keys: at most 512 bytes */
    char both[1100];
    snprintf(both, sizeof both, "%s\n%s", from ? from : "", to ? to : "");
    su_lower(both);
    n = snprintf(out, cap, "t:%s:h%016" PRIx64, client, su_hash64(both));
    return n < 0 || (size_t)n >= cap ? -1 : 0;
  }
  su_lower(out);
  return 0;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The local cache: 1 if key was found whitelisted here less than cache_ms ago. A slot holds one
 * triplet; another one with the same slot replaces it (a miss costs only a lookup). */
static int cache_hit(gl_state *st, const char *key) {
  if (!st->cache) return 0;
  uint64_t h = su_hash64(key);
  const gl_cached *e = &st->cache[h & (GL_CACHE_SLOTS - 1)];
  return e->hash == h && e->until_ms > mono_ms();
}

static void cache_put(gl_state *st, const char *key) {
  if (!st->cache) return;
  uint64_t h = su_hash64(key);
  gl_cached *e = &st->cache[h & (GL_CACHE_SLOTS - 1)];
  e->hash = h;
  e->until_ms = mono_ms() + st->cache_ms;
}

static void finish(gl_job *job, uvs_verdict v, int code, const char *enh, const char *text) {
  api->complete(job->p, v, code, enh, text);
  free(job);
}

static void defer(gl_job *job, uvs_call *c, const char *why) {
  job->st->greylisted++;
  api->log(job->st->self, c, UVS_LOG_INFO, "greylisted (%s): %s", why, job->key);
  finish(job, UVS_DENYSOFT, 451, "4.7.1", kGreyText);
}

/* A new triplet (or one whose window lapsed): remember when it was first seen. */
static void record_first(gl_job *job, uint64_t now) {
  char when[32];
  snprintf(when, sizeof when, "%" PRIu64, now);
  int rc = api->kv_set(job->st->self, job->key, when, strlen(when),
                       job->st->delay_ms + job->st->window_ms, NULL, NULL);
  if (rc < 0)
    api->log(job->st->self, NULL, UVS_LOG_WARNING, "cannot record %s (error %d)", job->key, rc);
}

static void on_lookup(int status, const char *value, size_t len, int64_t number, void *ud) {
  (void)len;
  (void)number;
  gl_job *job = (gl_job *)ud;
  gl_state *st = job->st;
  uvs_call *c = api->pending_call(job->p); /* NULL: the client left; still complete() */
  if (status == -ECANCELED) {
    finish(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (status != 0 && status != -ENOENT) {
    st->failed++;
    if (st->fail_closed) {
      api->log(st->self, c, UVS_LOG_WARNING,
               "shared state unavailable (error %d): deferred (state-fail closed)", status);
      finish(job, UVS_DENYSOFT, 451, "4.3.0", kFailText);
      return;
    }
    api->log(st->self, c, UVS_LOG_WARNING,
             "shared state unavailable (error %d): passed (state-fail open)", status);
    finish(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  uint64_t now = su_wall_ms();
  if (status == -ENOENT) {
    if (c) record_first(job, now);
    defer(job, c, "first attempt");
    return;
  }
  if (strcmp(value, kPassValue) == 0) {
    st->whitelisted++;
    cache_put(st, job->key);
    api->log(st->self, c, UVS_LOG_DEBUG, "whitelisted: %s", job->key);
    finish(job, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  char *end = NULL;
  uint64_t first = strtoull(value, &end, 10);
  if (!end || *end || first > now + 60000) { /* not ours, or from the future: start over */
    if (c) record_first(job, now);
    defer(job, c, "first attempt");
    return;
  }
  uint64_t age = now > first ? now - first : 0;
  if (age < st->delay_ms) {
    defer(job, c, "retried too early");
    return;
  }
  if (age > st->delay_ms + st->window_ms) {
    if (c) record_first(job, now);
    defer(job, c, "retried after the window");
    return;
  }
  st->passed++;
  api->log(st->self, c, UVS_LOG_INFO, "passed after %.1f s, whitelisted: %s", (double)age / 1000.0,
           job->key);
  int rc =
      api->kv_set(st->self, job->key, kPassValue, strlen(kPassValue), st->whitelist_ms, NULL, NULL);
  if (rc < 0)
    api->log(st->self, c, UVS_LOG_WARNING, "cannot whitelist %s (error %d)", job->key, rc);
  else
    cache_put(st, job->key);
  finish(job, UVS_DECLINED, 0, NULL, NULL);
}

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  gl_state *st = (gl_state *)ud;
  if (api->relay_client(c) > 0) {
    api->log(st->self, c, UVS_LOG_DEBUG, "skip, relay client");
    return UVS_DECLINED;
  }
  if (api->auth_user(c)) {
    api->log(st->self, c, UVS_LOG_DEBUG, "skip, authenticated");
    return UVS_DECLINED;
  }
  gl_job *job = (gl_job *)calloc(1, sizeof *job);
  if (!job) return UVS_DECLINED;
  job->st = st;
  if (triplet_key(st, c, job->key, sizeof job->key) != 0) {
    free(job);
    api->log(st->self, c, UVS_LOG_DEBUG, "skip, the client address is not an IP address");
    return UVS_DECLINED;
  }
  if (cache_hit(st, job->key)) {
    st->cached++;
    api->log(st->self, c, UVS_LOG_DEBUG, "whitelisted (cached): %s", job->key);
    free(job);
    return UVS_DECLINED;
  }
  job->p = api->suspend(c);
  if (!job->p) {
    free(job);
    return UVS_DECLINED;
  }
  int rc = api->kv_get(st->self, job->key, on_lookup, job);
  if (rc < 0) { /* as a back-end failure */
    api->log(st->self, c, UVS_LOG_WARNING, "lookup not started (error %d)", rc);
    if (st->fail_closed) {
      finish(job, UVS_DENYSOFT, 451, "4.3.0", kFailText);
    } else {
      finish(job, UVS_DECLINED, 0, NULL, NULL);
    }
  }
  return UVS_PENDING;
}

/* ---- arguments -------------------------------------------------------------------------- */

#define FAIL(self, ...) (api->set_errorf((self), __VA_ARGS__), -EINVAL)

static int parse_args(void *state, uvs_plugin *self) {
  gl_state *st = (gl_state *)state;
  int argc = api->plugin_argc(self);
  int rc = su_args_even(api, self, "delay 300");
  if (rc != 0) return rc;
  st->delay_ms = 300000;
  st->window_ms = 2 * 86400000ull;
  st->whitelist_ms = 35 * 86400000ull;
  st->cache_ms = 300000;
  for (int i = 0; i < argc; i += 2) {
    const char *key = api->plugin_argv(self, i);
    const char *val = api->plugin_argv(self, i + 1);
    if (!strcasecmp(key, "delay") || !strcasecmp(key, "window")) {
      int delay = !strcasecmp(key, "delay");
      rc = su_duration_arg(api, self, key, val, 0, delay, GL_MAX_SECONDS,
                           delay ? &st->delay_ms : &st->window_ms);
      if (rc != 0) return rc;
    } else if (!strcasecmp(key, "whitelist-days")) {
      rc = su_duration_arg(api, self, key, val, 1, 0, GL_MAX_DAYS, &st->whitelist_ms);
      if (rc != 0) return rc;
    } else if (!strcasecmp(key, "cache")) {
      rc = su_duration_arg(api, self, key, val, 0, 1, GL_MAX_SECONDS, &st->cache_ms);
      if (rc != 0) return rc;
    } else if (!strcasecmp(key, "client")) {
      if (!strcasecmp(val, "network"))
        st->exact = 0;
      else if (!strcasecmp(val, "exact"))
        st->exact = 1;
      else
        return FAIL(self,
                    "bad value '%s' for 'client': expected network (IPv4 /24, IPv6 /64) or exact",
                    val);
    } else if (!strcasecmp(key, "state-fail")) {
      rc = su_fail_arg(api, self, val, &st->fail_closed);
      if (rc != 0) return rc;
    } else {
      return FAIL(
          self,
          "unknown argument '%s' (known: delay, window, whitelist-days, cache, client, state-fail)",
          key);
    }
  }
  return 0;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int rc;
  gl_state *st = (gl_state *)su_state_new(api, self, UVS_API_HAS(api, kv_get), "kv_get", sizeof *st,
                                          parse_args, &rc);
  if (!st) return rc;
  st->self = self;
  if (st->cache_ms > st->whitelist_ms) st->cache_ms = st->whitelist_ms;
  if (st->cache_ms > 0) {
    st->cache = (gl_cached *)calloc(GL_CACHE_SLOTS, sizeof *st->cache);
    if (!st->cache) {
      free(st);
      return -ENOMEM;
    }
  }
  api->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st);
  api->plugin_set_data(self, st);
  api->log(
      self, NULL, UVS_LOG_DEBUG,
      "delay %.3f s, window %.3f s, whitelist %.3f days, cache %.3f s, client %s, state-fail %s",
      (double)st->delay_ms / 1000.0, (double)st->window_ms / 1000.0,
      (double)st->whitelist_ms / 86400000.0, (double)st->cache_ms / 1000.0,
      st->exact ? "exact" : "network", st->fail_closed ? "closed" : "open");
  return 0;
}

static void fini(uvs_plugin *self) {
  gl_state *st = (gl_state *)api->plugin_data(self);
  if (!st) return;
  api->log(self, NULL, UVS_LOG_NOTICE,
           "greylisted %llu, passed %llu, whitelisted %llu (%llu from the local cache), back-end "
           "failures %llu",
           st->greylisted, st->passed, st->whitelisted + st->cached, st->cached, st->failed);
  api->plugin_set_data(self, NULL);
  free(st->cache);
  free(st);
}

UVS_PLUGIN("greylist", "1.0", init, fini);
