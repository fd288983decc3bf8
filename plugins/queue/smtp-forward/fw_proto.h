/* plugins/queue/smtp-forward/fw_proto.h: reply parser, DATA encoder and text helpers (no I/O). */
#ifndef FW_PROTO_H
#define FW_PROTO_H

#include <stddef.h>

#define FW_LINE_MAX 1024   /* longest reply line kept; the rest of a longer line is dropped  */
#define FW_TEXT_MAX 400    /* reply text kept for the upstream reply (the core allows 500)   */
#define FW_MAX_LINES 1000  /* a reply with more lines is a protocol error                    */

/* One downstream reply, as far as the upstream needs it. */
typedef struct fw_reply {
  int code;                   /* 200..599 */
  char enh[16];               /* enhanced status code of the first line, "" if none */
  char text[FW_TEXT_MAX + 1]; /* first line's text after the enhanced code, printable ASCII */
} fw_reply;

/* EHLO/LHLO keywords this client uses. */
enum { FW_EXT_PIPELINING = 1, FW_EXT_SIZE = 2, FW_EXT_8BITMIME = 4, FW_EXT_SMTPUTF8 = 8 };

typedef struct fw_parser {
  char line[FW_LINE_MAX];
  size_t len;
  int nlines;
  fw_reply cur;
  int ext; /* keywords found on the lines after the first (meaningful for EHLO/LHLO replies) */
  char err[128];
} fw_parser;

void fw_parser_reset(fw_parser *ps);
/* Consumes bytes until one reply is complete: returns 1 (the reply is in ps->cur, *used bytes
 * consumed; call fw_parser_reset before feeding more), 0 (all n bytes consumed, more needed)
 * or -1 (protocol error, described in ps->err). Lines end in LF, an optional CR before it
 * is dropped. */
int fw_parse(fw_parser *ps, const char *buf, size_t n, size_t *used);

/* DATA encoder: dot-stuffing, and every CR or LF that is not part of a CRLF pair becomes a
 * space, so only CRLF ever leaves. */
typedef struct fw_enc {
  int bol;             /* at the start of a line */
  int cr;              /* a CR is pending (its meaning depends on the next byte) */
  unsigned long stray; /* stray CR/LF replaced so far */
  unsigned long stuffed;
} fw_enc;

void fw_enc_init(fw_enc *e);
/* Encodes n bytes into out, which must hold 2 * n + 2 bytes; returns the bytes written. */
size_t fw_enc_chunk(fw_enc *e, const char *in, size_t n, char *out);
/* Ends the message: a pending stray CR, CRLF when the last line is open, then ".\r\n".
 * out must hold 8 bytes; returns the bytes written. */
size_t fw_enc_finish(fw_enc *e, char *out);

/* Copies src into dst (cap bytes incl. NUL) with controls and non-ASCII bytes replaced by
 * '?' and the length capped, so it is a valid one-line SMTP reply text. */
void fw_sanitize(char *dst, size_t cap, const char *src, size_t len);
/* Case-insensitive substring test. */
int fw_contains(const char *hay, const char *needle);
/* 1 if s has a byte >= 0x80. */
int fw_has_8bit(const char *s, size_t n);

#endif
