/* plugins/dnsbl/dnsbl_util.h: dnsbl helpers: expected answers, zone names, reply text (the
 * addresses, networks and query prefixes are ../common/ipnet.h). */
#ifndef DNSBL_DNSBL_UTIL_H
#define DNSBL_DNSBL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Which A answers mean "listed" for a zone: a list of items, each an IPv4 network (an exact
 * address is a /32) or a bitmask tested against the last octet of an answer in 127.0.0.0/8. */
#define BL_MAX_EXPECT 16
typedef struct bl_expect {
  int is_mask;
  uint32_t net;  /* host order, host bits cleared (networks) */
  uint32_t mask; /* netmask (networks) or the bitmask (is_mask) */
} bl_expect;

/* Parses "127.0.0.2", "127.0.0.0/24", "&0x0c" / "&12", or a comma-separated list of these.
 * Returns the number of items (1..BL_MAX_EXPECT) or -1. */
int bl_expect_parse(const char *s, bl_expect *out);
/* 1 if the dotted IPv4 answer matches one of the n items; with n == 0 the default applies:
 * any address in 127.0.0.0/24. */
int bl_expect_match(const bl_expect *e, int n, const char *answer);

/* A DNS zone name fit for "<prefix>.<zone>" queries: letters, digits, '-', '_', dots between
 * non-empty labels of at most 63 bytes, at most 180 bytes in all (the IPv6 prefix takes 64).
 * A trailing dot is accepted by the caller stripping it first. 1 or 0. */
int bl_zone_ok(const char *zone);

/* Copies src into dst (cap > 0) as one SMTP reply line: controls become spaces, bytes >= 0x80
 * become '?', "%IP%" becomes ip (when ip is not NULL), leading/trailing blanks are dropped,
 * and the result is cut at cap - 1 bytes. Returns the length. */
size_t bl_reply_text(char *dst, size_t cap, const char *src, const char *ip);

#endif
