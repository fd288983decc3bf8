/* plugins/auth/dovecot/dc_proto.c: Dovecot auth protocol lines: parsing the server's, building
 * AUTH. */
#define _DEFAULT_SOURCE
#include "dc_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dc_base64(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = tab[v >> 6 & 63];
    out[o++] = tab[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0u);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

/* Copies a field, undoing Dovecot's tab-escaping (\001 then 0, 1, t, r, n/l, or the character
 * itself), with control characters shown as '?', cut to cap - 1 bytes. */
static void copy_field(char *dst, size_t cap, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == 1 && i + 1 < n) {
      char e = s[++i];
      ch = e == '1'                                         ? 1
           : e == 't'                                       ? '\t'
           : (e == 'r' || e == 'n' || e == 'l' || e == '0') ? 0
                                                            : (unsigned char)e;
    }
    dst[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
  }
  dst[o] = '\0';
}

static int parse_uint(const char *s, size_t n, unsigned *out) {
  if (n == 0 || n > 9) return -1;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return 0;
}

static int field_is(const char *f, size_t n, const char *name) {
  return strlen(name) == n && memcmp(f, name, n) == 0;
}

static int field_has_prefix(const char *f, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  return n >= k && memcmp(f, prefix, k) == 0;
}

int dc_parse(const char *line, size_t len, dc_line *out) {
  memset(out, 0, sizeof *out);
  if (len > 0 && line[len - 1] == '\r') len--;
  /* split into at most 64 fields */
  const char *f[64];
  size_t fl[64];
  size_t nf = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len && nf < 64; i++) {
    if (i == len || line[i] == '\t') {
      f[nf] = line + start;
      fl[nf] = i - start;
      nf++;
      start = i + 1;
    }
  }
  if (nf == 0) return 0;
  if (field_is(f[0], fl[0], "VERSION")) {
    out->kind = DC_VERSION;
    if (nf < 3 || parse_uint(f[1], fl[1], &out->major) || parse_uint(f[2], fl[2], &out->minor))
      return -1;
    return 0;
  }
  if (field_is(f[0], fl[0], "MECH")) {
    out->kind = DC_MECH;
    if (nf < 2 || fl[1] == 0) return -1;
    copy_field(out->mech, sizeof out->mech, f[1], fl[1]);
    return 0;
  }
  if (field_is(f[0], fl[0], "DONE")) {
    out->kind = DC_DONE;
    return 0;
  }
  if (field_is(f[0], fl[0], "OK"))
    out->kind = DC_OK;
  else if (field_is(f[0], fl[0], "FAIL"))
    out->kind = DC_FAIL;
  else if (field_is(f[0], fl[0], "CONT"))
    out->kind = DC_CONT;
  else
    return 0; /* DC_OTHER */
  if (nf < 2 || parse_uint(f[1], fl[1], &out->id)) return -1;
  for (size_t i = 2; i < nf; i++) {
    if (field_is(f[i], fl[i], "temp"))
      out->temp = 1;
    else if (field_is(f[i], fl[i], "code=temp_fail"))
      out->temp = 1;
    else if (field_has_prefix(f[i], fl[i], "user="))
      copy_field(out->user, sizeof out->user, f[i] + 5, fl[i] - 5);
    else if (field_has_prefix(f[i], fl[i], "reason="))
      copy_field(out->reason, sizeof out->reason, f[i] + 7, fl[i] - 7);
  }
  return 0;
}

/* A value that may go on the line as it is: no TAB, CR, LF or other control character. */
static int plain_value(const char *s) {
  if (!s || !*s) return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
  return 1;
}

char *dc_auth_line(const dc_auth *r, size_t *len) {
  if (!r || !r->user || !r->password) {
    errno = EINVAL;
    return NULL;
  }
  size_t za = r->authzid ? strlen(r->authzid) : 0, zu = strlen(r->user), zp = strlen(r->password);
  size_t raw_len = za + 1 + zu + 1 + zp;
  if (raw_len > DC_MAX_LINE) {
    errno = E2BIG;
    return NULL;
  }
  char head[512];
  int hn = snprintf(head, sizeof head, "AUTH\t%u\tPLAIN\tservice=%s\tnologin\tno-penalty", r->id,
                    plain_value(r->service) ? r->service : "smtp");
  if (plain_value(r->lip) && strlen(r->lip) < 64)
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\tlip=%s", r->lip);
  if (plain_value(r->rip) && strlen(r->rip) < 64)
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\trip=%s", r->rip);
  if (r->lport > 0) hn += snprintf(head + hn, sizeof head - (size_t)hn, "\tlport=%d", r->lport);
  if (r->rport > 0) hn += snprintf(head + hn, sizeof head - (size_t)hn, "\trport=%d", r->rport);
  if (r->secured) hn += snprintf(head + hn, sizeof head - (size_t)hn, "\tsecured");
  if (plain_value(r->session) && strlen(r->session) < 128)
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\tsession=%s", r->session);
  size_t b64_len = 4 * ((raw_len + 2) / 3);
  size_t total = (size_t)hn + 6 + b64_len + 1; /* "\tresp=" + base64 + LF */
  if (total > DC_MAX_LINE) {
    errno = E2BIG;
    return NULL;
  }
  unsigned char *raw = malloc(raw_len + 1);
  char *out = malloc(total + 1);
  if (!raw || !out) {
    free(raw);
    free(out);
    errno = ENOMEM;
    return NULL;
  }
  size_t o = 0;
  if (za) memcpy(raw, r->authzid, za);
  o = za;
  raw[o++] = 0;
  memcpy(raw + o, r->user, zu);
  o += zu;
  raw[o++] = 0;
  memcpy(raw + o, r->password, zp);
  memcpy(out, head, (size_t)hn);
  memcpy(out + hn, "\tresp=", 6);
  dc_base64(raw, raw_len, out + hn + 6);
  explicit_bzero(raw, raw_len + 1);
  free(raw);
  out[total - 1] = '\n';
  out[total] = '\0';
  *len = total;
  return out;
}
