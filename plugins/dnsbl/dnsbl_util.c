/* plugins/dnsbl/dnsbl_util.c: dnsbl helpers: expected answers, zone names, reply text. */
#define _POSIX_C_SOURCE 200809L
#include "dnsbl_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ipnet.h"

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
  /* An IPv4 address or network: not qpsmtpd's "127.0.0." prefix form, nor IPv6 (mapped or not). */
  size_t len = strlen(s);
  ipnet n;
  if (len == 0 || s[len - 1] == '.' || strchr(s, ':') || ipnet_parse(s, len, &n) != 0 ||
      n.net.family != 4)
    return -1;
  e->mask = n.len ? 0xffffffffu << (32 - n.len) : 0;
  e->net = (uint32_t)n.net.b[0] << 24 | (uint32_t)n.net.b[1] << 16 | (uint32_t)n.net.b[2] << 8 |
           n.net.b[3];
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
