/* plugins/milter/mt.h: the milter plugin's state, shared by the plugin and its hooks (milter.c),
 * the per-session conversation (mt_sess.c), the message stage (mt_msg.c) and the connection to
 * the milter on the server's loop (mt_conn.c). Loop thread only. */
#ifndef UVS_MT_H
#define UVS_MT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <uv.h>

#include "mt_proto.h"
#include "uvsmtpd/plugin.h"

extern const uvs_api *mt_api;

/* One conf/plugins line: one milter. */
typedef struct mt_conf {
  uvs_plugin *self;
  uv_loop_t *loop;
  char *spec;     /* "inet:127.0.0.1:11332" or "unix:/path", for logs */
  char *note_key; /* the connection note that holds a session's state */
  int is_unix;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  struct sockaddr_storage addr;
  uint64_t connect_ms, command_ms, content_ms;
  int default_accept; /* default_action = accept (else tempfail) */
} mt_conf;

typedef struct mt_sess mt_sess;

/* The connection to the milter: detached (s NULL) when the session lets go of it; freed when its
 * handles have closed. */
typedef struct mt_conn {
  mt_sess *s;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
  } h;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  int open_handles;
  int connected;
  mt_buf rbuf;
} mt_conn;

/* Milter states, as Postfix's milter8.c keeps them. */
typedef enum mt_state {
  MT_CLOSED = 0, /* not connected yet, or closed */
  MT_ENVELOPE,   /* negotiated; events go out */
  MT_ACCEPT_MSG, /* the milter accepted this message: no more events until the next MAIL */
  MT_ACCEPT_CON, /* the milter accepted the connection: no more events */
  MT_REJECT_CON, /* the milter refused the connection: its reply answers every command */
  MT_FAILED,     /* the milter failed: default_action answers */
} mt_state;

/* What a milter said about one event. */
typedef enum mt_result {
  MT_R_CONTINUE = 0,
  MT_R_ACCEPT,
  MT_R_REJECT,
  MT_R_TEMPFAIL,
  MT_R_REPLY, /* SMFIR_REPLYCODE: s->reply */
  MT_R_DISCARD,
  MT_R_SKIP,
  MT_R_SHUTDOWN,
  MT_R_FAIL, /* no answer, an error, nonsense: default_action */
} mt_result;

/* One header field of the message as the milter sees it (name and value, Sendmail's form). */
typedef struct mt_hdr {
  char *name;
  char *value;
} mt_hdr;

typedef enum mt_phase { PH_HEADERS = 0, PH_EOH, PH_BODY, PH_EOB, PH_DONE } mt_phase;

/* The call being worked on (one at a time per session). */
typedef struct mt_op {
  uvs_pending *p;
  uvs_hook hook;
  char event;    /* the event whose reply is awaited; 0 when none is */
  int message;   /* the data_post conversation */
  int cancelled; /* the core let go of the call */
  int work;      /* run_blocking work in flight */
  /* message stage */
  int fd;
  int64_t size, off;
  mt_phase phase;
  mt_hdr *hdrs;
  int nhdrs, hdr_i;
  char **names; /* the client's header field names as now edited, for SMFIR_INSHEADER */
  int nnames;
  char *chunk;
  long chunk_len;
  int chunk_err;
  int body_fd;  /* SMFIR_REPLBODY collected here (memfd); -1 when none */
  int body_cr;  /* the replacement's last byte was a CR */
  int edit_err; /* an edit failed for lack of memory: tempfail */
} mt_op;

struct mt_sess {
  mt_conf *cf;
  int refs;
  mt_conn *conn;
  mt_state state;
  char sid[64];
  uint32_t version, actions, protocol;
  char *symlist[MT_NSTAGES];
  char skip_event;
  int in_txn;  /* MAIL went out: SMFIC_ABORT at the end of the transaction */
  int discard; /* SMFIR_DISCARD: accept and drop the message */
  char *quarantine;
  /* the connection-level reply of a refusing milter (MT_REJECT_CON) */
  uvs_verdict rej_v;
  mt_reply rej;
  /* the last SMFIR_REPLYCODE */
  mt_reply reply;
  mt_op op;
};

/* mt_conn.c */
/* Connect (the session's op is waiting); mt_sess_connected or mt_sess_error follows. */
int mt_conn_open(mt_sess *s);
/* Write bytes (copied). 0, or a libuv error. */
int mt_conn_write(mt_conn *c, const char *data, size_t len);
/* Start (or restart) the reply timer; mt_sess_timeout when it fires. */
void mt_conn_timer(mt_conn *c, uint64_t ms);
void mt_conn_timer_stop(mt_conn *c);
/* Detach and close now (writes in flight are dropped). */
void mt_conn_close(mt_conn *c);
/* Detach, send what is written, then close (the milter sees an orderly end). */
void mt_conn_finish(mt_conn *c);

/* mt_sess.c: called by the connection */
void mt_sess_connected(mt_sess *s);
void mt_sess_packet(mt_sess *s, const mt_packet *pk);
void mt_sess_error(mt_sess *s, const char *why);
void mt_sess_timeout(mt_sess *s);

/* mt_sess.c: the conversation */
mt_sess *mt_sess_new(mt_conf *cf, const char *sid);
void mt_sess_unref(mt_sess *s);
/* Drop the milter: one log line, the connection closed, default_action from now on. */
void mt_sess_fail(mt_sess *s, const char *why);
/* Send the macros of a stage and an event (cmd and data; cmd 0: macros only) and, unless the
 * milter said it will not reply, wait for the reply: mt_sess_result follows. Returns 1 when a
 * reply is awaited, 0 when none is (the event was skipped or needs no reply), -1 when the
 * milter failed meanwhile (mt_sess_fail was called). */
int mt_sess_event(mt_sess *s, uvs_call *c, int stage, char cmd, const mt_buf *data,
                  uint32_t no_send, uint32_t no_reply, uint64_t timeout_ms);
/* The reply to the awaited event arrived (or the milter failed: MT_R_FAIL). */
void mt_sess_result(mt_sess *s, mt_result r);
/* End the op: complete the pending call with the verdict for result r at this hook. */
void mt_sess_finish(mt_sess *s, mt_result r);
/* End the op with this verdict (and, for _reply, this reply): complete() the pending call, drop the
 * op's reference. */
void mt_sess_complete(mt_sess *s, uvs_verdict v);
void mt_sess_complete_reply(mt_sess *s, uvs_verdict v, int code, const char *enh, const char *text);
/* Hooks after the milter refused the connection or failed: 1 and *v (reply set on c) when the
 * state decides the hook, 0 when the milter is to be asked (or skipped: *v DECLINED, 1). */
int mt_sess_state_verdict(mt_sess *s, uvs_call *c, uvs_hook hook, uvs_verdict *v);
/* The verdict and reply for a result at a hook (also sets call's reply when c is not NULL). */
uvs_verdict mt_verdict(mt_sess *s, uvs_call *c, mt_result r);

/* mt_msg.c: the data_post conversation */
/* Start it: read the message, send headers, body, end of message (op.p is set). */
void mt_msg_start(mt_sess *s, uvs_call *c);
/* A reply for a message event. */
void mt_msg_result(mt_sess *s, mt_result r);
/* An end-of-message edit request (SMFIR_ADDHEADER, ...). 0, or -1 for a malformed one. */
int mt_msg_edit(mt_sess *s, const mt_packet *pk);
/* Free the op's message state. */
void mt_msg_clear(mt_op *op);

#endif
