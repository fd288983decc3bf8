/* plugins/milter/mt_proto.h: the Sendmail milter protocol, version 6 (the MTA side), pure parts:
 * the constants (as libmilter's mfdef.h names them), building command packets, splitting the
 * milter's byte stream into reply packets, and checking an SMFIR_REPLYCODE reply. No I/O, no
 * server API: unit-tested (tests/unit/test_milter_proto.cpp). */
/*
 * Every packet is a 4-byte length in network order (counting the command byte and the data),
 * one command byte, then the data. Strings are NUL-terminated; "long" values are 4 bytes and
 * "short" values 2 bytes, in network order. Postfix's src/milter/milter8.c is the reference
 * client this one follows.
 */
#ifndef UVS_MT_PROTO_H
#define UVS_MT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MTA -> milter commands. */
#define SMFIC_ABORT 'A'
#define SMFIC_BODY 'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO 'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO 'H'
#define SMFIC_HEADER 'L'
#define SMFIC_MAIL 'M'
#define SMFIC_EOH 'N'
#define SMFIC_OPTNEG 'O'
#define SMFIC_QUIT 'Q'
#define SMFIC_RCPT 'R'
#define SMFIC_DATA 'T'
#define SMFIC_UNKNOWN 'U'

/* milter -> MTA replies. */
#define SMFIR_ADDRCPT '+'
#define SMFIR_DELRCPT '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN '4'
#define SMFIR_ACCEPT 'a'
#define SMFIR_REPLBODY 'b'
#define SMFIR_CONTINUE 'c'
#define SMFIR_DISCARD 'd'
#define SMFIR_CHGFROM 'e'
#define SMFIR_CONN_FAIL 'f'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS 'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT 'r'
#define SMFIR_SKIP 's'
#define SMFIR_TEMPFAIL 't'
#define SMFIR_REPLYCODE 'y'

/* Actions the milter may take at the end of the message (SMFIF_*). */
#define SMFIF_ADDHDRS 0x001u
#define SMFIF_CHGBODY 0x002u
#define SMFIF_ADDRCPT 0x004u
#define SMFIF_DELRCPT 0x008u
#define SMFIF_CHGHDRS 0x010u
#define SMFIF_QUARANTINE 0x020u
#define SMFIF_CHGFROM 0x040u
#define SMFIF_ADDRCPT_PAR 0x080u
#define SMFIF_SETSYMLIST 0x100u
#define MT_ACTIONS 0x1ffu /* everything: what this client offers */

/* Protocol steps (SMFIP_*): events the milter does not want, replies it will not send. */
#define SMFIP_NOCONNECT 0x000001u
#define SMFIP_NOHELO 0x000002u
#define SMFIP_NOMAIL 0x000004u
#define SMFIP_NORCPT 0x000008u
#define SMFIP_NOBODY 0x000010u
#define SMFIP_NOHDRS 0x000020u
#define SMFIP_NOEOH 0x000040u
#define SMFIP_NR_HDR 0x000080u
#define SMFIP_NOUNKNOWN 0x000100u
#define SMFIP_NODATA 0x000200u
#define SMFIP_SKIP 0x000400u
#define SMFIP_RCPT_REJ 0x000800u
#define SMFIP_NR_CONN 0x001000u
#define SMFIP_NR_HELO 0x002000u
#define SMFIP_NR_MAIL 0x004000u
#define SMFIP_NR_RCPT 0x008000u
#define SMFIP_NR_DATA 0x010000u
#define SMFIP_NR_UNKN 0x020000u
#define SMFIP_NR_EOH 0x040000u
#define SMFIP_NR_BODY 0x080000u
#define SMFIP_HDR_LEADSPC 0x100000u
#define MT_PROTOCOL 0x1fffffu /* every step of version 6, as Postfix offers them */

/* Macro stages (SMFIM_*) for SMFIR_SETSYMLIST in the negotiation reply. */
#define SMFIM_CONNECT 0
#define SMFIM_HELO 1
#define SMFIM_ENVFROM 2
#define SMFIM_ENVRCPT 3
#define SMFIM_DATA 4
#define SMFIM_EOM 5
#define SMFIM_EOH 6
#define MT_NSTAGES 7

#define MT_VERSION 6
#define MT_CHUNK 65535u          /* largest body chunk sent (Postfix's MILTER_CHUNK_SIZE) */
#define MT_MAX_PACKET (1u << 20) /* a larger reply from the milter is a protocol error */

/* A growing byte buffer. */
typedef struct mt_buf {
  char *data;
  size_t len, cap;
} mt_buf;
void mt_buf_free(mt_buf *b);
/* Append n bytes; 0, or -1 when out of memory. */
int mt_buf_add(mt_buf *b, const void *p, size_t n);

/* Packet building: start a packet (reserves the length), add fields, finish (writes the length).
 * Each returns 0, or -1 when out of memory; finish also -1 for a packet over MT_MAX_PACKET. */
int mt_pkt_begin(mt_buf *b, char cmd, size_t *start);
int mt_pkt_u32(mt_buf *b, uint32_t v);
int mt_pkt_u16(mt_buf *b, uint16_t v);
int mt_pkt_str(mt_buf *b, const char *s); /* with its NUL */
int mt_pkt_bytes(mt_buf *b, const void *p, size_t n);
int mt_pkt_end(mt_buf *b, size_t start);

/* One reply packet split off the stream: cmd and its data (borrowed from the input). */
typedef struct mt_packet {
  char cmd;
  const char *data;
  size_t len;
} mt_packet;
/* Looks for a whole packet at the start of in[0..n). Returns the bytes it takes (> 0) and fills
 * *out; 0 when more bytes are needed; -1 for a length of 0 or over MT_MAX_PACKET. */
long mt_packet_split(const char *in, size_t n, mt_packet *out);

/* Reads a NUL-terminated string at *off in the packet data: returns it (borrowed) and moves *off
 * past its NUL, or NULL when there is no NUL before the end. */
const char *mt_get_str(const mt_packet *p, size_t *off);
/* Reads a 4-byte network-order value at *off; 0, or -1 when the data is too short. */
int mt_get_u32(const mt_packet *p, size_t *off, uint32_t *v);

/* The negotiation reply (SMFIC_OPTNEG) parsed. Macro lists (SMFIR_SETSYMLIST) are copied into
 * symlist[stage] (malloc'ed, space-separated names; NULL when the milter gave none). */
typedef struct mt_optneg {
  uint32_t version, actions, protocol;
  char *symlist[MT_NSTAGES];
} mt_optneg;
/* 0; -1 for a short or malformed packet (*err says what, for the log). Unknown stages are
 * skipped. Free with mt_optneg_free. */
int mt_optneg_parse(const mt_packet *p, mt_optneg *out, const char **err);
void mt_optneg_free(mt_optneg *o);
/* Does the space-separated macro list contain name ("{auth_authen}" or "i")? A list entry
 * written without braces matches a braced name too ("auth_authen"). */
int mt_symlist_has(const char *list, const char *name);

/* An SMFIR_REPLYCODE reply checked and split into lines: one or more lines "ddd[-| ]x.y.z text"
 * (or without the enhanced code) separated by CRLF, all with the same 4xx or 5xx code, the last
 * with a space (or nothing) after the code; Sendmail's "%%" is turned into "%". */
#define MT_MAX_REPLY_LINES 16
typedef struct mt_reply {
  int code;          /* 400..599 */
  char enhanced[16]; /* "" when the lines carry none */
  int nlines;
  char *lines[MT_MAX_REPLY_LINES]; /* malloc'ed text after the codes; controls replaced by ' ' */
} mt_reply;
/* 0, or -1 (malformed: *err says how). Free with mt_reply_free. */
int mt_reply_parse(const char *text, size_t len, mt_reply *out, const char **err);
void mt_reply_free(mt_reply *r);

/* The name of a reply command for logs ("SMFIR_REJECT"), or "unknown". */
const char *mt_reply_name(char cmd);

#ifdef __cplusplus
}
#endif

#endif
