/* tests/plugins/crash_probe.c: a test plugin that ends its process when HELO/EHLO names a magic
 * host, for the worker-process tests (test_workers.cpp): the other workers' sessions must go on
 * and the dead worker must be started again.
 *
 * conf/plugins:  crash_probe [host=<name>] [how=abort|segv] [init_file=<path>]
 *   host       the HELO/EHLO name that crashes the process (default crash.invalid); any other
 *              name is DECLINED
 *   how        abort() (SIGABRT, default) or an invalid memory access (SIGSEGV)
 *   init_file  if this file exists when the plugin is loaded, init calls abort(): a plugin
 *              that kills every new worker at its start (the restart back-off)
 * Logs "crash_probe: <how> on <host>" just before it crashes.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct probe {
  uvs_plugin *self;
  char host[256];
  int segv;
} probe;

__attribute__((noinline, no_sanitize_address, no_sanitize_undefined)) static void segfault(void) {
  volatile int *volatile p = (volatile int *)(uintptr_t)0;
  *p = 42;
  abort(); /* not reached */
}

static uvs_verdict on_helo(uvs_call *c, void *ud) {
  probe *st = ud;
  const char *arg = api->call_arg(c);
  if (arg == NULL || strcmp(arg, st->host) != 0) return UVS_DECLINED;
  api->log(st->self, c, UVS_LOG_NOTICE, "crash_probe: %s on %s", st->segv ? "segv" : "abort", arg);
  if (st->segv) segfault();
  abort();
}

static int probe_init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  probe *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  strcpy(st->host, "crash.invalid");
  for (int i = 0; i < a->plugin_argc(self); ++i) {
    const char *arg = a->plugin_argv(self, i);
    if (strncmp(arg, "host=", 5) == 0 && strlen(arg + 5) < sizeof st->host) {
      strcpy(st->host, arg + 5);
    } else if (strcmp(arg, "how=segv") == 0) {
      st->segv = 1;
    } else if (strncmp(arg, "init_file=", 10) == 0) {
      if (access(arg + 10, F_OK) == 0) {
        a->log(self, NULL, UVS_LOG_NOTICE, "crash_probe: %s exists: abort at init", arg + 10);
        abort();
      }
    } else if (strcmp(arg, "how=abort") != 0) {
      a->set_error(self, "usage: crash_probe [host=<name>] [how=abort|segv] [init_file=<path>]");
      free(st);
      return -EINVAL;
    }
  }
  if (a->register_hook(self, UVS_HOOK_HELO, on_helo, st) < 0 ||
      a->register_hook(self, UVS_HOOK_EHLO, on_helo, st) < 0) {
    a->set_error(self, "crash_probe: cannot register the helo and ehlo hooks");
    free(st);
    return -EINVAL;
  }
  a->plugin_set_data(self, st);
  return 0;
}

static void probe_fini(uvs_plugin *self) {
  free(api ? api->plugin_data(self) : NULL);
}

UVS_PLUGIN("crash_probe", "1.0", probe_init, probe_fini);
