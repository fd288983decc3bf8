/* plugins/milter/mt_proto.c: milter protocol packets: building commands, splitting replies,
 * the negotiation reply and SMFIR_REPLYCODE texts (see mt_proto.h). */
#define _DEFAULT_SOURCE
#include "mt_proto.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void mt_buf_free(mt_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int mt_buf_add(mt_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int mt_pkt_begin(mt_buf *b, char cmd, size_t *start) {
  static const char zero[4] = {0, 0, 0, 0};
  *start = b->len;
  if (mt_buf_add(b, zero, 4) < 0) return -1;
  return mt_buf_add(b, &cmd, 1);
}

int mt_pkt_u32(mt_buf *b, uint32_t v) {
  unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  return mt_buf_add(b, x, 4);
}

int mt_pkt_u16(mt_buf *b, uint16_t v) {
  unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
  return mt_buf_add(b, x, 2);
}

int mt_pkt_str(mt_buf *b, const char *s) {
  return mt_buf_add(b, s, strlen(s) + 1);
}

int mt_pkt_bytes(mt_buf *b, const void *p, size_t n) {
  return mt_buf_add(b, p, n);
}

int mt_pkt_end(mt_buf *b, size_t start) {
  size_t n = b->len - start - 4;
  if (n > MT_MAX_PACKET) return -1;
  unsigned char *x = (unsigned char *)b->data + start;
  x[0] = (unsigned char)(n >> 24);
  x[1] = (unsigned char)(n >> 16);
  x[2] = (unsigned char)(n >> 8);
  x[3] = (unsigned char)n;
  return 0;
}

long mt_packet_split(const char *in, size_t n, mt_packet *out) {
  if (n < 4) return 0;
  const unsigned char *u = (const unsigned char *)in;
  uint32_t len = ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
  if (len == 0 || len > MT_MAX_PACKET) return -1;
  if (n - 4 < len) return 0;
  out->cmd = in[4];
  out->data = in + 5;
  out->len = len - 1;
  return (long)len + 4;
}

const char *mt_get_str(const mt_packet *p, size_t *off) {
  if (*off >= p->len) return NULL;
  const char *s = p->data + *off;
  const char *nul = memchr(s, '\0', p->len - *off);
  if (!nul) return NULL;
  *off += (size_t)(nul - s) + 1;
  return s;
}

int mt_get_u32(const mt_packet *p, size_t *off, uint32_t *v) {
  if (p->len - *off < 4 || *off > p->len) return -1;
  const unsigned char *u = (const unsigned char *)p->data + *off;
  *v = ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
  *off += 4;
  return 0;
}

void mt_optneg_free(mt_optneg *o) {
  for (int i = 0; i < MT_NSTAGES; i++) {
    free(o->symlist[i]);
    o->symlist[i] = NULL;
  }
}

int mt_optneg_parse(const mt_packet *p, mt_optneg *out, const char **err) {
  memset(out, 0, sizeof *out);
  size_t off = 0;
  if (p->cmd != SMFIC_OPTNEG) {
    *err = "the negotiation reply is not SMFIC_OPTNEG";
    return -1;
  }
  if (mt_get_u32(p, &off, &out->version) < 0 || mt_get_u32(p, &off, &out->actions) < 0 ||
      mt_get_u32(p, &off, &out->protocol) < 0) {
    *err = "the negotiation reply is too short";
    return -1;
  }
  while (off < p->len) {
    uint32_t stage;
    const char *names;
    if (mt_get_u32(p, &off, &stage) < 0 || !(names = mt_get_str(p, &off))) {
      mt_optneg_free(out);
      *err = "a malformed macro list in the negotiation reply";
      return -1;
    }
    if (stage >= MT_NSTAGES) continue;
    free(out->symlist[stage]);
    out->symlist[stage] = strdup(names);
    if (!out->symlist[stage]) {
      mt_optneg_free(out);
      *err = "out of memory";
      return -1;
    }
  }
  return 0;
}

/* name without braces: "{x}" -> "x" (length in *n). */
static const char *bare(const char *s, size_t len, size_t *n) {
  if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
    *n = len - 2;
    return s + 1;
  }
  *n = len;
  return s;
}

int mt_symlist_has(const char *list, const char *name) {
  size_t nlen;
  const char *nb = bare(name, strlen(name), &nlen);
  const char *s = list;
  while (*s) {
    while (*s == ' ' || *s == ',' || *s == '\t') s++;
    const char *e = s;
    while (*e && *e != ' ' && *e != ',' && *e != '\t') e++;
    if (e > s) {
      size_t wl;
      const char *wb = bare(s, (size_t)(e - s), &wl);
      if (wl == nlen && memcmp(wb, nb, nlen) == 0) return 1;
    }
    s = e;
  }
  return 0;
}

void mt_reply_free(mt_reply *r) {
  for (int i = 0; i < r->nlines; i++) free(r->lines[i]);
  r->nlines = 0;
}

static int enhanced_at(const char *s, size_t n, size_t *used) {
  /* class "." 1-3 digits "." 1-3 digits, followed by SP or the end */
  size_t i = 0;
  if (n < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.') return 0;
  i = 2;
  for (int part = 0; part < 2; part++) {
    size_t d = 0;
    while (i < n && isdigit((unsigned char)s[i]) && d < 3) i++, d++;
    if (d == 0) return 0;
    if (part == 0) {
      if (i >= n || s[i] != '.') return 0;
      i++;
    }
  }
  if (i < n && s[i] != ' ') return 0;
  *used = i;
  return 1;
}

int mt_reply_parse(const char *text, size_t len, mt_reply *out, const char **err) {
  memset(out, 0, sizeof *out);
  while (len > 0 && (text[len - 1] == '\0' || text[len - 1] == '\r' || text[len - 1] == '\n'))
    len--;
  size_t pos = 0;
  while (pos < len) {
    const char *line = text + pos;
    const char *crlf = NULL;
    for (size_t i = pos; i + 1 < len; i++)
      if (text[i] == '\r' && text[i + 1] == '\n') {
        crlf = text + i;
        break;
      }
    size_t ll = crlf ? (size_t)(crlf - line) : len - pos;
    pos += ll + (crlf ? 2 : 0);
    int last = pos >= len;
    if (ll < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2])) {
      *err = "a reply line does not start with a three-digit code";
      goto bad;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 400 || code > 599) {
      *err = "the reply code is not 4xx or 5xx";
      goto bad;
    }
    if (out->nlines > 0 && code != out->code) {
      *err = "the reply lines have different codes";
      goto bad;
    }
    out->code = code;
    size_t i = 3;
    if (i < ll) {
      char sep = line[i];
      if (sep != ' ' && sep != '-') {
        *err = "a reply code is not followed by a space or '-'";
        goto bad;
      }
      if (sep == '-' && last) {
        *err = "the last reply line is a continuation";
        goto bad;
      }
      if (sep == ' ' && !last) {
        *err = "a reply line before the last is not a continuation";
        goto bad;
      }
      i++;
    } else if (!last) {
      *err = "a reply line before the last is not a continuation";
      goto bad;
    }
    size_t used;
    if (i < ll && enhanced_at(line + i, ll - i, &used)) {
      if (line[i] != line[0]) {
        *err = "the enhanced status code's class differs from the reply code's";
        goto bad;
      }
      if (used < sizeof out->enhanced && out->nlines == 0) {
        memcpy(out->enhanced, line + i, used);
        out->enhanced[used] = '\0';
      }
      i += used;
      if (i < ll) i++; /* the space after it */
    }
    if (out->nlines == MT_MAX_REPLY_LINES) {
      *err = "too many reply lines";
      goto bad;
    }
    size_t tl = ll - i;
    if (tl > 500) tl = 500;
    char *t = malloc(tl + 1);
    if (!t) {
      *err = "out of memory";
      goto bad;
    }
    size_t o = 0;
    for (size_t k = 0; k < tl; k++) {
      char c = line[i + k];
      if (c == '%' && k + 1 < tl && line[i + k + 1] == '%')
        k++;
      else if (c == '%')
        continue; /* a single '%' is dropped, as Postfix does */
      t[o++] = ((unsigned char)c < 0x20 || c == 0x7f) ? ' ' : c;
    }
    t[o] = '\0';
    out->lines[out->nlines++] = t;
  }
  if (out->nlines == 0) {
    *err = "an empty reply";
    goto bad;
  }
  return 0;
bad:
  mt_reply_free(out);
  return -1;
}

const char *mt_reply_name(char cmd) {
  switch (cmd) {
    case SMFIR_ADDRCPT:
      return "SMFIR_ADDRCPT";
    case SMFIR_DELRCPT:
      return "SMFIR_DELRCPT";
    case SMFIR_ADDRCPT_PAR:
      return "SMFIR_ADDRCPT_PAR";
    case SMFIR_SHUTDOWN:
      return "SMFIR_SHUTDOWN";
    case SMFIR_ACCEPT:
      return "SMFIR_ACCEPT";
    case SMFIR_REPLBODY:
      return "SMFIR_REPLBODY";
    case SMFIR_CONTINUE:
      return "SMFIR_CONTINUE";
    case SMFIR_DISCARD:
      return "SMFIR_DISCARD";
    case SMFIR_CHGFROM:
      return "SMFIR_CHGFROM";
    case SMFIR_CONN_FAIL:
      return "SMFIR_CONN_FAIL";
    case SMFIR_ADDHEADER:
      return "SMFIR_ADDHEADER";
    case SMFIR_INSHEADER:
      return "SMFIR_INSHEADER";
    case SMFIR_SETSYMLIST:
      return "SMFIR_SETSYMLIST";
    case SMFIR_CHGHEADER:
      return "SMFIR_CHGHEADER";
    case SMFIR_PROGRESS:
      return "SMFIR_PROGRESS";
    case SMFIR_QUARANTINE:
      return "SMFIR_QUARANTINE";
    case SMFIR_REJECT:
      return "SMFIR_REJECT";
    case SMFIR_SKIP:
      return "SMFIR_SKIP";
    case SMFIR_TEMPFAIL:
      return "SMFIR_TEMPFAIL";
    case SMFIR_REPLYCODE:
      return "SMFIR_REPLYCODE";
    default:
      return "an unknown reply";
  }
}
