/* plugins/common/mailbox.c: the local mailbox naming rules shared by the local-delivery
 * plugins (see mailbox.h). */
#define _POSIX_C_SOURCE 200809L
#include "mailbox.h"

#include <string.h>

#include "ipnet.h"

static int safe_char(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("-+_.,=", ch));
}

char mb_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

void mb_printable(char *out, size_t cap, const char *s) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap && i < 200; ++i) {
    unsigned char ch = (unsigned char)s[i];
    out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  if (cap) out[i] = '\0';
}

int mb_dot_string(const char *s, size_t n) {
  if (n == 0 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == ',' || !safe_char(ch)) return 0; /* ',' is storable, but not atext */
    if (ch == '.' && s[i + 1] == '.') return 0;
  }
  return 1;
}

int mb_local(const char *local, size_t n, char *out, size_t cap) {
  size_t o = 0;
  if (n >= 2 && local[0] == '"' && local[n - 1] == '"') { /* quoted-string: drop quotes, \ */
    for (size_t i = 1; i + 1 < n; ++i) {
      char ch = local[i];
      if (ch == '\\') {
        if (i + 2 >= n) return -1;
        ch = local[++i];
      }
      if (o + 1 >= cap) return -1;
      out[o++] = ch;
    }
  } else {
    if (n + 1 > cap) return -1;
    memcpy(out, local, n);
    o = n;
  }
  out[o] = '\0';
  if (o == 0 || o > 255 || out[0] == '.') return -1;
  for (size_t i = 0; i < o; ++i) {
    if (!safe_char((unsigned char)out[i])) return -1;
    if (out[i] == '.' && out[i + 1] == '.') return -1;
  }
  return (int)o;
}

int mb_has_routing(const char *local, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (local[i] == '%' || local[i] == '!' || local[i] == '@') return 1;
  return 0;
}

int mb_domain_ok(const char *s, size_t n) {
  if (n == 0 || n > 255 || s[0] == '.') return 0;
  for (size_t i = 0; i < n; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
          ch == '.'))
      return 0;
    if (ch == '.' && i + 1 < n && s[i + 1] == '.') return 0;
  }
  return 1;
}

int mb_store_domain(const char *domain, const char *me, int local_literal, char *out, size_t cap) {
  const char *d = domain;
  if (!d || (d[0] == '[' && local_literal)) d = me ? me : "";
  size_t n = strlen(d);
  if (d == me && n > 0 && d[n - 1] == '.') --n; /* hostname = "mx.example." */
  if (n >= cap) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = mb_lower(d[i]);
  out[n] = '\0';
  return mb_domain_ok(out, n) ? (int)n : -1;
}

int mb_literal_is_ip(const char *domain, const char *ip) {
  ipnet_addr a, b;
  return ipnet_literal_parse(domain, &a) == 0 && ipnet_addr_parse(ip, &b) == 0 &&
         ipnet_addr_equal(&a, &b);
}
