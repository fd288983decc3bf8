/* plugins/common/ipnet.h: IPv4/IPv6 addresses (parsed, compared, hashed, written as DNS query
 * names), address literals, CIDR networks and network lists, for every plugin that matches a
 * client's address: relay, hosts_allow, earlytalker, dnsbl, and the local-domain rules. */
#ifndef UVS_PLUGINS_COMMON_IPNET_H
#define UVS_PLUGINS_COMMON_IPNET_H

#include <stddef.h>
#include <stdint.h>

/* An address: family 4 (b[0..3]) or 6 (b[0..15]); the bytes a family does not use are 0, so
 * two addresses are equal when family and all 16 bytes are. */
typedef struct ipnet_addr {
  int family;
  uint8_t b[16];
} ipnet_addr;

/* A network: the address with its host bits cleared, and the prefix length (0..32, 0..128). */
typedef struct ipnet {
  ipnet_addr net;
  int len;
} ipnet;

typedef struct ipnet_list {
  ipnet *items;
  size_t count;
  size_t cap;
} ipnet_list;

/* A client address as the server prints it: "192.0.2.1", "2001:db8::1". An IPv4-mapped IPv6
 * address ("::ffff:192.0.2.1", a dual-stack socket's IPv4 peer) becomes family 4. 0, or -1 if
 * text is NULL or not an address. */
int ipnet_addr_parse(const char *text, ipnet_addr *out);

/* An address literal (RFC 5321 4.1.3): "[192.0.2.1]" or "[IPv6:2001:db8::1]" (the tag in any
 * case). An IPv4-mapped IPv6 literal stays family 6: it is not the IPv4 literal. 0 or -1. */
int ipnet_literal_parse(const char *domain, ipnet_addr *out);

/* 1 if x and y are the same address, else 0. */
int ipnet_addr_equal(const ipnet_addr *x, const ipnet_addr *y);

/* A hash of the address (FNV-1a over family and bytes), for hash tables. */
uint32_t ipnet_addr_hash(const ipnet_addr *a);

/* The reversed form used for DNS queries, without a zone (RFC 5782 2.1 and 2.4, RFC 3596
 * 2.5): "4.3.2.1" for 1.2.3.4; for an IPv6 address its 32 nibbles in reverse order
 * ("1.0.0.0.[...].8.b.d.0.1.0.0.2" for 2001:db8::1). Returns the length, or -1 if cap is
 * too small (64 always fits). */
int ipnet_reverse(const ipnet_addr *a, char *out, size_t cap);

/* The first len bytes of text: "192.0.2.0/24", "192.0.2.1" (/32), "2001:db8::/32", "::1"
 * (/128), or qpsmtpd's IPv4 prefix form "192.168." (/16; 1 to 3 octets and a dot). The prefix
 * length is 1 to 3 decimal digits. Host bits are cleared. An IPv4-mapped network of /96 or
 * longer ("::ffff:10.0.0.0/104") becomes the IPv4 network it maps (10.0.0.0/8), so that it
 * matches the (folded) IPv4-mapped peers; a shorter one stays IPv6. 0, or -1. */
int ipnet_parse(const char *text, size_t len, ipnet *out);

/* 1 if the network contains the address (same family only: "::/0" holds no IPv4 address),
 * else 0. */
int ipnet_contains(const ipnet *n, const ipnet_addr *a);

/* Appends a copy (l starts zeroed): 0, or -1 when out of memory. */
int ipnet_list_add(ipnet_list *l, const ipnet *n);
/* The index of the first network containing a, or -1. */
long ipnet_list_find(const ipnet_list *l, const ipnet_addr *a);
void ipnet_list_free(ipnet_list *l);

#endif /* UVS_PLUGINS_COMMON_IPNET_H */
