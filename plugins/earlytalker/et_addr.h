/* plugins/earlytalker/et_addr.h: IP addresses, CIDR matching and the bounded pass-ttl table. */
#ifndef EARLYTALKER_ET_ADDR_H
#define EARLYTALKER_ET_ADDR_H

#include <stddef.h>
#include <stdint.h>

/* An IPv4 (family 4, bytes 0..3) or IPv6 (family 6, bytes 0..15) address. An IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d) is stored as the IPv4 address. */
typedef struct et_addr {
  int family;
  uint8_t b[16];
} et_addr;

typedef struct et_cidr {
  et_addr net; /* host bits cleared */
  int len;     /* prefix length: 0..32 or 0..128 */
} et_cidr;

/* 0, or -1 if s is not an IPv4 or IPv6 address. */
int et_addr_parse(const char *s, et_addr *out);
/* "addr" or "addr/len" (host bits may be set; they are ignored). 0 or -1. */
int et_cidr_parse(const char *s, size_t len, et_cidr *out);
int et_cidr_match(const et_cidr *c, const et_addr *a);

/* IP -> expiry (milliseconds on a monotonic clock), at most cap entries; when full, the entry
 * that expires first (= the oldest pass) is evicted. Loop thread only. */
typedef struct et_passtab et_passtab;
et_passtab *et_passtab_new(size_t cap);
void et_passtab_free(et_passtab *t);
/* 1 if a is in the table and not expired at now_ms (expired entries are dropped). */
int et_passtab_check(et_passtab *t, const et_addr *a, uint64_t now_ms);
/* Records (or renews) a with the given expiry. Expiries must be handed in non-decreasing
 * order (now + a fixed ttl), which keeps the list ordered by expiry. */
void et_passtab_add(et_passtab *t, const et_addr *a, uint64_t expiry_ms);
size_t et_passtab_size(const et_passtab *t);

#endif
