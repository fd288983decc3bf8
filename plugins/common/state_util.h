/* plugins/common/state_util.h: what the plugins that keep shared state (uvs_api.kv_*, 1.5)
 * share: the `state-fail` argument, the client's network as a key part, the wall clock that
 * servers sharing one back end agree on, and key-value argument lists. */
#ifndef UVS_PLUGINS_COMMON_STATE_UTIL_H
#define UVS_PLUGINS_COMMON_STATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* `state-fail` values: "open" (a back-end failure lets the client through) or "closed" (it
 * refuses for now, with a 4xx). 0 and *closed set, or -1. */
int su_fail_parse(const char *s, int *closed);

/* The client's address as a key part: exact ("192.0.2.1", "2001:db8::1"), or its network
 * (IPv4 /24 "192.0.2.0/24", IPv6 /64 "2001:db8::/64"). Returns the length, or -1 (not an
 * address, or cap too small; 64 always fits). */
int su_client_key(const char *peer_ip, int exact, char *out, size_t cap);

/* Milliseconds since the epoch (CLOCK_REALTIME): timestamps that several hosts compare. */
uint64_t su_wall_ms(void);

/* Lower-cases ASCII letters in place. */
void su_lower(char *s);

/* 64-bit FNV-1a of s, for keys that would be too long to store as they are. */
uint64_t su_hash64(const char *s);

#endif
