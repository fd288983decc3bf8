/* plugins/auth/dovecot/dc_proto.h: Dovecot's authentication protocol (client side), pure parts:
 * reading the server's lines and writing the AUTH request. No I/O, no server API: unit-tested. */
/*
 * The protocol (https://doc.dovecot.org/developer_manual/design/auth_protocol/) is line based:
 * each line ends with LF, fields are separated by TAB, and optional fields are `name=value` or a
 * bare flag. The client sends `VERSION 1 2` and `CPID <pid>`; the server answers VERSION, MECH
 * (one per mechanism), SPID, CUID, COOKIE and DONE. Then the client sends
 * `AUTH <id> <mech> <fields...> resp=<base64>` and the server answers `OK <id> ...`,
 * `FAIL <id> ...` (a `temp` flag, or `code=temp_fail`, for a temporary failure) or
 * `CONT <id> <base64>`.
 */
#ifndef UVS_DC_PROTO_H
#define UVS_DC_PROTO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DC_MAX_LINE 16384 /* what Dovecot allows for one line (AUTH_CLIENT_MAX_LINE_LENGTH) */

typedef enum dc_kind {
  DC_OTHER = 0, /* SPID, CUID, COOKIE and anything unknown: ignored */
  DC_VERSION,
  DC_MECH,
  DC_DONE,
  DC_OK,
  DC_FAIL,
  DC_CONT,
} dc_kind;

/* One parsed server line. Strings are unescaped (Dovecot's \001 escapes), control characters
 * replaced by '?', cut to fit: they are for logs. */
typedef struct dc_line {
  dc_kind kind;
  unsigned major, minor; /* VERSION */
  char mech[64];         /* MECH: the mechanism's name */
  unsigned id;           /* OK, FAIL, CONT: the request id */
  int temp;              /* FAIL: a temporary failure (flag `temp` or `code=temp_fail`) */
  char user[256];        /* OK, FAIL: `user=` when given, else "" */
  char reason[256];      /* FAIL: `reason=` when given, else "" */
} dc_line;

/* Parses one line (without its LF; a final CR is ignored). Returns 0, or -1 when a known
 * command is malformed (a VERSION without numbers, an OK without a numeric id, ...). */
int dc_parse(const char *line, size_t len, dc_line *out);

/* What an AUTH request carries. NULL or "" optional strings are left out. */
typedef struct dc_auth {
  unsigned id;
  const char *authzid; /* PLAIN authorization identity, or NULL */
  const char *user;
  const char *password;
  const char *service; /* "smtp" */
  const char *lip, *rip;
  int lport, rport;    /* 0: left out */
  int secured;         /* the client's connection is TLS */
  const char *session; /* our session id, for Dovecot's logs */
} dc_auth;

/* The AUTH line for r, LF-terminated, with `nologin` (we only check passwords) and `no-penalty`
 * (uvsmtpd's [auth] limits delay and lock out; Dovecot's own penalty would delay answers past
 * our timeout, turning wrong passwords into 454s that the limits do not count), in a new buffer
 * (*len set): the caller wipes it (explicit_bzero) and frees it, since it holds the password. NULL
 * with errno = E2BIG when the line would exceed DC_MAX_LINE, EINVAL for a NULL user or password,
 * ENOMEM. */
char *dc_auth_line(const dc_auth *r, size_t *len);

/* Standard base64 (RFC 4648 section 4) of n bytes into out, which holds 4 * ((n + 2) / 3) + 1
 * bytes; NUL-terminated; returns the length. */
size_t dc_base64(const unsigned char *in, size_t n, char *out);

#ifdef __cplusplus
}
#endif

#endif
