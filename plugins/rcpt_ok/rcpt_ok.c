/* plugins/rcpt_ok/rcpt_ok.c: the rcpt_ok plugin: local recipients and relay sessions pass. */
/*
 * The last word on RCPT: OK when the session may relay (relay client or is_immune), or the
 * recipient is local: a bare `postmaster`, or a domain equal to me() or listed in rcpthosts
 * (".example.net" covers its subdomains). Everything else is DENY with `550 5.7.1 Relaying
 * denied`. An address whose local part holds %, ! or @ (also inside quotes) is never local:
 * no relaying through percent hacks, bang paths or quoted addresses. List it after every
 * other rcpt plugin, since OK ends the chain. docs/plugins/rcpt_ok.md has the details.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct rcpt_ok {
  uvs_plugin *self;
  char **hosts; /* lower-cased rcpthosts entries */
  size_t count;
  size_t cap;
  char error[512]; /* set by add_host on a bad entry: "<file>:<line>: ..." */
} rcpt_ok;

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int same_ci(const char *a, const char *b, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (lower(a[i]) != lower(b[i])) return 0;
  return 1;
}

static int equal_ci(const char *a, const char *b) {
  size_t n = strlen(a);
  return n == strlen(b) && same_ci(a, b, n);
}

static void state_free(rcpt_ok *st) {
  if (!st) return;
  for (size_t i = 0; i < st->count; ++i) free(st->hosts[i]);
  free(st->hosts);
  free(st);
}

/* An rcpthosts entry is one word: a domain, ".domain" or an address literal. */
static int bad_entry(const char *line) {
  if (strcmp(line, ".") == 0) return 1;
  for (const char *p = line; *p; ++p)
    if (*p == ' ' || *p == '\t' || *p == '@' || (unsigned char)*p < 32) return 1;
  return 0;
}

/* Appends a lower-cased copy: 0, or -1 when out of memory. */
static int store_host(rcpt_ok *st, const char *line) {
  if (st->count == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 16;
    char **grown = realloc(st->hosts, cap * sizeof *grown);
    if (!grown) return -1;
    st->hosts = grown;
    st->cap = cap;
  }
  size_t len = strlen(line);
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  for (size_t i = 0; i <= len; ++i) copy[i] = lower(line[i]);
  st->hosts[st->count++] = copy;
  return 0;
}

static int add_host(const char *line, const char *file, int lineno, void *ud) {
  rcpt_ok *st = ud;
  if (bad_entry(line)) {
    snprintf(st->error, sizeof st->error,
             "%.300s:%d: '%.80s' is not a domain, .domain or address literal", file, lineno,
             line);
    return 1;
  }
  if (store_host(st, line) < 0) {
    snprintf(st->error, sizeof st->error, "%.300s:%d: out of memory", file, lineno);
    return 1;
  }
  return 0;
}

/* Is the domain listed? Exact (case-insensitive), or under a ".suffix" entry; an address
 * literal only exactly. Returns the matching entry or NULL. */
static const char *in_rcpthosts(const rcpt_ok *st, const char *domain) {
  size_t len = strlen(domain);
  int literal = domain[0] == '[';
  for (size_t i = 0; i < st->count; ++i) {
    const char *e = st->hosts[i];
    size_t elen = strlen(e);
    if (e[0] == '.' && !literal) {
      if (len > elen && same_ci(domain + len - elen, e, elen)) return e;
    } else if (len == elen && same_ci(domain, e, len)) {
      return e;
    }
  }
  return NULL;
}

/* Sender-specified routing in the local part: %, ! or @, quoted or not. */
static int has_routing(const char *local, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (local[i] == '%' || local[i] == '!' || local[i] == '@') return 1;
  return 0;
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
  if (has_routing(addr, (size_t)(at - addr)))
    return deny(st, call, addr, "sender-specified routing (%, ! or @) in the local part");
  const char *me = api->me(st->self);
  if (domain[0] != '[' && me && equal_ci(domain, me)) return pass(st, call, "me");
  const char *entry = in_rcpthosts(st, domain);
  if (!entry) return deny(st, call, addr, "domain not in rcpthosts");
  char why[320];
  snprintf(why, sizeof why, "in rcpthosts (%.300s)", entry);
  return pass(st, call, why);
}

static uvs_verdict on_rcpt(uvs_call *call, void *ud) {
  const rcpt_ok *st = ud;
  if (api->relay_client(call) > 0) return pass(st, call, "relay client");
  if (api->is_immune(call) > 0) return pass(st, call, "immune (whitelisted)");
  const char *addr = api->call_address(call);
  if (equal_ci(addr, "postmaster")) return pass(st, call, "postmaster");
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
  int rc = api->config_lines_at(self, "rcpthosts", add_host, st);
  if (st->error[0]) {
    api->set_error(self, st->error);
    rc = -EINVAL;
  } else if (rc == -ENOENT) {
    api->log(self, NULL, UVS_LOG_NOTICE, "no rcpthosts file: only %s is local", api->me(self));
    rc = 0;
  } else if (rc < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot read rcpthosts: %s", strerror(-rc));
    api->set_error(self, msg);
  }
  if (rc >= 0 && (rc = api->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st)) < 0)
    api->set_error(self, "cannot register the rcpt hook");
  if (rc < 0) {
    state_free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO, "%zu rcpthosts entr%s, me = %s", st->count,
           st->count == 1 ? "y" : "ies", api->me(self));
  return 0;
}

static void fini(uvs_plugin *self) {
  state_free(api->plugin_data(self));
}

UVS_PLUGIN("rcpt_ok", "1.0", init, fini);
