/* plugins/dnsbl/dnsbl_util.c: dnsbl helpers: addresses, CIDRs, query names, answers, text. */
#define _POSIX_C_SOURCE 200809L
#include "dnsbl_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bl_addr_parse(const char *s, bl_addr *out) {
  memset(out, 0, sizeof *out);
  if (!s) return -1;
  if (inet_pton(AF_INET, s, out->b) == 1) {
    out->family = 4;
    return 0;
  }
  uint8_t v6[16];
  if (inet_pton(AF_INET6, s, v6) != 1) return -1;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(v6, mapped, sizeof mapped) == 0) {
    out->family = 4;
    memcpy(out->b, v6 + 12, 4);
  } else {
    out->family = 6;
    memcpy(out->b, v6, 16);
  }
  return 0;
}

static void clear_host_bits(bl_addr *a, int len) {
  int nbytes = a->family == 4 ? 4 : 16;
  for (int i = 0; i < nbytes; ++i) {
    int bits = len - i * 8;
    if (bits >= 8) continue;
    a->b[i] = bits <= 0 ? 0 : (uint8_t)(a->b[i] & (0xff << (8 - bits)));
  }
}

/* Digits only, at most 3 of them; -1 otherwise. */
static int small_number(const char *p) {
  if (!*p || strlen(p) > 3) return -1;
  int n = 0;
  for (; *p; ++p) {
    if (*p < '0' || *p > '9') return -1;
    n = n * 10 + (*p - '0');
  }
  return n;
}

int bl_cidr_parse(const char *s, bl_cidr *out) {
  char buf[64];
  size_t len = s ? strlen(s) : 0;
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len + 1);
  memset(out, 0, sizeof *out);
  if (buf[len - 1] == '.') { /* qpsmtpd's "172.16.33." prefix form */
    int octets = 0;
    char *save = NULL;
    buf[len - 1] = 0;
    for (char *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
      int v = small_number(tok);
      if (v < 0 || v > 255 || octets >= 3) return -1;
      out->net.b[octets++] = (uint8_t)v;
    }
    /* strtok_r skips empty fields: require exactly the dots the octets need. */
    size_t dots = 0;
    for (size_t i = 0; i < len; ++i) dots += s[i] == '.';
    if (octets == 0 || dots != (size_t)octets) return -1;
    out->net.family = 4;
    out->len = octets * 8;
    return 0;
  }
  char *slash = strchr(buf, '/');
  int prefix = -1;
  if (slash) {
    *slash = 0;
    prefix = small_number(slash + 1);
    if (prefix < 0) return -1;
  }
  /* No v4-mapped folding here: "::ffff:0:0/96" keeps its IPv6 meaning. */
  if (inet_pton(AF_INET, buf, out->net.b) == 1)
    out->net.family = 4;
  else if (inet_pton(AF_INET6, buf, out->net.b) == 1)
    out->net.family = 6;
  else
    return -1;
  int max = out->net.family == 4 ? 32 : 128;
  if (prefix < 0) prefix = max;
  if (prefix > max) return -1;
  out->len = prefix;
  clear_host_bits(&out->net, prefix);
  return 0;
}

int bl_cidr_match(const bl_cidr *c, const bl_addr *a) {
  if (c->net.family != a->family) return 0;
  bl_addr masked = *a;
  clear_host_bits(&masked, c->len);
  return memcmp(masked.b, c->net.b, a->family == 4 ? 4 : 16) == 0;
}

int bl_reverse(const bl_addr *a, char *out, size_t cap) {
  size_t n = 0;
  if (a->family == 4) {
    int w = snprintf(out, cap, "%u.%u.%u.%u", a->b[3], a->b[2], a->b[1], a->b[0]);
    return w < 0 || (size_t)w >= cap ? -1 : w;
  }
  static const char hex[] = "0123456789abcdef";
  if (cap < 64) return -1;
  for (int i = 15; i >= 0; --i) {
    out[n++] = hex[a->b[i] & 15];
    out[n++] = '.';
    out[n++] = hex[a->b[i] >> 4];
    out[n++] = i ? '.' : 0;
  }
  return 63;
}

static int parse_u32(const char *s, uint32_t *out) {
  if (!*s) return -1;
  char *end = NULL;
  unsigned long v = strtoul(s, &end, 0);
  if (*end || v > 0xffffffffUL || *s == '-' || *s == '+' || isspace((unsigned char)*s)) return -1;
  *out = (uint32_t)v;
  return 0;
}

static int parse_one(const char *s, bl_expect *e) {
  memset(e, 0, sizeof *e);
  if (*s == '&') {
    uint32_t m;
    if (parse_u32(s + 1, &m) != 0 || m == 0 || m > 255) return -1;
    e->is_mask = 1;
    e->mask = m;
    return 0;
  }
  char buf[32];
  size_t len = strlen(s);
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len + 1);
  char *slash = strchr(buf, '/');
  int prefix = 32;
  if (slash) {
    *slash = 0;
    prefix = small_number(slash + 1);
    if (prefix < 0 || prefix > 32) return -1;
  }
  struct in_addr in;
  if (inet_pton(AF_INET, buf, &in) != 1) return -1;
  e->mask = prefix ? 0xffffffffu << (32 - prefix) : 0;
  e->net = ntohl(in.s_addr) & e->mask;
  return 0;
}

int bl_expect_parse(const char *s, bl_expect *out) {
  char item[40];
  int n = 0;
  if (!s || !*s) return -1;
  for (const char *p = s;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == 0 || len >= sizeof item || n >= BL_MAX_EXPECT) return -1;
    memcpy(item, p, len);
    item[len] = 0;
    if (parse_one(item, &out[n]) != 0) return -1;
    ++n;
    if (!comma) return n;
    p = comma + 1;
  }
}

int bl_expect_match(const bl_expect *e, int n, const char *answer) {
  struct in_addr in;
  if (!answer || inet_pton(AF_INET, answer, &in) != 1) return 0;
  uint32_t a = ntohl(in.s_addr);
  if (n == 0) return (a & 0xffffff00u) == 0x7f000000u;
  for (int i = 0; i < n; ++i) {
    if (e[i].is_mask) {
      if ((a >> 24) == 127 && (a & e[i].mask) != 0) return 1;
    } else if ((a & e[i].mask) == e[i].net) {
      return 1;
    }
  }
  return 0;
}

int bl_zone_ok(const char *zone) {
  size_t len = strlen(zone), label = 0;
  if (len == 0 || len > 180) return 0;
  for (size_t i = 0; i < len; ++i) {
    unsigned char ch = (unsigned char)zone[i];
    if (ch == '.') {
      if (label == 0) return 0;
      label = 0;
      continue;
    }
    if (!isalnum(ch) && ch != '-' && ch != '_') return 0;
    if (++label > 63) return 0;
  }
  return label > 0;
}

size_t bl_reply_text(char *dst, size_t cap, const char *src, const char *ip) {
  size_t n = 0;
  size_t iplen = ip ? strlen(ip) : 0;
  while (*src == ' ' || *src == '\t') ++src;
  for (const char *p = src; *p && n + 1 < cap;) {
    if (ip && strncmp(p, "%IP%", 4) == 0) {
      size_t k = iplen < cap - 1 - n ? iplen : cap - 1 - n;
      memcpy(dst + n, ip, k);
      n += k;
      p += 4;
      continue;
    }
    unsigned char ch = (unsigned char)*p++;
    dst[n++] = ch < 0x20 || ch == 0x7f ? ' ' : ch >= 0x80 ? '?' : (char)ch;
  }
  while (n > 0 && dst[n - 1] == ' ') --n;
  dst[n] = 0;
  return n;
}
