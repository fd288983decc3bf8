/* plugins/common/local_domains.c: the local domain set shared by rcpt_ok, rcpt_map and
 * queue/maildir (see local_domains.h). */
#define _POSIX_C_SOURCE 200809L
#include "local_domains.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipnet.h"
#include "mailbox.h"

static int same_ci(const char *a, const char *b, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (mb_lower(a[i]) != mb_lower(b[i])) return 0;
  return 1;
}

/* An entry is one word: a domain, ".domain" or an address literal. */
static int bad_entry(const char *line) {
  if (strcmp(line, ".") == 0) return 1;
  for (const char *p = line; *p; ++p)
    if (*p == ' ' || *p == '\t' || *p == '@' || (unsigned char)*p < 32) return 1;
  return 0;
}

static int store(ld_set *s, const char *line) {
  if (s->count == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    char **grown = realloc(s->hosts, cap * sizeof *grown);
    if (!grown) return -1;
    s->hosts = grown;
    s->cap = cap;
  }
  size_t len = strlen(line);
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  for (size_t i = 0; i <= len; ++i) copy[i] = mb_lower(line[i]);
  s->hosts[s->count++] = copy;
  return 0;
}

static int add_line(const char *line, const char *file, int lineno, void *ud) {
  ld_set *s = ud;
  if (bad_entry(line)) {
    snprintf(s->error, sizeof s->error,
             "%.300s:%d: '%.80s' is not a domain, .domain or address literal", file, lineno, line);
    return 1;
  }
  if (store(s, line) < 0) {
    snprintf(s->error, sizeof s->error, "%.300s:%d: out of memory", file, lineno);
    return 1;
  }
  return 0;
}

int ld_load(ld_set *s, const uvs_api *api, uvs_plugin *p, const char *name) {
  int rc = api->config_lines_at(p, name, add_line, s);
  if (s->error[0]) return -EINVAL;
  if (rc < 0 && rc != -ENOENT)
    snprintf(s->error, sizeof s->error, "cannot read %.200s: %s", name, strerror(-rc));
  return rc;
}

void ld_free(ld_set *s) {
  for (size_t i = 0; i < s->count; ++i) free(s->hosts[i]);
  free(s->hosts);
  s->hosts = NULL;
  s->count = s->cap = 0;
}

/* Two literals naming one address (parsed: "[IPv6:::1]" is "[IPv6:0:0::1]"). */
static int same_literal(const char *a, const char *b) {
  ipnet_addr x, y;
  return ipnet_literal_parse(a, &x) == 0 && ipnet_literal_parse(b, &y) == 0 &&
         ipnet_addr_equal(&x, &y);
}

const char *ld_match(const ld_set *s, const char *domain, const char *me, const char *local_ip) {
  size_t len = strlen(domain);
  int literal = domain[0] == '[';
  if (literal && local_ip && mb_literal_is_ip(domain, local_ip)) return "own address literal";
  if (!literal && me && strlen(me) == len && same_ci(domain, me, len)) return "me";
  for (size_t i = 0; s && i < s->count; ++i) {
    const char *e = s->hosts[i];
    size_t elen = strlen(e);
    if (literal) {
      if (e[0] == '[' && ((len == elen && same_ci(domain, e, len)) || same_literal(domain, e)))
        return e;
    } else if (e[0] == '.') {
      if (len > elen && same_ci(domain + len - elen, e, elen)) return e;
    } else if (len == elen && same_ci(domain, e, len)) {
      return e;
    }
  }
  return NULL;
}
