/* plugins/common/ipnet.c: IPv4/IPv6 addresses and literals, CIDR networks and lists (ipnet.h). */
#define _POSIX_C_SOURCE 200809L
#include "ipnet.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* ::ffff:a.b.c.d -> a.b.c.d (the prefix length drops by 96 when there is one). */
static void fold_mapped(ipnet_addr *a, int *len) {
  if (a->family != 6 || memcmp(a->b, kMapped, sizeof kMapped) != 0) return;
  if (len && *len < 96) return; /* a network wider than the mapped block stays IPv6 */
  uint8_t v4[4];
  memcpy(v4, a->b + 12, 4);
  memset(a->b, 0, sizeof a->b);
  memcpy(a->b, v4, 4);
  a->family = 4;
  if (len) *len -= 96;
}

static void clear_host_bits(ipnet_addr *a, int len) {
  int nbytes = a->family == 4 ? 4 : 16;
  for (int i = 0; i < nbytes; ++i) {
    int bits = len - i * 8;
    if (bits >= 8) continue;
    a->b[i] = bits <= 0 ? 0 : (uint8_t)(a->b[i] & (0xff << (8 - bits)));
  }
}

/* Exactly family 4 or 6 from inet_pton, without folding. 0 or -1. */
static int parse_plain(const char *s, ipnet_addr *out) {
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, s, out->b) == 1) {
    out->family = 4;
    return 0;
  }
  if (inet_pton(AF_INET6, s, out->b) == 1) {
    out->family = 6;
    return 0;
  }
  return -1;
}

int ipnet_addr_parse(const char *text, ipnet_addr *out) {
  if (!text || parse_plain(text, out) < 0) return -1;
  fold_mapped(out, NULL);
  return 0;
}

int ipnet_literal_parse(const char *domain, ipnet_addr *out) {
  size_t n = domain ? strlen(domain) : 0;
  char text[64];
  memset(out, 0, sizeof *out);
  if (n < 3 || domain[0] != '[' || domain[n - 1] != ']' || n - 2 >= sizeof text) return -1;
  memcpy(text, domain + 1, n - 2);
  text[n - 2] = '\0';
  if (strncasecmp(text, "IPv6:", 5) == 0) {
    if (inet_pton(AF_INET6, text + 5, out->b) != 1) return -1;
    out->family = 6;
    return 0;
  }
  if (inet_pton(AF_INET, text, out->b) != 1) return -1;
  out->family = 4;
  return 0;
}

int ipnet_addr_equal(const ipnet_addr *x, const ipnet_addr *y) {
  return x->family == y->family && memcmp(x->b, y->b, sizeof x->b) == 0;
}

uint32_t ipnet_addr_hash(const ipnet_addr *a) {
  uint32_t h = 2166136261u ^ (uint32_t)a->family;
  for (size_t i = 0; i < sizeof a->b; ++i) h = (h ^ a->b[i]) * 16777619u;
  return h;
}

int ipnet_reverse(const ipnet_addr *a, char *out, size_t cap) {
  if (a->family == 4) {
    int w = snprintf(out, cap, "%u.%u.%u.%u", a->b[3], a->b[2], a->b[1], a->b[0]);
    return w < 0 || (size_t)w >= cap ? -1 : w;
  }
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  if (cap < 64) return -1;
  for (int i = 15; i >= 0; --i) {
    out[n++] = hex[a->b[i] & 15];
    out[n++] = '.';
    out[n++] = hex[a->b[i] >> 4];
    out[n++] = i ? '.' : '\0';
  }
  return 63;
}

/* "/N": N decimal, 1 to 3 digits. Returns N or -1. */
static int parse_prefix(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > 3) return -1;
  int v = 0;
  for (; *p; ++p) {
    if (!is_digit(*p)) return -1;
    v = v * 10 + (*p - '0');
  }
  return v;
}

/* qpsmtpd's "10." / "192.168." / "192.168.1.": 1 to 3 octets and a trailing dot. 0 or -1. */
static int parse_dotted_prefix(const char *s, ipnet *out) {
  size_t n = strlen(s);
  if (n < 2 || s[n - 1] != '.') return -1;
  memset(out, 0, sizeof *out);
  int octets = 0;
  const char *p = s;
  while (*p) {
    int v = 0, digits = 0;
    for (; is_digit(*p) && digits < 4; ++p, ++digits) v = v * 10 + (*p - '0');
    if (digits == 0 || digits > 3 || v > 255 || *p != '.' || octets == 3) return -1;
    out->net.b[octets++] = (uint8_t)v;
    ++p;
  }
  out->net.family = 4;
  out->len = octets * 8;
  return 0;
}

int ipnet_parse(const char *text, size_t len, ipnet *out) {
  char buf[64];
  if (!text || len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, text, len);
  buf[len] = 0;
  char *slash = strchr(buf, '/');
  int prefix = -1;
  if (slash) {
    *slash = 0;
    if ((prefix = parse_prefix(slash + 1)) < 0) return -1;
  } else if (parse_dotted_prefix(buf, out) == 0) {
    return 0;
  }
  memset(out, 0, sizeof *out);
  if (parse_plain(buf, &out->net) < 0) return -1;
  int max = out->net.family == 4 ? 32 : 128;
  if (prefix < 0) prefix = max;
  if (prefix > max) return -1;
  fold_mapped(&out->net, &prefix);
  out->len = prefix;
  clear_host_bits(&out->net, prefix);
  return 0;
}

int ipnet_contains(const ipnet *n, const ipnet_addr *a) {
  if (n->net.family != a->family) return 0;
  ipnet_addr masked = *a;
  clear_host_bits(&masked, n->len);
  return memcmp(masked.b, n->net.b, a->family == 4 ? 4 : 16) == 0;
}

int ipnet_list_add(ipnet_list *l, const ipnet *n) {
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    ipnet *grown = realloc(l->items, cap * sizeof *grown);
    if (!grown) return -1;
    l->items = grown;
    l->cap = cap;
  }
  l->items[l->count++] = *n;
  return 0;
}

long ipnet_list_find(const ipnet_list *l, const ipnet_addr *a) {
  for (size_t i = 0; i < l->count; ++i)
    if (ipnet_contains(&l->items[i], a)) return (long)i;
  return -1;
}

void ipnet_list_free(ipnet_list *l) {
  free(l->items);
  l->items = NULL;
  l->count = l->cap = 0;
}
