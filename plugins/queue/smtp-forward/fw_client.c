/* plugins/queue/smtp-forward/fw_client.c: one forward (name lookup, the shared SMTP client, the
 * 8-bit scan) and the mapping of the smarthost's replies to the upstream verdict. */
/*
 * One fw_job per forwarded message, driven by callbacks on the server's loop: name lookup
 * (uv_getaddrinfo), then the shared client library server/smtpc (smtpc.h) connects to each
 * address in turn, says EHLO/LHLO (HELO fallback), and runs the transaction: MAIL and RCPT
 * (pipelined when offered), DATA, the message read with uv_fs_read and sent dot-stuffed, the
 * final reply (one per recipient in LMTP), QUIT. Between the session and the transaction the
 * plugin reads the message once for 8-bit bytes when the smarthost offers 8BITMIME. The
 * upstream verdict is given exactly once (decide → complete()); the job frees itself when its
 * handles and requests have called back (the smtpc connection frees itself after smtpc_close).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fw.h"

#define FW_WATCH_MS (3600u * 1000u) /* client-input watch; re-armed when it runs out */
#define FW_POLL_MS 100u             /* how often a running forward checks the upstream */

static fw_job *g_jobs; /* live jobs, loop thread only */
static uint64_t g_serial;

static void send_message(fw_job *j);
static void finish(fw_job *j);

/* ---- small helpers ------------------------------------------------------------------------ */

int fw_has_8bit(const char *s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if ((unsigned char)s[i] & 0x80) return 1;
  return 0;
}

/* Copies src into dst (cap bytes incl. NUL) with controls and non-ASCII bytes replaced by '?'. */
static void sanitize(char *dst, size_t cap, const char *src) {
  size_t o = 0;
  for (; *src && o + 1 < cap; ++src) {
    unsigned char c = (unsigned char)*src;
    dst[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
  }
  while (o > 0 && dst[o - 1] == ' ') --o;
  dst[o] = 0;
}

static int contains(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0) return 1;
  for (; *hay; ++hay)
    if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

static fw_job *job_by_serial(uint64_t serial) {
  for (fw_job *j = g_jobs; j; j = j->next)
    if (j->serial == serial) return j;
  return NULL;
}

static const char *verdict_name(uvs_verdict v) {
  switch (v) {
    case UVS_OK:
      return "OK";
    case UVS_DENY:
      return "DENY";
    case UVS_DENYSOFT:
      return "DENYSOFT";
    default:
      return "?";
  }
}

static int upstream_gone(const fw_job *j) {
  return j->client_gone || (j->p && !fw_api->pending_call(j->p));
}

/* The client library's lines go to the plugin's log at debug level (the plugin logs its own
 * verdicts). */
static void smtpc_log_line(void *ud, int level, const char *msg) {
  (void)level;
  fw_log((fw_job *)ud, UVS_LOG_DEBUG, "%s", msg);
}

/* ---- the verdict -------------------------------------------------------------------------- */

/* Gives the upstream verdict, once. code 0 = the core's default reply (OK: "250 Queued as"). */
static void decide(fw_job *j, int level, uvs_verdict v, int code, const char *enh,
                   const char *text) {
  if (j->decided) return;
  j->decided = 1;
  char e[16];
  if (code && (!enh || !*enh)) {
    snprintf(e, sizeof e, "%d.0.0", (code / 100) % 10);
    enh = e;
  }
  if (v != UVS_OK)
    fw_log(j, level, "%s %d %s %s (smarthost %s)", verdict_name(v), code, enh ? enh : "",
           text ? text : "", j->conf->label);
  if (!j->p) return;
  uvs_pending *p = j->p;
  j->p = NULL;
  int rc = fw_api->complete(p, v, code, enh, text);
  if (rc == -ECANCELED)
    fw_log(j, UVS_LOG_INFO, "the session no longer waits for this verdict");
  else if (rc < 0)
    fw_log(j, UVS_LOG_ERR, "complete() failed: %s", strerror(-rc));
}

/* Ends the smarthost connection (QUIT between commands, else a plain close) and the job. */
static void end(fw_job *j) {
  if (j->sc) smtpc_close(j->sc);
  j->sc = NULL;
  finish(j);
}

/* Our own temporary failure (unreachable, timeout, closed, local read error): 451 and close. */
static void fail_soft(fw_job *j, const char *enh, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void fail_soft(fw_job *j, const char *enh, const char *fmt, ...) {
  char raw[1024], text[501];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  sanitize(text, sizeof text, raw);
  if (j->sc && smtpc_dot_sent(j->sc) && !j->decided)
    fw_log(j, UVS_LOG_WARNING,
           "the end of data was sent: the smarthost may have accepted the message (the retry may "
           "duplicate it)");
  decide(j, UVS_LOG_WARNING, UVS_DENYSOFT, 451, enh, text);
  end(j);
}

/* A failure the client library reports (its reply's origin says which kind). */
static void local_failure(fw_job *j, const smtpc_reply *r) {
  const char *label = j->conf->label;
  switch (r->origin) {
    case SMTPC_E_CONNECT:
      fail_soft(j, "4.4.1", "Smarthost %s unreachable: %s", label, r->text);
      break;
    case SMTPC_E_IOERR:
      fail_soft(j, r->enh, "Smarthost %s: %s", label, r->text);
      break;
    case SMTPC_E_READ:
      fail_soft(j, "4.3.0", "Cannot read the spooled message: %s", r->text);
      break;
    case SMTPC_E_LOCAL:
      fail_soft(j, "4.3.0", "Temporary failure while forwarding: %s", r->text);
      break;
    default: /* timeouts, closed, protocol errors: "Smarthost H timed out waiting for ..." */
      fail_soft(j, r->enh[0] ? r->enh : "4.4.2", "Smarthost %s %s", label, r->text);
  }
}

/* A 4xx/5xx reply from the smarthost becomes the upstream reply: 5xx stays 5xx (DENY), 4xx is
 * DENYSOFT; the code and enhanced code are kept (421 becomes 451: the upstream session goes on).
 * addr, when given, is prefixed unless the text names it already. */
static void pass_reply(fw_job *j, const smtpc_reply *r, const char *addr, const char *suffix) {
  int cls = r->code / 100;
  if (cls != 4 && cls != 5) { /* the library reports other codes as protocol errors */
    fail_soft(j, "4.5.0", "Smarthost %s protocol error: unexpected reply %d", j->conf->label,
              r->code);
    return;
  }
  int code = r->code == 421 ? 451 : r->code;
  const char *body = r->text[0] ? r->text : "refused by the smarthost";
  char raw[1024], text[501], br[300] = "";
  if (addr) {
    snprintf(br, sizeof br, "<%s>", addr);
    if (contains(body, br) || (*addr && contains(body, addr))) br[0] = 0;
  }
  snprintf(raw, sizeof raw, "%s%s%s%s%s", br, br[0] ? ": " : "", body, suffix ? " " : "",
           suffix ? suffix : "");
  sanitize(text, sizeof text, raw);
  decide(j, UVS_LOG_NOTICE, cls == 5 ? UVS_DENY : UVS_DENYSOFT, code, r->enh[0] ? r->enh : NULL,
         text);
}

/* The greeting or EHLO/LHLO/HELO refused: about this relay, not the message, so temporary. */
static void session_refused(fw_job *j, const smtpc_reply *r) {
  const char *at = r->stage == SMTPC_S_GREETING ? "the greeting"
                   : r->stage == SMTPC_S_HELO   ? "HELO"
                   : j->conf->lmtp              ? "LHLO"
                                                : "EHLO";
  char raw[1024], text[501];
  snprintf(raw, sizeof raw, "Smarthost %s refused the session at %s: %d%s%s %s", j->conf->label, at,
           r->code, r->enh[0] ? " " : "", r->enh, r->text);
  sanitize(text, sizeof text, raw);
  decide(j, UVS_LOG_WARNING, UVS_DENYSOFT, 451, "4.4.0", text);
}

static void tally_add(fw_tally *t, int i, const smtpc_reply *r) {
  switch (r->code / 100) {
    case 2:
      t->ok++;
      break;
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
  if (!t->soft && !t->hard) return 0;
  char suffix[128] = "";
  int refused = t->soft + t->hard;
  if (after_dot && t->ok > 0)
    snprintf(suffix, sizeof suffix,
             "(%d of %d recipients refused; already delivered to the other %d)", refused, j->nrcpt,
             t->ok);
  else if (!after_dot && t->ok > 0)
    snprintf(suffix, sizeof suffix, "(%d of %d recipients refused; not forwarded to any)", refused,
             j->nrcpt);
  else if (j->nrcpt > 1)
    snprintf(suffix, sizeof suffix, "(all %d recipients refused)", j->nrcpt);
  if (t->soft)
    pass_reply(j, &t->first_soft, j->rcpts[t->soft_i], suffix[0] ? suffix : NULL);
  else
    pass_reply(j, &t->first_hard, j->rcpts[t->hard_i], suffix[0] ? suffix : NULL);
  return 1;
}

static void success(fw_job *j, const smtpc_reply *r) {
  int64_t sent = 0;
  unsigned long stuffed = 0, stray = 0;
  smtpc_last_stats(j->sc, &sent, &stuffed, &stray);
  fw_log(j, UVS_LOG_INFO,
         "forwarded to %s%s: %d%s%s %s (%lld bytes, %d recipient(s), %lu line(s) dot-stuffed, %lu "
         "stray CR/LF replaced)",
         j->conf->label, j->conf->lmtp ? " (LMTP)" : "", r->code, r->enh[0] ? " " : "", r->enh,
         r->text, (long long)sent, j->nrcpt, stuffed, stray);
  if (upstream_gone(j))
    fw_log(
        j, UVS_LOG_WARNING,
        "the smarthost accepted the message after the client went away: the client did not get 250 "
        "and may send it again");
  decide(j, UVS_LOG_INFO, UVS_OK, 0, NULL, NULL);
}

/* The upstream client closed (or the core stopped waiting) before the end of data went out:
 * nothing may be delivered, the client will send the message again. smtpc_close() sends QUIT
 * between commands and closes without the dot after DATA (RFC 5321 §4.1.1.4). */
static void abort_for_client(fw_job *j) {
  fw_log(j, UVS_LOG_NOTICE,
         "the client went away before the end of data: aborting the smarthost transaction "
         "(nothing delivered)");
  decide(j, UVS_LOG_DEBUG, UVS_DENYSOFT, 451, "4.3.0", "Client went away; message not forwarded");
  end(j);
}

/* ---- teardown ----------------------------------------------------------------------------- */

static void free_job(fw_job *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    g_jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  if (j->fd >= 0) close(j->fd);
  for (int i = 0; i < j->nrcpt; ++i) free(j->rcpts[i]);
  free(j->rcpts);
  free(j->from);
  free(j->inbuf);
  fw_conf_unref(j->conf);
  free(j);
}

static void maybe_free(fw_job *j) {
  if (j->finished && j->handles == 0 && !j->gai_active && !j->fs_active) free_job(j);
}

static void on_handle_close(uv_handle_t *h) {
  fw_job *j = (fw_job *)h->data;
  j->handles--;
  maybe_free(j);
}

static void finish(fw_job *j) {
  if (j->finished) return;
  if (!j->decided)
    decide(j, UVS_LOG_ERR, UVS_DENYSOFT, 451, "4.3.0", "Temporary failure, try again later");
  j->finished = 1;
  if (j->sc) smtpc_close(j->sc);
  j->sc = NULL;
  uv_timer_stop(&j->timer);
  if (!uv_is_closing((uv_handle_t *)&j->timer)) uv_close((uv_handle_t *)&j->timer, on_handle_close);
  if (j->gai_active) uv_cancel((uv_req_t *)&j->gai); /* its callback still runs */
  maybe_free(j);
}

/* ---- the transaction ---------------------------------------------------------------------- */

static void on_sent(smtpc_conn *sc, int status, const smtpc_reply *final, const smtpc_reply *rr,
                    int n, void *ud) {
  fw_job *j = (fw_job *)ud;
  (void)sc;
  if (status < 0) {
    local_failure(j, final);
    return;
  }
  memset(&j->t, 0, sizeof j->t);
  switch (final->stage) {
    case SMTPC_S_RCPT: /* a recipient was refused: DATA was not sent */
      for (int i = 0; i < n; ++i) tally_add(&j->t, i, &rr[i]);
      if (!verdict_from_tally(j, 0)) fail_soft(j, "4.3.0", "Temporary failure, try again later");
      break;
    case SMTPC_S_DOT:
      if (!j->conf->lmtp) {
        if (final->code / 100 == 2)
          success(j, final);
        else
          pass_reply(j, final, NULL, NULL);
        break;
      }
      for (int i = 0; i < n; ++i) tally_add(&j->t, i, &rr[i]);
      if (!verdict_from_tally(j, 1)) success(j, final);
      break;
    default: /* MAIL, DATA refused, or a reply while the message was on its way */
      pass_reply(j, final, NULL, NULL);
  }
  end(j);
}

static void send_message(fw_job *j) {
  unsigned flags = SMTPC_F_ALL_OR_NOTHING | (j->has_8bit ? SMTPC_F_8BIT : 0) |
                   (j->utf8_addr ? SMTPC_F_SMTPUTF8 : 0);
  int rc = smtpc_send(j->sc, j->from, (const char *const *)j->rcpts, j->nrcpt, j->fd, j->size,
                      flags, on_sent, j);
  if (rc == -ENOTCONN)
    fail_soft(j, "4.4.2", "Smarthost %s closed the connection after %s", j->conf->label,
              j->conf->lmtp ? "LHLO" : "EHLO");
  else if (rc < 0)
    fail_soft(j, "4.3.0", "Temporary failure while forwarding: %s", strerror(-rc));
}

/* ---- the 8-bit scan ----------------------------------------------------------------------- */

static void on_poll(uv_timer_t *t);

static void arm_poll(fw_job *j) {
  uv_timer_start(&j->timer, on_poll, FW_POLL_MS, FW_POLL_MS);
}

static int scan_read(fw_job *j);

static void on_scan_read(uv_fs_t *req) {
  fw_job *j = (fw_job *)req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  j->fs_active = 0;
  if (j->finished || !j->scanning) {
    maybe_free(j);
    return;
  }
  if (n < 0) {
    j->scanning = 0;
    fail_soft(j, "4.3.0", "Cannot read the spooled message: %s", uv_strerror((int)n));
    return;
  }
  if (upstream_gone(j)) {
    j->scanning = 0;
    abort_for_client(j);
    return;
  }
  if (n > 0 && !fw_has_8bit(j->inbuf, (size_t)n)) {
    j->off += n;
    scan_read(j);
    return;
  }
  j->scanning = 0;
  j->has_8bit = n > 0;
  arm_poll(j);
  send_message(j);
}

static int scan_read(fw_job *j) {
  uv_buf_t b = uv_buf_init(j->inbuf, FW_CHUNK);
  j->fsreq.data = j;
  int rc = uv_fs_read(j->loop, &j->fsreq, j->fd, &b, 1, j->off, on_scan_read);
  if (rc < 0) {
    j->scanning = 0;
    fail_soft(j, "4.3.0", "Cannot read the spooled message: %s", uv_strerror(rc));
    return rc;
  }
  j->fs_active = 1;
  return 0;
}

static void on_scan_timeout(uv_timer_t *t) {
  fw_job *j = (fw_job *)t->data;
  j->scanning = 0;
  fail_soft(j, "4.3.0", "Timed out reading the spooled message");
}

/* ---- the session -------------------------------------------------------------------------- */

static void on_ready(smtpc_conn *sc, int status, const smtpc_reply *why, void *ud) {
  fw_job *j = (fw_job *)ud;
  if (!sc) {
    j->sc = NULL;
    if (status > 0 && why->origin == SMTPC_SERVER) {
      session_refused(j, why);
      finish(j);
    } else {
      local_failure(j, why);
    }
    return;
  }
  if (upstream_gone(j)) {
    abort_for_client(j);
    return;
  }
  unsigned ext = smtpc_ext(sc);
  if (j->utf8_addr && !(ext & SMTPC_EXT_SMTPUTF8)) {
    char text[400];
    snprintf(text, sizeof text, "SMTPUTF8 is required, but was not offered by smarthost %s",
             j->conf->label);
    decide(j, UVS_LOG_NOTICE, UVS_DENY, 553, "5.6.7", text);
    end(j);
    return;
  }
  if (ext & SMTPC_EXT_8BITMIME) { /* BODY=8BITMIME only for a message that has 8-bit bytes */
    j->scanning = 1;
    j->off = 0;
    uv_timer_start(&j->timer, on_scan_timeout, j->conf->cmd_ms, 0);
    scan_read(j);
    return;
  }
  send_message(j);
}

/* While the client library works: has the upstream gone away? Before the end of data was sent,
 * the smarthost transaction is abandoned; after it, the reply is awaited as usual. */
static void on_poll(uv_timer_t *t) {
  fw_job *j = (fw_job *)t->data;
  if (j->finished || !j->sc || !upstream_gone(j) || smtpc_dot_sent(j->sc)) return;
  abort_for_client(j);
}

static void start_client(fw_job *j) {
  const fw_conf *cf = j->conf;
  smtpc_opts o;
  memset(&o, 0, sizeof o);
  o.loop = j->loop;
  o.helo = cf->helo;
  o.lmtp = cf->lmtp;
  o.connect_ms = cf->connect_ms;
  o.greeting_ms = o.helo_ms = o.mail_ms = o.rcpt_ms = o.data_ms = o.block_ms = cf->cmd_ms;
  o.dot_ms = cf->data_ms;
  o.log = smtpc_log_line;
  o.log_ud = j;
  int rc = smtpc_connect(&o, j->addrs, j->naddr, on_ready, j, &j->sc);
  if (rc < 0) {
    fail_soft(j, "4.3.0", "Temporary failure while forwarding: %s", strerror(-rc));
    return;
  }
  arm_poll(j);
}

/* ---- the name lookup ---------------------------------------------------------------------- */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  fw_job *j = (fw_job *)req->data;
  j->gai_active = 0;
  if (j->finished || !j->resolving) {
    if (res) uv_freeaddrinfo(res);
    maybe_free(j);
    return;
  }
  j->resolving = 0;
  uv_timer_stop(&j->timer);
  if (status < 0) {
    if (res) uv_freeaddrinfo(res);
    fail_soft(j, "4.4.3", "Smarthost %s: name lookup failed: %s", j->conf->label,
              uv_strerror(status));
    return;
  }
  j->naddr = 0;
  for (struct addrinfo *ai = res; ai && j->naddr < FW_MAX_ADDRS; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof j->addrs[0])
      continue;
    memset(&j->addrs[j->naddr], 0, sizeof j->addrs[0]);
    memcpy(&j->addrs[j->naddr++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  if (j->naddr == 0) {
    fail_soft(j, "4.4.1", "Smarthost %s unreachable: no address", j->conf->label);
    return;
  }
  if (upstream_gone(j)) {
    abort_for_client(j);
    return;
  }
  start_client(j);
}

static void on_resolve_timeout(uv_timer_t *t) {
  fw_job *j = (fw_job *)t->data;
  j->resolving = 0;
  fail_soft(j, "4.4.3", "Smarthost %s: name lookup timed out", j->conf->label);
}

static void on_client_input(uvs_pending *p, int result, void *ud) {
  fw_job *j = job_by_serial((uint64_t)(uintptr_t)ud);
  if (!j || j->p != p || j->decided) return;
  if (result == UVS_INPUT_TIMEOUT) {
    fw_api->wait_for_input(p, FW_WATCH_MS, on_client_input, ud);
  } else if (result == UVS_INPUT_EOF && !j->client_gone) {
    j->client_gone = 1;
    fw_log(j, UVS_LOG_INFO,
           "the client closed the connection (or the core stopped waiting) while forwarding");
  }
  /* UVS_INPUT_DATA: the client pipelined its next command; the session reads it later. */
}

void fw_job_start(fw_job *j) {
  j->serial = ++g_serial;
  j->next = g_jobs;
  if (g_jobs) g_jobs->prev = j;
  g_jobs = j;
  uv_timer_init(j->loop, &j->timer);
  j->timer.data = j;
  j->handles++;
  /* Notice the client leaving (the session interprets no input while the queue hook is
   * pending; once this watch has ended, the core itself gives up on the call at an EOF). */
  fw_api->wait_for_input(j->p, FW_WATCH_MS, on_client_input, (void *)(uintptr_t)j->serial);
  const fw_conf *cf = j->conf;
  if (cf->numeric) {
    int rc = strchr(cf->host, ':')
                 ? uv_ip6_addr(cf->host, cf->port, (struct sockaddr_in6 *)&j->addrs[0])
                 : uv_ip4_addr(cf->host, cf->port, (struct sockaddr_in *)&j->addrs[0]);
    if (rc < 0) {
      fail_soft(j, "4.4.1", "Smarthost %s: bad address: %s", cf->label, uv_strerror(rc));
      return;
    }
    j->naddr = 1;
    start_client(j);
    return;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char port[8];
  snprintf(port, sizeof port, "%d", cf->port);
  j->gai.data = j;
  j->resolving = 1;
  int rc = uv_getaddrinfo(j->loop, &j->gai, on_resolved, cf->host, port, &hints);
  if (rc < 0) {
    j->resolving = 0;
    fail_soft(j, "4.4.3", "Smarthost %s: name lookup failed: %s", cf->label, uv_strerror(rc));
    return;
  }
  j->gai_active = 1;
  uv_timer_start(&j->timer, on_resolve_timeout, cf->connect_ms, 0);
}
