/* plugins/earlytalker/et_addr.c: IP/CIDR parsing and matching, and the bounded pass-ttl table. */
#define _POSIX_C_SOURCE 200809L
#include "et_addr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int et_addr_parse(const char *s, et_addr *out) {
  memset(out, 0, sizeof *out);
  if (!s) return -1;
  if (inet_pton(AF_INET, s, out->b) == 1) {
    out->family = 4;
    return 0;
  }
  uint8_t v6[16];
  if (inet_pton(AF_INET6, s, v6) == 1) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(v6, mapped, sizeof mapped) == 0) {
      out->family = 4;
      memcpy(out->b, v6 + 12, 4);
    } else {
      out->family = 6;
      memcpy(out->b, v6, 16);
    }
    return 0;
  }
  return -1;
}

static void clear_host_bits(et_addr *a, int len) {
  int nbytes = a->family == 4 ? 4 : 16;
  for (int i = 0; i < nbytes; ++i) {
    int bits = len - i * 8;
    if (bits >= 8) continue;
    a->b[i] = bits <= 0 ? 0 : (uint8_t)(a->b[i] & (0xff << (8 - bits)));
  }
}

int et_cidr_parse(const char *s, size_t len, et_cidr *out) {
  char buf[64];
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len);
  buf[len] = 0;
  char *slash = strchr(buf, '/');
  int prefix = -1;
  if (slash) {
    *slash = 0;
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3) return -1;
    prefix = 0;
    for (; *p; ++p) {
      if (*p < '0' || *p > '9') return -1;
      prefix = prefix * 10 + (*p - '0');
    }
  }
  /* Parse without the v4-mapped folding: "::ffff:10.0.0.0/104" would otherwise change meaning. */
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, buf, out->net.b) == 1) {
    out->net.family = 4;
  } else if (inet_pton(AF_INET6, buf, out->net.b) == 1) {
    out->net.family = 6;
  } else {
    return -1;
  }
  int max = out->net.family == 4 ? 32 : 128;
  if (prefix < 0) prefix = max;
  if (prefix > max) return -1;
  out->len = prefix;
  clear_host_bits(&out->net, prefix);
  return 0;
}

int et_cidr_match(const et_cidr *c, const et_addr *a) {
  if (c->net.family != a->family) return 0;
  et_addr masked = *a;
  clear_host_bits(&masked, c->len);
  return memcmp(masked.b, c->net.b, a->family == 4 ? 4 : 16) == 0;
}

/* ---- pass table: open hashing with chains, plus a list in expiry order ------------------ */

typedef struct pt_entry {
  et_addr key;
  uint64_t expiry;
  int32_t hnext; /* next in the hash chain, or the free list */
  int32_t prev, next;
} pt_entry;

struct et_passtab {
  pt_entry *e;
  int32_t *buckets;
  size_t cap, nbuckets, count;
  int32_t head, tail, free_list; /* head = first to expire */
};

static size_t hash_addr(const et_addr *a, size_t nbuckets) {
  uint32_t h = 2166136261u ^ (uint32_t)a->family;
  int n = a->family == 4 ? 4 : 16;
  for (int i = 0; i < n; ++i) h = (h ^ a->b[i]) * 16777619u;
  return h & (nbuckets - 1);
}

static int same(const et_addr *x, const et_addr *y) {
  return x->family == y->family && memcmp(x->b, y->b, x->family == 4 ? 4 : 16) == 0;
}

et_passtab *et_passtab_new(size_t cap) {
  if (cap == 0 || cap > (1u << 24)) return NULL;
  et_passtab *t = (et_passtab *)calloc(1, sizeof *t);
  if (!t) return NULL;
  t->cap = cap;
  t->nbuckets = 16;
  while (t->nbuckets < cap * 2) t->nbuckets <<= 1;
  t->e = (pt_entry *)calloc(cap, sizeof *t->e);
  t->buckets = (int32_t *)malloc(t->nbuckets * sizeof *t->buckets);
  if (!t->e || !t->buckets) {
    et_passtab_free(t);
    return NULL;
  }
  for (size_t i = 0; i < t->nbuckets; ++i) t->buckets[i] = -1;
  for (size_t i = 0; i < cap; ++i) t->e[i].hnext = i + 1 < cap ? (int32_t)(i + 1) : -1;
  t->free_list = 0;
  t->head = t->tail = -1;
  return t;
}

void et_passtab_free(et_passtab *t) {
  if (!t) return;
  free(t->e);
  free(t->buckets);
  free(t);
}

size_t et_passtab_size(const et_passtab *t) {
  return t ? t->count : 0;
}

static int32_t find(const et_passtab *t, const et_addr *a) {
  for (int32_t i = t->buckets[hash_addr(a, t->nbuckets)]; i >= 0; i = t->e[i].hnext)
    if (same(&t->e[i].key, a)) return i;
  return -1;
}

static void remove_at(et_passtab *t, int32_t i) {
  pt_entry *e = &t->e[i];
  int32_t *link = &t->buckets[hash_addr(&e->key, t->nbuckets)];
  while (*link != i) link = &t->e[*link].hnext;
  *link = e->hnext;
  if (e->prev >= 0)
    t->e[e->prev].next = e->next;
  else
    t->head = e->next;
  if (e->next >= 0)
    t->e[e->next].prev = e->prev;
  else
    t->tail = e->prev;
  e->hnext = t->free_list;
  t->free_list = i;
  t->count--;
}

static void drop_expired(et_passtab *t, uint64_t now_ms) {
  while (t->head >= 0 && t->e[t->head].expiry <= now_ms) remove_at(t, t->head);
}

int et_passtab_check(et_passtab *t, const et_addr *a, uint64_t now_ms) {
  if (!t) return 0;
  drop_expired(t, now_ms);
  return find(t, a) >= 0;
}

void et_passtab_add(et_passtab *t, const et_addr *a, uint64_t expiry_ms) {
  if (!t) return;
  int32_t old = find(t, a);
  if (old >= 0) remove_at(t, old);
  if (t->count == t->cap) remove_at(t, t->head);
  int32_t i = t->free_list;
  pt_entry *e = &t->e[i];
  t->free_list = e->hnext;
  e->key = *a;
  e->expiry = expiry_ms;
  size_t h = hash_addr(a, t->nbuckets);
  e->hnext = t->buckets[h];
  t->buckets[h] = i;
  e->next = -1;
  e->prev = t->tail;
  if (t->tail >= 0)
    t->e[t->tail].next = i;
  else
    t->head = i;
  t->tail = i;
  t->count++;
}
