/* tests/outsider/greylist.c: a greylisting plugin written as an outside author would, from the
 * installed <uvsmtpd/plugin.h> and docs/plugins.md alone (built out of tree by
 * tests/install/outsider_test.sh).
 *
 *   greylist [DELAY [LIFETIME [SWEEP]]]      (seconds; defaults 300, 2592000 (30 days), 60)
 *
 * At RCPT the key is (client IP /24 for IPv4, /64 for IPv6; sender; recipient). The first time
 * a key is seen the recipient gets 450 4.7.1; once DELAY seconds have passed it is let through
 * (DECLINED: the next plugin decides). The store is a list behind a mutex, looked up and
 * updated on the server's thread pool (run_blocking); the worker records the decision in the
 * transaction note "greylist" ("greylisted", "early" or "passed") with pending_note_set() and
 * completes the call itself. A repeating plugin timer drops entries not seen for LIFETIME
 * seconds. Relay clients and other immune clients are never greylisted. */
#define _POSIX_C_SOURCE 200809L
#include <uvsmtpd/plugin.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uvs_api *api;

typedef struct entry {
  struct entry *next;
  int64_t first_seen, last_seen; /* milliseconds, CLOCK_MONOTONIC */
  char key[];
} entry;

typedef struct state {
  uvs_plugin *self;
  long delay, lifetime, sweep;
  pthread_mutex_t lock; /* guards entries: the pool threads and the loop's timer use it */
  entry *entries;
  uvs_timer *timer;
} state;

typedef struct job {
  state *st;
  uvs_pending *p;
  char key[]; /* "net|sender|recipient" */
} job;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The client's network: the address with the host part cleared. */
static void client_net(const char *ip, char *out, size_t n) {
  unsigned char a[16];
  if (inet_pton(AF_INET, ip, a) == 1) {
    a[3] = 0;
    if (inet_ntop(AF_INET, a, out, (socklen_t)n)) return;
  } else if (inet_pton(AF_INET6, ip, a) == 1) {
    memset(a + 8, 0, 8);
    if (inet_ntop(AF_INET6, a, out, (socklen_t)n)) return;
  }
  snprintf(out, n, "%s", ip);
}

/* On a pool thread: look the key up, record it, decide. Only complete(), log(), logv() and
 * pending_note_set() may be called here. */
static void work(void *ud) {
  job *j = ud;
  state *st = j->st;
  int64_t t = now_ms();
  const char *result;
  pthread_mutex_lock(&st->lock);
  entry *e = st->entries;
  while (e && strcmp(e->key, j->key) != 0) e = e->next;
  if (!e) {
    size_t len = strlen(j->key) + 1;
    e = malloc(sizeof *e + len);
    if (e) {
      memcpy(e->key, j->key, len);
      e->first_seen = e->last_seen = t;
      e->next = st->entries;
      st->entries = e;
    }
    result = "greylisted";
  } else {
    e->last_seen = t;
    result = t - e->first_seen >= st->delay * 1000 ? "passed" : "early";
  }
  pthread_mutex_unlock(&st->lock);
  api->log(st->self, NULL, UVS_LOG_INFO, "%s: %s", result, j->key);
  int rc = api->pending_note_set(j->p, UVS_NOTE_TRANSACTION, "greylist", result);
  if (rc < 0) api->log(st->self, NULL, UVS_LOG_WARNING, "pending_note_set: %s", strerror(-rc));
  if (strcmp(result, "passed") == 0)
    api->complete(j->p, UVS_DECLINED, 0, NULL, NULL);
  else
    api->complete(j->p, UVS_DENYSOFT, 450, "4.7.1",
                  "Greylisted: this recipient is delayed, please try again later");
  free(j); /* j->p is gone after complete() */
}

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  state *st = ud;
  if (api->is_immune(c) > 0) return UVS_DECLINED;
  const char *from = api->mail_from(c), *to = api->call_address(c), *ip = api->peer_ip(c);
  if (!from || !to || !ip) return UVS_DECLINED;
  char net[INET6_ADDRSTRLEN + 1];
  client_net(ip, net, sizeof net);
  /* Copy what the worker needs now: the call's strings are borrowed until we return. */
  size_t len = strlen(net) + strlen(from) + strlen(to) + 3;
  job *j = malloc(sizeof *j + len);
  if (!j) return UVS_DENYSOFT;
  snprintf(j->key, len, "%s|%s|%s", net, from, to);
  j->st = st;
  j->p = api->suspend(c);
  if (!j->p) {
    free(j);
    return UVS_DENYSOFT;
  }
  int rc = api->run_blocking(j->p, work, NULL, j); /* done = NULL: work completes */
  if (rc < 0) {
    api->complete(j->p, UVS_DENYSOFT, 0, NULL, NULL);
    free(j);
  }
  return UVS_PENDING;
}

/* On the loop, every SWEEP seconds: drop the entries not seen for LIFETIME seconds. */
static void on_sweep(uvs_timer *t, void *ud) {
  state *st = ud;
  (void)t;
  int64_t limit = now_ms() - (int64_t)st->lifetime * 1000;
  int n = 0;
  pthread_mutex_lock(&st->lock);
  for (entry **pe = &st->entries; *pe;) {
    if ((*pe)->last_seen < limit) {
      entry *dead = *pe;
      *pe = dead->next;
      free(dead);
      n++;
    } else {
      pe = &(*pe)->next;
    }
  }
  pthread_mutex_unlock(&st->lock);
  if (n > 0) api->log(st->self, NULL, UVS_LOG_INFO, "expired %d entr%s", n, n == 1 ? "y" : "ies");
}

static void state_free(state *st) {
  if (!st) return;
  while (st->entries) {
    entry *e = st->entries;
    st->entries = e->next;
    free(e);
  }
  pthread_mutex_destroy(&st->lock);
  free(st);
}

static int parse_seconds(const char *s, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 100L * 365 * 86400) return -1;
  *out = v;
  return 0;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  if (argc > 3) {
    api->set_error(self, "usage: greylist [DELAY [LIFETIME [SWEEP]]] (seconds)");
    return -EINVAL;
  }
  long v[3] = {300, 30L * 86400, 60};
  for (int i = 0; i < argc; i++) {
    if (parse_seconds(api->plugin_argv(self, i), &v[i]) < 0 || (i == 2 && v[i] == 0)) {
      api->set_errorf(self, "bad number of seconds '%s'", api->plugin_argv(self, i));
      return -EINVAL;
    }
  }
  state *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->delay = v[0];
  st->lifetime = v[1];
  st->sweep = v[2];
  pthread_mutex_init(&st->lock, NULL);
  st->timer =
      api->timer_start(self, (uint64_t)st->sweep * 1000, (uint64_t)st->sweep * 1000, on_sweep, st);
  if (!st->timer) {
    api->set_error(self, "cannot start the expiry timer");
    state_free(st);
    return -ENOMEM;
  }
  int rc = api->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st);
  if (rc < 0) {
    api->timer_stop(st->timer);
    state_free(st);
    api->set_error(self, "cannot register the rcpt hook");
    return rc;
  }
  api->plugin_set_data(self, st);
  return 0;
}

static void fini(uvs_plugin *self) {
  state *st = api->plugin_data(self);
  api->timer_stop(st->timer); /* already stopped by the server: 0, allowed */
  state_free(st);
}

UVS_PLUGIN("greylist", "1.0", init, fini);
