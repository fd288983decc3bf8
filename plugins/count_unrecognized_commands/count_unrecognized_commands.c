/* plugins/count_unrecognized_commands/count_unrecognized_commands.c: 521 after N bad commands */
/*
 * Counts the unrecognized commands of each connection in a connection note (qpsmtpd's
 * `unrec_cmd_count`; `unrec_cmd_count:<suffix>` for an instance named
 * count_unrecognized_commands:<suffix>). Below N the core answers its usual 500; the N-th
 * gets `521 5.5.1 Too many unrecognized commands (N); closing connection` and the connection is
 * closed. docs/plugins/count_unrecognized_commands.md.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

#define CUC_DEFAULT_MAX 4
#define CUC_MAX_MAX 1000000L

typedef struct cuc {
  uvs_plugin *self;
  long max;
  char note[160]; /* the connection note holding the count */
} cuc;

/* The argument: a whole number 1..CUC_MAX_MAX. Returns it, or -1. */
static long parse_max(const char *s) {
  if (!s || !*s) return -1;
  long v = 0;
  for (const char *p = s; *p; ++p) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
    if (v > CUC_MAX_MAX) return -1;
  }
  return v >= 1 ? v : -1;
}

/* "unrec_cmd_count", or "unrec_cmd_count:<suffix>" for the instance "<name>:<suffix>". */
static void make_note_key(cuc *st) {
  const char *name = api->plugin_name(st->self);
  const char *colon = name ? strchr(name, ':') : NULL;
  snprintf(st->note, sizeof st->note, "unrec_cmd_count%.100s", colon ? colon : "");
}

static long bump_count(cuc *st, uvs_call *call) {
  const char *cur = api->note_get(call, UVS_NOTE_CONNECTION, st->note);
  long n = cur ? strtol(cur, NULL, 10) : 0;
  if (n < 0) n = 0;
  ++n;
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", n);
  api->note_set(call, UVS_NOTE_CONNECTION, st->note, buf);
  return n;
}

static uvs_verdict on_unrecognized(uvs_call *call, void *ud) {
  cuc *st = ud;
  const char *verb = api->call_address(call);
  long n = bump_count(st, call);
  if (n < st->max) {
    api->log(st->self, call, UVS_LOG_INFO, "fail, unrecognized command '%.64s' (%ld of %ld)", verb,
             n, st->max);
    return UVS_DECLINED;
  }
  char text[160];
  snprintf(text, sizeof text, "Too many unrecognized commands (%ld); closing connection", n);
  api->log(st->self, call, UVS_LOG_INFO, "fail, %s", text);
  api->reply(call, 521, "5.5.1", text);
  return UVS_DENY_DISCONNECT;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  long max = argc == 1 ? parse_max(api->plugin_argv(self, 0)) : CUC_DEFAULT_MAX;
  if (argc > 1 || max < 0) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "usage: count_unrecognized_commands [N] (N a whole number from 1 to %ld, default %d)",
             CUC_MAX_MAX, CUC_DEFAULT_MAX);
    api->set_error(self, msg);
    return -EINVAL;
  }
  cuc *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->max = max;
  make_note_key(st);
  int rc = api->register_hook(self, UVS_HOOK_UNRECOGNIZED_COMMAND, on_unrecognized, st);
  if (rc < 0) {
    api->set_error(self, "cannot register the unrecognized_command hook");
    free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO, "closing after %ld unrecognized commands", max);
  return 0;
}

static void fini(uvs_plugin *self) {
  free(api->plugin_data(self));
}

UVS_PLUGIN("count_unrecognized_commands", "1.0", init, fini);
