/* plugins/common/plugin_util.h: small helpers the policy plugins (earlytalker, dnsbl) share:
 * the Perl truth of a note, why a session is immune, a monotonic clock in milliseconds, and the
 * `seconds` and `reject_type` argument values as qpsmtpd spells them. */
#ifndef UVS_PLUGINS_COMMON_PLUGIN_UTIL_H
#define UVS_PLUGINS_COMMON_PLUGIN_UTIL_H

#include <stdint.h>

#include "uvsmtpd/plugin.h"

/* A note is "true" as in Perl: set, not empty, not "0". 1 or 0. */
int pu_truthy(const char *v);

/* Why the session is immune (qpsmtpd's is_immune): "relay client", "whitelisted host"
 * (connection note whitelisthost), "whitelisted sender" (transaction note whitelistsender) or
 * "immune"; NULL when api->is_immune says it is not. */
const char *pu_immune_reason(const uvs_api *api, const uvs_call *c);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t pu_now_ms(void);

/* Seconds: digits with at most one '.' ("5", "0.5", ".25"), at most 32 bytes. The value, or
 * -1 on anything else (NULL, empty, a sign, blanks, an exponent). */
double pu_parse_seconds(const char *s);

/* qpsmtpd's reject_type values. */
typedef enum { PU_RT_PERM, PU_RT_TEMP, PU_RT_DISCONNECT, PU_RT_TEMP_DISCONNECT } pu_reject_type;

/* "perm" or "hard", "temp" or "soft", "disconnect", "temp_disconnect" (any case). 0, or -1
 * with *out unchanged. */
int pu_reject_type_parse(const char *s, pu_reject_type *out);
/* "perm", "temp", "disconnect" or "temp_disconnect". */
const char *pu_reject_type_name(pu_reject_type t);

#endif
