/* plugins/earlytalker/et_passtab.c: the bounded pass-ttl table (see et_passtab.h). */
#define _POSIX_C_SOURCE 200809L
#include "et_passtab.h"

#include <stdlib.h>

/* ---- pass table: open hashing with chains, plus a list in expiry order ------------------ */

typedef struct pt_entry {
  ipnet_addr key;
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

static size_t hash_addr(const ipnet_addr *a, size_t nbuckets) {
  return ipnet_addr_hash(a) & (nbuckets - 1);
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

static int32_t find(const et_passtab *t, const ipnet_addr *a) {
  for (int32_t i = t->buckets[hash_addr(a, t->nbuckets)]; i >= 0; i = t->e[i].hnext)
    if (ipnet_addr_equal(&t->e[i].key, a)) return i;
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

int et_passtab_check(et_passtab *t, const ipnet_addr *a, uint64_t now_ms) {
  if (!t) return 0;
  drop_expired(t, now_ms);
  return find(t, a) >= 0;
}

void et_passtab_add(et_passtab *t, const ipnet_addr *a, uint64_t expiry_ms) {
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
