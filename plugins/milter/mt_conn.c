/* plugins/milter/mt_conn.c: the connection to one milter on the server's loop: connect (TCP or
 * a unix socket), write packets, split what the milter sends into packets, the reply timer, and
 * the two ways to close (at once, or after an orderly shutdown). */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt.h"

typedef struct mt_write {
  uv_write_t req;
  char data[];
} mt_write;

static void on_handle_close(uv_handle_t *h) {
  mt_conn *c = h->data;
  if (--c->open_handles > 0) return;
  mt_buf_free(&c->rbuf);
  free(c);
}

static void close_handles(mt_conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_handle_close);
  if (!uv_is_closing(&c->h.handle)) uv_close(&c->h.handle, on_handle_close);
}

void mt_conn_close(mt_conn *c) {
  if (c->s && c->s->conn == c) c->s->conn = NULL;
  c->s = NULL;
  close_handles(c);
}

static void on_shutdown(uv_shutdown_t *r, int status) {
  (void)status;
  close_handles(r->data);
}

/* A milter that reads nothing would keep a shutdown waiting: closed after a while. */
static void on_linger(uv_timer_t *t) { close_handles(t->data); }

void mt_conn_finish(mt_conn *c) {
  if (c->s && c->s->conn == c) c->s->conn = NULL;
  c->s = NULL;
  uv_timer_stop(&c->timer);
  c->sreq.data = c;
  if (!c->connected || uv_is_closing(&c->h.handle) ||
      uv_shutdown(&c->sreq, &c->h.stream, on_shutdown) < 0) {
    close_handles(c);
    return;
  }
  /* a detached connection never keeps the server's loop running */
  uv_unref(&c->h.handle);
  uv_unref((uv_handle_t *)&c->timer);
  uv_timer_start(&c->timer, on_linger, 2000, 0);
}

static void on_write(uv_write_t *w, int status) {
  mt_conn *c = w->data;
  free(w);
  if (status < 0 && status != UV_ECANCELED && c->s) {
    char why[160];
    snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
    mt_sess_error(c->s, why);
  }
}

int mt_conn_write(mt_conn *c, const char *data, size_t len) {
  mt_write *w = malloc(sizeof *w + len);
  if (!w) return UV_ENOMEM;
  memcpy(w->data, data, len);
  w->req.data = c;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int rc = uv_write(&w->req, &c->h.stream, &b, 1, on_write);
  if (rc < 0) free(w);
  return rc;
}

static void on_timer(uv_timer_t *t) {
  mt_conn *c = t->data;
  if (c->s) mt_sess_timeout(c->s);
}

void mt_conn_timer(mt_conn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

void mt_conn_timer_stop(mt_conn *c) {
  uv_timer_stop(&c->timer);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  mt_conn *c = h->data;
  (void)suggested;
  if (c->rbuf.cap - c->rbuf.len < 16384) {
    size_t cap = c->rbuf.cap ? c->rbuf.cap * 2 : 65536;
    char *d = realloc(c->rbuf.data, cap);
    if (d) {
      c->rbuf.data = d;
      c->rbuf.cap = cap;
    }
  }
  *buf = uv_buf_init(c->rbuf.data ? c->rbuf.data + c->rbuf.len : NULL,
                     (unsigned)(c->rbuf.data ? c->rbuf.cap - c->rbuf.len : 0));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  mt_conn *c = st->data;
  (void)buf;
  if (!c->s) return;
  if (n == UV_ENOBUFS) {
    mt_sess_error(c->s, "out of memory");
    return;
  }
  if (n < 0) {
    char why[160];
    if (n == UV_EOF)
      snprintf(why, sizeof why, "the milter closed the connection");
    else
      snprintf(why, sizeof why, "read failed: %s", uv_strerror((int)n));
    mt_sess_error(c->s, why);
    return;
  }
  c->rbuf.len += (size_t)n;
  size_t start = 0;
  while (c->s) {
    mt_packet pk;
    long used = mt_packet_split(c->rbuf.data + start, c->rbuf.len - start, &pk);
    if (used < 0) {
      mt_sess_error(c->s, "protocol error: a packet length of 0 or over 1 MiB");
      return;
    }
    if (used == 0) break;
    start += (size_t)used;
    mt_sess_packet(c->s, &pk); /* may close c (c->s NULL then; c stays until its close) */
  }
  if (!c->s) return;
  memmove(c->rbuf.data, c->rbuf.data + start, c->rbuf.len - start);
  c->rbuf.len -= start;
}

static void on_connect(uv_connect_t *req, int status) {
  mt_conn *c = req->data;
  if (!c->s) return; /* closed meanwhile */
  if (status < 0) {
    char why[200];
    snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
    mt_sess_error(c->s, why);
    return;
  }
  c->connected = 1;
  int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
  if (rc < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot read: %s", uv_strerror(rc));
    mt_sess_error(c->s, why);
    return;
  }
  mt_sess_connected(c->s);
}

int mt_conn_open(mt_sess *s) {
  mt_conf *cf = s->cf;
  mt_conn *c = calloc(1, sizeof *c);
  if (!c) return UV_ENOMEM;
  int rc = cf->is_unix ? uv_pipe_init(cf->loop, &c->h.pipe, 0) : uv_tcp_init(cf->loop, &c->h.tcp);
  if (rc < 0) {
    free(c);
    return rc;
  }
  uv_timer_init(cf->loop, &c->timer);
  c->h.handle.data = c;
  c->timer.data = c;
  c->creq.data = c;
  c->open_handles = 2;
  c->s = s;
  s->conn = c;
  if (cf->is_unix) {
    uv_pipe_connect(&c->creq, &c->h.pipe, cf->path, on_connect);
  } else {
    uv_tcp_nodelay(&c->h.tcp, 1);
    rc = uv_tcp_connect(&c->creq, &c->h.tcp, (const struct sockaddr *)&cf->addr, on_connect);
    if (rc < 0) {
      mt_conn_close(c);
      return rc;
    }
  }
  mt_conn_timer(c, cf->connect_ms);
  return 0;
}
