/* plugins/rcpt_map/rm_maps.c: reading rcpt_map's files (local users, aliases, virtual) and
 * resolving every alias and virtual entry once, at load, into the local mailboxes it stands
 * for: loops, unknown targets and targets nothing here can deliver are load errors naming
 * file:line, so a lookup at RCPT time is one search and never recurses. */
#define _POSIX_C_SOURCE 200809L
#include "rm_maps.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mailbox.h"

static char *lower_dup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  for (size_t i = 0; i < n; ++i) d[i] = mb_lower(s[i]);
  d[n] = '\0';
  return d;
}

static int fail(rm_maps *m, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int fail(rm_maps *m, const char *fmt, ...) {
  if (m->error[0]) return -1; /* keep the first */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->error, sizeof m->error, fmt, ap);
  va_end(ap);
  return -1;
}

static int push_str(char ***v, size_t *n, size_t *cap, char *s) {
  if (!s) return -1;
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    char **g = realloc(*v, c * sizeof *g);
    if (!g) {
      free(s);
      return -1;
    }
    *v = g;
    *cap = c;
  }
  (*v)[(*n)++] = s;
  return 0;
}

/* A local user or alias name: an unquoted RFC 5321 dot-string that queue/maildir stores as it
 * is (plugins/common/mailbox.c), at most 64 bytes (RFC 5321 4.5.3.1.1), so that
 * "name@domain" is an address the core's rcpt_replace takes. */
static int name_ok(const char *s, size_t n) {
  return n <= 64 && mb_dot_string(s, n);
}

static const char kNameRule[] =
    "an unquoted dot-string: letters, digits and - + _ = in parts joined by single dots, no "
    "leading or trailing '.', at most 64 bytes";

/* ---- the files ---------------------------------------------------------------------------- */

typedef struct ctx {
  rm_maps *m;
} ctx;

static int add_user(const char *line, const char *file, int lineno, void *ud) {
  rm_maps *m = ((ctx *)ud)->m;
  size_t n = strlen(line);
  if (!name_ok(line, n))
    return -fail(m, "%.300s:%d: '%.80s' is not a local user name (%s)", file, lineno, line,
                 kNameRule);
  if (push_str(&m->users, &m->nusers, &m->capusers, lower_dup(line, n)) < 0)
    return -fail(m, "%.300s:%d: out of memory", file, lineno);
  return 0;
}

/* Splits s at commas and blanks into e's targets (copies). */
static int split_targets(rm_maps *m, rm_entry *e, const char *s, const char *file, int lineno) {
  size_t cap = 0, n = 0;
  while (*s) {
    while (*s == ',' || *s == ' ' || *s == '\t') ++s;
    size_t len = strcspn(s, ", \t");
    if (len == 0) break;
    char *t = malloc(len + 1);
    if (t) {
      memcpy(t, s, len);
      t[len] = '\0';
    }
    if (push_str(&e->targets, &n, &cap, t) < 0)
      return fail(m, "%.300s:%d: out of memory", file, lineno);
    e->ntargets = (int)n;
    s += len;
  }
  if (n == 0) return fail(m, "%.300s:%d: '%.80s' has no target", file, lineno, e->key);
  for (int i = 0; i < e->ntargets; ++i) {
    const char *t = e->targets[i];
    if (t[0] == '|' || t[0] == '/' || strncmp(t, ":include:", 9) == 0 || strchr(t, '"'))
      return fail(m,
                  "%.300s:%d: target '%.80s' is not supported (no pipes, files, :include: or "
                  "quoted names; targets are local names or addresses)",
                  file, lineno, t);
    const char *at = strrchr(t, '@');
    size_t ln = at ? (size_t)(at - t) : strlen(t);
    if (!name_ok(t, ln) || (at && !at[1]))
      return fail(m, "%.300s:%d: target '%.80s' is not a local name or user@domain (%s)", file,
                  lineno, t, kNameRule);
  }
  return 0;
}

static rm_entry *new_entry(rm_maps *m, rm_list *l, char *key, const char *file, int lineno) {
  if (!key) return NULL;
  if (l->n == l->cap) {
    size_t c = l->cap ? l->cap * 2 : 16;
    rm_entry *g = realloc(l->v, c * sizeof *g);
    if (!g) {
      free(key);
      return NULL;
    }
    l->v = g;
    l->cap = c;
  }
  rm_entry *e = &l->v[l->n++];
  memset(e, 0, sizeof *e);
  e->key = key;
  snprintf(e->where, sizeof e->where, "%.300s:%d", file, lineno);
  (void)m;
  return e;
}

static int add_alias(const char *line, const char *file, int lineno, void *ud) {
  rm_maps *m = ((ctx *)ud)->m;
  const char *colon = strchr(line, ':');
  if (!colon)
    return -fail(m, "%.300s:%d: '%.80s': expected 'name: target, target...'", file, lineno, line);
  size_t n = (size_t)(colon - line);
  while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) --n;
  if (!name_ok(line, n))
    return -fail(m, "%.300s:%d: '%.*s' is not an alias name (%s)", file, lineno,
                 (int)(n > 80 ? 80 : n), line, kNameRule);
  rm_entry *e = new_entry(m, &m->aliases, lower_dup(line, n), file, lineno);
  if (!e) return -fail(m, "%.300s:%d: out of memory", file, lineno);
  return split_targets(m, e, colon + 1, file, lineno) < 0 ? 1 : 0;
}

static int add_vdomain(rm_maps *m, const char *d) {
  for (size_t i = 0; i < m->nvdomains; ++i)
    if (strcmp(m->vdomains[i], d) == 0) return 0;
  return push_str(&m->vdomains, &m->nvdomains, &m->capvdomains, lower_dup(d, strlen(d)));
}

static int add_virtual(const char *line, const char *file, int lineno, void *ud) {
  rm_maps *m = ((ctx *)ud)->m;
  size_t n = strcspn(line, " \t,");
  const char *at = memchr(line, '@', n);
  if (!at || !line[n])
    return -fail(m, "%.300s:%d: '%.80s': expected 'user@domain target...' or '@domain target...'",
                 file, lineno, line);
  char *key = lower_dup(line, n);
  if (!key) return -fail(m, "%.300s:%d: out of memory", file, lineno);
  size_t ln = (size_t)(at - line);
  const char *dom = key + ln + 1;
  if ((ln > 0 && !name_ok(line, ln)) || !mb_domain_ok(dom, strlen(dom))) {
    fail(m, "%.300s:%d: '%.80s' is not user@domain or @domain (user: %s; domain: a-z 0-9 - _ .)",
         file, lineno, key, kNameRule);
    free(key);
    return 1;
  }
  const char *rule = ld_match(&m->domains, dom, m->me, NULL);
  if (rule) {
    fail(m,
         "%.300s:%d: %.80s is a local domain (%.80s): virtual domains must not be local; map "
         "its users in the local recipients and aliases",
         file, lineno, dom, rule);
    free(key);
    return 1;
  }
  if (add_vdomain(m, dom) < 0) {
    free(key);
    return -fail(m, "%.300s:%d: out of memory", file, lineno);
  }
  rm_entry *e = new_entry(m, &m->virtuals, key, file, lineno);
  if (!e) return -fail(m, "%.300s:%d: out of memory", file, lineno);
  return split_targets(m, e, line + n, file, lineno) < 0 ? 1 : 0;
}

/* ---- lookups ------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const rm_entry *)a)->key, ((const rm_entry *)b)->key);
}

int rm_is_user(const rm_maps *m, const char *name) {
  return m->nusers && bsearch(&name, m->users, m->nusers, sizeof *m->users, cmp_str) != NULL;
}
int rm_is_vdomain(const rm_maps *m, const char *domain) {
  return m->nvdomains &&
         bsearch(&domain, m->vdomains, m->nvdomains, sizeof *m->vdomains, cmp_str) != NULL;
}
static rm_entry *find(const rm_list *l, const char *key) {
  rm_entry probe;
  probe.key = (char *)key;
  return l->n ? bsearch(&probe, l->v, l->n, sizeof *l->v, cmp_entry) : NULL;
}
const rm_entry *rm_alias(const rm_maps *m, const char *name) {
  return find(&m->aliases, name);
}
const rm_entry *rm_virtual(const rm_maps *m, const char *user, const char *vdomain) {
  char key[600];
  snprintf(key, sizeof key, "%s@%s", user, vdomain);
  const rm_entry *e = find(&m->virtuals, key);
  return e ? e : find(&m->virtuals, strchr(key, '@'));
}

/* Sorts, and refuses a name defined twice. */
static int sort_list(rm_maps *m, rm_list *l, const char *what) {
  if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_entry);
  for (size_t i = 1; i < l->n; ++i)
    if (strcmp(l->v[i - 1].key, l->v[i].key) == 0) {
      const rm_entry *a = &l->v[i - 1], *b = &l->v[i];
      const rm_entry *later = strcmp(a->where, b->where) < 0 ? b : a; /* report one of the two */
      return fail(m, "%s: %s '%.80s' is defined twice (also at %s)", later->where, what, later->key,
                  later == a ? b->where : a->where);
    }
  return 0;
}

/* ---- resolution ---------------------------------------------------------------------------- */

typedef struct outv {
  char **v;
  size_t n, cap;
} outv;

static int out_add(rm_maps *m, const rm_entry *from, outv *o, const char *addr) {
  for (size_t i = 0; i < o->n; ++i)
    if (strcmp(o->v[i], addr) == 0) return 0;
  if (o->n >= RM_MAX_TARGETS)
    return fail(m, "%s: '%.80s' expands to more than %d addresses", from ? from->where : "?",
                from ? from->key : "", RM_MAX_TARGETS);
  if (push_str(&o->v, &o->n, &o->cap, lower_dup(addr, strlen(addr))) < 0)
    return fail(m, "out of memory");
  return 0;
}

static int resolve_entry(rm_maps *m, rm_entry *e, int depth);

static int add_final_of(rm_maps *m, const rm_entry *from, outv *o, const rm_entry *e) {
  for (int i = 0; i < e->nfinal; ++i)
    if (out_add(m, from, o, e->final[i]) < 0) return -1;
  return 0;
}

/* A local user's mailbox. The local domains share one namespace of users: each has one mailbox,
 * <name>@<me>, whichever local domain an address names (as rcpt_map.c's user() rewrites).
 * Refused when queue/maildir could not store me, or every message to it would be refused
 * after DATA. */
static int add_mailbox(rm_maps *m, const rm_entry *from, outv *o, const char *name) {
  char addr[600], stored[256];
  if (mb_store_domain(m->me, m->me, 1, stored, sizeof stored) < 0)
    return fail(m,
                "%s: '%.80s@%.80s': queue/maildir cannot store the host name "
                "(a-z 0-9 - _ . only; a non-ASCII name needs its xn-- form)",
                from ? from->where : "postmaster", name, m->me);
  snprintf(addr, sizeof addr, "%s@%s", name, stored);
  return out_add(m, from, o, addr);
}

/* A local name (an alias or a user), in any local domain. */
static int resolve_local(rm_maps *m, rm_entry *from, int depth, outv *o, const char *name) {
  rm_entry *a = find(&m->aliases, name);
  if (a && a == from) { /* "alice: alice, bob": alice's own mailbox too (as Postfix's local) */
    if (rm_is_user(m, name)) return add_mailbox(m, from, o, name);
    return fail(m, "%s: alias '%.80s' names itself but is not a local user", from->where, name);
  }
  if (a) {
    if (resolve_entry(m, a, depth + 1) < 0) return -1;
    return add_final_of(m, from, o, a);
  }
  if (rm_is_user(m, name)) return add_mailbox(m, from, o, name);
  if (from)
    return fail(m, "%s: target '%.80s' of '%.80s' is neither a local user nor an alias",
                from->where, name, from->key);
  return fail(m, "'%.80s' is neither a local user nor an alias", name);
}

static int resolve_target(rm_maps *m, rm_entry *from, int depth, outv *o, const char *t) {
  char buf[600];
  size_t n = strlen(t);
  if (n >= sizeof buf) return fail(m, "%s: target too long", from->where);
  for (size_t i = 0; i <= n; ++i) buf[i] = mb_lower(t[i]);
  char *at = strrchr(buf, '@');
  if (!at) return resolve_local(m, from, depth, o, buf);
  *at = '\0';
  const char *dom = at + 1;
  if (ld_match(&m->domains, dom, m->me, NULL)) return resolve_local(m, from, depth, o, buf);
  if (rm_is_vdomain(m, dom)) {
    rm_entry *v = (rm_entry *)rm_virtual(m, buf, dom);
    if (v == from) return fail(m, "%s: '%.80s' expands to itself", from->where, from->key);
    if (v) {
      if (resolve_entry(m, v, depth + 1) < 0) return -1;
      return add_final_of(m, from, o, v);
    }
    if (strcmp(buf, "postmaster") == 0) return add_final_of(m, from, o, &m->postmaster);
    return fail(m, "%s: target '%.80s': no such user in the virtual domain %.80s", from->where, t,
                dom);
  }
  return fail(m,
              "%s: target '%.80s' is not in a local or virtual domain (nothing here delivers "
              "mail to other hosts)",
              from->where, t);
}

static int resolve_entry(rm_maps *m, rm_entry *e, int depth) {
  if (e->state == 2) return 0;
  if (e->state == 1) return fail(m, "%s: '%.80s' loops: it expands to itself", e->where, e->key);
  if (depth > RM_MAX_DEPTH)
    return fail(m, "%s: '%.80s' is nested deeper than %d levels", e->where, e->key, RM_MAX_DEPTH);
  e->state = 1;
  outv o = {0};
  for (int i = 0; i < e->ntargets; ++i)
    if (resolve_target(m, e, depth, &o, e->targets[i]) < 0) {
      for (size_t k = 0; k < o.n; ++k) free(o.v[k]);
      free(o.v);
      return -1;
    }
  if (o.n == 0) return fail(m, "%s: '%.80s' expands to no mailbox", e->where, e->key);
  e->final = o.v;
  e->nfinal = (int)o.n;
  e->state = 2;
  return 0;
}

/* ---- load / free ---------------------------------------------------------------------------- */

static int read_file(rm_maps *m, const uvs_api *api, uvs_plugin *p, const char *name, int named,
                     const char *what, uvs_line_at_fn fn) {
  ctx c = {m};
  int rc = api->config_lines_at(p, name, fn, &c);
  if (m->error[0]) return -EINVAL;
  if (rc == -ENOENT && !named) return 0;
  if (rc == -ENOENT)
    return fail(m, "%s=%.200s: no such file in the config directory", what, name), -ENOENT;
  if (rc < 0) return fail(m, "cannot read %.200s: %s", name, strerror(-rc)), rc;
  return 0;
}

int rm_load(rm_maps *m, const uvs_api *api, uvs_plugin *p, const rm_files *f) {
  int rc = ld_load(&m->domains, api, p, f->domains);
  if (rc == -ENOENT && f->domains_named)
    return fail(m, "domains=%.200s: no such file in the config directory", f->domains), rc;
  if (rc < 0 && rc != -ENOENT) return fail(m, "%s", m->domains.error), rc;
  if ((rc = read_file(m, api, p, f->recipients, f->recipients_named, "recipients", add_user)) < 0 ||
      (rc = read_file(m, api, p, f->aliases, f->aliases_named, "aliases", add_alias)) < 0 ||
      (rc = read_file(m, api, p, f->virtuals, f->virtuals_named, "virtual", add_virtual)) < 0)
    return rc;
  if (m->nusers) qsort(m->users, m->nusers, sizeof *m->users, cmp_str);
  if (m->nvdomains) qsort(m->vdomains, m->nvdomains, sizeof *m->vdomains, cmp_str);
  if (sort_list(m, &m->aliases, "alias") < 0 || sort_list(m, &m->virtuals, "virtual entry") < 0)
    return -EINVAL;
  /* RFC 5321 4.5.1: postmaster must resolve. */
  snprintf(m->postmaster.where, sizeof m->postmaster.where, "postmaster");
  m->postmaster.key = NULL;
  outv o = {0};
  if (resolve_local(m, NULL, 0, &o, "postmaster") < 0) {
    for (size_t k = 0; k < o.n; ++k) free(o.v[k]);
    free(o.v);
    char why[640];
    snprintf(why, sizeof why, "%s", m->error);
    m->error[0] = '\0';
    return fail(m,
                "postmaster does not resolve (RFC 5321 4.5.1): add 'postmaster: <user>' to %s "
                "or postmaster to %s (%.400s)",
                f->aliases, f->recipients, why),
           -EINVAL;
  }
  m->postmaster.final = o.v;
  m->postmaster.nfinal = (int)o.n;
  m->postmaster.state = 2;
  for (size_t i = 0; i < m->aliases.n; ++i)
    if (resolve_entry(m, &m->aliases.v[i], 0) < 0) return -EINVAL;
  for (size_t i = 0; i < m->virtuals.n; ++i)
    if (resolve_entry(m, &m->virtuals.v[i], 0) < 0) return -EINVAL;
  return 0;
}

static void free_entry(rm_entry *e) {
  free(e->key);
  for (int i = 0; i < e->ntargets; ++i) free(e->targets[i]);
  free(e->targets);
  for (int i = 0; i < e->nfinal; ++i) free(e->final[i]);
  free(e->final);
}

static void free_list(rm_list *l) {
  for (size_t i = 0; i < l->n; ++i) free_entry(&l->v[i]);
  free(l->v);
}

void rm_free(rm_maps *m) {
  ld_free(&m->domains);
  for (size_t i = 0; i < m->nusers; ++i) free(m->users[i]);
  free(m->users);
  for (size_t i = 0; i < m->nvdomains; ++i) free(m->vdomains[i]);
  free(m->vdomains);
  free_list(&m->aliases);
  free_list(&m->virtuals);
  free_entry(&m->postmaster);
}
