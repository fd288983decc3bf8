/* plugins/queue/smtp-forward/fw_client.c: the async SMTP/LMTP client and the reply → verdict mapping. */
/*
 * One fw_job per forwarded message, driven entirely by callbacks on the server's loop: name lookup
 * (uv_getaddrinfo), connect (each address in turn), greeting, EHLO/LHLO (HELO fallback), MAIL and
 * RCPT (one write when PIPELINING is offered), DATA, the message read with uv_fs_read and written
 * dot-stuffed, the final reply (one per recipient in LMTP), QUIT. One timer bounds every wait.
 * The upstream verdict is given exactly once (decide → complete()); the job then says QUIT or just
 * closes, and frees itself when its last handle and request have called back.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fw.h"

#define FW_WATCH_MS (3600u * 1000u) /* client-input watch; re-armed when it runs out */
#define FW_QUIT_MS 5000u

static fw_job *g_jobs;   /* live jobs, loop thread only */
static uint64_t g_serial;

static void on_timer(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_write(uv_write_t *req, int status);
static void close_now(fw_job *j);
static void quit(fw_job *j);
static void try_next(fw_job *j);
static void body_read(fw_job *j);

/* ---- small helpers ------------------------------------------------------------------------ */

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

static fw_job *job_by_serial(uint64_t serial) {
  for (fw_job *j = g_jobs; j; j = j->next)
    if (j->serial == serial) return j;
  return NULL;
}

static const char *verdict_name(uvs_verdict v) {
  switch (v) {
    case UVS_OK: return "OK";
    case UVS_DENY: return "DENY";
    case UVS_DENYSOFT: return "DENYSOFT";
    default: return "?";
  }
}

/* Where the conversation was, for "closed the connection ..." texts. */
static const char *phase(const fw_job *j) {
  switch (j->state) {
    case FW_RESOLVE:
    case FW_CONNECT: return "while connecting";
    case FW_GREETING: return "before the greeting";
    case FW_HELLO: return j->conf->lmtp ? "after LHLO" : "after EHLO";
    case FW_HELO: return "after HELO";
    case FW_SCAN: return "after EHLO";
    case FW_MAIL: return "during MAIL FROM/RCPT TO";
    case FW_DATA: return "after DATA";
    case FW_BODY: return "while receiving the message";
    case FW_DOT: return "after the end of data, before its reply";
    default: return "";
  }
}

static int upstream_gone(const fw_job *j) {
  return j->client_gone || (j->p && !fw_api->pending_call(j->p));
}

static void arm(fw_job *j, uint64_t ms, const char *what) {
  j->what = what;
  uv_timer_start(&j->timer, on_timer, ms, 0);
}

/* ---- the verdict -------------------------------------------------------------------------- */

/* Gives the upstream verdict, once. code 0 = the core's default reply (OK: "250 Queued as"). */
static void decide(fw_job *j, int level, uvs_verdict v, int code, const char *enh, const char *text) {
  if (j->decided) return;
  j->decided = 1;
  char e[16];
  if (code && (!enh || !*enh)) {
    snprintf(e, sizeof e, "%d.0.0", (code / 100) % 10);
    enh = e;
  }
  if (v != UVS_OK)
    fw_log(j, level, "%s %d %s %s (smarthost %s)", verdict_name(v), code, enh ? enh : "", text ? text : "",
           j->conf->label);
  if (!j->p) return;
  uvs_pending *p = j->p;
  j->p = NULL;
  int rc = fw_api->complete(p, v, code, enh, text);
  if (rc == -ECANCELED)
    fw_log(j, UVS_LOG_INFO, "the session no longer waits for this verdict");
  else if (rc < 0)
    fw_log(j, UVS_LOG_ERR, "complete() failed: %s", strerror(-rc));
}

/* Our own temporary failure (unreachable, timeout, closed, local read error): 451 and close. */
static void fail_soft(fw_job *j, const char *enh, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void fail_soft(fw_job *j, const char *enh, const char *fmt, ...) {
  char raw[512], text[501];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  fw_sanitize(text, sizeof text, raw, strlen(raw));
  if (j->dot_sent && !j->decided)
    fw_log(j, UVS_LOG_WARNING,
           "the end of data was sent: the smarthost may have accepted the message (the retry may duplicate it)");
  decide(j, UVS_LOG_WARNING, UVS_DENYSOFT, 451, enh, text);
  close_now(j);
}

static void proto_error(fw_job *j, const char *what) {
  if (j->state == FW_QUIT) {
    close_now(j);
    return;
  }
  fail_soft(j, "4.5.0", "Smarthost %s protocol error %s: %s", j->conf->label, phase(j), what);
}

/* A 4xx/5xx reply from the smarthost becomes the upstream reply: 5xx stays 5xx (DENY), 4xx is
 * DENYSOFT; the code and enhanced code are kept (421 becomes 451: the upstream session goes on).
 * addr, when given, is prefixed unless the text names it already. */
static void pass_reply(fw_job *j, const fw_reply *r, const char *addr, const char *suffix) {
  int cls = r->code / 100;
  if (cls != 4 && cls != 5) {
    char what[64];
    snprintf(what, sizeof what, "unexpected reply %d", r->code);
    proto_error(j, what);
    return;
  }
  int code = r->code == 421 ? 451 : r->code;
  const char *body = r->text[0] ? r->text : "refused by the smarthost";
  char raw[1024], text[501], br[300] = "";
  if (addr) {
    snprintf(br, sizeof br, "<%s>", addr);
    if (fw_contains(body, br) || (*addr && fw_contains(body, addr))) br[0] = 0;
  }
  snprintf(raw, sizeof raw, "%s%s%s%s%s", br, br[0] ? ": " : "", body, suffix ? " " : "", suffix ? suffix : "");
  fw_sanitize(text, sizeof text, raw, strlen(raw));
  decide(j, UVS_LOG_NOTICE, cls == 5 ? UVS_DENY : UVS_DENYSOFT, code, r->enh[0] ? r->enh : NULL, text);
}

/* The greeting or EHLO/LHLO/HELO refused: about this relay, not the message, so temporary. */
static void session_refused(fw_job *j, const fw_reply *r, const char *at) {
  char raw[1024], text[501];
  snprintf(raw, sizeof raw, "Smarthost %s refused the session at %s: %d%s%s %s", j->conf->label, at, r->code,
           r->enh[0] ? " " : "", r->enh, r->text);
  fw_sanitize(text, sizeof text, raw, strlen(raw));
  decide(j, UVS_LOG_WARNING, UVS_DENYSOFT, 451, "4.4.0", text);
}

static void tally_add(fw_tally *t, int i, const fw_reply *r) {
  switch (r->code / 100) {
    case 2: t->ok++; break;
    case 4:
      if (!t->soft++) t->soft_i = i, t->first_soft = *r;
      break;
    case 5:
      if (!t->hard++) t->hard_i = i, t->first_hard = *r;
      break;
    default:
      if (!t->bad++) t->bad_i = i, t->first_bad = *r;
  }
}

/* Per-recipient replies (RCPT, or LMTP's after the dot) → a verdict: any 4xx → DENYSOFT, else any
 * 5xx → DENY, else nothing decided (0). The whole message gets one answer upstream. */
static int verdict_from_tally(fw_job *j, int after_dot) {
  fw_tally *t = &j->t;
  if (t->bad) {
    char what[96];
    snprintf(what, sizeof what, "unexpected reply %d %s", t->first_bad.code,
             after_dot ? "for a recipient after the end of data" : "to RCPT TO");
    proto_error(j, what);
    return 1;
  }
  if (!t->soft && !t->hard) return 0;
  char suffix[128] = "";
  int refused = t->soft + t->hard;
  if (after_dot && t->ok > 0)
    snprintf(suffix, sizeof suffix, "(%d of %d recipients refused; already delivered to the other %d)", refused,
             j->nrcpt, t->ok);
  else if (!after_dot && t->ok > 0)
    snprintf(suffix, sizeof suffix, "(%d of %d recipients refused; not forwarded to any)", refused, j->nrcpt);
  else if (j->nrcpt > 1)
    snprintf(suffix, sizeof suffix, "(all %d recipients refused)", j->nrcpt);
  if (t->soft)
    pass_reply(j, &t->first_soft, j->rcpts[t->soft_i], suffix[0] ? suffix : NULL);
  else
    pass_reply(j, &t->first_hard, j->rcpts[t->hard_i], suffix[0] ? suffix : NULL);
  return 1;
}

static void success(fw_job *j, const fw_reply *r) {
  fw_log(j, UVS_LOG_INFO, "forwarded to %s%s: %d%s%s %s (%lld bytes, %d recipient(s), %lu line(s) dot-stuffed, %lu stray CR/LF replaced)",
         j->conf->label, j->conf->lmtp ? " (LMTP)" : "", r->code, r->enh[0] ? " " : "", r->enh, r->text,
         (long long)j->sent, j->nrcpt, j->enc.stuffed, j->enc.stray);
  if (upstream_gone(j))
    fw_log(j, UVS_LOG_WARNING,
           "the smarthost accepted the message after the client went away: the client did not get 250 "
           "and may send it again");
  decide(j, UVS_LOG_INFO, UVS_OK, 0, NULL, NULL);
}

/* The upstream client closed (or the core stopped waiting) before the end of data went out:
 * nothing may be delivered, the client will send the message again. */
static void abort_for_client(fw_job *j) {
  fw_log(j, UVS_LOG_NOTICE, "the client went away before the end of data: aborting the smarthost transaction "
                            "(nothing delivered)");
  decide(j, UVS_LOG_DEBUG, UVS_DENYSOFT, 451, "4.3.0", "Client went away; message not forwarded");
  if (j->state == FW_DATA || j->state == FW_BODY)
    close_now(j); /* mid-DATA: closing without the dot is the only abort (RFC 5321 §4.1.1.4) */
  else
    quit(j);
}

/* ---- teardown ----------------------------------------------------------------------------- */

static void free_job(fw_job *j) {
  if (j->prev) j->prev->next = j->next;
  else g_jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  if (j->fd >= 0) close(j->fd);
  for (int i = 0; i < j->nrcpt; ++i) free(j->rcpts[i]);
  free(j->rcpts);
  free(j->from);
  free(j->inbuf);
  free(j->outbuf);
  fw_conf_unref(j->conf);
  free(j);
}

static void maybe_free(fw_job *j) {
  if (j->state == FW_CLOSING && j->handles == 0 && !j->gai_active && !j->fs_active && j->connects == 0 &&
      j->writes == 0)
    free_job(j);
}

static void on_handle_close(uv_handle_t *h) {
  fw_job *j = (fw_job *)h->data;
  if (h != (uv_handle_t *)&j->timer) free(h);
  j->handles--;
  maybe_free(j);
}

static void close_tcp(fw_job *j) {
  if (!j->tcp) return;
  uv_handle_t *h = (uv_handle_t *)j->tcp;
  j->tcp = NULL;
  if (!uv_is_closing(h)) uv_close(h, on_handle_close);
}

static void close_now(fw_job *j) {
  if (j->state == FW_CLOSING) return;
  if (!j->decided) decide(j, UVS_LOG_ERR, UVS_DENYSOFT, 451, "4.3.0", "Temporary failure, try again later");
  j->state = FW_CLOSING;
  uv_timer_stop(&j->timer);
  if (!uv_is_closing((uv_handle_t *)&j->timer)) uv_close((uv_handle_t *)&j->timer, on_handle_close);
  close_tcp(j);
  if (j->gai_active) uv_cancel((uv_req_t *)&j->gai); /* its callback still runs */
  maybe_free(j);
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct fw_write {
  uv_write_t req;
  fw_job *j;
  int body;
  char data[];
} fw_write;

/* Queues bytes on the connection; body writes use j->outbuf as is (one in flight at a time),
 * others are copied. On failure the job is failed and closed: the caller must stop. */
static int send_bytes(fw_job *j, const char *data, size_t len, int body) {
  if (!j->tcp || j->state == FW_CLOSING) return -1;
  fw_write *w = (fw_write *)malloc(sizeof *w + (body ? 0 : len));
  if (!w) {
    fail_soft(j, "4.3.0", "Out of memory while forwarding");
    return -1;
  }
  w->j = j;
  w->body = body;
  if (!body) memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(body ? (char *)data : w->data, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)j->tcp, &b, 1, on_write);
  if (rc < 0) {
    free(w);
    fail_soft(j, "4.4.2", "Smarthost %s: connection error %s: %s", j->conf->label, phase(j), uv_strerror(rc));
    return -1;
  }
  j->writes++;
  return 0;
}

static int send_cmd(fw_job *j, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int send_cmd(fw_job *j, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 2, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line - 2) {
    fail_soft(j, "4.3.0", "Command too long for the smarthost");
    return -1;
  }
  fw_log(j, UVS_LOG_DEBUG, "-> %s", line);
  memcpy(line + n, "\r\n", 2);
  return send_bytes(j, line, (size_t)n + 2, 0);
}

static void on_write(uv_write_t *req, int status) {
  fw_write *w = (fw_write *)req;
  fw_job *j = w->j;
  int body = w->body;
  free(w);
  j->writes--;
  if (j->state == FW_CLOSING) {
    maybe_free(j);
    return;
  }
  if (status < 0) {
    if (j->state == FW_QUIT) close_now(j);
    else fail_soft(j, "4.4.2", "Smarthost %s: connection error %s: %s", j->conf->label, phase(j), uv_strerror(status));
    return;
  }
  if (body && j->state == FW_BODY) body_read(j);
}

static void quit(fw_job *j) {
  if (j->state == FW_CLOSING) return;
  if (send_cmd(j, "QUIT") < 0) return;
  j->state = FW_QUIT;
  arm(j, j->conf->cmd_ms < FW_QUIT_MS ? j->conf->cmd_ms : FW_QUIT_MS, "QUIT");
}

/* ---- the message file --------------------------------------------------------------------- */

static int fs_read(fw_job *j, uv_fs_cb cb) {
  uv_buf_t b = uv_buf_init(j->inbuf, FW_CHUNK);
  j->fsreq.data = j;
  int rc = uv_fs_read(j->loop, &j->fsreq, j->fd, &b, 1, j->off, cb);
  if (rc < 0) {
    fail_soft(j, "4.3.0", "Cannot read the spooled message: %s", uv_strerror(rc));
    return rc;
  }
  j->fs_active = 1;
  return 0;
}

static void send_envelope(fw_job *j);

static void on_scan_read(uv_fs_t *req) {
  fw_job *j = (fw_job *)req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  j->fs_active = 0;
  if (j->state != FW_SCAN) {
    maybe_free(j);
    return;
  }
  if (n < 0) {
    fail_soft(j, "4.3.0", "Cannot read the spooled message: %s", uv_strerror((int)n));
    return;
  }
  if (n > 0 && !fw_has_8bit(j->inbuf, (size_t)n)) {
    j->off += n;
    fs_read(j, on_scan_read);
    return;
  }
  j->has_8bit = n > 0;
  send_envelope(j);
}

static void on_body_read(uv_fs_t *req) {
  fw_job *j = (fw_job *)req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  j->fs_active = 0;
  if (j->state != FW_BODY) {
    maybe_free(j);
    return;
  }
  if (n < 0) { /* closing without the dot: the smarthost discards the transaction */
    fail_soft(j, "4.3.0", "Cannot read the spooled message: %s", uv_strerror((int)n));
    return;
  }
  if (upstream_gone(j)) {
    abort_for_client(j);
    return;
  }
  size_t len;
  if (n == 0) {
    len = fw_enc_finish(&j->enc, j->outbuf);
    j->state = FW_DOT;
    j->dot_sent = 1;
    j->expected = j->conf->lmtp ? j->nrcpt : 1;
    j->seen = 0;
    memset(&j->t, 0, sizeof j->t);
    arm(j, j->conf->data_ms, "the end of data");
  } else {
    len = fw_enc_chunk(&j->enc, j->inbuf, (size_t)n, j->outbuf);
    j->off += n;
  }
  j->sent += (int64_t)len;
  send_bytes(j, j->outbuf, len, 1);
}

static void body_read(fw_job *j) {
  arm(j, j->conf->cmd_ms, "the message");
  fs_read(j, on_body_read);
}

/* ---- the SMTP conversation ---------------------------------------------------------------- */

static void hello(fw_job *j) {
  const char *verb = j->conf->lmtp ? "LHLO" : "EHLO";
  if (send_cmd(j, "%s %s", verb, j->conf->helo) < 0) return;
  j->state = FW_HELLO;
  arm(j, j->conf->cmd_ms, verb);
}

static void send_envelope(fw_job *j) {
  int pipe = (j->ext & FW_EXT_PIPELINING) != 0;
  sbuf b = {0};
  sb_addf(&b, "MAIL FROM:<%s>", j->from);
  if ((j->ext & FW_EXT_SIZE) && j->size >= 0) sb_addf(&b, " SIZE=%lld", (long long)j->size);
  if ((j->ext & FW_EXT_8BITMIME) && j->has_8bit) sb_addf(&b, " BODY=8BITMIME");
  if (j->utf8_addr) sb_addf(&b, " SMTPUTF8"); /* only reached when offered */
  if (!b.oom) fw_log(j, UVS_LOG_DEBUG, "-> %s", b.p);
  sb_addf(&b, "\r\n");
  for (int i = 0; pipe && i < j->nrcpt; ++i) {
    fw_log(j, UVS_LOG_DEBUG, "-> RCPT TO:<%s>", j->rcpts[i]);
    sb_addf(&b, "RCPT TO:<%s>\r\n", j->rcpts[i]);
  }
  if (b.oom) {
    free(b.p);
    fail_soft(j, "4.3.0", "Out of memory while forwarding");
    return;
  }
  int rc = send_bytes(j, b.p, b.len, 0);
  free(b.p);
  if (rc < 0) return;
  j->state = FW_MAIL;
  j->expected = pipe ? 1 + j->nrcpt : 1;
  j->seen = 0;
  memset(&j->t, 0, sizeof j->t);
  arm(j, j->conf->cmd_ms, pipe ? "MAIL FROM and RCPT TO" : "MAIL FROM");
}

static void after_hello(fw_job *j) {
  if (j->utf8_addr && !(j->ext & FW_EXT_SMTPUTF8)) {
    char text[400];
    snprintf(text, sizeof text, "SMTPUTF8 is required, but was not offered by smarthost %s", j->conf->label);
    decide(j, UVS_LOG_NOTICE, UVS_DENY, 553, "5.6.7", text);
    quit(j);
    return;
  }
  if (j->ext & FW_EXT_8BITMIME) {
    j->state = FW_SCAN;
    j->off = 0;
    arm(j, j->conf->cmd_ms, "reading the spooled message");
    fs_read(j, on_scan_read);
    return;
  }
  send_envelope(j);
}

static void conclude_envelope(fw_job *j) {
  int mc = j->mail.code / 100;
  if (mc != 2) {
    pass_reply(j, &j->mail, NULL, NULL);
    quit(j);
    return;
  }
  if (verdict_from_tally(j, 0)) {
    quit(j);
    return;
  }
  if (send_cmd(j, "DATA") < 0) return;
  j->state = FW_DATA;
  arm(j, j->conf->cmd_ms, "DATA");
}

static void on_reply(fw_job *j, const fw_reply *r, int ext) {
  int cls = r->code / 100;
  fw_log(j, UVS_LOG_DEBUG, "<- %d%s%s %s", r->code, r->enh[0] ? " " : "", r->enh, r->text);
  if (j->state == FW_QUIT) {
    close_now(j);
    return;
  }
  if (j->state < FW_DOT && upstream_gone(j)) {
    abort_for_client(j);
    return;
  }
  switch (j->state) {
    case FW_GREETING:
      if (r->code == 220) {
        hello(j);
      } else if (cls == 4 || cls == 5) {
        session_refused(j, r, "the greeting");
        quit(j);
      } else {
        proto_error(j, "greeting is not 220");
      }
      break;
    case FW_HELLO:
      if (cls == 2) {
        j->ext = ext;
        after_hello(j);
      } else if (cls == 5 && !j->conf->lmtp) {
        if (send_cmd(j, "HELO %s", j->conf->helo) < 0) return;
        j->state = FW_HELO;
        arm(j, j->conf->cmd_ms, "HELO");
      } else if (cls == 4 || cls == 5) {
        session_refused(j, r, j->conf->lmtp ? "LHLO" : "EHLO");
        quit(j);
      } else {
        proto_error(j, "unexpected reply to EHLO");
      }
      break;
    case FW_HELO:
      if (cls == 2) {
        j->ext = 0;
        after_hello(j);
      } else if (cls == 4 || cls == 5) {
        session_refused(j, r, "HELO");
        quit(j);
      } else {
        proto_error(j, "unexpected reply to HELO");
      }
      break;
    case FW_MAIL: {
      int idx = j->seen++;
      if (idx == 0) j->mail = *r;
      else tally_add(&j->t, idx - 1, r);
      if (!(j->ext & FW_EXT_PIPELINING)) {
        if (idx == 0 && cls != 2) {
          conclude_envelope(j);
        } else if (idx < j->nrcpt) { /* one RCPT at a time; all are asked (see verdict_from_tally) */
          if (send_cmd(j, "RCPT TO:<%s>", j->rcpts[idx]) < 0) return;
          j->expected++;
          arm(j, j->conf->cmd_ms, "RCPT TO");
        } else {
          conclude_envelope(j);
        }
      } else if (j->seen < j->expected) {
        arm(j, j->conf->cmd_ms, "MAIL FROM and RCPT TO");
      } else {
        conclude_envelope(j);
      }
      break;
    }
    case FW_DATA:
      if (r->code == 354) {
        j->state = FW_BODY;
        fw_enc_init(&j->enc);
        j->off = 0;
        j->sent = 0;
        body_read(j);
      } else if (cls == 4 || cls == 5) {
        pass_reply(j, r, NULL, NULL);
        quit(j);
      } else {
        proto_error(j, "unexpected reply to DATA");
      }
      break;
    case FW_SCAN:
    case FW_BODY: /* the smarthost spoke out of turn: it gave up on this transaction */
      if (cls == 4 || cls == 5) pass_reply(j, r, NULL, NULL);
      else proto_error(j, "reply out of turn");
      close_now(j);
      break;
    case FW_DOT:
      if (!j->conf->lmtp) {
        if (cls == 2) success(j, r);
        else pass_reply(j, r, NULL, NULL);
        quit(j);
        break;
      }
      tally_add(&j->t, j->seen, r);
      if (++j->seen < j->expected) {
        arm(j, j->conf->data_ms, "the end of data");
        break;
      }
      if (!verdict_from_tally(j, 1)) success(j, r);
      quit(j);
      break;
    default:
      proto_error(j, "reply out of turn");
  }
}

/* ---- reading ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  fw_job *j = (fw_job *)h->data;
  (void)suggested;
  buf->base = j->rbuf;
  buf->len = sizeof j->rbuf;
}

static void on_eof(fw_job *j, int err) {
  if (j->state == FW_QUIT) {
    close_now(j);
    return;
  }
  if (err == UV_EOF)
    fail_soft(j, "4.4.2", "Smarthost %s closed the connection %s", j->conf->label, phase(j));
  else
    fail_soft(j, "4.4.2", "Smarthost %s: connection error %s: %s", j->conf->label, phase(j), uv_strerror(err));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  fw_job *j = (fw_job *)s->data;
  if (j->state == FW_CLOSING || s != (uv_stream_t *)j->tcp) return;
  if (n < 0) {
    on_eof(j, (int)n);
    return;
  }
  size_t off = 0;
  while (off < (size_t)n && j->state != FW_CLOSING) {
    size_t used = 0;
    int r = fw_parse(&j->ps, buf->base + off, (size_t)n - off, &used);
    off += used;
    if (r < 0) {
      proto_error(j, j->ps.err);
      return;
    }
    if (r == 0) break;
    fw_reply rep = j->ps.cur;
    int ext = j->ps.ext;
    fw_parser_reset(&j->ps);
    on_reply(j, &rep, ext);
  }
}

/* ---- connecting --------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
  fw_job *j = (fw_job *)req->data;
  uv_stream_t *h = req->handle;
  free(req);
  j->connects--;
  if (j->state != FW_CONNECT || h != (uv_stream_t *)j->tcp) { /* a stale attempt, or closing */
    maybe_free(j);
    return;
  }
  if (status < 0) {
    snprintf(j->last_err, sizeof j->last_err, "%s", uv_strerror(status));
    close_tcp(j);
    try_next(j);
    return;
  }
  uv_tcp_nodelay(j->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)j->tcp, on_alloc, on_read);
  if (rc < 0) {
    fail_soft(j, "4.4.2", "Smarthost %s: connection error: %s", j->conf->label, uv_strerror(rc));
    return;
  }
  j->state = FW_GREETING;
  fw_log(j, UVS_LOG_DEBUG, "connected to %s", j->conf->label);
  arm(j, j->conf->cmd_ms, "the greeting");
}

/* Connects to the next address; when none is left, the smarthost is unreachable. */
static void try_next(fw_job *j) {
  while (j->addr_i < j->naddr) {
    const struct sockaddr *sa = (const struct sockaddr *)&j->addrs[j->addr_i++];
    uv_tcp_t *t = (uv_tcp_t *)malloc(sizeof *t);
    uv_connect_t *req = (uv_connect_t *)malloc(sizeof *req);
    if (!t || !req || uv_tcp_init(j->loop, t) < 0) {
      free(t), free(req);
      fail_soft(j, "4.3.0", "Out of memory while forwarding");
      return;
    }
    t->data = j;
    j->handles++;
    j->tcp = t;
    req->data = j;
    int rc = uv_tcp_connect(req, t, sa, on_connect);
    if (rc == 0) {
      j->connects++;
      j->state = FW_CONNECT;
      arm(j, j->conf->connect_ms, "the connection");
      return;
    }
    free(req);
    snprintf(j->last_err, sizeof j->last_err, "%s", uv_strerror(rc));
    close_tcp(j);
  }
  fail_soft(j, "4.4.1", "Smarthost %s unreachable: %s", j->conf->label, j->last_err[0] ? j->last_err : "no address");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  fw_job *j = (fw_job *)req->data;
  j->gai_active = 0;
  if (j->state != FW_RESOLVE) {
    if (res) uv_freeaddrinfo(res);
    maybe_free(j);
    return;
  }
  if (status < 0) {
    if (res) uv_freeaddrinfo(res);
    fail_soft(j, "4.4.3", "Smarthost %s: name lookup failed: %s", j->conf->label, uv_strerror(status));
    return;
  }
  j->naddr = 0;
  for (struct addrinfo *ai = res; ai && j->naddr < FW_MAX_ADDRS; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof j->addrs[0]) continue;
    memcpy(&j->addrs[j->naddr++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  try_next(j);
}

static void on_timer(uv_timer_t *t) {
  fw_job *j = (fw_job *)t->data;
  switch (j->state) {
    case FW_RESOLVE:
      fail_soft(j, "4.4.3", "Smarthost %s: name lookup timed out", j->conf->label);
      return;
    case FW_CONNECT:
      snprintf(j->last_err, sizeof j->last_err, "connection timed out");
      close_tcp(j);
      try_next(j);
      return;
    case FW_QUIT:
      close_now(j);
      return;
    case FW_CLOSING:
      return;
    case FW_SCAN:
      fail_soft(j, "4.3.0", "Timed out reading the spooled message");
      return;
    case FW_BODY:
      fail_soft(j, "4.4.2", "Smarthost %s stalled while receiving the message", j->conf->label);
      return;
    default:
      fail_soft(j, "4.4.2", "Smarthost %s timed out waiting for the reply to %s", j->conf->label, j->what);
  }
}

static void on_client_input(uvs_pending *p, int result, void *ud) {
  fw_job *j = job_by_serial((uint64_t)(uintptr_t)ud);
  if (!j || j->p != p || j->decided) return;
  if (result == UVS_INPUT_TIMEOUT) {
    fw_api->wait_for_input(p, FW_WATCH_MS, on_client_input, ud);
  } else if (result == UVS_INPUT_EOF && !j->client_gone) {
    j->client_gone = 1;
    fw_log(j, UVS_LOG_INFO, "the client closed the connection (or the core stopped waiting) while forwarding");
  }
  /* UVS_INPUT_DATA: the client pipelined its next command; the session reads it later. */
}

void fw_job_start(fw_job *j) {
  j->serial = ++g_serial;
  j->next = g_jobs;
  if (g_jobs) g_jobs->prev = j;
  g_jobs = j;
  fw_parser_reset(&j->ps);
  uv_timer_init(j->loop, &j->timer);
  j->timer.data = j;
  j->handles++;
  /* Notice the client leaving (the session interprets no input while the queue hook is
   * pending; once this watch has ended, the core itself gives up on the call at an EOF). */
  fw_api->wait_for_input(j->p, FW_WATCH_MS, on_client_input, (void *)(uintptr_t)j->serial);
  const fw_conf *cf = j->conf;
  if (cf->numeric) {
    int rc = strchr(cf->host, ':') ? uv_ip6_addr(cf->host, cf->port, (struct sockaddr_in6 *)&j->addrs[0])
                                   : uv_ip4_addr(cf->host, cf->port, (struct sockaddr_in *)&j->addrs[0]);
    if (rc < 0) {
      fail_soft(j, "4.4.1", "Smarthost %s: bad address: %s", cf->label, uv_strerror(rc));
      return;
    }
    j->naddr = 1;
    try_next(j);
    return;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char port[8];
  snprintf(port, sizeof port, "%d", cf->port);
  j->gai.data = j;
  j->state = FW_RESOLVE;
  int rc = uv_getaddrinfo(j->loop, &j->gai, on_resolved, cf->host, port, &hints);
  if (rc < 0) {
    fail_soft(j, "4.4.3", "Smarthost %s: name lookup failed: %s", cf->label, uv_strerror(rc));
    return;
  }
  j->gai_active = 1;
  arm(j, cf->connect_ms, "the name lookup");
}
