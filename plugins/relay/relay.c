/* plugins/relay/relay.c: the relay plugin: relay clients from conf/relayclients, norelayclients. */
/*
 * At connect, a client whose IP is in a network of `relayclients` becomes a relay client
 * (uvs_api.set_relay_client): rcpt_ok then lets it send to any domain, and plugins that honour
 * is_immune() skip it. `norelayclients` lists exceptions: a client there is never a relay
 * client, whatever set it before. docs/plugins/relay.md has the details and the differences
 * from qpsmtpd's plugins/relay.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"
#include "../common/ipnet.h"

static const uvs_api *api;

typedef struct relay {
  uvs_plugin *self;
  ipnet_list allow; /* relayclients   */
  ipnet_list deny;  /* norelayclients */
} relay;

/* State of one config_lines_at() pass over a list file. */
typedef struct load_ctx {
  ipnet_list *list;
  char error[512];
} load_ctx;

/* One entry: an address or network, optionally followed by blanks and a # comment. Errors
 * name the file and line ("conf/relayclients:7: ..."); an included file names itself. */
static int add_line(const char *line, const char *file, int lineno, void *ud) {
  load_ctx *ctx = ud;
  size_t len = strcspn(line, " \t");
  const char *rest = line + len + strspn(line + len, " \t");
  ipnet n;
  if ((*rest && *rest != '#') || ipnet_parse(line, len, &n) < 0) {
    snprintf(ctx->error, sizeof ctx->error,
             "%.300s:%d: '%.80s' is not an IPv4/IPv6 address or CIDR", file, lineno, line);
    return 1;
  }
  if (ipnet_list_add(ctx->list, &n) < 0) {
    snprintf(ctx->error, sizeof ctx->error, "%.300s:%d: out of memory", file, lineno);
    return 1;
  }
  return 0;
}

/* Reads a list file; a missing file is an empty list. 0, or -errno after set_error(). */
static int load_list(uvs_plugin *self, const char *file, ipnet_list *list) {
  load_ctx ctx = {list, ""};
  int rc = api->config_lines_at(self, file, add_line, &ctx);
  if (ctx.error[0]) {
    api->set_error(self, ctx.error);
    return -EINVAL;
  }
  if (rc == -ENOENT) {
    api->log(self, NULL, UVS_LOG_INFO, "no %s file: empty list", file);
    return 0;
  }
  if (rc < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot read %s: %s", file, strerror(-rc));
    api->set_error(self, msg);
    return rc;
  }
  return 0;
}

static void relay_free(relay *r) {
  if (!r) return;
  ipnet_list_free(&r->allow);
  ipnet_list_free(&r->deny);
  free(r);
}

static uvs_verdict on_connect(uvs_call *call, void *ud) {
  relay *r = ud;
  const char *ip = api->peer_ip(call);
  ipnet_addr peer;
  if (ipnet_addr_parse(ip, &peer) < 0) {
    api->log(r->self, call, UVS_LOG_WARNING, "skip, peer address '%s' not understood",
             ip ? ip : "");
    return UVS_DECLINED;
  }
  if (ipnet_list_find(&r->deny, &peer) >= 0) {
    api->set_relay_client(call, 0);
    api->log(r->self, call, UVS_LOG_INFO, "skip, not a relay client (%s in norelayclients)", ip);
    return UVS_DECLINED;
  }
  if (ipnet_list_find(&r->allow, &peer) >= 0) {
    api->set_relay_client(call, 1);
    api->log(r->self, call, UVS_LOG_INFO, "pass, relay client (%s in relayclients)", ip);
    return UVS_DECLINED;
  }
  api->log(r->self, call, UVS_LOG_INFO, "skip, not a relay client");
  return UVS_DECLINED;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (api->plugin_argc(self) != 0) {
    api->set_error(self,
                   "relay takes no arguments (the lists are conf/relayclients and "
                   "conf/norelayclients)");
    return -EINVAL;
  }
  relay *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->self = self;
  int rc = load_list(self, "relayclients", &r->allow);
  if (rc == 0) rc = load_list(self, "norelayclients", &r->deny);
  if (rc == 0 && (rc = api->register_hook(self, UVS_HOOK_CONNECT, on_connect, r)) < 0)
    api->set_error(self, "cannot register the connect hook");
  if (rc < 0) {
    relay_free(r);
    return rc;
  }
  api->plugin_set_data(self, r);
  api->log(self, NULL, UVS_LOG_INFO, "%zu relay network(s), %zu exception(s)", r->allow.count,
           r->deny.count);
  return 0;
}

static void fini(uvs_plugin *self) {
  relay_free(api->plugin_data(self));
}

UVS_PLUGIN("relay", "1.0", init, fini);
