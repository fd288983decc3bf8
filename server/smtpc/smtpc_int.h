/* server/smtpc/smtpc_int.h: the connection object and the functions smtpc_conn.c (connect,
 * session set-up, I/O, teardown) and smtpc_send.c (transactions) share. Not installed. */
#ifndef SMTPC_INT_H
#define SMTPC_INT_H

#include <stdint.h>
#include <uv.h>

#include "smtpc.h"
#include "smtpc_proto.h"
#include "smtpc_tls.h"

#define SMTPC_CHUNK 65536
#define SMTPC_QUIT_MS 5000u

typedef enum smtpc_state {
  ST_START,     /* smtpc_connect returned; the first attempt starts on the loop */
  ST_CONNECT,   /* TCP (or unix) connect running */
  ST_GREETING,  /* waiting for 220 */
  ST_HELLO,     /* EHLO / LHLO sent */
  ST_HELO,      /* HELO sent (EHLO refused) */
  ST_STARTTLS,  /* STARTTLS sent */
  ST_HANDSHAKE, /* TLS handshake running */
  ST_READY,     /* idle between transactions */
  ST_LOCAL,     /* a transaction the client refused itself: its callback is due */
  ST_RSET,      /* RSET sent before a transaction */
  ST_MAIL,      /* MAIL (and pipelined RCPTs) sent: collecting their replies */
  ST_DATA,      /* DATA sent */
  ST_BODY,      /* streaming the message */
  ST_DOT,       /* "." sent: waiting for the final reply (LMTP: one per accepted recipient) */
  ST_QUIT,      /* QUIT sent, waiting for 221 or close */
  ST_DEAD,      /* the connection is gone; the handle waits for smtpc_close */
  ST_CLOSING    /* handles closing; freed when the last callback has run */
} smtpc_state;

struct smtpc_conn {
  smtpc_opts o; /* timeouts filled in; helo and tls_servername point to the copies below */
  char *helo, *sni;
  char **names;
  uv_loop_t *loop;
  uv_timer_t timer;
  uv_stream_t *s; /* uv_tcp_t or uv_pipe_t of the current attempt */
  int handles, connects, writes, fs_active;
  smtpc_state st;
  int user_closed;
  int silent;       /* smtpc_close returned: no log lines either */
  const char *what; /* what the timer waits for */

  struct sockaddr_storage *addrs;
  int naddr, addr_i, cur;
  int retry_plain_idx; /* the address to retry in plaintext after a failed handshake */
  int plain;           /* this attempt does not try STARTTLS */
  smtpc_ready_fn ready_cb;
  void *ready_ud;
  int ready_done;
  smtpc_reply last_fail, hello_reply;
  int last_status;

  smtpc_parser ps;
  char rbuf[16384];
  int discard_rest; /* STARTTLS was accepted: the rest of this read is not the server's */
  unsigned ext;
  uint64_t size_limit;
  int used_helo; /* the session was opened with HELO */
  char peer[300];
  smtpc_tlsc *tls;
  int ntx;

  /* the transaction */
  smtpc_sent_fn sent_cb;
  void *sent_ud;
  char *from;
  char **rcpts;
  int n;
  int fd;
  const char *mem; /* smtpc_send_mem: the message in memory (the caller's, until the callback) */
  int64_t size;
  unsigned flags;
  smtpc_reply *rr;
  char *rdone; /* rr[i] is final for recipient i */
  int *acc;    /* indexes of the accepted recipients, in order */
  int naccepted;
  int pipe, next_rcpt, expected, seen, bad_code;
  int pipe_data; /* DATA went in the envelope's group (PIPELINING, RFC 2920): its reply is last */
  smtpc_reply mail_r, data_r, final;
  int dirty, dot_sent;
  int in_send;                   /* inside smtpc_send: the callback is deferred */
  int finish_due, finish_status; /* a deferred callback (the timer runs it) */
  smtpc_enc enc;
  int64_t off, sent;
  char *inbuf, *outbuf;
  uv_fs_t fsreq;
};

/* smtpc_conn.c */
void smtpc__log(smtpc_conn *c, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void smtpc__arm(smtpc_conn *c, uint64_t ms, const char *what);
void smtpc__on_timer(uv_timer_t *t);
/* Both return 0, or -1 after the failure was handled (the caller must stop). */
int smtpc__send_cmd(smtpc_conn *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int smtpc__send_data(smtpc_conn *c, const char *p, size_t n, int body);
/* A local failure in the current state (a failed attempt, a lost transaction, a dead idle
 * connection): status -errno, origin SMTPC_E_*. */
void smtpc__fail(smtpc_conn *c, int status, int origin, const char *enh, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
void smtpc__proto_error(smtpc_conn *c, const char *what);
const char *smtpc__phase(const smtpc_conn *c);
int smtpc__stage(const smtpc_conn *c);
void smtpc__set_reply(smtpc_conn *c, smtpc_reply *r, int stage); /* peer and stage filled */
void smtpc__dead(smtpc_conn *c);
void smtpc__quit(smtpc_conn *c);
void smtpc__close_final(smtpc_conn *c);
void smtpc__maybe_free(smtpc_conn *c);

/* smtpc_send.c */
void smtpc__tx_reply(smtpc_conn *c, const smtpc_reply *r);
void smtpc__tx_fail(smtpc_conn *c, int status, const smtpc_reply *why);
void smtpc__tx_finish(smtpc_conn *c, int status);
void smtpc__tx_free(smtpc_conn *c);
void smtpc__body_next(smtpc_conn *c); /* a body write completed */

#endif
