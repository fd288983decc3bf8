/* tests/plugins/async_probe.c: a test plugin for the ABI 1.3 async members: plugin-level timers,
 * notes from a worker thread, the cancel callback, logv/set_errorfv, hook_timeout_ms
 * (tests/integration/test_plugin_async.cpp).
 *
 * Every result is a NOTICE log line "<instance>: <what>". Arguments (key=value):
 *   tick=MS      a repeating timer (first after MS, then every MS) logging "tick N"; from a
 *                callback after fini it would log "tick after fini" (it never may)
 *   stop_at=N    the repeating timer stops itself inside its N-th callback: "tick N stop=RC"
 *   once=MS      a one-shot timer logging "once fired"
 *   failv=1      init fails through set_errorfv with "failv 42 forty-two"
 * init logs "init hook_timeout_ms=MS", the argument checks of the new members, and a line
 * through logv ("logv 7 seven"). fini logs "fini timer_stop=RC ticks=N" (RC: timer_stop on the
 * repeating timer the core already stopped) and "fini timer_start=NULL|handle".
 * Hooks:
 *   helo worker  suspends; on a pool thread (run_blocking) sets the connection notes
 *                worker.result=computed-<arg length> and deletes worker.erase (set by the hook),
 *                completes OK with "worker done" from that thread, then logs "worker after
 *                complete" through the instance 150 ms later
 *   vrfy never   suspends with a cancel callback and never completes by itself; the callback
 *                logs "cancel never pending_call=(null) again=RC", then completes ("complete=RC")
 *   vrfy quick   suspends with a cancel callback; a pending timer completes DONE 252 after 20 ms
 *   vrfy inhook  suspends with a cancel callback, calls complete() (DONE 252 "inhook done")
 *                inside the hook, then returns PENDING
 *   rcpt late@*  suspends with a cancel callback that logs "cancel rcpt pending_call=(null)
 *                at=MS" (ms since the suspension) and does not complete; a pending timer
 *                completes OK after 1500 ms and logs "rcpt late complete=RC"
 *   rcpt slow@*  suspends; a pending timer completes OK "slow ok" after 300 ms
 *   disconnect   logs "disconnect"
 *   mail         logs "mail worker.result=V worker.erase=V"
 *   ok           logs "ok worker.result=V" (the deny/ok observer runs after the verdict)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

/* Per-instance state in static slots that outlive fini: a timer callback after fini would
 * find its slot (and log "tick after fini") instead of freed memory. */
enum { MAX_SLOTS = 32 };
typedef struct slot {
  uvs_plugin *self;
  uvs_timer *tick;
  int ticks;
  int stop_at;
  int in_fini;
} slot;
static slot slots[MAX_SLOTS];
static int next_slot;

typedef struct job {
  slot *st;
  uvs_pending *p;
  char arg[64];
} job;

static void out(slot *st, const uvs_call *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void out(slot *st, const uvs_call *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  api->logv(st->self, c, UVS_LOG_NOTICE, fmt, ap); /* the 1.3 va_list form */
  va_end(ap);
}

static int failv(uvs_plugin *self, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = api->set_errorfv(self, fmt, ap);
  va_end(ap);
  return rc;
}

static const char *S(const char *s) {
  return s ? s : "(null)";
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void on_tick(uvs_timer *t, void *ud) {
  slot *st = (slot *)ud;
  if (st->in_fini) {
    out(st, NULL, "tick after fini");
    return;
  }
  st->ticks++;
  if (st->stop_at && st->ticks == st->stop_at) {
    int rc = api->timer_stop(t);
    st->tick = NULL;
    out(st, NULL, "tick %d stop=%d", st->ticks, rc);
    return;
  }
  out(st, NULL, "tick %d", st->ticks);
}

static void on_once(uvs_timer *t, void *ud) {
  (void)t;
  out((slot *)ud, NULL, "once fired");
}

/* ---- worker thread: a note set off the loop ---------------------------------------------- */

static void work(void *ud) {
  job *j = (job *)ud;
  char value[96];
  snprintf(value, sizeof value, "computed-%zu", strlen(j->arg));
  int rc1 = api->pending_note_set(j->p, UVS_NOTE_CONNECTION, "worker.result", value);
  int rc2 = api->pending_note_set(j->p, UVS_NOTE_CONNECTION, "worker.erase", NULL);
  out(j->st, NULL, "worker note_set=%d erase=%d", rc1, rc2);
  int rc = api->complete(j->p, UVS_OK, 250, NULL, "worker done");
  out(j->st, NULL, "worker complete=%d", rc);
  /* docs/plugins.md, lifetimes: the instance stays usable from this work function after
   * complete(), until the function returns */
  sleep_ms(150);
  out(j->st, NULL, "worker after complete");
  free(j);
}

/* ---- cancel ------------------------------------------------------------------------------ */

static void on_cancel(uvs_pending *p, void *ud) {
  slot *st = (slot *)ud;
  int again = api->pending_on_cancel(p, on_cancel, ud);
  out(st, NULL, "cancel never pending_call=%s again=%d", api->pending_call(p) ? "set" : "(null)",
      again);
  out(st, NULL, "cancel complete=%d", api->complete(p, UVS_DENYSOFT, 0, NULL, NULL));
}

static void on_quick(uvs_pending *p, void *ud) {
  slot *st = (slot *)ud;
  out(st, NULL, "quick complete=%d", api->complete(p, UVS_DONE, 252, NULL, "quick done"));
}

static uvs_verdict on_vrfy(slot *st, uvs_call *c) {
  const char *arg = api->call_arg(c);
  uvs_pending *p = api->suspend(c);
  if (!p) return UVS_DENYSOFT;
  out(st, c, "vrfy %s on_cancel=%d null=%d nullcb=%d", arg,
      api->pending_on_cancel(p, on_cancel, st), api->pending_on_cancel(NULL, on_cancel, st),
      api->pending_on_cancel(p, NULL, st));
  if (strcmp(arg, "quick") == 0) {
    api->pending_timer(p, 20, on_quick, st);
  } else if (strcmp(arg, "inhook") == 0) {
    out(st, c, "inhook complete=%d", api->complete(p, UVS_DONE, 252, NULL, "inhook done"));
  }
  return UVS_PENDING;
}

/* ---- rcpt: a call the client walks away from ------------------------------------------------ */

typedef struct rcpt_job {
  slot *st;
  struct timespec t0;
} rcpt_job;

static long ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000L + (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void on_rcpt_cancel(uvs_pending *p, void *ud) {
  rcpt_job *j = (rcpt_job *)ud;
  out(j->st, NULL, "cancel rcpt pending_call=%s at=%ld", api->pending_call(p) ? "set" : "(null)",
      ms_since(&j->t0));
}

static void on_rcpt_late(uvs_pending *p, void *ud) {
  rcpt_job *j = (rcpt_job *)ud;
  out(j->st, NULL, "rcpt late complete=%d", api->complete(p, UVS_OK, 0, NULL, NULL));
  free(j);
}

static void on_rcpt_slow(uvs_pending *p, void *ud) {
  (void)ud;
  api->complete(p, UVS_OK, 250, NULL, "slow ok");
}

static uvs_verdict on_rcpt(slot *st, uvs_call *c) {
  const char *addr = api->call_address(c);
  int late = strncmp(addr, "late@", 5) == 0, slow = strncmp(addr, "slow@", 5) == 0;
  if (!late && !slow) return UVS_DECLINED;
  uvs_pending *p = api->suspend(c);
  if (!p) return UVS_DENYSOFT;
  if (slow) {
    api->pending_timer(p, 300, on_rcpt_slow, st);
    return UVS_PENDING;
  }
  rcpt_job *j = (rcpt_job *)calloc(1, sizeof *j);
  if (!j) {
    api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
    return UVS_PENDING;
  }
  j->st = st;
  clock_gettime(CLOCK_MONOTONIC, &j->t0);
  out(st, c, "rcpt late on_cancel=%d", api->pending_on_cancel(p, on_rcpt_cancel, j));
  api->pending_timer(p, 1500, on_rcpt_late, j);
  return UVS_PENDING;
}

static uvs_verdict on_hook(uvs_call *c, void *ud) {
  slot *st = (slot *)ud;
  switch (api->call_hook(c)) {
    case UVS_HOOK_HELO: {
      if (strcmp(api->call_arg(c), "worker") != 0) return UVS_DECLINED;
      api->note_set(c, UVS_NOTE_CONNECTION, "worker.erase", "set by the hook");
      uvs_pending *p = api->suspend(c);
      if (!p) return UVS_DENYSOFT;
      out(st, c, "helo note_set_bad scope=%d key=%d empty=%d null=%d",
          api->pending_note_set(p, 7, "k", "v"),
          api->pending_note_set(p, UVS_NOTE_CONNECTION, NULL, "v"),
          api->pending_note_set(p, UVS_NOTE_CONNECTION, "", "v"),
          api->pending_note_set(NULL, UVS_NOTE_CONNECTION, "k", "v"));
      job *j = (job *)calloc(1, sizeof *j);
      j->st = st;
      j->p = p;
      snprintf(j->arg, sizeof j->arg, "%s", api->call_arg(c));
      api->run_blocking(p, work, NULL, j);
      return UVS_PENDING;
    }
    case UVS_HOOK_VRFY:
      return on_vrfy(st, c);
    case UVS_HOOK_RCPT:
      return on_rcpt(st, c);
    case UVS_HOOK_DISCONNECT:
      out(st, c, "disconnect");
      return UVS_DECLINED;
    case UVS_HOOK_MAIL:
      out(st, c, "mail worker.result=%s worker.erase=%s",
          S(api->note_get(c, UVS_NOTE_CONNECTION, "worker.result")),
          S(api->note_get(c, UVS_NOTE_CONNECTION, "worker.erase")));
      return UVS_DECLINED;
    case UVS_HOOK_OK:
      out(st, c, "ok worker.result=%s", S(api->note_get(c, UVS_NOTE_CONNECTION, "worker.result")));
      return UVS_DECLINED;
    default:
      return UVS_DECLINED;
  }
}

/* ---- init / fini --------------------------------------------------------------------------- */

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(api, hook_timeout_ms)) return -ENOSYS; /* built for 1.3: always there */
  if (next_slot >= MAX_SLOTS) return -ENOMEM;
  slot *st = &slots[next_slot++];
  st->self = self;
  api->plugin_set_data(self, st);
  unsigned tick = 0, once = 0;
  for (int i = 0; i < api->plugin_argc(self); ++i) {
    const char *arg = api->plugin_argv(self, i);
    if (strncmp(arg, "tick=", 5) == 0)
      tick = (unsigned)atoi(arg + 5);
    else if (strncmp(arg, "stop_at=", 8) == 0)
      st->stop_at = atoi(arg + 8);
    else if (strncmp(arg, "once=", 5) == 0)
      once = (unsigned)atoi(arg + 5);
    else if (strcmp(arg, "failv=1") == 0) {
      failv(self, "failv %d %s", 42, "forty-two");
      return -EINVAL;
    } else {
      failv(self, "unknown argument '%s'", arg);
      return -EINVAL;
    }
  }
  out(st, NULL, "init hook_timeout_ms=%lld", (long long)api->hook_timeout_ms(self));
  out(st, NULL, "init hook_timeout_ms_null=%lld", (long long)api->hook_timeout_ms(NULL));
  out(st, NULL, "init timer_start_nullcb=%s timer_start_nullp=%s timer_stop_null=%d",
      api->timer_start(self, 10, 0, NULL, st) ? "handle" : "NULL",
      api->timer_start(NULL, 10, 0, on_once, st) ? "handle" : "NULL", api->timer_stop(NULL));
  out(st, NULL, "logv %d %s", 7, "seven");
  if (tick) st->tick = api->timer_start(self, tick, tick, on_tick, st);
  if (once) api->timer_start(self, once, 0, on_once, st);
  api->register_hook(self, UVS_HOOK_HELO, on_hook, st);
  api->register_hook(self, UVS_HOOK_VRFY, on_hook, st);
  api->register_hook(self, UVS_HOOK_MAIL, on_hook, st);
  api->register_hook(self, UVS_HOOK_RCPT, on_hook, st);
  api->register_hook(self, UVS_HOOK_DISCONNECT, on_hook, st);
  api->register_hook(self, UVS_HOOK_OK, on_hook, st);
  return 0;
}

static void fini(uvs_plugin *self) {
  slot *st = (slot *)api->plugin_data(self);
  st->in_fini = 1;
  /* the core stopped every timer before fini: stopping one again is harmless (0) */
  int rc = st->tick ? api->timer_stop(st->tick) : 0;
  out(st, NULL, "fini timer_stop=%d ticks=%d", rc, st->ticks);
  out(st, NULL, "fini timer_start=%s",
      api->timer_start(self, 10, 0, on_once, st) ? "handle" : "NULL");
}

UVS_PLUGIN("async_probe", "1.0", init, fini);
