/* tests/faults/crash_plugin.c: test plugin "crash": segfaults the server in a chosen hook. */
/*
 * conf/plugins:  crash hook=<name> [nth=<n>] [where=loop|thread]
 *   hook   qpsmtpd hook name: connect helo ehlo mail rcpt data data_headers_end data_post queue
 *          queue_post reset_transaction quit disconnect
 *   nth    crash on the n-th call of that hook in this process (default 1); earlier calls
 *          answer DECLINED, so the rest of the chain (e.g. queue/maildir) runs normally
 *   where  loop (default): a NULL store inside the hook, on the event loop thread;
 *          thread: the hook suspends and the NULL store runs in uvs_api.run_blocking's work
 *          function, on a libuv pool thread
 * Every call logs "crash: <hook> call <k>" before it decides, so a test can see how far it got.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

static const char *const hook_names[] = {"",
                                         "pre-connection",
                                         "connect",
                                         "helo",
                                         "ehlo",
                                         "mail",
                                         "rcpt",
                                         "data",
                                         "data_headers_end",
                                         "data_post",
                                         "queue",
                                         "queue_post",
                                         "reset_transaction",
                                         "quit",
                                         "disconnect"};
enum { NHOOK_NAMES = sizeof hook_names / sizeof hook_names[0] };

typedef struct crash_state {
  uvs_plugin *self;
  int hook;
  long nth;
  int on_thread;
  atomic_long calls;
} crash_state;

/* A real invalid memory access (not raise()): what a buggy plugin does. The sanitizers are
 * kept out of this one function so the fault reaches the kernel as SIGSEGV. */
__attribute__((noinline, no_sanitize_address, no_sanitize_undefined)) static void segfault(void) {
  volatile int *volatile p = (volatile int *)(uintptr_t)0;
  *p = 42;
  raise(SIGSEGV); /* not reached */
  abort();
}

static void work_crash(void *ud) {
  (void)ud;
  segfault();
}

static void work_done(uvs_pending *p, void *ud) {
  (void)ud;
  api->complete(p, UVS_DECLINED, 0, NULL, NULL); /* not reached */
}

static uvs_verdict on_hook(uvs_call *c, void *ud) {
  crash_state *st = ud;
  long k = atomic_fetch_add(&st->calls, 1) + 1;
  api->log(st->self, c, UVS_LOG_NOTICE, "crash: %s call %ld", hook_names[st->hook], k);
  if (k != st->nth) return UVS_DECLINED;
  if (!st->on_thread) segfault();
  uvs_pending *p = api->suspend(c);
  if (!p) return UVS_DENYSOFT;
  if (api->run_blocking(p, work_crash, work_done, st) < 0) {
    api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
  }
  return UVS_PENDING;
}

static int crash_init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  crash_state *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->nth = 1;
  for (int i = 0; i < a->plugin_argc(self); ++i) {
    const char *arg = a->plugin_argv(self, i);
    if (strncmp(arg, "hook=", 5) == 0) {
      for (int h = 1; h < NHOOK_NAMES; ++h)
        if (strcmp(arg + 5, hook_names[h]) == 0) st->hook = h;
    } else if (strncmp(arg, "nth=", 4) == 0) {
      st->nth = atol(arg + 4);
    } else if (strcmp(arg, "where=thread") == 0) {
      st->on_thread = 1;
    } else if (strcmp(arg, "where=loop") != 0) {
      a->set_error(self, "usage: crash hook=<name> [nth=<n>] [where=loop|thread]");
      free(st);
      return -EINVAL;
    }
  }
  if (st->hook == 0 || st->nth < 1) {
    a->set_error(self, "crash: hook=<name> is required and nth must be >= 1");
    free(st);
    return -EINVAL;
  }
  int rc = a->register_hook(self, (uvs_hook)st->hook, on_hook, st);
  if (rc < 0) {
    a->set_error(self, "crash: cannot register the hook");
    free(st);
    return rc;
  }
  a->plugin_set_data(self, st);
  return 0;
}

static void crash_fini(uvs_plugin *self) {
  free(api ? api->plugin_data(self) : NULL);
}

UVS_PLUGIN("crash", "1.0", crash_init, crash_fini);
