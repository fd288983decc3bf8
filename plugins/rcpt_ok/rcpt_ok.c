/* plugins/rcpt_ok/rcpt_ok.c: the rcpt_ok plugin: local recipients and relay sessions pass. */
/*
 * The last word on RCPT: OK when the session may relay (relay client or is_immune), or the
 * recipient is local: a bare `postmaster`, or a domain equal to me() or listed in rcpthosts
 * (".example.net" covers its subdomains), or an address literal naming the session's own
 * address (plugins/common/local_domains.c, shared with rcpt_map and queue/maildir).
 * Everything else is DENY with `550 5.7.1 Relaying denied`. An address whose local part holds
 * %, ! or @ (also inside quotes) is never local: no relaying through percent hacks, bang paths
 * or quoted addresses. List it after every other rcpt plugin, since OK ends the chain.
 * docs/plugins/rcpt_ok.md has the details.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/local_domains.h"
#include "../common/mailbox.h"
#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct rcpt_ok {
  uvs_plugin *self;
  ld_set hosts; /* rcpthosts */
} rcpt_ok;

static void state_free(rcpt_ok *st) {
  if (!st) return;
  ld_free(&st->hosts);
  free(st);
}

static uvs_verdict deny(const rcpt_ok *st, uvs_call *call, const char *addr, const char *why) {
  api->log(st->self, call, UVS_LOG_INFO, "fail, relaying denied for <%.300s>: %s", addr, why);
  api->reply(call, 550, "5.7.1", "Relaying denied");
  return UVS_DENY;
}

static uvs_verdict pass(const rcpt_ok *st, uvs_call *call, const char *why) {
  api->log(st->self, call, UVS_LOG_INFO, "pass, %s: <%.300s>", why, api->call_address(call));
  return UVS_OK;
}

/* The address is local-part "@" domain; the domain never holds '@', so the last one splits. */
static uvs_verdict judge_address(const rcpt_ok *st, uvs_call *call, const char *addr) {
  const char *at = strrchr(addr, '@');
  if (!at) return deny(st, call, addr, "no domain");
  const char *domain = at + 1;
  if (mb_has_routing(addr, (size_t)(at - addr)))
    return deny(st, call, addr, "sender-specified routing (%, ! or @) in the local part");
  const char *rule = ld_match(&st->hosts, domain, api->me(st->self), api->local_ip(call));
  if (!rule) return deny(st, call, addr, "domain not in rcpthosts");
  if (strcmp(rule, "me") == 0 || strcmp(rule, "own address literal") == 0)
    return pass(st, call, rule);
  char why[320];
  snprintf(why, sizeof why, "in rcpthosts (%.300s)", rule);
  return pass(st, call, why);
}

static uvs_verdict on_rcpt(uvs_call *call, void *ud) {
  const rcpt_ok *st = ud;
  if (api->relay_client(call) > 0) return pass(st, call, "relay client");
  if (api->is_immune(call) > 0) return pass(st, call, "immune (whitelisted)");
  const char *addr = api->call_address(call);
  if (strcasecmp(addr, "postmaster") == 0) return pass(st, call, "postmaster");
  return judge_address(st, call, addr);
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (api->plugin_argc(self) != 0) {
    api->set_error(self, "rcpt_ok takes no arguments (the list is conf/rcpthosts)");
    return -EINVAL;
  }
  rcpt_ok *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  int rc = ld_load(&st->hosts, api, self, "rcpthosts");
  if (rc == -ENOENT) {
    api->log(self, NULL, UVS_LOG_NOTICE, "no rcpthosts file: only %s is local", api->me(self));
    rc = 0;
  } else if (rc < 0) {
    api->set_error(self, st->hosts.error);
  }
  if (rc >= 0 && (rc = api->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st)) < 0)
    api->set_error(self, "cannot register the rcpt hook");
  if (rc < 0) {
    state_free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO, "%zu rcpthosts entr%s, me = %s", st->hosts.count,
           st->hosts.count == 1 ? "y" : "ies", api->me(self));
  return 0;
}

static void fini(uvs_plugin *self) {
  state_free(api->plugin_data(self));
}

UVS_PLUGIN("rcpt_ok", "1.1", init, fini);
