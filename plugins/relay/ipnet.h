/* plugins/relay/ipnet.h: IPv4/IPv6 addresses, CIDR networks, network lists (relay, hosts_allow). */
#ifndef UVS_PLUGIN_IPNET_H
#define UVS_PLUGIN_IPNET_H

#include <stddef.h>
#include <stdint.h>

/* An address: family 4 (first 4 bytes used) or 6. IPv4-mapped IPv6 is folded to 4. */
typedef struct ipnet_addr {
  int family;
  uint8_t b[16];
} ipnet_addr;

/* A network: the address with its host bits cleared, and the prefix length. */
typedef struct ipnet {
  ipnet_addr net;
  int len;
} ipnet;

typedef struct ipnet_list {
  ipnet *items;
  size_t count;
  size_t cap;
} ipnet_list;

/* "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" (-> family 4). 0, or -1 if not an address. */
int ipnet_addr_parse(const char *text, ipnet_addr *out);

/* The first len bytes of text: "192.0.2.0/24", "192.0.2.1" (/32), "2001:db8::/32", "::1"
 * (/128), or qpsmtpd's IPv4 prefix form "192.168." (/16). Host bits are cleared; an
 * IPv4-mapped network ("::ffff:10.0.0.0/104") becomes the IPv4 one. 0, or -1. */
int ipnet_parse(const char *text, size_t len, ipnet *out);

/* 1 if the network contains the address (same family only), else 0. */
int ipnet_contains(const ipnet *n, const ipnet_addr *a);

/* Append a copy: 0, or -1 when out of memory. */
int ipnet_list_add(ipnet_list *l, const ipnet *n);
/* The index of the first network containing a, or -1. */
long ipnet_list_find(const ipnet_list *l, const ipnet_addr *a);
void ipnet_list_free(ipnet_list *l);

#endif /* UVS_PLUGIN_IPNET_H */
