/* plugins/rcpt_map/rcpt_map.c: the rcpt_map plugin: recipient maps for the local and virtual
 * domains: known local users pass, aliases and virtual addresses are rewritten to the local
 * mailboxes they stand for (uvs_api.rcpt_replace, ABI 1.3), unknown users get 550 5.1.1.
 * Domains it does not serve are left to the next plugin. The files are read and resolved by
 * rm_maps.c; docs/plugins/rcpt_map.md has the rules. */
#define _POSIX_C_SOURCE 200809L
/* rcpt_replace is ABI 1.3: older servers refuse to load this plugin (and init checks too). */
#define UVS_PLUGIN_MIN_ABI_MINOR 3
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mailbox.h"
#include "rm_maps.h"
#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct rcpt_map {
  uvs_plugin *self;
  rm_maps maps;
} rcpt_map;

static uvs_verdict unknown(const rcpt_map *st, uvs_call *call, const char *addr) {
  char a[256], text[320];
  mb_printable(a, sizeof a, addr);
  api->log(st->self, call, UVS_LOG_INFO, "fail, user unknown: <%s>", a);
  snprintf(text, sizeof text, "<%s>: Recipient address rejected: user unknown", a);
  api->reply(call, 550, "5.1.1", text);
  return UVS_DENY;
}

static uvs_verdict replace(const rcpt_map *st, uvs_call *call, const char *addr, const rm_entry *e,
                           const char *what) {
  int rc = api->rcpt_replace(call, (const char *const *)e->final, e->nfinal);
  char a[256];
  mb_printable(a, sizeof a, addr);
  if (rc < 0) { /* entries are checked at load: an internal error; refuse, never misdeliver */
    api->log(st->self, call, UVS_LOG_ERR, "internal error: rcpt_replace for <%s> failed: %s", a,
             strerror(-rc));
    api->reply(call, 451, "4.3.0", "Temporary local problem, try again later");
    return UVS_DENYSOFT;
  }
  api->log(st->self, call, UVS_LOG_INFO, "pass, %s: <%s> -> %d address%s (first <%s>)", what, a,
           e->nfinal, e->nfinal == 1 ? "" : "es", e->final[0]);
  return UVS_OK;
}

/* A local user: OK, rewritten to its one mailbox <name>@<me> when the client wrote it otherwise.
 * The local domains (me, the domains file, own address literals) share one namespace of users,
 * as in Postfix's local delivery: alice@example.test and Alice@[127.0.0.1] are the same mailbox
 * as alice@<me>, where aliases deliver too. The name is a dot-string queue/maildir can store
 * (checked at load). A failed rcpt_replace is an internal error (the core refused an address
 * this plugin built): 451, never a misdelivery. */
static uvs_verdict user(const rcpt_map *st, uvs_call *call, const char *addr, const char *name) {
  char a[256], me[256], canon[600];
  mb_printable(a, sizeof a, addr);
  if (mb_store_domain(api->me(st->self), api->me(st->self), 1, me, sizeof me) < 0)
    me[0] = '\0'; /* checked at load (the postmaster's mailbox): cannot happen */
  snprintf(canon, sizeof canon, "%s@%s", name, me);
  if (strcmp(canon, addr) != 0) {
    const char *list[1] = {canon};
    int rc = api->rcpt_replace(call, list, 1);
    if (rc < 0) {
      char c[256];
      mb_printable(c, sizeof c, canon);
      api->log(st->self, call, UVS_LOG_ERR, "internal error: rcpt_replace <%s> for <%s> failed: %s",
               c, a, strerror(-rc));
      api->reply(call, 451, "4.3.0", "Temporary local problem, try again later");
      return UVS_DENYSOFT;
    }
  }
  api->log(st->self, call, UVS_LOG_INFO, "pass, local user %s: <%s>", name, a);
  return UVS_OK;
}

static uvs_verdict on_rcpt(uvs_call *call, void *ud) {
  const rcpt_map *st = ud;
  const rm_maps *m = &st->maps;
  const char *addr = api->call_address(call);
  const char *at = strrchr(addr, '@');
  const char *me = api->me(st->self);
  const char *domain = at ? at + 1 : me; /* a bare <postmaster> */
  size_t ln = at ? (size_t)(at - addr) : strlen(addr);
  char name[256], dom[256];
  size_t dn = strlen(domain);
  if (dn >= sizeof dom || ln >= sizeof name) return UVS_DECLINED;
  for (size_t i = 0; i <= dn; ++i) dom[i] = mb_lower(domain[i]);
  int local = ld_match(&m->domains, domain, me, api->local_ip(call)) != NULL;
  if (!local && !rm_is_vdomain(m, dom)) return UVS_DECLINED; /* not ours */
  if (mb_has_routing(addr, ln)) return UVS_DECLINED;         /* rcpt_ok: Relaying denied */
  int n = mb_local(addr, ln, name, sizeof name);
  if (n < 0 || n > 64) return unknown(st, call, addr);
  for (int i = 0; i < n; ++i) name[i] = mb_lower(name[i]);
  if (!local) {
    const rm_entry *v = rm_virtual(m, name, dom);
    if (v) return replace(st, call, addr, v, "virtual");
    if (strcmp(name, "postmaster") == 0)
      return replace(st, call, addr, &m->postmaster, "postmaster");
    return unknown(st, call, addr);
  }
  const rm_entry *a = rm_alias(m, name);
  if (a) return replace(st, call, addr, a, "alias");
  if (rm_is_user(m, name)) return user(st, call, addr, name);
  return unknown(st, call, addr);
}

/* Arguments: key=FILE words. */
static int parse_args(uvs_plugin *self, rm_files *f) {
  int argc = api->plugin_argc(self);
  for (int i = 0; i < argc; ++i) {
    const char *arg = api->plugin_argv(self, i);
    const char *eq = strchr(arg, '=');
    const char *val = eq ? eq + 1 : "";
    size_t kn = eq ? (size_t)(eq - arg) : strlen(arg);
    const char **slot = NULL;
    int *named = NULL;
    if (kn == 7 && strncmp(arg, "domains", 7) == 0) slot = &f->domains, named = &f->domains_named;
    if (kn == 10 && strncmp(arg, "recipients", 10) == 0)
      slot = &f->recipients, named = &f->recipients_named;
    if (kn == 7 && strncmp(arg, "aliases", 7) == 0) slot = &f->aliases, named = &f->aliases_named;
    if (kn == 7 && strncmp(arg, "virtual", 7) == 0) slot = &f->virtuals, named = &f->virtuals_named;
    if (!slot || !val[0]) {
      api->set_errorf(self,
                      "bad argument '%s': usage: rcpt_map [recipients=FILE] [aliases=FILE] "
                      "[virtual=FILE] [domains=FILE]",
                      arg);
      return -EINVAL;
    }
    *slot = val;
    *named = 1;
  }
  return 0;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(a, rcpt_replace)) {
    a->set_error(self, "needs uvsmtpd plugin ABI 1.3 (rcpt_replace)");
    return -ENOTSUP;
  }
  rm_files f = {"rcpthosts", "local_recipients", "aliases", "virtual", 0, 0, 0, 0};
  int rc = parse_args(self, &f);
  if (rc < 0) return rc;
  rcpt_map *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->maps.me = a->me(self);
  rc = rm_load(&st->maps, a, self, &f);
  if (rc < 0) {
    a->set_error(self, st->maps.error[0] ? st->maps.error : strerror(-rc));
  } else if ((rc = a->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st)) < 0) {
    a->set_error(self, "cannot register the rcpt hook");
  }
  if (rc < 0) {
    rm_free(&st->maps);
    free(st);
    return rc;
  }
  a->plugin_set_data(self, st);
  a->log(self, NULL, UVS_LOG_INFO,
         "%zu local user(s), %zu alias(es), %zu virtual entr%s in %zu virtual domain(s); local "
         "domains: %s and %zu %s entr%s; postmaster -> %s",
         st->maps.nusers, st->maps.aliases.n, st->maps.virtuals.n,
         st->maps.virtuals.n == 1 ? "y" : "ies", st->maps.nvdomains, a->me(self),
         st->maps.domains.count, f.domains, st->maps.domains.count == 1 ? "y" : "ies",
         st->maps.postmaster.final[0]);
  return 0;
}

static void fini(uvs_plugin *self) {
  rcpt_map *st = api->plugin_data(self);
  if (!st) return;
  rm_free(&st->maps);
  free(st);
}

UVS_PLUGIN("rcpt_map", "1.0", init, fini);
