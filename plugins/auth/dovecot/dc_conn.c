/* plugins/auth/dovecot/dc_conn.c: the connection to Dovecot's auth socket on the server's loop:
 * connect, handshake, writing AUTH lines, reading OK/FAIL/CONT, failing everything on errors. */
/*
 * One connection per plugin instance, opened by the first request and kept. Requests wait in the
 * state's list until the handshake (VERSION ... DONE) is done, then each is written at once.
 * Everything that goes wrong (socket missing or refused, EOF, a read or write error, a protocol
 * error, no handshake within the timeout) ends in dc_conn_fail(): the connection is detached from
 * the state, closed, and every open request gets 454; the next request connects again, which is
 * how a restarted Dovecot is picked up.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dc.h"
#include "dc_proto.h"

typedef struct dc_write {
  uv_write_t req;
  size_t len;
  char data[];
} dc_write;

static void on_handle_close(uv_handle_t *h) {
  dc_conn *c = h->data;
  if (--c->open_handles > 0) return;
  if (c->rbuf) {
    explicit_bzero(c->rbuf, c->rcap);
    free(c->rbuf);
  }
  free(c);
}

void dc_conn_close(dc_conn *c) {
  if (c->st && c->st->conn == c) c->st->conn = NULL;
  c->st = NULL;
  if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_handle_close);
  if (!uv_is_closing((uv_handle_t *)&c->pipe)) uv_close((uv_handle_t *)&c->pipe, on_handle_close);
}

void dc_conn_fail(dc_conn *c, const char *reason) {
  dc_state *st = c->st;
  dc_conn_close(c);
  if (!st) return;
  int n = 0;
  for (dc_req *r = st->reqs; r; r = r->next) n++;
  if (n == 0)
    dc_api->log(st->self, NULL, UVS_LOG_WARNING, "%s: %s", st->path, reason);
  else
    dc_api->log(st->self, NULL, UVS_LOG_WARNING, "%s: %s (%d authentication%s answered 454)",
                st->path, reason, n, n == 1 ? "" : "s");
  while (st->reqs) {
    dc_api->log(st->self, NULL, UVS_LOG_DEBUG, "[%s] user=<%s>: temporary failure (%s)",
                st->reqs->sid, st->reqs->user, reason);
    dc_finish(st->reqs, UVS_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
  }
}

static void on_write(uv_write_t *w, int status) {
  dc_write *dw = (dc_write *)w;
  dc_conn *c = w->data;
  explicit_bzero(dw->data, dw->len);
  free(dw);
  if (status < 0 && status != UV_ECANCELED && c->st) {
    char why[160];
    snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
    dc_conn_fail(c, why);
  }
}

/* Writes bytes (copied; the copy is wiped after). 0, or a libuv error. */
static int conn_write(dc_conn *c, const char *data, size_t len) {
  dc_write *dw = malloc(sizeof *dw + len);
  if (!dw) return UV_ENOMEM;
  dw->len = len;
  memcpy(dw->data, data, len);
  dw->req.data = c;
  uv_buf_t b = uv_buf_init(dw->data, (unsigned)len);
  int rc = uv_write(&dw->req, (uv_stream_t *)&c->pipe, &b, 1, on_write);
  if (rc < 0) {
    explicit_bzero(dw->data, len);
    free(dw);
  }
  return rc;
}

static void send_waiting(dc_conn *c) {
  dc_state *st = c->st;
  for (dc_req *r = st->reqs; r && c->st; r = r->next) {
    if (r->sent) continue;
    int rc = conn_write(c, r->line, r->len);
    explicit_bzero(r->line, r->len);
    free(r->line);
    r->line = NULL;
    r->sent = 1;
    r->sent_at = uv_now(st->loop);
    if (rc < 0) {
      char why[160];
      snprintf(why, sizeof why, "write failed: %s", uv_strerror(rc));
      dc_conn_fail(c, why);
      return;
    }
  }
}

static dc_req *find_sent(dc_state *st, unsigned id) {
  for (dc_req *r = st->reqs; r; r = r->next)
    if (r->sent && r->id == id) return r;
  return NULL;
}

static void on_answer(dc_conn *c, const dc_line *l) {
  dc_state *st = c->st;
  dc_req *r = find_sent(st, l->id);
  if (!r) {
    /* an answer to a request that timed out or was cancelled */
    dc_api->log(st->self, NULL, UVS_LOG_DEBUG,
                "ignoring an answer to request %u (no longer waiting)", l->id);
    return;
  }
  uvs_call *call = dc_api->pending_call(r->p);
  switch (l->kind) {
    case DC_OK:
      dc_api->log(st->self, call, UVS_LOG_INFO, "user=<%s>: Dovecot says OK", r->user);
      dc_finish(r, UVS_OK, 0, NULL, NULL);
      break;
    case DC_FAIL:
      if (l->temp) {
        dc_api->log(st->self, call, UVS_LOG_NOTICE,
                    "user=<%s>: Dovecot reports a temporary failure%s%s", r->user,
                    l->reason[0] ? ": " : "", l->reason);
        dc_finish(r, UVS_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
      } else {
        dc_api->log(st->self, call, UVS_LOG_INFO, "user=<%s>: Dovecot says FAIL%s%s", r->user,
                    l->reason[0] ? ": " : "", l->reason);
        dc_finish(r, UVS_DENY, 535, "5.7.8", "Authentication credentials invalid");
      }
      break;
    default: /* CONT: PLAIN with an initial response never needs one */
      dc_api->log(st->self, call, UVS_LOG_WARNING,
                  "user=<%s>: Dovecot asked for more data (CONT) for PLAIN; answering 454",
                  r->user);
      dc_finish(r, UVS_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
      break;
  }
}

/* One line from Dovecot; returns 0 to go on, -1 when the connection was failed. */
static int on_line(dc_conn *c, const char *line, size_t len) {
  dc_line l;
  if (dc_parse(line, len, &l) < 0) {
    dc_conn_fail(c, "protocol error: a malformed line from Dovecot");
    return -1;
  }
  if (!c->ready) {
    switch (l.kind) {
      case DC_VERSION:
        if (l.major != 1) {
          char why[128];
          snprintf(why, sizeof why, "Dovecot speaks auth protocol %u.%u; this client speaks 1.x",
                   l.major, l.minor);
          dc_conn_fail(c, why);
          return -1;
        }
        c->version_ok = 1;
        break;
      case DC_MECH:
        if (strcmp(l.mech, "PLAIN") == 0) c->has_plain = 1;
        break;
      case DC_DONE:
        if (!c->version_ok) {
          dc_conn_fail(c, "protocol error: no VERSION before DONE");
          return -1;
        }
        if (!c->has_plain) {
          dc_conn_fail(c, "Dovecot does not offer the PLAIN mechanism (auth_mechanisms)");
          return -1;
        }
        c->ready = 1;
        uv_timer_stop(&c->timer);
        dc_api->log(c->st->self, NULL, UVS_LOG_INFO, "connected to %s", c->st->path);
        send_waiting(c);
        return c->st ? 0 : -1;
      default:
        break; /* SPID, CUID, COOKIE */
    }
    return 0;
  }
  if (l.kind == DC_OK || l.kind == DC_FAIL || l.kind == DC_CONT) on_answer(c, &l);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  dc_conn *c = h->data;
  (void)suggested;
  if (c->rcap - c->rlen < 4096 && c->rcap < DC_MAX_LINE + 8192) {
    size_t cap = c->rcap ? c->rcap * 2 : 8192;
    char *p = malloc(cap);
    if (p) {
      if (c->rbuf) {
        memcpy(p, c->rbuf, c->rlen);
        explicit_bzero(c->rbuf, c->rcap);
        free(c->rbuf);
      }
      c->rbuf = p;
      c->rcap = cap;
    }
  }
  *buf =
      uv_buf_init(c->rbuf ? c->rbuf + c->rlen : NULL, (unsigned)(c->rbuf ? c->rcap - c->rlen : 0));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  dc_conn *c = s->data;
  (void)buf;
  if (!c->st) return;
  if (n == UV_ENOBUFS) {
    dc_conn_fail(c, "out of memory");
    return;
  }
  if (n < 0) {
    char why[160];
    if (n == UV_EOF)
      snprintf(why, sizeof why, "Dovecot closed the connection");
    else
      snprintf(why, sizeof why, "read failed: %s", uv_strerror((int)n));
    dc_conn_fail(c, why);
    return;
  }
  if (n == 0) return;
  c->rlen += (size_t)n;
  c->last_read = uv_now(c->st->loop);
  size_t start = 0;
  for (size_t i = 0; i < c->rlen; i++) {
    if (c->rbuf[i] != '\n') continue;
    if (on_line(c, c->rbuf + start, i - start) < 0) return;
    start = i + 1;
  }
  memmove(c->rbuf, c->rbuf + start, c->rlen - start);
  c->rlen -= start;
  if (c->rlen > DC_MAX_LINE) dc_conn_fail(c, "protocol error: a line from Dovecot is too long");
}

static void on_connect(uv_connect_t *req, int status) {
  dc_conn *c = req->data;
  if (!c->st) return; /* closed meanwhile (UV_ECANCELED) */
  if (status < 0) {
    char why[200];
    snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
    dc_conn_fail(c, why);
    return;
  }
  char hello[64];
  int n = snprintf(hello, sizeof hello, "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
  int rc = conn_write(c, hello, (size_t)n);
  if (rc == 0) rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
  if (rc < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot start the handshake: %s", uv_strerror(rc));
    dc_conn_fail(c, why);
  }
}

static void on_handshake_timeout(uv_timer_t *t) {
  dc_conn *c = t->data;
  if (!c->st) return;
  char why[128];
  snprintf(why, sizeof why, "no handshake from Dovecot within %llu ms",
           (unsigned long long)c->st->timeout_ms);
  dc_conn_fail(c, why);
}

static void conn_open(dc_state *st) {
  dc_conn *c = calloc(1, sizeof *c);
  if (!c) {
    dc_api->log(st->self, NULL, UVS_LOG_ERR, "out of memory");
    while (st->reqs)
      dc_finish(st->reqs, UVS_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
    return;
  }
  c->st = st;
  st->conn = c;
  uv_pipe_init(st->loop, &c->pipe, 0);
  uv_timer_init(st->loop, &c->timer);
  c->pipe.data = c;
  c->timer.data = c;
  c->creq.data = c;
  c->open_handles = 2;
  c->opened_at = c->last_read = uv_now(st->loop);
  uv_timer_start(&c->timer, on_handshake_timeout, st->timeout_ms, 0);
  uv_pipe_connect(&c->creq, &c->pipe, st->path, on_connect);
}

void dc_kick(dc_state *st) {
  if (!st->conn)
    conn_open(st);
  else if (st->conn->ready)
    send_waiting(st->conn);
}
