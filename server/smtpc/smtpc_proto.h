/* server/smtpc/smtpc_proto.h: the client's reply parser, DATA encoder and text helpers (no I/O). */
#ifndef SMTPC_PROTO_H
#define SMTPC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "smtpc.h"

#define SMTPC_LINE_MAX 1024   /* longest reply line kept; the rest of a longer line is dropped  */
#define SMTPC_MAX_LINES 1000  /* a reply with more lines is a protocol error                    */

typedef struct smtpc_parser {
  char line[SMTPC_LINE_MAX];
  size_t len;
  int nlines;
  smtpc_reply cur;
  unsigned ext;    /* SMTPC_EXT_* found on the lines after the first (EHLO/LHLO replies) */
  uint64_t size;   /* the SIZE keyword's limit, 0 if none */
  char err[128];
} smtpc_parser;

void smtpc_parser_reset(smtpc_parser *ps);
/* Consumes bytes until one reply is complete: returns 1 (the reply is in ps->cur, *used bytes
 * consumed; call smtpc_parser_reset before feeding more), 0 (all n bytes consumed, more needed)
 * or -1 (protocol error, described in ps->err). Lines end in LF, an optional CR before it
 * is dropped. */
int smtpc_parse(smtpc_parser *ps, const char *buf, size_t n, size_t *used);

/* DATA encoder: dot-stuffing, and every CR or LF that is not part of a CRLF pair becomes a
 * space, so only CRLF ever leaves. */
typedef struct smtpc_enc {
  int bol;             /* at the start of a line */
  int cr;              /* a CR is pending (its meaning depends on the next byte) */
  unsigned long stray; /* stray CR/LF replaced so far */
  unsigned long stuffed;
} smtpc_enc;

void smtpc_enc_init(smtpc_enc *e);
/* Encodes n bytes into out, which must hold 2 * n + 2 bytes; returns the bytes written. */
size_t smtpc_enc_chunk(smtpc_enc *e, const char *in, size_t n, char *out);
/* Ends the message: a pending stray CR, CRLF when the last line is open, then ".\r\n".
 * out must hold 8 bytes; returns the bytes written. */
size_t smtpc_enc_finish(smtpc_enc *e, char *out);

/* Copies src into dst (cap bytes incl. NUL) with controls and non-ASCII bytes replaced by
 * '?' and the length capped, so it is a valid one-line SMTP reply text. */
void smtpc_sanitize(char *dst, size_t cap, const char *src, size_t len);
/* Case-insensitive substring test. */
int smtpc_contains(const char *hay, const char *needle);
/* 1 if s has a byte >= 0x80. */
int smtpc_has_8bit(const char *s, size_t n);

#endif
