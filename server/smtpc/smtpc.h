/* server/smtpc/smtpc.h: the SMTP/LMTP client library shared by queue/smtp-forward and the
 * delivery engine: connect (a list of addresses in order), EHLO/LHLO (HELO fallback),
 * STARTTLS, transactions with per-recipient results, connection reuse, QUIT. C, callbacks on
 * a libuv loop, no blocking calls, no uvs_api inside.
 *
 * Differences from the contract in the shared delivery design, kept small:
 *  - smtpc_connect() has a last argument `smtpc_conn **out` (may be NULL): the handle at once,
 *    so that a connection can be abandoned with smtpc_close() before its ready callback (then
 *    the callback never runs). After a failure callback (conn NULL) that handle is gone.
 *  - smtpc_reply has three more members: `origin` (0 = the server sent this reply, else one of
 *    SMTPC_E_*: the client made it up for a local failure: connect, timeout, lost connection,
 *    protocol error, TLS, file read, or a refusal of its own such as SIZE), `stage` (the
 *    command it answers: SMTPC_S_*, smtpc_stage_name()) and `peer` ("host[ip]:port").
 *  - smtpc_opts has `host_names` (optional names of the addresses, for smtpc_peer()), `log`
 *    and `log_ud` (debug/warning lines; optional).
 *  - smtpc_send() flags also SMTPC_F_8BIT_REFUSE and SMTPC_F_ALL_OR_NOTHING (DATA only if
 *    every recipient was accepted: what smtp-forward needs). rcpt_replies[i] is always the
 *    outcome for recipient i: its refusal (RCPT, or MAIL's reply copied to every recipient),
 *    or for an accepted recipient the reply to the end of data (LMTP: its own), or the local
 *    failure when the connection was lost before that reply.
 *  - smtpc_send() returns a negative errno without calling cb when the connection cannot take
 *    a transaction (-ENOTCONN: lost while idle; -EBUSY: one is running).
 *  - smtpc_dot_sent() and smtpc_last_stats() (for smtp-forward's abort rule and log line).
 *  - The text of a reply the client made up names no host: the design's "connect to
 *    127.0.0.2:25: connection refused" is `peer` + ": " + `text` ("connection refused").
 *  - addrs may hold AF_UNIX addresses (sockaddr_un) for LMTP over a unix socket.
 */
#ifndef SMTPC_H
#define SMTPC_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smtpc_conn smtpc_conn;

typedef void (*smtpc_log_fn)(void *ud, int level /* syslog: 4 warning, 6 info, 7 debug */,
                             const char *msg);

typedef struct smtpc_opts {
  uv_loop_t *loop;
  const char *helo; /* our name for EHLO/LHLO/HELO */
  int lmtp;         /* LHLO, one final reply per recipient */
  int starttls;     /* 0 off, 1 opportunistic ("may"), 2 required ("encrypt") */
  void *ssl_ctx;    /* SSL_CTX* for STARTTLS (client), NULL = no TLS; it decides verification */
  /* SNI, and the name the certificate must match when the SSL_CTX verifies; may be NULL */
  const char *tls_servername;
  /* RFC 5321 4.5.3.2 timeouts in ms; 0 = the default given */
  uint64_t connect_ms;           /* each TCP connect: 30 s (not in the RFC; Postfix's value) */
  uint64_t greeting_ms;          /* 5 min */
  uint64_t helo_ms;              /* EHLO/LHLO/HELO, STARTTLS, the TLS handshake, RSET: 5 min */
  uint64_t mail_ms;              /* 5 min */
  uint64_t rcpt_ms;              /* 5 min */
  uint64_t data_ms;              /* the DATA command: 2 min */
  uint64_t block_ms;             /* each 64 KiB block of the message: 3 min */
  uint64_t dot_ms;               /* the reply to the final dot: 10 min */
  const char *const *host_names; /* optional: host_names[i] names addrs[i] (smtpc_peer) */
  smtpc_log_fn log;              /* optional */
  void *log_ud;
} smtpc_opts;

/* Where a reply came from (smtpc_reply.origin). */
enum {
  SMTPC_SERVER = 0, /* the server's own reply */
  SMTPC_E_CONNECT,  /* TCP connect failed or timed out (text: "connection refused") */
  SMTPC_E_TIMEOUT,  /* no reply in time / the message stalled */
  SMTPC_E_CLOSED,   /* the server closed the connection */
  SMTPC_E_IOERR,    /* a connection error (reset, broken pipe) */
  SMTPC_E_PROTOCOL, /* a malformed reply, a reply out of turn, an unexpected code */
  SMTPC_E_TLS,      /* STARTTLS required but not offered or refused, handshake failed */
  SMTPC_E_READ,     /* the message file could not be read (text: the error) */
  SMTPC_E_LOCAL,    /* out of memory, a command too long */
  SMTPC_E_POLICY    /* refused by the client: SIZE limit, no 8BITMIME/SMTPUTF8 */
};

/* The command a reply answers (smtpc_reply.stage). */
enum {
  SMTPC_S_CONNECT,
  SMTPC_S_GREETING,
  SMTPC_S_HELLO /* EHLO or LHLO */,
  SMTPC_S_HELO,
  SMTPC_S_STARTTLS,
  SMTPC_S_HANDSHAKE,
  SMTPC_S_IDLE,
  SMTPC_S_RSET,
  SMTPC_S_MAIL,
  SMTPC_S_RCPT,
  SMTPC_S_DATA,
  SMTPC_S_BODY /* while sending the message */,
  SMTPC_S_DOT /* end of data */,
  SMTPC_S_QUIT
};
/* "MAIL FROM", "RCPT TO", "DATA", "end of DATA", ... (Postfix's "in reply to %s command"). */
const char *smtpc_stage_name(int stage);

typedef struct smtpc_reply {
  int code;       /* 200..599 */
  char enh[16];   /* enhanced status code, "" if none */
  char text[401]; /* the first line's text after the enhanced code, printable ASCII; for a local
                     failure a phrase such as "timed out waiting for the reply to EHLO" */
  int origin;     /* SMTPC_SERVER or SMTPC_E_* */
  int stage;      /* SMTPC_S_* */
  char peer[300]; /* "host[ip]:port" or "ip:port" ("[v6]:port") of the server it concerns */
} smtpc_reply;

/* Extensions offered (smtpc_ext). */
enum {
  SMTPC_EXT_PIPELINING = 1,
  SMTPC_EXT_SIZE = 2,
  SMTPC_EXT_8BITMIME = 4,
  SMTPC_EXT_SMTPUTF8 = 8,
  SMTPC_EXT_STARTTLS = 16,
  SMTPC_EXT_DSN = 32
};
/* smtpc_send flags. */
enum {
  SMTPC_F_8BIT = 1,     /* the message has 8-bit bytes: BODY=8BITMIME when offered */
  SMTPC_F_SMTPUTF8 = 2, /* the envelope needs SMTPUTF8: refused (553 5.6.7) if not offered */
  SMTPC_F_8BIT_REFUSE =
      4, /* with SMTPC_F_8BIT and no 8BITMIME: refuse (554 5.6.3), else send as is */
  SMTPC_F_ALL_OR_NOTHING = 8 /* DATA only when every recipient was accepted */
};

/* Connects to addrs in order (already resolved by the caller; the port is in each address).
 * Any failure before the session is ready moves to the next address: connect failure or
 * timeout, a greeting that is not 220, EHLO and HELO refused, STARTTLS required and not
 * available, a lost connection or a timeout. In opportunistic mode a failed TLS handshake
 * reconnects to the same address in plaintext (Postfix "may"). Then cb(conn, 0, EHLO reply,
 * ud) once ready, or cb(NULL, status, why, ud) when every address failed: status is the
 * server's code (4xx/5xx) when its reply ended the last attempt, else -errno; why describes
 * the last attempt's failure. Returns 0, or -EINVAL/-ENOMEM (cb never runs). */
typedef void (*smtpc_ready_fn)(smtpc_conn *c, int status, const smtpc_reply *why, void *ud);
int smtpc_connect(const smtpc_opts *o, const struct sockaddr_storage *addrs, int naddr,
                  smtpc_ready_fn cb, void *ud, smtpc_conn **out);

unsigned smtpc_ext(const smtpc_conn *c);
uint64_t smtpc_size_limit(const smtpc_conn *c); /* 0 = none given */
const char *smtpc_peer(const smtpc_conn *c);    /* "host[ip]:port" / "ip:port" */
const char *smtpc_tls(const smtpc_conn *c);     /* "TLSv1.3 TLS_AES_256_GCM_SHA384", NULL plain */

/* One transaction on a ready connection (see the notes at the top for rcpt_replies). MAIL
 * FROM:<from> (+ SIZE= when offered and size >= 0, BODY=8BITMIME, SMTPUTF8 per flags), the
 * RCPTs and DATA (one group when PIPELINING is offered; DATA after the replies with
 * SMTPC_F_ALL_OR_NOTHING), the message read from fd with uv_fs_read from offset 0
 * to its end (dot-stuffed, lone CR/LF sent as spaces), ".". A size over the server's SIZE
 * limit: no MAIL, every recipient gets 552 5.3.4 (origin SMTPC_E_POLICY). cb runs once (never
 * from inside this call); afterwards the connection takes another smtpc_send (RSET is sent
 * first when the last transaction did not end cleanly) or smtpc_close. status: 0, or -errno
 * when the connection was lost (-ETIMEDOUT, -ECONNRESET, -EPROTO, -EIO): then final is the
 * local failure and the connection is dead (smtpc_send returns -ENOTCONN). A 421 reply ends the
 * session too: every recipient without a final reply gets it, status 0, the connection dead. */
typedef void (*smtpc_sent_fn)(smtpc_conn *c, int status, const smtpc_reply *final,
                              const smtpc_reply *rcpt_replies, int n, void *ud);
int smtpc_send(smtpc_conn *c, const char *from, const char *const *rcpts, int n, int fd,
               int64_t size, unsigned flags, smtpc_sent_fn cb, void *ud);

/* smtpc_send with the message in memory (size bytes at body, kept by the caller until cb has
 * run): no file reads, and the last chunk goes out with the ".". */
int smtpc_send_mem(smtpc_conn *c, const char *from, const char *const *rcpts, int n,
                   const char *body, size_t size, unsigned flags, smtpc_sent_fn cb, void *ud);

/* 1 once the current transaction's final "." was written (it may be delivered). */
int smtpc_dot_sent(const smtpc_conn *c);
/* The last transaction's bytes sent after DATA, lines dot-stuffed and stray CR/LF replaced. */
void smtpc_last_stats(const smtpc_conn *c, int64_t *bytes, unsigned long *stuffed,
                      unsigned long *stray);

/* Ends the connection: QUIT when between commands (waits briefly for 221), else closes at once
 * (mid-message: without the dot, so the server discards the transaction). Also abandons a
 * connect in progress. No callback runs afterwards; memory is freed later. */
void smtpc_close(smtpc_conn *c);

#ifdef __cplusplus
}
#endif

#endif
