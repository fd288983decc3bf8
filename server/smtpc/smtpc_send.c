/* server/smtpc/smtpc_send.c: one transaction on a ready connection: the client's own refusals
 * (SIZE, 8BITMIME, SMTPUTF8), RSET when needed, MAIL, RCPT and DATA (pipelined when offered),
 * the message streamed from its file, and the per-recipient results (LMTP: one reply each). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc_int.h"

/* ---- a growable command buffer ------------------------------------------------------------ */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_addf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_addf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || b->oom) {
    b->oom = 1;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = (b->cap ? b->cap * 2 : 256);
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *p = (char *)realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* ---- the end of a transaction ------------------------------------------------------------- */

void smtpc__tx_free(smtpc_conn *c) {
  free(c->from);
  for (int i = 0; c->rcpts && i < c->n; ++i) free(c->rcpts[i]);
  free(c->rcpts);
  free(c->rr);
  free(c->rdone);
  free(c->acc);
  free(c->inbuf);
  free(c->outbuf);
  c->from = NULL;
  c->rcpts = NULL;
  c->rr = NULL;
  c->rdone = NULL;
  c->mem = NULL; /* the caller's, no longer ours to read */
  c->acc = NULL;
  c->inbuf = c->outbuf = NULL;
  c->mem = NULL;
  c->n = 0;
  c->sent_cb = NULL;
}

/* The callback, once; the connection is READY again unless it died. The transaction's memory is
 * released after the callback (which may start the next transaction). */
void smtpc__tx_finish(smtpc_conn *c, int status) {
  if (c->in_send) { /* never from inside smtpc_send: the timer runs it */
    c->finish_due = 1;
    c->finish_status = status;
    uv_timer_start(&c->timer, smtpc__on_timer, 0, 0);
    return;
  }
  uv_timer_stop(&c->timer);
  if (c->st != ST_DEAD && c->st != ST_CLOSING && c->st != ST_QUIT) c->st = ST_READY;
  c->ntx++;
  smtpc_sent_fn cb = c->sent_cb;
  void *ud = c->sent_ud;
  smtpc_reply final = c->final;
  smtpc_reply *rr = c->rr;
  int n = c->n;
  char *from = c->from, **rcpts = c->rcpts, *rdone = c->rdone, *inbuf = c->inbuf,
       *outbuf = c->outbuf;
  int *acc = c->acc;
  c->from = NULL, c->rcpts = NULL, c->rr = NULL, c->rdone = NULL, c->acc = NULL;
  c->inbuf = c->outbuf = NULL;
  c->n = 0;
  c->sent_cb = NULL;
  if (cb && !c->user_closed) cb(c, status, &final, rr, n, ud);
  free(from);
  for (int i = 0; rcpts && i < n; ++i) free(rcpts[i]);
  free(rcpts), free(rr), free(rdone), free(acc), free(inbuf), free(outbuf);
}

/* The connection was lost (or the message could not be read): every recipient without a final
 * reply gets the local failure. */
void smtpc__tx_fail(smtpc_conn *c, int status, const smtpc_reply *why) {
  if (c->dot_sent && c->st == ST_DOT)
    smtpc__log(c, 4,
               "%s: %s after the end of data was sent: the server may have accepted the message",
               c->peer, why->text);
  for (int i = 0; i < c->n; ++i)
    if (!c->rdone[i]) c->rr[i] = *why;
  c->final = *why;
  smtpc__dead(c);
  smtpc__tx_finish(c, status);
}

/* Every recipient that has no final reply yet gets r. */
static void rest_get(smtpc_conn *c, const smtpc_reply *r) {
  for (int i = 0; i < c->n; ++i)
    if (!c->rdone[i]) c->rr[i] = *r, c->rdone[i] = 1;
}

/* ---- the message -------------------------------------------------------------------------- */

/* The end of data (".") into out; the transaction now waits for its reply (LMTP: one per
 * accepted recipient). The bytes written. */
static size_t end_of_data(smtpc_conn *c, char *out) {
  size_t len = smtpc_enc_finish(&c->enc, out);
  c->st = ST_DOT;
  c->dot_sent = 1;
  c->expected = c->o.lmtp ? c->naccepted : 1;
  c->seen = 0;
  smtpc__arm(c, c->o.dot_ms, "the end of data");
  return len;
}

static void on_body_read(uv_fs_t *req) {
  smtpc_conn *c = (smtpc_conn *)req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  c->fs_active = 0;
  if (c->st != ST_BODY) {
    smtpc__maybe_free(c);
    return;
  }
  if (n < 0) { /* closing without the dot: the server discards the transaction */
    smtpc__fail(c, -EIO, SMTPC_E_READ, "4.3.0", "%s", uv_strerror((int)n));
    return;
  }
  size_t len;
  if (n == 0) {
    len = end_of_data(c, c->outbuf);
  } else {
    len = smtpc_enc_chunk(&c->enc, c->inbuf, (size_t)n, c->outbuf);
    c->off += n;
  }
  c->sent += (int64_t)len;
  smtpc__send_data(c, c->outbuf, len, 1);
}

/* The next chunk of a message in memory, at once; the last one with the end of data. */
static void body_from_memory(smtpc_conn *c) {
  size_t left = (size_t)(c->size - c->off);
  size_t n = left < SMTPC_CHUNK ? left : SMTPC_CHUNK;
  size_t len = n ? smtpc_enc_chunk(&c->enc, c->mem + c->off, n, c->outbuf) : 0;
  c->off += (int64_t)n;
  if ((int64_t)c->off == c->size) /* outbuf holds 2 * SMTPC_CHUNK + 16: room for the end */
    len += end_of_data(c, c->outbuf + len);
  c->sent += (int64_t)len;
  smtpc__send_data(c, c->outbuf, len, 1);
}

void smtpc__body_next(smtpc_conn *c) {
  smtpc__arm(c, c->o.block_ms, "the message");
  if (c->mem) {
    body_from_memory(c);
    return;
  }
  uv_buf_t b = uv_buf_init(c->inbuf, SMTPC_CHUNK);
  c->fsreq.data = c;
  int rc = uv_fs_read(c->loop, &c->fsreq, c->fd, &b, 1, c->off, on_body_read);
  if (rc < 0) {
    smtpc__fail(c, -EIO, SMTPC_E_READ, "4.3.0", "%s", uv_strerror(rc));
    return;
  }
  c->fs_active = 1;
}

/* ---- the envelope ------------------------------------------------------------------------- */

static void send_envelope(smtpc_conn *c) {
  c->pipe = (c->ext & SMTPC_EXT_PIPELINING) != 0;
  sbuf b = {0};
  sb_addf(&b, "MAIL FROM:<%s>", c->from);
  if ((c->ext & SMTPC_EXT_SIZE) && c->size >= 0) sb_addf(&b, " SIZE=%lld", (long long)c->size);
  if ((c->ext & SMTPC_EXT_8BITMIME) && (c->flags & SMTPC_F_8BIT)) sb_addf(&b, " BODY=8BITMIME");
  if (c->flags & SMTPC_F_SMTPUTF8) sb_addf(&b, " SMTPUTF8"); /* only reached when offered */
  if (!b.oom) smtpc__log(c, 7, "-> %s", b.p);
  sb_addf(&b, "\r\n");
  for (int i = 0; c->pipe && i < c->n; ++i) {
    smtpc__log(c, 7, "-> RCPT TO:<%s>", c->rcpts[i]);
    sb_addf(&b, "RCPT TO:<%s>\r\n", c->rcpts[i]);
  }
  /* DATA ends the group (RFC 2920 3.1): one round trip less per message. Not when every
   * recipient must be accepted first: after a 354 the message could no longer be held back. */
  c->pipe_data = c->pipe && !(c->flags & SMTPC_F_ALL_OR_NOTHING);
  if (c->pipe_data) {
    smtpc__log(c, 7, "-> DATA");
    sb_addf(&b, "DATA\r\n");
  }
  c->st = ST_MAIL;
  c->seen = 0;
  c->expected = c->pipe ? 1 + c->n + c->pipe_data : 1;
  c->next_rcpt = c->pipe ? c->n : 0;
  c->naccepted = 0;
  c->bad_code = 0;
  if (b.oom) {
    free(b.p);
    smtpc__fail(c, -ENOMEM, SMTPC_E_LOCAL, "4.3.0", "out of memory");
    return;
  }
  c->dirty = 1; /* until the transaction ends cleanly */
  int rc = smtpc__send_data(c, b.p, b.len, 0);
  free(b.p);
  if (rc < 0) return;
  smtpc__arm(c, c->o.mail_ms, c->pipe ? "MAIL FROM and RCPT TO" : "MAIL FROM");
}

static void start_body(smtpc_conn *c) {
  c->st = ST_BODY;
  smtpc_enc_init(&c->enc);
  c->off = 0;
  c->sent = 0;
  smtpc__body_next(c);
}

/* DATA's reply, pipelined or not: 354 starts the message, 4xx/5xx ends the transaction. */
static void on_data_reply(smtpc_conn *c, const smtpc_reply *r) {
  int cls = r->code / 100;
  if (r->code == 354) {
    start_body(c);
  } else if (cls == 4 || cls == 5) {
    rest_get(c, r);
    c->final = *r;
    smtpc__tx_finish(c, 0); /* dirty: RSET before the next one */
  } else {
    smtpc__proto_error(c, "unexpected reply to DATA");
  }
}

static void conclude_envelope(smtpc_conn *c) {
  int mc = c->mail_r.code / 100;
  /* A pipelined DATA answered 354 although the transaction cannot go on: the server now reads
   * a message it should not get. Only dropping the connection ends that without sending one. */
  if (c->pipe_data && c->data_r.code == 354 && (mc != 2 || c->naccepted == 0 || c->bad_code)) {
    smtpc__proto_error(c, "354 to DATA without an accepted recipient");
    return;
  }
  if (mc != 2) {
    if (mc != 4 && mc != 5) {
      char what[64];
      snprintf(what, sizeof what, "unexpected reply %d", c->mail_r.code);
      smtpc__proto_error(c, what);
      return;
    }
    /* MAIL's reply is every recipient's: pipelined RCPTs were answered "503 need MAIL" (or
     * the like), which must not turn a temporary refusal of MAIL into a permanent one. */
    for (int i = 0; i < c->n; ++i) c->rr[i] = c->mail_r, c->rdone[i] = 1;
    c->final = c->mail_r;
    c->dirty = 0; /* no transaction was opened */
    smtpc__tx_finish(c, 0);
    return;
  }
  if (c->bad_code) {
    char what[96];
    snprintf(what, sizeof what, "unexpected reply %d to RCPT TO", c->bad_code);
    smtpc__proto_error(c, what);
    return;
  }
  if (c->naccepted == 0 || ((c->flags & SMTPC_F_ALL_OR_NOTHING) && c->naccepted < c->n)) {
    for (int i = 0; i < c->n; ++i)
      if (c->rr[i].code / 100 != 2) {
        c->final = c->rr[i];
        break;
      }
    for (int i = 0; i < c->n; ++i) c->rdone[i] = 1; /* the accepted ones keep their 250 */
    smtpc__tx_finish(c, 0);                         /* dirty: RSET before the next one */
    return;
  }
  if (c->pipe_data) { /* DATA's reply came with the others */
    on_data_reply(c, &c->data_r);
    return;
  }
  c->st = ST_DATA;
  if (smtpc__send_cmd(c, "DATA") < 0) return;
  smtpc__arm(c, c->o.data_ms, "DATA");
}

static void on_envelope_reply(smtpc_conn *c, const smtpc_reply *r) {
  int idx = c->seen++;
  int cls = r->code / 100;
  if (idx == 0) {
    c->mail_r = *r;
    c->mail_r.stage = SMTPC_S_MAIL;
  } else if (c->pipe_data && idx == c->expected - 1) {
    c->data_r = *r;
    c->data_r.stage = SMTPC_S_DATA;
  } else {
    int i = idx - 1;
    c->rr[i] = *r;
    c->rr[i].stage = SMTPC_S_RCPT;
    if (cls == 2)
      c->acc[c->naccepted++] = i;
    else if (cls == 4 || cls == 5)
      c->rdone[i] = 1;
    else if (!c->bad_code)
      c->bad_code = r->code;
  }
  if (!c->pipe) {
    if (idx == 0 && cls != 2) {
      conclude_envelope(c);
    } else if (c->next_rcpt < c->n) { /* one RCPT at a time; every one is asked */
      int i = c->next_rcpt++;
      if (smtpc__send_cmd(c, "RCPT TO:<%s>", c->rcpts[i]) < 0) return;
      c->expected++;
      smtpc__arm(c, c->o.rcpt_ms, "RCPT TO");
    } else {
      conclude_envelope(c);
    }
  } else if (c->pipe_data && c->seen == c->expected - 1) {
    smtpc__arm(c, c->o.data_ms, "DATA"); /* only DATA's reply is still to come */
  } else if (c->seen < c->expected) {
    smtpc__arm(c, c->o.rcpt_ms, "MAIL FROM and RCPT TO");
  } else {
    conclude_envelope(c);
  }
}

/* ---- replies during a transaction --------------------------------------------------------- */

void smtpc__tx_reply(smtpc_conn *c, const smtpc_reply *r) {
  int cls = r->code / 100;
  if (r->code == 421) { /* the server is closing the session: its reply for every open recipient */
    smtpc_reply x = *r;
    x.stage = smtpc__stage(c);
    rest_get(c, &x);
    c->final = x;
    smtpc__dead(c);
    smtpc__tx_finish(c, 0);
    return;
  }
  switch (c->st) {
    case ST_RSET:
      if (cls == 2) {
        c->dirty = 0;
        send_envelope(c);
      } else {
        char what[64];
        snprintf(what, sizeof what, "RSET refused with %d", r->code);
        smtpc__proto_error(c, what);
      }
      break;
    case ST_MAIL:
      on_envelope_reply(c, r);
      break;
    case ST_DATA:
      on_data_reply(c, r);
      break;
    case ST_BODY: /* the server spoke out of turn: it gave up on this transaction */
      if (cls == 4 || cls == 5) {
        rest_get(c, r);
        c->final = *r;
        smtpc__dead(c);
        smtpc__tx_finish(c, 0);
      } else {
        smtpc__proto_error(c, "reply out of turn");
      }
      break;
    case ST_DOT:
      if (cls != 2 && cls != 4 && cls != 5) {
        char what[96];
        snprintf(what, sizeof what, "unexpected reply %d%s", r->code,
                 c->o.lmtp ? " for a recipient after the end of data" : "");
        smtpc__proto_error(c, what);
        return;
      }
      if (!c->o.lmtp) {
        rest_get(c, r);
        c->final = *r;
        c->dirty = 0;
        smtpc__tx_finish(c, 0);
        return;
      }
      {
        int i = c->acc[c->seen++];
        c->rr[i] = *r;
        c->rdone[i] = 1;
        if (c->seen < c->expected) {
          smtpc__arm(c, c->o.dot_ms, "the end of data");
          return;
        }
        c->final = *r;
        for (int k = 0; k < c->naccepted; ++k)
          if (c->rr[c->acc[k]].code / 100 != 2) {
            c->final = c->rr[c->acc[k]];
            break;
          }
        c->dirty = 0;
        smtpc__tx_finish(c, 0);
      }
      break;
    default:
      smtpc__proto_error(c, "reply out of turn");
  }
}

/* ---- the API ------------------------------------------------------------------------------ */

/* The client refuses the message itself: every recipient gets the reply, the callback runs
 * from the loop (never from inside smtpc_send). */
static void refuse_locally(smtpc_conn *c, int code, const char *enh, const char *text) {
  smtpc_reply r;
  memset(&r, 0, sizeof r);
  r.code = code;
  snprintf(r.enh, sizeof r.enh, "%s", enh);
  snprintf(r.text, sizeof r.text, "%s", text);
  r.origin = SMTPC_E_POLICY;
  smtpc__set_reply(c, &r, SMTPC_S_MAIL);
  rest_get(c, &r);
  c->final = r;
  c->st = ST_LOCAL;
  smtpc__tx_finish(c, 0);
}

static int send_common(smtpc_conn *c, const char *from, const char *const *rcpts, int n, int fd,
                       const char *mem, int64_t size, unsigned flags, smtpc_sent_fn cb, void *ud) {
  if (!c || !from || !rcpts || n <= 0 || !cb || c->user_closed) return -EINVAL;
  if (c->st == ST_DEAD) return -ENOTCONN;
  if (c->st != ST_READY) return -EBUSY;
  c->from = strdup(from);
  c->rcpts = (char **)calloc((size_t)n, sizeof *c->rcpts);
  c->rr = (smtpc_reply *)calloc((size_t)n, sizeof *c->rr);
  c->rdone = (char *)calloc((size_t)n, 1);
  c->acc = (int *)calloc((size_t)n, sizeof *c->acc);
  c->inbuf = mem ? NULL : (char *)malloc(SMTPC_CHUNK);
  c->outbuf = (char *)malloc(2 * SMTPC_CHUNK + 16);
  c->n = n;
  int ok = c->from && c->rcpts && c->rr && c->rdone && c->acc && (mem || c->inbuf) && c->outbuf;
  for (int i = 0; ok && i < n; ++i) ok = rcpts[i] && (c->rcpts[i] = strdup(rcpts[i])) != NULL;
  if (!ok) {
    smtpc__tx_free(c);
    return -ENOMEM;
  }
  c->fd = fd;
  c->mem = mem;
  c->size = size;
  c->flags = flags;
  c->sent_cb = cb;
  c->sent_ud = ud;
  c->dot_sent = 0;
  c->sent = 0;
  smtpc_enc_init(&c->enc);
  memset(&c->final, 0, sizeof c->final);
  memset(&c->mail_r, 0, sizeof c->mail_r);
  c->in_send = 1;
  if ((c->ext & SMTPC_EXT_SIZE) && c->size_limit > 0 && size > 0 &&
      (uint64_t)size > c->size_limit) {
    char text[200];
    snprintf(text, sizeof text, "Message size %lld exceeds the size limit %llu of the server",
             (long long)size, (unsigned long long)c->size_limit);
    refuse_locally(c, 552, "5.3.4", text);
  } else if ((flags & SMTPC_F_SMTPUTF8) && !(c->ext & SMTPC_EXT_SMTPUTF8)) {
    refuse_locally(c, 553, "5.6.7", "SMTPUTF8 is required, but was not offered by the server");
  } else if ((flags & SMTPC_F_8BIT) && (flags & SMTPC_F_8BIT_REFUSE) &&
             !(c->ext & SMTPC_EXT_8BITMIME)) {
    refuse_locally(c, 554, "5.6.3",
                   "The message has 8-bit content, but the server does not offer 8BITMIME");
  } else if (c->dirty) {
    c->st = ST_RSET;
    if (smtpc__send_cmd(c, "RSET") == 0) smtpc__arm(c, c->o.helo_ms, "RSET");
  } else {
    send_envelope(c);
  }
  c->in_send = 0;
  return 0;
}

int smtpc_send(smtpc_conn *c, const char *from, const char *const *rcpts, int n, int fd,
               int64_t size, unsigned flags, smtpc_sent_fn cb, void *ud) {
  return send_common(c, from, rcpts, n, fd, NULL, size, flags, cb, ud);
}

int smtpc_send_mem(smtpc_conn *c, const char *from, const char *const *rcpts, int n,
                   const char *body, size_t size, unsigned flags, smtpc_sent_fn cb, void *ud) {
  if (!body && size) return -EINVAL;
  return send_common(c, from, rcpts, n, -1, body ? body : "", (int64_t)size, flags, cb, ud);
}

int smtpc_dot_sent(const smtpc_conn *c) {
  return c && c->dot_sent;
}

void smtpc_last_stats(const smtpc_conn *c, int64_t *bytes, unsigned long *stuffed,
                      unsigned long *stray) {
  if (bytes) *bytes = c ? c->sent : 0;
  if (stuffed) *stuffed = c ? c->enc.stuffed : 0;
  if (stray) *stray = c ? c->enc.stray : 0;
}
