/* plugins/sender_login/sender_login.c: the sender_login plugin: an authenticated client may only
 * use the MAIL FROM addresses its login owns (Postfix's smtpd_sender_login_maps with
 * reject_sender_login_mismatch for authenticated clients). */
/*
 * conf/plugins: `sender_login <map file>` (in the config directory; flat-file rules, so `#` lines
 * and `$include` work). Lines: `address-or-@domain  user1, user2`. At the mail hook, for a session
 * with auth_user() set: the address is looked up (the address itself, else its @domain); when the
 * entry names the user → DECLINED (the other mail plugins decide); otherwise, and also when the
 * address is not in the map at all → DENY `553 5.7.1 Sender address rejected: not owned by user
 * <u>`. The null sender is always allowed; sessions without AUTH are not this plugin's business
 * (DECLINED). docs/plugins/sender_login.md has the details.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_map.h"
#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct sl_state {
  uvs_plugin *self;
  sl_map map;
} sl_state;

typedef struct load_ctx {
  sl_map *map;
  char err[600];
  int failed;
} load_ctx;

static int add_line(const char *line, const char *file, int lineno, void *ud) {
  load_ctx *lc = ud;
  char why[400];
  if (sl_map_add(lc->map, line, file, lineno, why, sizeof why) < 0) {
    snprintf(lc->err, sizeof lc->err, "%s:%d: %s", file, lineno, why);
    lc->failed = 1;
    return 1;
  }
  return 0;
}

static uvs_verdict on_mail(uvs_call *call, void *ud) {
  sl_state *st = ud;
  const char *user = api->auth_user(call);
  if (!user) return UVS_DECLINED; /* no AUTH: not this plugin's business */
  const char *addr = api->call_address(call);
  if (!addr || !*addr) return UVS_DECLINED; /* the null sender (bounces) */
  const sl_entry *e = sl_map_find(&st->map, addr);
  if (e && sl_entry_has(e, user)) {
    api->log(st->self, call, UVS_LOG_DEBUG, "<%.300s> is owned by %.200s (%s)", addr, user, e->key);
    return UVS_DECLINED;
  }
  api->log(st->self, call, UVS_LOG_INFO, "user %.200s may not send as <%.300s>: %s", user, addr,
           e ? "the address belongs to other logins" : "the address is not in the map");
  char text[400];
  snprintf(text, sizeof text, "Sender address rejected: not owned by user %.200s", user);
  if (api->reply(call, 553, "5.7.1", text) < 0)
    api->reply(call, 553, "5.7.1", "Sender address rejected: not owned by the authenticated user");
  return UVS_DENY;
}

static void state_free(sl_state *st) {
  if (!st) return;
  sl_map_free(&st->map);
  free(st);
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (api->plugin_argc(self) != 1) {
    api->set_error(self, "usage: sender_login <map file>");
    return -EINVAL;
  }
  const char *file = api->plugin_argv(self, 0);
  sl_state *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  load_ctx lc = {.map = &st->map};
  int rc = api->config_lines_at(self, file, add_line, &lc);
  if (rc < 0) {
    api->set_errorf(self, "cannot read the map file '%s': %s", file, strerror(-rc));
    state_free(st);
    return rc;
  }
  if (lc.failed) {
    api->set_error(self, lc.err);
    state_free(st);
    return -EINVAL;
  }
  char why[900];
  if (sl_map_finish(&st->map, why, sizeof why) < 0) {
    api->set_error(self, why);
    state_free(st);
    return -EINVAL;
  }
  rc = api->register_hook(self, UVS_HOOK_MAIL, on_mail, st);
  if (rc < 0) {
    api->set_error(self, "cannot register the mail hook");
    state_free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO, "%zu sender login entr%s from %s", st->map.n,
           st->map.n == 1 ? "y" : "ies", file);
  return 0;
}

static void fini(uvs_plugin *self) {
  state_free(api->plugin_data(self));
}

UVS_PLUGIN("sender_login", "1.0", init, fini);
