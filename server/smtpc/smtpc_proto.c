/* server/smtpc/smtpc_proto.c: reply parsing (EHLO keywords), DATA encoding (stuffing, stray CR/LF). */
#define _POSIX_C_SOURCE 200809L
#include "smtpc_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtpc_parser_reset(smtpc_parser *ps) {
  ps->len = 0;
  ps->nlines = 0;
  ps->ext = 0;
  ps->size = 0;
  ps->err[0] = 0;
  memset(&ps->cur, 0, sizeof ps->cur);
}

void smtpc_sanitize(char *dst, size_t cap, const char *src, size_t len) {
  size_t o = 0;
  if (cap == 0) return;
  for (size_t i = 0; i < len && o + 1 < cap; ++i) {
    unsigned char c = (unsigned char)src[i];
    dst[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
  }
  while (o > 0 && dst[o - 1] == ' ') --o;
  dst[o] = 0;
}

int smtpc_contains(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0) return 1;
  for (; *hay; ++hay)
    if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

int smtpc_has_8bit(const char *s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if ((unsigned char)s[i] & 0x80) return 1;
  return 0;
}

/* "C.d{1,3}.d{1,3}" at s (class digit C), followed by a space or the end: its length, else 0. */
static size_t enhanced_len(const char *s, size_t n, char cls) {
  size_t i = 0;
  if (n < 5 || s[0] != cls || s[1] != '.') return 0;
  i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t d = 0;
    while (i < n && isdigit((unsigned char)s[i]) && d < 4) ++i, ++d;
    if (d == 0 || d > 3) return 0;
    if (part == 0) {
      if (i >= n || s[i] != '.') return 0;
      ++i;
    }
  }
  if (i < n && s[i] != ' ') return 0;
  return i;
}

static int keyword_is(const char *s, size_t n, const char *kw) {
  size_t k = strlen(kw);
  return n >= k && strncasecmp(s, kw, k) == 0 && (n == k || s[k] == ' ');
}

/* One complete line (without CR LF): 1 = the reply is complete, 0 = more lines, -1 = error. */
static int take_line(smtpc_parser *ps) {
  const char *l = ps->line;
  size_t n = ps->len;
  if (n < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
      !isdigit((unsigned char)l[2]) || l[0] < '2' || l[0] > '5' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
    char shown[48];
    smtpc_sanitize(shown, sizeof shown, l, n);
    snprintf(ps->err, sizeof ps->err, "malformed reply line '%s'", shown);
    return -1;
  }
  int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
  int last = n == 3 || l[3] == ' ';
  const char *text = n > 4 ? l + 4 : "";
  size_t tlen = n > 4 ? n - 4 : 0;
  if (ps->nlines == 0) {
    ps->cur.code = code;
    size_t e = enhanced_len(text, tlen, l[0]);
    if (e) {
      memcpy(ps->cur.enh, text, e);
      ps->cur.enh[e] = 0;
      text += e;
      tlen -= e;
      while (tlen && *text == ' ') ++text, --tlen;
    }
    smtpc_sanitize(ps->cur.text, sizeof ps->cur.text, text, tlen);
  } else {
    if (code != ps->cur.code) {
      snprintf(ps->err, sizeof ps->err, "reply code changed from %d to %d within one reply",
               ps->cur.code, code);
      return -1;
    }
    if (keyword_is(text, tlen, "PIPELINING")) ps->ext |= SMTPC_EXT_PIPELINING;
    else if (keyword_is(text, tlen, "SIZE")) {
      ps->ext |= SMTPC_EXT_SIZE;
      if (tlen > 5 && isdigit((unsigned char)text[5])) {
        char num[24];
        size_t k = 0;
        for (size_t i = 5; i < tlen && k + 1 < sizeof num && isdigit((unsigned char)text[i]); ++i)
          num[k++] = text[i];
        num[k] = 0;
        ps->size = strtoull(num, NULL, 10);
      }
    }
    else if (keyword_is(text, tlen, "8BITMIME")) ps->ext |= SMTPC_EXT_8BITMIME;
    else if (keyword_is(text, tlen, "SMTPUTF8")) ps->ext |= SMTPC_EXT_SMTPUTF8;
    else if (keyword_is(text, tlen, "STARTTLS")) ps->ext |= SMTPC_EXT_STARTTLS;
    else if (keyword_is(text, tlen, "DSN")) ps->ext |= SMTPC_EXT_DSN;
  }
  if (++ps->nlines > SMTPC_MAX_LINES) {
    snprintf(ps->err, sizeof ps->err, "reply longer than %d lines", SMTPC_MAX_LINES);
    return -1;
  }
  return last;
}

int smtpc_parse(smtpc_parser *ps, const char *buf, size_t n, size_t *used) {
  size_t i = 0;
  while (i < n) {
    char c = buf[i++];
    if (c != '\n') {
      if (ps->len < sizeof ps->line) ps->line[ps->len++] = c;  /* longer lines are cut */
      continue;
    }
    if (ps->len > 0 && ps->line[ps->len - 1] == '\r') --ps->len;
    int r = take_line(ps);
    ps->len = 0;
    if (r != 0) {
      *used = i;
      return r;
    }
  }
  *used = i;
  return 0;
}

void smtpc_enc_init(smtpc_enc *e) { memset(e, 0, sizeof *e), e->bol = 1; }

size_t smtpc_enc_chunk(smtpc_enc *e, const char *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = in[i];
    if (e->cr) {
      e->cr = 0;
      if (c == '\n') {
        out[o++] = '\r';
        out[o++] = '\n';
        e->bol = 1;
        continue;
      }
      out[o++] = ' '; /* a CR not followed by LF */
      e->stray++;
      e->bol = 0;
    }
    if (c == '\r') {
      e->cr = 1;
    } else if (c == '\n') { /* an LF without its CR */
      out[o++] = ' ';
      e->stray++;
      e->bol = 0;
    } else {
      if (e->bol && c == '.') {
        out[o++] = '.';
        e->stuffed++;
      }
      out[o++] = c;
      e->bol = 0;
    }
  }
  return o;
}

size_t smtpc_enc_finish(smtpc_enc *e, char *out) {
  size_t o = 0;
  if (e->cr) {
    e->cr = 0;
    out[o++] = ' ';
    e->stray++;
    e->bol = 0;
  }
  if (!e->bol) {
    out[o++] = '\r';
    out[o++] = '\n';
  }
  memcpy(out + o, ".\r\n", 3);
  return o + 3;
}
