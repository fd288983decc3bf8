/* plugins/auth/dovecot/dc.h: the auth/dovecot plugin's state, shared by the plugin (dovecot.c)
 * and its connection to Dovecot's auth socket (dc_conn.c). Loop thread only. */
#ifndef UVS_DC_H
#define UVS_DC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "uvsmtpd/plugin.h"

extern const uvs_api *dc_api;

typedef struct dc_state dc_state;
typedef struct dc_conn dc_conn;

/* One AUTH waiting for Dovecot: a suspended auth hook call. */
typedef struct dc_req {
  dc_state *st;
  uvs_pending *p;
  unsigned id;
  char *line; /* the AUTH line (holds the password in base64): wiped once written */
  size_t len;
  int sent;
  uint64_t created_at; /* uv_now() when the hook ran */
  uint64_t sent_at;    /* uv_now() when written */
  char user[128];      /* for logs */
  char sid[64];        /* session id, for logs without a call */
  struct dc_req *prev, *next;
} dc_req;

/* One connection to the socket; detached (st NULL) as soon as it fails, freed when its handles
 * have closed. */
struct dc_conn {
  dc_state *st;
  uv_pipe_t pipe;
  uv_timer_t timer; /* handshake timeout */
  uv_connect_t creq;
  int open_handles;
  int reading;
  int ready; /* handshake done: requests may be written */
  int has_plain;
  int version_ok;
  char *rbuf;
  size_t rlen, rcap;
  uint64_t opened_at; /* uv_now() when the connection was started */
  uint64_t last_read; /* uv_now() of the last bytes from Dovecot */
};

struct dc_state {
  uvs_plugin *self;
  uv_loop_t *loop;
  char *path;
  uint64_t timeout_ms;
  dc_conn *conn; /* NULL: not connected (the next request connects) */
  dc_req *reqs;  /* every request not yet answered, oldest first */
  dc_req *reqs_tail;
  unsigned next_id;
};

/* Answer a request (unlinks, completes, wipes, frees). */
void dc_finish(dc_req *r, uvs_verdict v, int code, const char *enh, const char *text);
/* Make sure a connection exists (connecting if needed) and write every request not yet sent
 * when it is ready. */
void dc_kick(dc_state *st);
/* Close the connection quietly (requests stay open). */
void dc_conn_close(dc_conn *c);
/* Drop the connection: every open request gets 454, and one warning names the reason. */
void dc_conn_fail(dc_conn *c, const char *reason);

#endif
