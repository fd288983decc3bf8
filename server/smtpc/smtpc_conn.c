/* server/smtpc/smtpc_conn.c: a client connection: the addresses tried in order, greeting,
 * EHLO/LHLO (HELO fallback), STARTTLS and the TLS handshake, reading and writing (through TLS
 * once it is up), timeouts, QUIT and teardown. Transactions are in smtpc_send.c. */
/*
 * One smtpc_conn per connection, driven by libuv callbacks on the caller's loop. One timer
 * bounds every wait. A failure before the session is ready ends the attempt and moves to the
 * next address; the ready callback runs once, with the connection or with the last failure.
 * The object is freed only after smtpc_close() (or the failure callback) and once every
 * handle and request has called back.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "smtpc_int.h"

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void try_next(smtpc_conn *c);

/* ---- small helpers ------------------------------------------------------------------------ */

void smtpc__log(smtpc_conn *c, int level, const char *fmt, ...) {
  if (!c->o.log || c->silent) return;
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->o.log(c->o.log_ud, level, msg);
}

void smtpc__arm(smtpc_conn *c, uint64_t ms, const char *what) {
  c->what = what;
  uv_timer_start(&c->timer, smtpc__on_timer, ms, 0);
}

const char *smtpc_stage_name(int stage) {
  switch (stage) {
    case SMTPC_S_CONNECT:
      return "connect";
    case SMTPC_S_GREETING:
      return "initial greeting";
    case SMTPC_S_HELLO:
      return "EHLO";
    case SMTPC_S_HELO:
      return "HELO";
    case SMTPC_S_STARTTLS:
      return "STARTTLS";
    case SMTPC_S_HANDSHAKE:
      return "TLS handshake";
    case SMTPC_S_IDLE:
      return "idle";
    case SMTPC_S_RSET:
      return "RSET";
    case SMTPC_S_MAIL:
      return "MAIL FROM";
    case SMTPC_S_RCPT:
      return "RCPT TO";
    case SMTPC_S_DATA:
      return "DATA";
    case SMTPC_S_BODY:
      return "message body";
    case SMTPC_S_DOT:
      return "end of DATA";
    case SMTPC_S_QUIT:
      return "QUIT";
    default:
      return "?";
  }
}

int smtpc__stage(const smtpc_conn *c) {
  switch (c->st) {
    case ST_START:
    case ST_CONNECT:
      return SMTPC_S_CONNECT;
    case ST_GREETING:
      return SMTPC_S_GREETING;
    case ST_HELLO:
      return SMTPC_S_HELLO;
    case ST_HELO:
      return SMTPC_S_HELO;
    case ST_STARTTLS:
      return SMTPC_S_STARTTLS;
    case ST_HANDSHAKE:
      return SMTPC_S_HANDSHAKE;
    case ST_RSET:
      return SMTPC_S_RSET;
    case ST_MAIL: /* with DATA pipelined, its reply comes last */
      return c->seen == 0                                 ? SMTPC_S_MAIL
             : c->pipe_data && c->seen == c->expected - 1 ? SMTPC_S_DATA
                                                          : SMTPC_S_RCPT;
    case ST_DATA:
      return SMTPC_S_DATA;
    case ST_BODY:
      return SMTPC_S_BODY;
    case ST_DOT:
      return SMTPC_S_DOT;
    case ST_QUIT:
      return SMTPC_S_QUIT;
    default:
      return SMTPC_S_IDLE;
  }
}

/* Where the conversation was, for "closed the connection ..." texts. */
const char *smtpc__phase(const smtpc_conn *c) {
  switch (c->st) {
    case ST_START:
    case ST_CONNECT:
      return "while connecting";
    case ST_GREETING:
      return "before the greeting";
    case ST_HELLO:
      return c->o.lmtp ? "after LHLO" : "after EHLO";
    case ST_HELO:
      return "after HELO";
    case ST_STARTTLS:
      return "after STARTTLS";
    case ST_HANDSHAKE:
      return "during the TLS handshake";
    case ST_READY:
    case ST_LOCAL:
      if (c->ntx) return "after the previous transaction";
      return c->used_helo ? "after HELO" : c->o.lmtp ? "after LHLO" : "after EHLO";
    case ST_RSET:
      return "after RSET";
    case ST_MAIL:
      return "during MAIL FROM/RCPT TO";
    case ST_DATA:
      return "after DATA";
    case ST_BODY:
      return "while receiving the message";
    case ST_DOT:
      return "after the end of data, before its reply";
    case ST_QUIT:
      return "after QUIT";
    default:
      return "";
  }
}

void smtpc__set_reply(smtpc_conn *c, smtpc_reply *r, int stage) {
  r->stage = stage;
  snprintf(r->peer, sizeof r->peer, "%s", c->peer);
}

static void make_peer(smtpc_conn *c, int i) {
  const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[i];
  const char *name = c->names && c->names[i] && *c->names[i] ? c->names[i] : NULL;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_UNIX) {
    snprintf(c->peer, sizeof c->peer, "unix:%.200s", ((const struct sockaddr_un *)sa)->sun_path);
    return;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  }
  if (name)
    snprintf(c->peer, sizeof c->peer, "%.250s[%s]:%d", name, ip, port);
  else if (sa->sa_family == AF_INET6)
    snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
  else
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
}

/* ---- teardown ----------------------------------------------------------------------------- */

static void free_conn(smtpc_conn *c) {
  smtpc__tx_free(c);
  smtpc_tls_free(c->tls);
  if (c->names) {
    for (int i = 0; i < c->naddr; ++i) free(c->names[i]);
    free(c->names);
  }
  free(c->addrs);
  free(c->helo);
  free(c->sni);
  free(c);
}

void smtpc__maybe_free(smtpc_conn *c) {
  if (c->st == ST_CLOSING && c->handles == 0 && c->connects == 0 && c->writes == 0 && !c->fs_active)
    free_conn(c);
}

static void on_handle_close(uv_handle_t *h) {
  smtpc_conn *c = (smtpc_conn *)h->data;
  if (h != (uv_handle_t *)&c->timer) free(h);
  c->handles--;
  smtpc__maybe_free(c);
}

static void close_stream(smtpc_conn *c) {
  if (c->s) {
    uv_handle_t *h = (uv_handle_t *)c->s;
    c->s = NULL;
    if (!uv_is_closing(h)) uv_close(h, on_handle_close);
  }
  smtpc_tls_free(c->tls);
  c->tls = NULL;
  c->discard_rest = 0;
  smtpc_parser_reset(&c->ps);
}

void smtpc__close_final(smtpc_conn *c) {
  if (c->st == ST_CLOSING) return;
  c->st = ST_CLOSING;
  uv_timer_stop(&c->timer);
  if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_handle_close);
  close_stream(c);
  smtpc__maybe_free(c);
}

void smtpc__dead(smtpc_conn *c) {
  uv_timer_stop(&c->timer);
  close_stream(c);
  c->st = ST_DEAD;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct wreq {
  uv_write_t req;
  smtpc_conn *c;
  int body;
  char data[];
} wreq;

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  smtpc_conn *c = w->c;
  int body = w->body;
  free(w);
  c->writes--;
  if (c->st == ST_CLOSING) {
    smtpc__maybe_free(c);
    return;
  }
  if (status == UV_ECANCELED || c->st == ST_DEAD) return;
  if (status < 0) {
    if (c->st == ST_QUIT)
      smtpc__close_final(c);
    else
      smtpc__fail(c, -ECONNRESET, SMTPC_E_IOERR, "4.4.2", "connection error %s: %s",
                  smtpc__phase(c), uv_strerror(status));
    return;
  }
  if (body && c->st == ST_BODY) smtpc__body_next(c);
}

static int write_raw(smtpc_conn *c, const char *p, size_t n, int body) {
  if (!c->s || c->st == ST_CLOSING || c->st == ST_DEAD) return -1;
  wreq *w = (wreq *)malloc(sizeof *w + n);
  if (!w) {
    smtpc__fail(c, -ENOMEM, SMTPC_E_LOCAL, "4.3.0", "out of memory");
    return -1;
  }
  w->c = c;
  w->body = body;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  int rc = uv_write(&w->req, c->s, &b, 1, on_write);
  if (rc < 0) {
    free(w);
    smtpc__fail(c, -ECONNRESET, SMTPC_E_IOERR, "4.4.2", "connection error %s: %s", smtpc__phase(c),
                uv_strerror(rc));
    return -1;
  }
  c->writes++;
  return 0;
}

int smtpc__send_data(smtpc_conn *c, const char *p, size_t n, int body) {
  if (!c->tls) return write_raw(c, p, n, body);
  smtpc_buf wire = {0};
  char err[200];
  if (smtpc_tls_write(c->tls, p, n, &wire, err, sizeof err) < 0) {
    smtpc_buf_free(&wire);
    smtpc__fail(c, -EIO, SMTPC_E_IOERR, "4.4.2", "connection error %s: %s", smtpc__phase(c), err);
    return -1;
  }
  int rc = write_raw(c, wire.p, wire.len, body);
  smtpc_buf_free(&wire);
  return rc;
}

int smtpc__send_cmd(smtpc_conn *c, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 2, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line - 2) {
    smtpc__fail(c, -E2BIG, SMTPC_E_LOCAL, "4.3.0", "command too long");
    return -1;
  }
  smtpc__log(c, 7, "-> %s", line);
  memcpy(line + n, "\r\n", 2);
  return smtpc__send_data(c, line, (size_t)n + 2, 0);
}

void smtpc__quit(smtpc_conn *c) {
  if (c->st == ST_CLOSING || c->st == ST_QUIT) return;
  if (!c->s || c->st == ST_DEAD) {
    smtpc__close_final(c);
    return;
  }
  c->st = ST_QUIT;
  if (smtpc__send_cmd(c, "QUIT") < 0) return;
  smtpc__arm(c, c->o.helo_ms < SMTPC_QUIT_MS ? c->o.helo_ms : SMTPC_QUIT_MS, "QUIT");
}

/* ---- failures ----------------------------------------------------------------------------- */

/* The ready callback with the last failure; then the object goes away. */
static void ready_failed(smtpc_conn *c) {
  c->ready_done = 1;
  if (!c->user_closed && c->ready_cb) c->ready_cb(NULL, c->last_status, &c->last_fail, c->ready_ud);
  smtpc__close_final(c);
}

/* An attempt failed before the session was ready: remember why, end this connection (QUIT
 * first when the server refused us: it is in a state to read it) and try the next address. */
static void attempt_failed(smtpc_conn *c, int status, const smtpc_reply *why, int polite,
                           int retry_plain) {
  c->last_fail = *why;
  c->last_status = status;
  if (why->origin != SMTPC_SERVER)
    smtpc__log(c, 6, "%s: %s", c->peer, why->text);
  else
    smtpc__log(c, 6, "%s refused the session at %s: %d %s %s", c->peer,
               smtpc_stage_name(why->stage), why->code, why->enh, why->text);
  if (polite && c->s) { /* best effort, never a failure of its own: the close follows at once */
    smtpc_buf wire = {0};
    char err[200];
    uv_buf_t b = uv_buf_init((char *)"QUIT\r\n", 6);
    if (c->tls && smtpc_tls_write(c->tls, "QUIT\r\n", 6, &wire, err, sizeof err) == 0)
      b = uv_buf_init(wire.p, (unsigned)wire.len);
    if (!c->tls || wire.len) {
      smtpc__log(c, 7, "-> QUIT");
      uv_try_write(c->s, &b, 1);
    }
    smtpc_buf_free(&wire);
  }
  uv_timer_stop(&c->timer);
  close_stream(c);
  if (retry_plain) {
    c->retry_plain_idx = c->cur;
    c->addr_i = c->cur;
  }
  try_next(c);
}

void smtpc__fail(smtpc_conn *c, int status, int origin, const char *enh, const char *fmt, ...) {
  if (c->st == ST_CLOSING || c->st == ST_DEAD) return;
  if (c->st == ST_QUIT) {
    smtpc__close_final(c);
    return;
  }
  smtpc_reply r;
  memset(&r, 0, sizeof r);
  char raw[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  smtpc_sanitize(r.text, sizeof r.text, raw, strlen(raw));
  r.code = 451;
  snprintf(r.enh, sizeof r.enh, "%s", enh);
  r.origin = origin;
  smtpc__set_reply(c, &r, smtpc__stage(c));
  if (c->st < ST_READY) {
    int retry = origin == SMTPC_E_TLS && c->st == ST_HANDSHAKE && c->o.starttls == 1;
    if (retry)
      smtpc__log(c, 4, "%s: %s; trying again in plaintext (opportunistic TLS)", c->peer, r.text);
    attempt_failed(c, status, &r, 0, retry);
  } else if (c->st == ST_READY) {
    smtpc__log(c, 6, "%s: %s", c->peer, r.text);
    smtpc__dead(c);
  } else {
    smtpc__tx_fail(c, status, &r);
  }
}

void smtpc__proto_error(smtpc_conn *c, const char *what) {
  smtpc__fail(c, -EPROTO, SMTPC_E_PROTOCOL, "4.5.0", "protocol error %s: %s", smtpc__phase(c),
              what);
}

/* ---- the session set-up ------------------------------------------------------------------- */

static void ready(smtpc_conn *c) {
  c->st = ST_READY;
  uv_timer_stop(&c->timer);
  if (c->ready_done) return;
  c->ready_done = 1;
  smtpc__log(c, 7, "session with %s ready%s%s", c->peer, c->tls ? " in " : "",
             c->tls ? smtpc_tls_desc(c->tls) : "");
  if (!c->user_closed && c->ready_cb) c->ready_cb(c, 0, &c->hello_reply, c->ready_ud);
}

static void hello(smtpc_conn *c) {
  const char *verb = c->o.lmtp ? "LHLO" : "EHLO";
  c->st = ST_HELLO;
  if (smtpc__send_cmd(c, "%s %s", verb, c->helo) < 0) return;
  smtpc__arm(c, c->o.helo_ms, verb);
}

static void local_refusal(smtpc_conn *c, int status, const char *enh, const char *text) {
  smtpc_reply r;
  memset(&r, 0, sizeof r);
  r.code = 451;
  snprintf(r.enh, sizeof r.enh, "%s", enh);
  snprintf(r.text, sizeof r.text, "%s", text);
  r.origin = SMTPC_E_TLS;
  smtpc__set_reply(c, &r, SMTPC_S_STARTTLS);
  attempt_failed(c, status, &r, 1, 0);
}

static void after_hello(smtpc_conn *c) {
  if (c->o.starttls && !c->tls && !c->plain) {
    if ((c->ext & SMTPC_EXT_STARTTLS) && c->o.ssl_ctx) {
      c->st = ST_STARTTLS;
      if (smtpc__send_cmd(c, "STARTTLS") < 0) return;
      smtpc__arm(c, c->o.helo_ms, "STARTTLS");
      return;
    }
    if (c->o.starttls == 2) {
      local_refusal(c, -EPROTONOSUPPORT, "4.7.4",
                    c->o.ssl_ctx ? "TLS is required, but was not offered by the server"
                                 : "TLS is required, but no TLS context was given");
      return;
    }
  }
  ready(c);
}

static void start_tls(smtpc_conn *c) {
  char err[200];
  smtpc_buf wire = {0};
  c->tls = smtpc_tls_new(c->o.ssl_ctx, c->sni, err, sizeof err);
  c->st = ST_HANDSHAKE;
  c->discard_rest = 1;
  if (!c->tls || smtpc_tls_start(c->tls, &wire, err, sizeof err) < 0) {
    smtpc_buf_free(&wire);
    smtpc__fail(c, -EPROTO, SMTPC_E_TLS, "4.7.5", "TLS handshake failed: %s", err);
    return;
  }
  smtpc__arm(c, c->o.helo_ms, "the TLS handshake");
  write_raw(c, wire.p, wire.len, 0);
  smtpc_buf_free(&wire);
}

static void handshake_done(smtpc_conn *c) {
  smtpc__log(c, 6, "%s: TLS established: %s", c->peer, smtpc_tls_desc(c->tls));
  c->ext = 0;
  c->size_limit = 0;
  hello(c); /* RFC 3207 4.2: the client discards what it knew and says EHLO again */
}

static void on_reply(smtpc_conn *c, const smtpc_reply *rin, unsigned ext, uint64_t size) {
  smtpc_reply r = *rin;
  int cls = r.code / 100;
  smtpc__set_reply(c, &r, smtpc__stage(c));
  smtpc__log(c, 7, "<- %d%s%s %s", r.code, r.enh[0] ? " " : "", r.enh, r.text);
  switch (c->st) {
    case ST_GREETING:
      if (r.code == 220)
        hello(c);
      else if (cls == 4 || cls == 5)
        attempt_failed(c, r.code, &r, 1, 0);
      else
        smtpc__proto_error(c, "greeting is not 220");
      break;
    case ST_HELLO:
      if (cls == 2) {
        c->ext = ext;
        c->size_limit = size;
        c->hello_reply = r;
        after_hello(c);
      } else if (cls == 5 && !c->o.lmtp) {
        c->st = ST_HELO;
        if (smtpc__send_cmd(c, "HELO %s", c->helo) < 0) return;
        smtpc__arm(c, c->o.helo_ms, "HELO");
      } else if (cls == 4 || cls == 5) {
        attempt_failed(c, r.code, &r, 1, 0);
      } else {
        smtpc__proto_error(c, c->o.lmtp ? "unexpected reply to LHLO" : "unexpected reply to EHLO");
      }
      break;
    case ST_HELO:
      if (cls == 2) {
        c->ext = 0;
        c->size_limit = 0;
        c->used_helo = 1;
        c->hello_reply = r;
        after_hello(c);
      } else if (cls == 4 || cls == 5) {
        attempt_failed(c, r.code, &r, 1, 0);
      } else {
        smtpc__proto_error(c, "unexpected reply to HELO");
      }
      break;
    case ST_STARTTLS:
      if (r.code == 220) {
        start_tls(c);
      } else if ((cls == 4 || cls == 5) && c->o.starttls == 1) {
        smtpc__log(c, 4, "%s refused STARTTLS (%d %s %s): going on in plaintext", c->peer, r.code,
                   r.enh, r.text);
        ready(c);
      } else if (cls == 4 || cls == 5) {
        attempt_failed(c, r.code, &r, 1, 0);
      } else {
        smtpc__proto_error(c, "unexpected reply to STARTTLS");
      }
      break;
    case ST_QUIT:
      smtpc__close_final(c);
      break;
    case ST_RSET:
    case ST_MAIL:
    case ST_DATA:
    case ST_BODY:
    case ST_DOT:
      smtpc__tx_reply(c, &r);
      break;
    case ST_READY: /* e.g. 421 before an idle-timeout close: the connection is not usable */
      smtpc__log(c, 6, "%s said while idle: %d %s %s", c->peer, r.code, r.enh, r.text);
      smtpc__dead(c);
      break;
    default:
      smtpc__proto_error(c, "reply out of turn");
  }
}

/* ---- reading ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  smtpc_conn *c = (smtpc_conn *)h->data;
  (void)suggested;
  buf->base = c->rbuf;
  buf->len = sizeof c->rbuf;
}

static void on_eof(smtpc_conn *c, int err) {
  if (c->st == ST_QUIT) {
    smtpc__close_final(c);
    return;
  }
  if (c->st == ST_HANDSHAKE)
    smtpc__fail(c, -ECONNRESET, SMTPC_E_TLS, "4.7.5",
                "TLS handshake failed: the server closed the connection");
  else if (err == UV_EOF)
    smtpc__fail(c, -ECONNRESET, SMTPC_E_CLOSED, "4.4.2", "closed the connection %s",
                smtpc__phase(c));
  else
    smtpc__fail(c, -ECONNRESET, SMTPC_E_IOERR, "4.4.2", "connection error %s: %s", smtpc__phase(c),
                uv_strerror(err));
}

/* Plaintext from the server: replies, each handled in turn while this connection lasts. */
static void parse(smtpc_conn *c, const char *p, size_t n) {
  uv_stream_t *s = c->s;
  size_t off = 0;
  while (off < n && c->s == s && c->st != ST_CLOSING && c->st != ST_DEAD && !c->discard_rest) {
    size_t used = 0;
    int r = smtpc_parse(&c->ps, p + off, n - off, &used);
    off += used;
    if (r < 0) {
      smtpc__proto_error(c, c->ps.err);
      return;
    }
    if (r == 0) break;
    smtpc_reply rep = c->ps.cur;
    unsigned ext = c->ps.ext;
    uint64_t size = c->ps.size;
    smtpc_parser_reset(&c->ps);
    on_reply(c, &rep, ext, size);
  }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  smtpc_conn *c = (smtpc_conn *)s->data;
  if (c->st == ST_CLOSING || c->st == ST_DEAD || s != c->s) return;
  if (n < 0) {
    on_eof(c, (int)n);
    return;
  }
  if (n == 0) return;
  if (!c->tls) {
    if (c->discard_rest) return;
    parse(c, buf->base, (size_t)n);
    return;
  }
  /* TLS: what came after the server's 220 to STARTTLS in the same read was not protected and
   * is dropped (the discard_rest rule); from here on everything goes through TLS. */
  c->discard_rest = 0;
  smtpc_buf plain = {0}, wire = {0};
  char err[200];
  int was_done = smtpc_tls_done(c->tls);
  int rc = smtpc_tls_feed(c->tls, buf->base, (size_t)n, &plain, &wire, err, sizeof err);
  if (wire.len) write_raw(c, wire.p, wire.len, 0);
  smtpc_buf_free(&wire);
  if (c->s != s || c->st == ST_CLOSING || c->st == ST_DEAD) {
    smtpc_buf_free(&plain);
    return;
  }
  if (rc == -1) {
    smtpc_buf_free(&plain);
    if (!was_done)
      smtpc__fail(c, -EPROTO, SMTPC_E_TLS, "4.7.5", "TLS handshake failed: %s", err);
    else
      smtpc__fail(c, -EPROTO, SMTPC_E_IOERR, "4.4.2", "connection error %s: TLS: %s",
                  smtpc__phase(c), err);
    return;
  }
  if (rc == 1) handshake_done(c);
  if (plain.len && c->s == s) parse(c, plain.p, plain.len);
  smtpc_buf_free(&plain);
  if (rc == -2 && c->s == s) on_eof(c, UV_EOF);
}

/* ---- connecting --------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
  smtpc_conn *c = (smtpc_conn *)req->data;
  uv_stream_t *h = req->handle;
  free(req);
  c->connects--;
  if (c->st != ST_CONNECT || h != c->s) { /* a stale attempt, or closing */
    smtpc__maybe_free(c);
    return;
  }
  if (status < 0) {
    smtpc__fail(c, status == UV_ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED, SMTPC_E_CONNECT, "4.4.1",
                "%s", uv_strerror(status));
    return;
  }
  if (c->addrs[c->cur].ss_family != AF_UNIX) uv_tcp_nodelay((uv_tcp_t *)c->s, 1);
  int rc = uv_read_start(c->s, on_alloc, on_read);
  if (rc < 0) {
    smtpc__fail(c, -ECONNRESET, SMTPC_E_CONNECT, "4.4.1", "%s", uv_strerror(rc));
    return;
  }
  c->st = ST_GREETING;
  smtpc__log(c, 7, "connected to %s%s", c->peer,
             c->plain && c->o.starttls ? " (plaintext retry)" : "");
  smtpc__arm(c, c->o.greeting_ms, "the greeting");
}

/* Connects to the next address; when none is left, the ready callback gets the last failure. */
static void try_next(smtpc_conn *c) {
  while (c->addr_i < c->naddr && !c->user_closed) {
    int i = c->addr_i++;
    c->cur = i;
    c->plain = i == c->retry_plain_idx;
    c->ext = 0;
    c->size_limit = 0;
    c->used_helo = 0;
    make_peer(c, i);
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[i];
    uv_connect_t *req = (uv_connect_t *)malloc(sizeof *req);
    uv_stream_t *s = NULL;
    int rc = 0;
    if (sa->sa_family == AF_UNIX) {
      uv_pipe_t *p = (uv_pipe_t *)malloc(sizeof *p);
      if (p && (rc = uv_pipe_init(c->loop, p, 0)) < 0) free(p), p = NULL;
      s = (uv_stream_t *)p;
    } else {
      uv_tcp_t *t = (uv_tcp_t *)malloc(sizeof *t);
      if (t && (rc = uv_tcp_init(c->loop, t)) < 0) free(t), t = NULL;
      s = (uv_stream_t *)t;
    }
    if (!req || !s) {
      free(req);
      free(s);
      c->st = ST_CONNECT;
      smtpc__fail(c, -ENOMEM, SMTPC_E_LOCAL, "4.3.0", "%s",
                  rc < 0 ? uv_strerror(rc) : "out of memory");
      return;
    }
    s->data = c;
    c->handles++;
    c->s = s;
    req->data = c;
    c->st = ST_CONNECT;
    if (sa->sa_family == AF_UNIX) {
      uv_pipe_connect(req, (uv_pipe_t *)s, ((const struct sockaddr_un *)sa)->sun_path, on_connect);
      rc = 0;
    } else {
      rc = uv_tcp_connect(req, (uv_tcp_t *)s, sa, on_connect);
    }
    if (rc == 0) {
      c->connects++;
      smtpc__arm(c, c->o.connect_ms, "the connection");
      return;
    }
    free(req);
    smtpc_reply r;
    memset(&r, 0, sizeof r);
    r.code = 451;
    snprintf(r.enh, sizeof r.enh, "4.4.1");
    snprintf(r.text, sizeof r.text, "%s", uv_strerror(rc));
    r.origin = SMTPC_E_CONNECT;
    smtpc__set_reply(c, &r, SMTPC_S_CONNECT);
    c->last_fail = r;
    c->last_status = -ECONNREFUSED;
    close_stream(c);
  }
  ready_failed(c);
}

void smtpc__on_timer(uv_timer_t *t) {
  smtpc_conn *c = (smtpc_conn *)t->data;
  if (c->finish_due) {
    c->finish_due = 0;
    smtpc__tx_finish(c, c->finish_status);
    return;
  }
  switch (c->st) {
    case ST_START:
      try_next(c);
      return;
    case ST_CONNECT:
      smtpc__fail(c, -ETIMEDOUT, SMTPC_E_CONNECT, "4.4.1", "connection timed out");
      return;
    case ST_QUIT:
      smtpc__close_final(c);
      return;
    case ST_LOCAL:
    case ST_CLOSING:
    case ST_DEAD:
    case ST_READY:
      return;
    case ST_HANDSHAKE:
      smtpc__fail(c, -ETIMEDOUT, SMTPC_E_TLS, "4.7.5", "TLS handshake failed: timed out");
      return;
    case ST_BODY:
      smtpc__fail(c, -ETIMEDOUT, SMTPC_E_TIMEOUT, "4.4.2", "stalled while receiving the message");
      return;
    default:
      smtpc__fail(c, -ETIMEDOUT, SMTPC_E_TIMEOUT, "4.4.2", "timed out waiting for the reply to %s",
                  c->what);
  }
}

/* ---- the API ------------------------------------------------------------------------------ */

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

int smtpc_connect(const smtpc_opts *o, const struct sockaddr_storage *addrs, int naddr,
                  smtpc_ready_fn cb, void *ud, smtpc_conn **out) {
  if (out) *out = NULL;
  if (!o || !o->loop || !addrs || naddr <= 0 || !cb || !o->helo || !*o->helo) return -EINVAL;
  smtpc_conn *c = (smtpc_conn *)calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->o = *o;
  c->helo = strdup(o->helo);
  c->sni = dup_or_null(o->tls_servername);
  c->addrs = (struct sockaddr_storage *)malloc(sizeof *addrs * (size_t)naddr);
  int ok = c->helo && c->addrs && (!o->tls_servername || c->sni);
  if (ok && o->host_names) {
    c->names = (char **)calloc((size_t)naddr, sizeof *c->names);
    ok = c->names != NULL;
    for (int i = 0; ok && i < naddr; ++i)
      if (o->host_names[i]) ok = (c->names[i] = strdup(o->host_names[i])) != NULL;
  }
  c->naddr = naddr;
  if (!ok) {
    free_conn(c);
    return -ENOMEM;
  }
  memcpy(c->addrs, addrs, sizeof *addrs * (size_t)naddr);
  c->o.helo = c->helo;
  c->o.tls_servername = c->sni;
  c->o.host_names = NULL;
  if (!c->o.connect_ms) c->o.connect_ms = 30000;
  if (!c->o.greeting_ms) c->o.greeting_ms = 300000;
  if (!c->o.helo_ms) c->o.helo_ms = 300000;
  if (!c->o.mail_ms) c->o.mail_ms = 300000;
  if (!c->o.rcpt_ms) c->o.rcpt_ms = 300000;
  if (!c->o.data_ms) c->o.data_ms = 120000;
  if (!c->o.block_ms) c->o.block_ms = 180000;
  if (!c->o.dot_ms) c->o.dot_ms = 600000;
  c->loop = o->loop;
  c->ready_cb = cb;
  c->ready_ud = ud;
  c->retry_plain_idx = -1;
  c->fd = -1;
  smtpc_parser_reset(&c->ps);
  uv_timer_init(c->loop, &c->timer);
  c->timer.data = c;
  c->handles++;
  c->st = ST_START;
  uv_timer_start(&c->timer, smtpc__on_timer, 0,
                 0); /* the callback never runs from inside this call */
  if (out) *out = c;
  return 0;
}

unsigned smtpc_ext(const smtpc_conn *c) {
  return c ? c->ext : 0;
}
uint64_t smtpc_size_limit(const smtpc_conn *c) {
  return c ? c->size_limit : 0;
}
const char *smtpc_peer(const smtpc_conn *c) {
  return c ? c->peer : "";
}
const char *smtpc_tls(const smtpc_conn *c) {
  return c ? smtpc_tls_desc(c->tls) : NULL;
}

void smtpc_close(smtpc_conn *c) {
  if (!c || c->user_closed) return;
  c->user_closed = 1;
  c->finish_due = 0;
  switch (c->st) {
    case ST_HELLO:
    case ST_HELO:
    case ST_READY:
    case ST_LOCAL:
    case ST_RSET:
    case ST_MAIL: /* between commands: QUIT follows what is pending */
      smtpc__quit(c);
      break;
    case ST_QUIT:
    case ST_CLOSING:
      break;
    default: /* connecting, in the TLS handshake, after DATA (no dot: the server discards it) */
      smtpc__close_final(c);
  }
  c->silent = 1;
}
