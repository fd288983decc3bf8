/* tests/plugins/dns_conn_probe.c: a test plugin for dns_query_conn() / dns_cancel_conn() (ABI
 * 1.3), asserted by tests/integration/test_dns.cpp.
 *
 * Arguments: the name to look up (type A) at connect, and optionally "cancel" (the helo hook
 * cancels the lookup). The lookup's state lives in a connection note (note_set_ptr, freed by
 * the core when the session ends, after the lookup is cancelled).
 *   connect  logs "start id>0=1 einval_type=RC einval_cb=RC einval_name=RC" and starts the lookup
 *   callback logs "answer status=S count=N first=ADDR" (never after the session ended)
 *   helo     with "cancel": logs "cancel=RC again=RC"
 *   rcpt     answers DENYSOFT "dnsc done=D status=S first=ADDR" (what the callback stored)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct lookup {
  uvs_plugin *self;
  int64_t id;
  int done;
  int status;
  char first[128];
} lookup;

static void on_answer(int64_t id, int status, int count, const char *const *answers, void *ud) {
  lookup *l = (lookup *)ud;
  (void)id;
  l->done = 1;
  l->status = status;
  snprintf(l->first, sizeof l->first, "%s", count > 0 ? answers[0] : "-");
  api->log(l->self, NULL, UVS_LOG_NOTICE, "answer status=%d count=%d first=%s", status, count,
           l->first);
}

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  uvs_plugin *self = (uvs_plugin *)ud;
  const char *name = api->plugin_argv(self, 0);
  lookup *l = (lookup *)calloc(1, sizeof *l);
  if (!l) return UVS_DECLINED;
  l->self = self;
  snprintf(l->first, sizeof l->first, "-");
  api->note_set_ptr(c, UVS_NOTE_CONNECTION, "dnsc", l, free);
  int64_t e1 = api->dns_query_conn(c, name, 99, 0, on_answer, l);
  int64_t e2 = api->dns_query_conn(c, name, UVS_DNS_A, 0, NULL, l);
  int64_t e3 = api->dns_query_conn(c, NULL, UVS_DNS_A, 0, on_answer, l);
  l->id = api->dns_query_conn(c, name ? name : "", UVS_DNS_A, 0, on_answer, l);
  api->log(self, c, UVS_LOG_NOTICE, "start id>0=%d einval_type=%d einval_cb=%d einval_name=%d",
           l->id > 0, (int)e1, (int)e2, (int)e3);
  return UVS_DECLINED;
}

static uvs_verdict on_helo(uvs_call *c, void *ud) {
  uvs_plugin *self = (uvs_plugin *)ud;
  const char *mode = api->plugin_argv(self, 1);
  lookup *l = (lookup *)api->note_get_ptr(c, UVS_NOTE_CONNECTION, "dnsc");
  if (l && mode && strcmp(mode, "cancel") == 0) {
    int rc = api->dns_cancel_conn(c, l->id);
    int again = api->dns_cancel_conn(c, l->id);
    api->log(self, c, UVS_LOG_NOTICE, "cancel=%d again=%d", rc, again);
  }
  return UVS_DECLINED;
}

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  (void)ud;
  lookup *l = (lookup *)api->note_get_ptr(c, UVS_NOTE_CONNECTION, "dnsc");
  char text[200];
  snprintf(text, sizeof text, "dnsc done=%d status=%d first=%s", l ? l->done : -1,
           l ? l->status : 0, l ? l->first : "-");
  api->reply(c, 450, NULL, text);
  return UVS_DENYSOFT;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(a, dns_query_conn) || !UVS_API_HAS(a, dns_cancel_conn)) {
    a->set_error(self, "needs dns_query_conn (uvsmtpd plugin ABI 1.3)");
    return -ENOSYS;
  }
  if (a->plugin_argc(self) < 1) {
    a->set_error(self, "usage: dns_conn_probe NAME [cancel]");
    return -EINVAL;
  }
  a->register_hook(self, UVS_HOOK_CONNECT, on_connect, self);
  a->register_hook(self, UVS_HOOK_HELO, on_helo, self);
  a->register_hook(self, UVS_HOOK_EHLO, on_helo, self);
  a->register_hook(self, UVS_HOOK_RCPT, on_rcpt, self);
  return 0;
}

UVS_PLUGIN("dns_conn_probe", "1.0", init, NULL);
