/* plugins/common/state_util.h: what the plugins that keep shared state (uvs_api.kv_*, 1.5)
 * share: the `state-fail` argument, the client's network as a key part, the wall clock that
 * servers sharing one back end agree on, key-value argument lists (even count, durations,
 * `state-fail`), and the start of init() (ABI check, zeroed state, arguments). */
#ifndef UVS_PLUGINS_COMMON_STATE_UTIL_H
#define UVS_PLUGINS_COMMON_STATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "uvsmtpd/plugin.h"

/* `state-fail` values: "open" (a back-end failure lets the client through) or "closed" (it
 * refuses for now, with a 4xx). 0 and *closed set, or -1. */
int su_fail_parse(const char *s, int *closed);

/* The argument list must be key value pairs: 0 when the count is even, else the error "odd
 * number of arguments (N): arguments are key value pairs, e.g. '<example>'" and -EINVAL. */
int su_args_even(const uvs_api *api, uvs_plugin *self, const char *example);

/* A duration argument `key val`: val in seconds (days 0) or days (days 1), above 0 (or also
 * 0 when zero_ok) and at most max; *ms set, rounded to the millisecond. 0, or -EINVAL with
 * the error "bad value 'val' for 'key': expected seconds|days from 0|more than 0 to max". */
int su_duration_arg(const uvs_api *api, uvs_plugin *self, const char *key, const char *val,
                    int days, int zero_ok, double max, uint64_t *ms);

/* The `state-fail` argument's value into *closed: 0, or -EINVAL with the error set. */
int su_fail_arg(const uvs_api *api, uvs_plugin *self, const char *val, int *closed);

/* The start of a state plugin's init(). has_kv is UVS_API_HAS(api, <kv_member>) as the caller
 * computes it, kv_member that member's name for the error ("needs uvsmtpd plugin ABI 1.5
 * (kv_member)", -ENOSYS). Then allocates size zeroed bytes and calls parse(state, self).
 * Returns the state, or NULL with *rc set (-ENOSYS, -ENOMEM or parse's error; nothing kept). */
void *su_state_new(const uvs_api *api, uvs_plugin *self, int has_kv, const char *kv_member,
                   size_t size, int (*parse)(void *state, uvs_plugin *self), int *rc);

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
