/* plugins/earlytalker/et_passtab.h: the bounded pass-ttl table (client address -> expiry). */
#ifndef EARLYTALKER_ET_PASSTAB_H
#define EARLYTALKER_ET_PASSTAB_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ipnet.h"

/* IP -> expiry (milliseconds on a monotonic clock), at most cap entries; when full, the entry
 * that expires first (= the oldest pass) is evicted. Loop thread only. */
typedef struct et_passtab et_passtab;
et_passtab *et_passtab_new(size_t cap);
void et_passtab_free(et_passtab *t);
/* 1 if a is in the table and not expired at now_ms (expired entries are dropped). */
int et_passtab_check(et_passtab *t, const ipnet_addr *a, uint64_t now_ms);
/* Records (or renews) a with the given expiry. Expiries must be handed in non-decreasing
 * order (now + a fixed ttl), which keeps the list ordered by expiry. */
void et_passtab_add(et_passtab *t, const ipnet_addr *a, uint64_t expiry_ms);
size_t et_passtab_size(const et_passtab *t);

#endif
