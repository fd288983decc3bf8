/* plugins/sender_login/sl_map.c: the sender login map: line syntax, sorted lookups. */
#define _POSIX_C_SOURCE 200809L
#include "sl_map.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_blank_or_comma(char c) {
  return c == ' ' || c == '\t' || c == ',';
}

/* A key: "@domain" or "local@domain", printable ASCII or UTF-8, no blanks, no '<' '>'. */
static int valid_key(const char *k, size_t n) {
  if (n == 0 || n > 320) return 0;
  const char *at = memchr(k, '@', n);
  if (!at) return 0;
  /* the domain follows the last '@' and must not be empty */
  const char *last = k;
  for (size_t i = 0; i < n; i++)
    if (k[i] == '@') last = k + i;
  if (last + 1 == k + n) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)k[i];
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>') return 0;
  }
  return 1;
}

static void entry_free(sl_entry *e) {
  free(e->key);
  for (size_t i = 0; i < e->nusers; i++) free(e->users[i]);
  free(e->users);
}

static const char *intern(sl_map *m, const char *file) {
  if (!file) file = "";
  for (size_t i = m->nfiles; i-- > 0;)
    if (strcmp(m->files[i], file) == 0) return m->files[i];
  char **f = realloc(m->files, (m->nfiles + 1) * sizeof *f);
  if (!f) return NULL;
  m->files = f;
  if (!(f[m->nfiles] = strdup(file))) return NULL;
  return f[m->nfiles++];
}

int sl_map_add(sl_map *m, const char *line, const char *file, int lineno, char *err,
               size_t errcap) {
  size_t kn = strcspn(line, " \t");
  if (!valid_key(line, kn)) {
    snprintf(err, errcap, "'%.*s' is not an address (local@domain) or @domain",
             (int)(kn > 200 ? 200 : kn), line);
    return -1;
  }
  sl_entry e = {0};
  e.line = lineno;
  e.file = intern(m, file);
  e.key = e.file ? strndup(line, kn) : NULL;
  if (!e.key) {
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  for (char *p = e.key; *p; p++) *p = (char)tolower((unsigned char)*p);
  const char *p = line + kn;
  for (;;) {
    while (*p && is_blank_or_comma(*p)) p++;
    if (!*p) break;
    size_t n = 0;
    while (p[n] && !is_blank_or_comma(p[n])) n++;
    if (p[0] == '#') {
      snprintf(err, errcap, "a '#' comment must start its own line");
      entry_free(&e);
      return -1;
    }
    char **u = realloc(e.users, (e.nusers + 1) * sizeof *u);
    char *name = u ? strndup(p, n) : NULL;
    if (u) e.users = u;
    if (!name) {
      snprintf(err, errcap, "out of memory");
      entry_free(&e);
      return -1;
    }
    e.users[e.nusers++] = name;
    p += n;
  }
  if (e.nusers == 0) {
    snprintf(err, errcap, "no login names after '%.200s'", e.key);
    entry_free(&e);
    return -1;
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    sl_entry *ne = realloc(m->e, cap * sizeof *ne);
    if (!ne) {
      snprintf(err, errcap, "out of memory");
      entry_free(&e);
      return -1;
    }
    m->e = ne;
    m->cap = cap;
  }
  m->e[m->n++] = e;
  m->sorted = 0;
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  const sl_entry *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : (x->line > y->line) - (x->line < y->line);
}

int sl_map_finish(sl_map *m, char *err, size_t errcap) {
  if (m->n) qsort(m->e, m->n, sizeof *m->e, cmp_entry);
  m->sorted = 1;
  for (size_t i = 1; i < m->n; i++) {
    if (strcmp(m->e[i - 1].key, m->e[i].key) == 0) {
      const sl_entry *a = &m->e[i - 1], *b = &m->e[i];
      if (a->file != b->file || a->line > b->line) {
        const sl_entry *t = a; /* name the later line (in file order when both share a file) */
        a = b;
        b = t;
      }
      snprintf(err, errcap, "%s:%d: '%.200s' is listed twice (first at %s:%d)", b->file, b->line,
               b->key, a->file, a->line);
      return -1;
    }
  }
  return 0;
}

static const sl_entry *find_key(const sl_map *m, const char *key) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->e[mid].key, key);
    if (c == 0) return &m->e[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const sl_entry *sl_map_find(const sl_map *m, const char *addr) {
  size_t n = strlen(addr);
  if (n == 0 || n > 1024 || !m->sorted) return NULL;
  char key[1032];
  for (size_t i = 0; i <= n; i++) key[i] = (char)tolower((unsigned char)addr[i]);
  const sl_entry *e = find_key(m, key);
  if (e) return e;
  const char *at = strrchr(key, '@');
  if (!at || at == key) return NULL;
  return find_key(m, at);
}

int sl_entry_has(const sl_entry *e, const char *user) {
  for (size_t i = 0; i < e->nusers; i++)
    if (strcasecmp(e->users[i], user) == 0) return 1;
  return 0;
}

void sl_map_free(sl_map *m) {
  for (size_t i = 0; i < m->n; i++) entry_free(&m->e[i]);
  free(m->e);
  for (size_t i = 0; i < m->nfiles; i++) free(m->files[i]);
  free(m->files);
  m->e = NULL;
  m->files = NULL;
  m->n = m->cap = m->nfiles = 0;
}
