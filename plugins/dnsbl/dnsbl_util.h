/* plugins/dnsbl/dnsbl_util.h: dnsbl helpers: addresses, CIDRs, query names, answers, text. */
#ifndef DNSBL_DNSBL_UTIL_H
#define DNSBL_DNSBL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* An IPv4 (family 4, b[0..3]) or IPv6 (family 6, b[0..15]) address. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is stored as the IPv4 address it carries. */
typedef struct bl_addr {
  int family;
  uint8_t b[16];
} bl_addr;

typedef struct bl_cidr {
  bl_addr net; /* host bits cleared */
  int len;     /* 0..32 or 0..128 */
} bl_cidr;

/* 0, or -1 if s is not an IPv4/IPv6 address. */
int bl_addr_parse(const char *s, bl_addr *out);

/* One dnsbl_allow entry: "addr", "addr/len" (host bits ignored), or qpsmtpd's IPv4 prefix
 * with a trailing dot ("172.16.33." = 172.16.33.0/24, "10." = 10.0.0.0/8). 0 or -1. */
int bl_cidr_parse(const char *s, bl_cidr *out);
int bl_cidr_match(const bl_cidr *c, const bl_addr *a);

/* The DNSBL query prefix of a, without the zone: "4.3.2.1" for 1.2.3.4, the 32 reversed
 * nibbles "b.a.9.8.....8.b.d.0.1.0.0.2" for an IPv6 address (RFC 5782 §2.4). Returns the
 * length, or -1 if cap is too small. */
int bl_reverse(const bl_addr *a, char *out, size_t cap);

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
