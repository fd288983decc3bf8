/* tests/plugins/api_probe.c: a test plugin that calls EVERY uvs_api member and logs what it got (tests/integration/test_plugin_host.cpp asserts it).
 *
 * Every result is a log line at NOTICE, "<instance>: <hook> <key>=<value>", NULL strings as
 * "(null)". Registers every hook. What it does per hook:
 *   init        plugin_name/argc/argv/set_data/data, me, event_loop, config_lines (file
 *               "probe_list" if present, missing file, bad names, early stop), register_hook errors
 *               (-ENOSYS for 999 and 0, -EINVAL for NULL fn), set_error, set_errorf (NULL plugin
 *               -EINVAL, NULL format, an unencodable %ls -EINVAL), log(NULL plugin); the single
 *               argument "errorf" makes init fail through set_errorf with a message of over 600
 *               bytes whose arguments hold '%' signs
 *   pre-connection  peer_ip, send_continuation (-EPERM)
 *   connect     session/peer/local accessors (with tls_info (1.3): the result, -EINVAL for a
 *               NULL call or out and a size too small, the fields when in TLS), remote_host,
 *               empty transaction accessors,
 *               message accessors outside DATA, register_hook after init (-EPERM),
 *               send_continuation (0, -EINVAL for CRLF), notes (strings, pointers with
 *               destructors, replacing runs the old destructor, type mismatches, bad
 *               scope/key), is_immune (relay,
 *               whitelisthost, whitelistsender), adjust_karma; then suspend (second suspend
 *               NULL, pending_call, run_blocking NULL work -EINVAL), pending_timer 30 ms whose
 *               callback sends one more continuation line through pending_call and completes
 *               DECLINED
 *   helo/ehlo   helo_name/is_esmtp before the command takes effect, call_arg/address,
 *               send_continuation (-EPERM); sets transaction note probe.early
 *   mail        call_arg/address/param, mail_from (NULL before), rcpt_replace (-EPERM outside
 *               rcpt), transaction notes (string
 *               and a pointer whose destructor logs "dtor txn:<address>")
 *   rcpt        mail_from, rcpt_count/rcpt_at, notes; local part "thread": suspend +
 *               run_blocking (the worker logs from the pool thread, done() completes OK
 *               "probe thread ok"); "badcomplete": complete() with code 199 (-EINVAL; OK with
 *               the default reply); "late": completes OK after 800 ms; "alias*": rcpt_replace
 *               (1.3): "aliasbad" its -EINVAL cases, then OK; "aliaslist" a list with a
 *               duplicate, OK; "aliasmany" three addresses, OK; "aliasdeclined" a list, then
 *               DECLINED; "aliaspending" suspends, replaces from a timer, OK; anything else OK
 *   data, data_headers_end, data_post  rcpt list, message_size/message_read/header_get,
 *               message_fd (read with pread, closed)
 *   queue       OK with reply "probe queued"
 *   vrfy ARG    "wait MS": wait_for_input -> complete OK "input timeout|input data|input eof";
 *               "gone": timer 300 ms, then pending_call and complete() (the client left);
 *               "late MS": complete only after MS (after the hook timeout)
 *   help ARG    "dns NAME TYPE": dns_query (bad type, NULL cb/name -EINVAL), then OK with the
 *               reply "dns status=S count=N answers..."
 *   noop ARG    "replycheck": reply/reply_line validation; "multiline": DENY with two lines;
 *               "mismatch": 250 with DENY (default reply); "done": DONE with a 250 reply
 *   disconnect  notes, suspend (NULL: not allowed in a notification)
 *   deny/ok     call_arg (plugin) and call_address (verdict)
 *   1.3 members (UVS_API_HAS body_replace_fd): init hook_timeout_ms, set_errorfv, logv
 *               ("init logv seven=7"), timer_start/timer_stop (a stopped timer, NULL cases, a
 *               one-shot logging "init timer fired=1"); connect pending_on_cancel (its cb never
 *               runs), pending_note_set (NULL/bad scope; the timer sets probe.pnote, helo/ehlo
 *               log it as pnote=), dns_query_conn/dns_cancel_conn error cases, header_add/
 *               insert/delete/replace and body_replace_fd (-EPERM outside the edit hooks)
 *   fini        logs "fini"
 */
#define _POSIX_C_SOURCE 200809L /* pread */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

enum { NHOOKS = 21 };
static const char *const hook_names[NHOOKS] = {
    "?", "pre-connection", "connect", "helo", "ehlo", "mail", "rcpt", "data",
    "data_headers_end", "data_post", "queue", "queue_post", "reset_transaction", "quit",
    "disconnect", "unrecognized_command", "vrfy", "noop", "help", "deny", "ok"};

typedef struct probe {
  uvs_plugin *self;
  int config_calls;
} probe;

typedef struct tagged { /* a pointer note: its destructor logs its tag */
  probe *st;
  char tag[96];
} tagged;

typedef struct job {
  probe *st;
  uvs_pending *p;
  char what[32];
} job;

static const char *S(const char *s) { return s ? s : "(null)"; }

/* One result line. call may be NULL (then no session id is prepended). */
static void out(probe *st, const uvs_call *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void out(probe *st, const uvs_call *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  api->log(st->self, c, UVS_LOG_NOTICE, "%s", buf);
}

static void tagged_free(void *ptr) {
  tagged *t = (tagged *)ptr;
  out(t->st, NULL, "dtor %s", t->tag);
  free(t);
}

static tagged *new_tagged(probe *st, const char *tag) {
  tagged *t = (tagged *)calloc(1, sizeof *t);
  t->st = st;
  snprintf(t->tag, sizeof t->tag, "%s", tag);
  return t;
}

static job *new_job(probe *st, uvs_pending *p, const char *what) {
  job *j = (job *)calloc(1, sizeof *j);
  j->st = st;
  j->p = p;
  snprintf(j->what, sizeof j->what, "%s", what);
  return j;
}

/* ---- init helpers -------------------------------------------------------------------- */

static int collect_line(const char *line, void *ud) {
  probe *st = (probe *)ud;
  st->config_calls++;
  out(st, NULL, "init config_line=%s", line);
  return 0;
}

static int stop_after_one(const char *line, void *ud) {
  (void)line;
  ((probe *)ud)->config_calls++;
  return 1;
}

static uvs_verdict on_hook(uvs_call *c, void *ud);

/* ---- common accessors ---------------------------------------------------------------- */

/* tls_info (1.3): the result, the -EINVAL cases, and the fields when the session is in TLS
 * (keys "<hook> tls_protocol" and so on, for the TLS tests). */
static void log_tls_info(probe *st, uvs_call *c, const char *h) {
  if (!UVS_API_HAS(api, tls_info)) return;
  uvs_tls_info ti;
  memset(&ti, 0, sizeof ti);
  ti.size = sizeof ti;
  ti.protocol = "untouched";
  int rc = api->tls_info(c, &ti);
  out(st, c, "%s tls_info=%d", h, rc);
  if (rc == 0) {
    out(st, c, "%s tls_protocol=%s", h, S(ti.protocol));
    out(st, c, "%s tls_cipher=%s", h, S(ti.cipher));
    out(st, c, "%s tls_bits=%d", h, ti.bits);
    out(st, c, "%s tls_sni=%s", h, S(ti.sni));
    out(st, c, "%s tls_client_cert=%d", h, ti.client_cert);
    out(st, c, "%s tls_client_cert_verified=%d", h, ti.client_cert_verified);
    out(st, c, "%s tls_client_subject=%s", h, S(ti.client_subject));
    out(st, c, "%s tls_client_fingerprint=%s", h, S(ti.client_fingerprint_sha256));
  } else {
    out(st, c, "%s tls_info_out=%s", h, S(ti.protocol)); /* not written on failure */
  }
  uvs_tls_info small;
  memset(&small, 0, sizeof small);
  small.size = offsetof(uvs_tls_info, client_fingerprint_sha256); /* one field short */
  out(st, c, "%s tls_info_small=%d", h, api->tls_info(c, &small));
  small.size = 0;
  out(st, c, "%s tls_info_zero=%d", h, api->tls_info(c, &small));
  out(st, c, "%s tls_info_nullout=%d", h, api->tls_info(c, NULL));
  out(st, c, "%s tls_info_nullcall=%d", h, api->tls_info(NULL, &ti));
}

static void log_session(probe *st, uvs_call *c, const char *h) {
  out(st, c, "%s session_id=%s", h, S(api->session_id(c)));
  out(st, c, "%s peer_ip=%s", h, S(api->peer_ip(c)));
  out(st, c, "%s peer_port=%d", h, api->peer_port(c));
  out(st, c, "%s local_ip=%s", h, S(api->local_ip(c)));
  out(st, c, "%s local_port=%d", h, api->local_port(c));
  out(st, c, "%s helo_name=%s", h, S(api->helo_name(c)));
  out(st, c, "%s is_esmtp=%d", h, api->is_esmtp(c));
  out(st, c, "%s mail_from=%s", h, S(api->mail_from(c)));
  out(st, c, "%s rcpt_count=%d", h, api->rcpt_count(c));
  out(st, c, "%s tls_active=%d", h, api->tls_active(c));
  log_tls_info(st, c, h);
  out(st, c, "%s auth_user=%s", h, S(api->auth_user(c)));
  if (UVS_API_HAS(api, auth_mechanism)) { /* 1.4: NULL outside the auth hook (and before AUTH) */
    out(st, c, "%s auth_password=%s", h, S(api->auth_password(c)));
    out(st, c, "%s auth_mechanism=%s", h, S(api->auth_mechanism(c)));
    out(st, c, "%s auth_password_null=%s", h, S(api->auth_password(NULL)));
    out(st, c, "%s auth_mechanism_null=%s", h, S(api->auth_mechanism(NULL)));
  }
  out(st, c, "%s relay_client=%d", h, api->relay_client(c));
}

static void log_rcpts(probe *st, uvs_call *c, const char *h) {
  int n = api->rcpt_count(c);
  out(st, c, "%s rcpt_count=%d", h, n);
  for (int i = 0; i < n; ++i) out(st, c, "%s rcpt_at[%d]=%s", h, i, S(api->rcpt_at(c, i)));
  out(st, c, "%s rcpt_at_oob=%s", h, S(api->rcpt_at(c, n)));
  out(st, c, "%s rcpt_at_neg=%s", h, S(api->rcpt_at(c, -1)));
}

/* ---- connect --------------------------------------------------------------------------- */

/* ---- the newest 1.3 members (timers, pending notes and cancel, logv/set_errorfv,
 * hook_timeout_ms, connection DNS, message edits) ------------------------------------------ */
static void probe_logv(probe *st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void probe_logv(probe *st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  api->logv(st->self, NULL, UVS_LOG_NOTICE, fmt, ap);
  va_end(ap);
}
static int probe_set_errorfv(uvs_plugin *self, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int probe_set_errorfv(uvs_plugin *self, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = api->set_errorfv(self, fmt, ap);
  va_end(ap);
  return rc;
}
static void once_timer(uvs_timer *t, void *ud) {
  (void)t;
  out((probe *)ud, NULL, "init timer fired=1");
}
static void never_timer(uvs_timer *t, void *ud) {
  (void)t;
  out((probe *)ud, NULL, "init stopped timer fired=1"); /* must not happen */
}
static void on_cancel(uvs_pending *p, void *ud) {
  (void)p;
  out((probe *)ud, NULL, "connect cancelled=1"); /* must not happen: the call completes */
}
static void conn_dns(int64_t id, int status, int count, const char *const *answers, void *ud) {
  (void)id, (void)status, (void)count, (void)answers, (void)ud;
}

static void connect_timer(uvs_pending *p, void *ud) {
  job *j = (job *)ud;
  probe *st = j->st;
  uvs_call *c = api->pending_call(p);
  out(st, c, "connect timer pending_call=%s", c ? "ok" : "(null)");
  if (c) {
    out(st, c, "connect timer hook=%d", (int)api->call_hook(c));
    out(st, c, "connect timer note=%s", S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.conn")));
    out(st, c, "connect timer send_continuation=%d", api->send_continuation(c, "probe teaser from timer"));
  }
  if (UVS_API_HAS(api, pending_note_set)) /* 1.3: applied before the verdict; helo sees it */
    out(st, NULL, "connect pending_note_set=%d",
        api->pending_note_set(p, UVS_NOTE_CONNECTION, "probe.pnote", "from pending"));
  int rc = api->complete(p, UVS_DECLINED, 0, NULL, NULL);
  out(st, NULL, "connect complete=%d", rc); /* p and c are gone now: no call handle */
  free(j);
}

static uvs_verdict on_connect(probe *st, uvs_call *c) {
  const char *h = "connect";
  log_session(st, c, h);
  out(st, c, "%s rcpt_at0=%s", h, S(api->rcpt_at(c, 0)));
  out(st, c, "%s call_param=%s", h, S(api->call_param(c, "SIZE")));
  char buf[16];
  out(st, c, "%s message_size=%lld", h, (long long)api->message_size(c));
  out(st, c, "%s message_read=%lld", h, (long long)api->message_read(c, 0, buf, sizeof buf));
  out(st, c, "%s header_get=%s", h, S(api->header_get(c, "Subject", 0)));
  if (UVS_API_HAS(api, message_fd)) out(st, c, "%s message_fd=%d", h, api->message_fd(c));
  if (UVS_API_HAS(api, remote_host)) out(st, c, "%s remote_host=%s", h, S(api->remote_host(c)));
  out(st, c, "%s register_late=%d", h, api->register_hook(st->self, UVS_HOOK_HELO, on_hook, st));
  out(st, c, "%s send_continuation=%d", h, api->send_continuation(c, "probe teaser"));
  out(st, c, "%s send_continuation_crlf=%d", h, api->send_continuation(c, "bad\r\nline"));

  /* notes */
  out(st, c, "%s note_set=%d", h, api->note_set(c, UVS_NOTE_CONNECTION, "probe.conn", "c1"));
  out(st, c, "%s note_get=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.conn")));
  out(st, c, "%s note_get_txn_scope=%s", h, S(api->note_get(c, UVS_NOTE_TRANSACTION, "probe.conn")));
  out(st, c, "%s note_set_bad_scope=%d", h, api->note_set(c, 5, "k", "v"));
  out(st, c, "%s note_set_empty_key=%d", h, api->note_set(c, UVS_NOTE_CONNECTION, "", "v"));
  out(st, c, "%s note_set_null_key=%d", h, api->note_set(c, UVS_NOTE_CONNECTION, NULL, "v"));
  out(st, c, "%s note_set_ptr_bad_scope=%d", h, api->note_set_ptr(c, -1, "k", NULL, NULL));
  tagged *conn = new_tagged(st, "conn");
  out(st, c, "%s note_set_ptr=%d", h,
      api->note_set_ptr(c, UVS_NOTE_CONNECTION, "probe.connptr", conn, tagged_free));
  tagged *got = (tagged *)api->note_get_ptr(c, UVS_NOTE_CONNECTION, "probe.connptr");
  out(st, c, "%s note_get_ptr=%s", h, got == conn ? "same" : "other");
  out(st, c, "%s note_get_on_ptr=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.connptr")));
  out(st, c, "%s note_get_ptr_on_str=%s", h,
      api->note_get_ptr(c, UVS_NOTE_CONNECTION, "probe.conn") ? "non-null" : "(null)");
  /* replacing a pointer note runs the old destructor at once, also when a string replaces it */
  api->note_set_ptr(c, UVS_NOTE_CONNECTION, "probe.replace", new_tagged(st, "replaced"), tagged_free);
  api->note_set_ptr(c, UVS_NOTE_CONNECTION, "probe.replace", new_tagged(st, "replacement"), tagged_free);
  api->note_set(c, UVS_NOTE_CONNECTION, "probe.replace", "now a string");
  out(st, c, "%s note_replaced=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.replace")));
  /* erasing with a NULL value */
  api->note_set(c, UVS_NOTE_CONNECTION, "probe.erase", "x");
  api->note_set(c, UVS_NOTE_CONNECTION, "probe.erase", NULL);
  out(st, c, "%s note_erased=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.erase")));

  /* immunity and karma */
  out(st, c, "%s is_immune=%d", h, api->is_immune(c));
  api->note_set(c, UVS_NOTE_CONNECTION, "whitelisthost", "1");
  out(st, c, "%s is_immune_whitelisthost=%d", h, api->is_immune(c));
  api->note_set(c, UVS_NOTE_CONNECTION, "whitelisthost", "0");
  out(st, c, "%s is_immune_whitelisthost0=%d", h, api->is_immune(c));
  api->note_set(c, UVS_NOTE_CONNECTION, "whitelisthost", NULL);
  api->note_set(c, UVS_NOTE_TRANSACTION, "whitelistsender", "1");
  out(st, c, "%s is_immune_whitelistsender=%d", h, api->is_immune(c));
  api->note_set(c, UVS_NOTE_TRANSACTION, "whitelistsender", NULL);
  out(st, c, "%s set_relay_client=%d", h, api->set_relay_client(c, 1));
  out(st, c, "%s relay_client_on=%d", h, api->relay_client(c));
  out(st, c, "%s is_immune_relay=%d", h, api->is_immune(c));
  api->set_relay_client(c, 0);
  out(st, c, "%s relay_client_off=%d", h, api->relay_client(c));
  out(st, c, "%s is_immune_after=%d", h, api->is_immune(c));
  out(st, c, "%s karma_plus=%d", h, api->adjust_karma(c, 2));
  out(st, c, "%s karma_minus=%d", h, api->adjust_karma(c, -3));
  out(st, c, "%s karma_note=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "karma")));

  /* async: suspend and finish from a loop timer */
  uvs_pending *p = api->suspend(c);
  out(st, c, "%s suspend=%s", h, p ? "ok" : "(null)");
  if (!p) return UVS_DECLINED;
  out(st, c, "%s suspend_again=%s", h, api->suspend(c) ? "non-null" : "(null)");
  out(st, c, "%s pending_call_in_hook=%s", h, api->pending_call(p) == c ? "same" : "other");
  out(st, c, "%s run_blocking_null=%d", h, api->run_blocking(p, NULL, NULL, NULL));
  out(st, c, "%s pending_timer_null=%d", h, api->pending_timer(p, 1, NULL, NULL));
  job *j = new_job(st, p, "connect");
  out(st, c, "%s pending_timer=%d", h, api->pending_timer(p, 30, connect_timer, j));
  if (UVS_API_HAS(api, body_replace_fd)) { /* 1.3 */
    out(st, c, "%s pending_on_cancel=%d", h, api->pending_on_cancel(p, on_cancel, st));
    out(st, c, "%s pending_on_cancel_null=%d", h, api->pending_on_cancel(NULL, on_cancel, st));
    out(st, c, "%s pending_note_set_null=%d", h,
        api->pending_note_set(NULL, UVS_NOTE_CONNECTION, "k", "v"));
    out(st, c, "%s pending_note_set_bad_scope=%d", h, api->pending_note_set(p, 99, "k", "v"));
    out(st, c, "%s dns_query_conn_null_cb=%lld", h,
        (long long)api->dns_query_conn(c, "example.invalid", 1, 0, NULL, NULL));
    out(st, c, "%s dns_query_conn_null_call=%lld", h,
        (long long)api->dns_query_conn(NULL, "example.invalid", 1, 0, conn_dns, NULL));
    out(st, c, "%s dns_cancel_conn_unknown=%d", h, api->dns_cancel_conn(c, 999999999));
    out(st, c, "%s dns_cancel_conn_null=%d", h, api->dns_cancel_conn(NULL, 1));
    /* message edits outside data_headers_end/data_post: -EPERM */
    out(st, c, "%s header_add=%d", h, api->header_add(c, "X-Probe", "1", UVS_HEADER_TOP));
    out(st, c, "%s header_insert=%d", h, api->header_insert(c, "To", 0, "X-Probe", "1"));
    out(st, c, "%s header_delete=%d", h, api->header_delete(c, "To", 0));
    out(st, c, "%s header_replace=%d", h, api->header_replace(c, "To", 0, "x"));
    out(st, c, "%s body_replace_fd=%d", h, api->body_replace_fd(c, 0));
  }
  out(st, c, "%s end", h);
  return UVS_PENDING;
}

/* The completion of a call that the session may have stopped waiting for (client gone,
 * hook timeout): pending_call() is then NULL and complete() says -ECANCELED. */
static void late_timer(uvs_pending *p, void *ud) {
  job *j = (job *)ud;
  uvs_call *c = api->pending_call(p);
  out(j->st, NULL, "%s pending_call=%s", j->what, c ? "ok" : "(null)");
  int rc = api->complete(p, UVS_OK, 0, NULL, "too late");
  out(j->st, NULL, "%s complete=%d", j->what, rc);
  free(j);
}

/* ---- rcpt ------------------------------------------------------------------------------ */

static void rcpt_work(void *ud) {
  job *j = (job *)ud;
  /* log() may be called from any thread */
  api->log(j->st->self, NULL, UVS_LOG_NOTICE, "rcpt worker thread log");
}

static void rcpt_work_done(uvs_pending *p, void *ud) {
  job *j = (job *)ud;
  uvs_call *c = api->pending_call(p);
  out(j->st, c, "rcpt done pending_call=%s", c ? "ok" : "(null)");
  if (c) out(j->st, c, "rcpt done rcpt_count=%d", api->rcpt_count(c));
  int rc = api->complete(p, UVS_OK, 250, NULL, "probe thread ok");
  out(j->st, NULL, "rcpt done complete=%d", rc);
  free(j);
}

static void badcomplete_timer(uvs_pending *p, void *ud) {
  job *j = (job *)ud;
  int rc = api->complete(p, UVS_OK, 199, NULL, "bad code");
  out(j->st, NULL, "rcpt badcomplete complete=%d", rc);
  free(j);
}

/* rcpt_replace (1.3) from a timer, through pending_call: then OK. */
static void alias_timer(uvs_pending *p, void *ud) {
  job *j = (job *)ud;
  static const char *const later[] = {"later@example.test"};
  int rc = api->rcpt_replace(api->pending_call(p), later, 1);
  out(j->st, NULL, "rcpt aliaspending rcpt_replace=%d", rc);
  api->complete(p, UVS_OK, 0, NULL, NULL);
  free(j);
}

/* Local parts starting "alias" exercise rcpt_replace (1.3). Returns 1 when it answered. */
static int rcpt_alias(probe *st, uvs_call *c, const char *addr, uvs_verdict *v) {
  static const char *const bad_domain[] = {"nodomain"};
  static const char *const bad_route[] = {"@r.example:u@example.test"};
  static const char *const bad_brackets[] = {"<u@example.test>"};
  static const char *const bad_space[] = {"a b@example.test"};
  static const char *const bad_8bit[] = {"j\xc3\xb6rg@example.test"};
  static const char *const bad_null[] = {"one@example.test", NULL};
  static const char *const list[] = {"one@example.test", "two@example.test",
                                     "one@EXAMPLE.TEST", "\"q.u\"@example.test",
                                     "kept@example.test"};
  static const char *const many[] = {"m1@example.test", "m2@example.test", "m3@example.test"};
  if (strncmp(addr, "aliasbad@", 9) == 0) {
    out(st, c, "rcpt rcpt_replace_null=%d", api->rcpt_replace(c, NULL, 1));
    out(st, c, "rcpt rcpt_replace_n0=%d", api->rcpt_replace(c, list, 0));
    out(st, c, "rcpt rcpt_replace_nodomain=%d", api->rcpt_replace(c, bad_domain, 1));
    out(st, c, "rcpt rcpt_replace_route=%d", api->rcpt_replace(c, bad_route, 1));
    out(st, c, "rcpt rcpt_replace_brackets=%d", api->rcpt_replace(c, bad_brackets, 1));
    out(st, c, "rcpt rcpt_replace_space=%d", api->rcpt_replace(c, bad_space, 1));
    out(st, c, "rcpt rcpt_replace_8bit=%d", api->rcpt_replace(c, bad_8bit, 1));
    out(st, c, "rcpt rcpt_replace_nullentry=%d", api->rcpt_replace(c, bad_null, 2));
    *v = UVS_OK; /* nothing valid was recorded: the address itself is added */
    return 1;
  }
  if (strncmp(addr, "aliaslist@", 10) == 0) {
    out(st, c, "rcpt rcpt_replace_first=%d", api->rcpt_replace(c, many, 1)); /* replaced below */
    out(st, c, "rcpt rcpt_replace=%d", api->rcpt_replace(c, list, 5));
    *v = UVS_OK;
    return 1;
  }
  if (strncmp(addr, "aliasmany@", 10) == 0) {
    out(st, c, "rcpt rcpt_replace_many=%d", api->rcpt_replace(c, many, 3));
    *v = UVS_OK;
    return 1;
  }
  if (strncmp(addr, "aliasdeclined@", 14) == 0) { /* a replacement without OK is dropped */
    out(st, c, "rcpt rcpt_replace_declined=%d", api->rcpt_replace(c, many, 3));
    *v = UVS_DECLINED;
    return 1;
  }
  if (strncmp(addr, "aliaspending@", 13) == 0) {
    uvs_pending *p = api->suspend(c);
    if (!p) return 0;
    api->pending_timer(p, 10, alias_timer, new_job(st, p, "alias"));
    *v = UVS_PENDING;
    return 1;
  }
  return 0;
}

static uvs_verdict on_rcpt(probe *st, uvs_call *c) {
  const char *h = "rcpt";
  const char *addr = api->call_address(c);
  out(st, c, "%s call_arg=%s", h, api->call_arg(c));
  out(st, c, "%s call_address=%s", h, addr);
  out(st, c, "%s mail_from=%s", h, S(api->mail_from(c)));
  log_rcpts(st, c, h);
  out(st, c, "%s note_txn=%s", h, S(api->note_get(c, UVS_NOTE_TRANSACTION, "probe.txn")));
  tagged *t = (tagged *)api->note_get_ptr(c, UVS_NOTE_TRANSACTION, "probe.txnptr");
  out(st, c, "%s note_txnptr=%s", h, t ? t->tag : "(null)");
  out(st, c, "%s note_early=%s", h, S(api->note_get(c, UVS_NOTE_TRANSACTION, "probe.early")));
  if (strncmp(addr, "thread@", 7) == 0) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    job *j = new_job(st, p, "rcpt");
    int rc = api->run_blocking(p, rcpt_work, rcpt_work_done, j);
    out(st, c, "%s run_blocking=%d", h, rc);
    if (rc < 0) {
      free(j);
      api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
    }
    return UVS_PENDING;
  }
  if (strncmp(addr, "late@", 5) == 0) { /* completes after 800 ms: after a short hook_timeout */
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    api->pending_timer(p, 800, late_timer, new_job(st, p, "rcpt late"));
    return UVS_PENDING;
  }
  if (strncmp(addr, "badcomplete@", 12) == 0) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    api->pending_timer(p, 10, badcomplete_timer, new_job(st, p, "badcomplete"));
    return UVS_PENDING;
  }
  uvs_verdict v = UVS_OK;
  if (rcpt_alias(st, c, addr, &v)) return v;
  return UVS_OK;
}

/* ---- data ------------------------------------------------------------------------------ */

static void on_data_post(probe *st, uvs_call *c) {
  const char *h = "data_post";
  int64_t size = api->message_size(c);
  out(st, c, "%s message_size=%lld", h, (long long)size);
  /* read it all, in odd-sized pieces */
  char *msg = (char *)malloc((size_t)(size > 0 ? size : 0) + 1);
  int64_t total = 0;
  for (;;) {
    int64_t n = api->message_read(c, total, msg + total, size - total < 7 ? (size_t)(size - total) : 7);
    if (n <= 0) break;
    total += n;
    if (total >= size) break;
  }
  msg[total] = 0;
  out(st, c, "%s read_total=%lld", h, (long long)total);
  char tail[8];
  out(st, c, "%s read_at_end=%lld", h, (long long)api->message_read(c, size, tail, sizeof tail));
  out(st, c, "%s read_negative=%lld", h, (long long)api->message_read(c, -1, tail, sizeof tail));
  out(st, c, "%s read_null_buf=%lld", h, (long long)api->message_read(c, 0, NULL, 4));
  size_t first = strcspn(msg, "\r\n");
  out(st, c, "%s first_line=%.*s", h, (int)first, msg);
  out(st, c, "%s body_marker=%d", h, strstr(msg, "\r\nprobe body marker\r\n") != NULL);
  int crlf_only = 1;
  for (int64_t i = 0; i < total; ++i)
    if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')) crlf_only = 0;
  out(st, c, "%s crlf_only=%d", h, crlf_only);
  out(st, c, "%s dot_unstuffed=%d", h, strstr(msg, "\r\n.leading dot\r\n") != NULL);
  free(msg);
  if (UVS_API_HAS(api, message_fd)) {
    /* the plugin's own descriptor: same bytes as message_read, closed by us */
    int fd = api->message_fd(c);
    out(st, c, "%s message_fd_ok=%d", h, fd >= 0);
    if (fd >= 0) {
      char buf[4096];
      int64_t fd_total = 0;
      ssize_t n;
      while ((n = pread(fd, buf, sizeof buf, (off_t)fd_total)) > 0) fd_total += n;
      out(st, c, "%s message_fd_total=%lld", h, (long long)fd_total);
      close(fd);
    }
  }
  out(st, c, "%s header_subject=%s", h, S(api->header_get(c, "subject", 0)));
  out(st, c, "%s header_probe0=%s", h, S(api->header_get(c, "X-Probe", 0)));
  out(st, c, "%s header_probe1=%s", h, S(api->header_get(c, "x-probe", 1)));
  out(st, c, "%s header_probe2=%s", h, S(api->header_get(c, "X-Probe", 2)));
  out(st, c, "%s header_folded=%s", h, S(api->header_get(c, "X-Folded", 0)));
  out(st, c, "%s header_missing=%s", h, S(api->header_get(c, "X-Missing", 0)));
  out(st, c, "%s header_neg=%s", h, S(api->header_get(c, "Subject", -1)));
  out(st, c, "%s header_body_line=%s", h, S(api->header_get(c, "Body-Looking", 0)));
  out(st, c, "%s note_txn=%s", h, S(api->note_get(c, UVS_NOTE_TRANSACTION, "probe.txn")));
  log_rcpts(st, c, h);
}

/* ---- vrfy: input watch, client gone, late completion ------------------------------------ */

static void vrfy_input(uvs_pending *p, int result, void *ud) {
  job *j = (job *)ud;
  uvs_call *c = api->pending_call(p);
  out(j->st, c, "vrfy input=%d", result);
  const char *text = result == UVS_INPUT_DATA ? "input data" : result == UVS_INPUT_EOF ? "input eof" : "input timeout";
  int rc = api->complete(p, UVS_OK, 0, NULL, text);
  out(j->st, NULL, "vrfy input complete=%d", rc);
  free(j);
}

static uvs_verdict on_vrfy(probe *st, uvs_call *c) {
  const char *arg = api->call_arg(c);
  out(st, c, "vrfy arg=%s", arg);
  if (strncmp(arg, "wait ", 5) == 0) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    job *j = new_job(st, p, "wait");
    out(st, c, "vrfy wait_for_input=%d", api->wait_for_input(p, (uint64_t)atoi(arg + 5), vrfy_input, j));
    out(st, c, "vrfy wait_for_input_again=%d", api->wait_for_input(p, 10, vrfy_input, j));
    out(st, c, "vrfy wait_for_input_null=%d", api->wait_for_input(p, 10, NULL, j));
    return UVS_PENDING;
  }
  if (strcmp(arg, "gone") == 0 || strncmp(arg, "late ", 5) == 0) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    int gone = arg[0] == 'g';
    job *j = new_job(st, p, gone ? "vrfy gone" : "vrfy late");
    api->pending_timer(p, gone ? 300 : (uint64_t)atoi(arg + 5), late_timer, j);
    return UVS_PENDING;
  }
  return UVS_DECLINED;
}

/* ---- help: dns_query (1.1) ------------------------------------------------------------- */

static void help_dns_answer(uvs_pending *p, int status, int count, const char *const *answers, void *ud) {
  job *j = (job *)ud;
  char text[300];
  int len = snprintf(text, sizeof text, "dns status=%d count=%d", status, count);
  for (int i = 0; i < count && len > 0 && (size_t)len < sizeof text; ++i)
    len += snprintf(text + len, sizeof text - (size_t)len, " %s", answers[i]);
  out(j->st, api->pending_call(p), "help %s", text);
  out(j->st, NULL, "help dns complete=%d", api->complete(p, UVS_OK, 0, NULL, text));
  free(j);
}

static uvs_verdict on_help(probe *st, uvs_call *c) {
  const char *arg = api->call_arg(c);
  out(st, c, "help call_arg=%s", arg);
  char name[200];
  int type = 0;
  if (UVS_API_HAS(api, dns_query) && sscanf(arg, "dns %199s %d", name, &type) == 2) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    out(st, c, "help dns_bad_type=%d", api->dns_query(p, name, 99, 0, help_dns_answer, NULL));
    out(st, c, "help dns_null_cb=%d", api->dns_query(p, name, type, 0, NULL, NULL));
    out(st, c, "help dns_null_name=%d", api->dns_query(p, NULL, type, 0, help_dns_answer, NULL));
    job *j = new_job(st, p, "dns");
    int rc = api->dns_query(p, name, type, 2000, help_dns_answer, j);
    out(st, c, "help dns_query=%d", rc);
    if (rc < 0) {
      free(j);
      api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
    }
    return UVS_PENDING;
  }
  return UVS_DECLINED;
}

/* ---- noop: reply validation ------------------------------------------------------------- */

static uvs_verdict on_noop(probe *st, uvs_call *c) {
  const char *arg = api->call_arg(c);
  const char *h = "noop";
  if (strcmp(arg, "replycheck") == 0) {
    char big[502];
    memset(big, 'x', sizeof big - 1);
    big[501] = 0;
    out(st, c, "%s reply_ok=%d", h, api->reply(c, 0, NULL, "fine"));
    out(st, c, "%s reply_crlf=%d", h, api->reply(c, 0, NULL, "a\r\nb"));
    out(st, c, "%s reply_lf=%d", h, api->reply(c, 0, NULL, "a\nb"));
    out(st, c, "%s reply_cr=%d", h, api->reply(c, 0, NULL, "a\rb"));
    out(st, c, "%s reply_tab=%d", h, api->reply(c, 0, NULL, "a\tb"));
    out(st, c, "%s reply_del=%d", h, api->reply(c, 0, NULL, "a\x7f"));
    out(st, c, "%s reply_code_low=%d", h, api->reply(c, 199, NULL, "x"));
    out(st, c, "%s reply_code_high=%d", h, api->reply(c, 600, NULL, "x"));
    out(st, c, "%s reply_class_mismatch=%d", h, api->reply(c, 550, "4.7.1", "x"));
    out(st, c, "%s reply_bad_enhanced=%d", h, api->reply(c, 550, "5.7", "x"));
    out(st, c, "%s reply_bad_enhanced_class=%d", h, api->reply(c, 0, "3.0.0", "x"));
    out(st, c, "%s reply_501_bytes=%d", h, api->reply(c, 550, "5.7.1", big));
    big[500] = 0;
    out(st, c, "%s reply_500_bytes=%d", h, api->reply(c, 550, "5.7.1", big));
    out(st, c, "%s reply_null_text=%d", h, api->reply(c, 550, NULL, NULL));
    out(st, c, "%s reply_line_cr=%d", h, api->reply_line(c, "a\rb"));
    out(st, c, "%s reply_line_null=%d", h, api->reply_line(c, NULL));
    api->reply(c, 0, NULL, "line 0");
    int ok = 0, rc = 0;
    while ((rc = api->reply_line(c, "more")) == 0 && ok < 1000) ++ok;
    out(st, c, "%s reply_line_accepted=%d", h, ok);
    out(st, c, "%s reply_line_limit=%d", h, rc);
    out(st, c, "%s send_continuation=%d", h, api->send_continuation(c, "x"));
    return UVS_DECLINED; /* a DECLINED verdict drops the reply: the default 250 is sent */
  }
  if (strcmp(arg, "multiline") == 0) {
    api->reply(c, 550, "5.7.1", "probe line one");
    api->reply_line(c, "probe line two");
    return UVS_DENY;
  }
  if (strcmp(arg, "mismatch") == 0) {
    api->reply(c, 250, NULL, "should not be sent");
    return UVS_DENY;
  }
  if (strcmp(arg, "done") == 0) {
    api->reply(c, 250, "2.0.0", "probe done reply");
    return UVS_DONE;
  }
  return UVS_DECLINED;
}

/* ---- the dispatcher ----------------------------------------------------------------------- */

static uvs_verdict on_hook(uvs_call *c, void *ud) {
  probe *st = (probe *)ud;
  int hook = (int)api->call_hook(c);
  const char *h = (hook > 0 && hook < NHOOKS) ? hook_names[hook] : "?";
  if (hook == UVS_HOOK_DENY || hook == UVS_HOOK_OK) {
    /* observers: the previous plugin and its verdict */
    out(st, c, "%s arg=%s address=%s", h, api->call_arg(c), api->call_address(c));
    return UVS_DECLINED;
  }
  out(st, c, "%s hook=%d", h, hook);
  switch (hook) {
    case UVS_HOOK_PRE_CONNECTION:
      out(st, c, "%s peer_ip=%s", h, S(api->peer_ip(c)));
      out(st, c, "%s call_arg=%s", h, api->call_arg(c));
      out(st, c, "%s send_continuation=%d", h, api->send_continuation(c, "x"));
      return UVS_DECLINED;
    case UVS_HOOK_CONNECT:
      return on_connect(st, c);
    case UVS_HOOK_HELO:
    case UVS_HOOK_EHLO:
      out(st, c, "%s call_arg=%s", h, api->call_arg(c));
      out(st, c, "%s call_address=%s", h, api->call_address(c));
      out(st, c, "%s helo_name=%s", h, S(api->helo_name(c)));
      out(st, c, "%s is_esmtp=%d", h, api->is_esmtp(c));
      out(st, c, "%s send_continuation=%d", h, api->send_continuation(c, "x"));
      out(st, c, "%s pnote=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.pnote")));
      api->note_set(c, UVS_NOTE_TRANSACTION, "probe.early", "before-mail");
      return UVS_DECLINED;
    case UVS_HOOK_MAIL: {
      const char *addr = api->call_address(c);
      out(st, c, "%s call_arg=%s", h, api->call_arg(c));
      out(st, c, "%s call_address=%s", h, addr);
      out(st, c, "%s param_size=%s", h, S(api->call_param(c, "size")));
      out(st, c, "%s param_body=%s", h, S(api->call_param(c, "BODY")));
      out(st, c, "%s param_smtputf8=%s", h, S(api->call_param(c, "SmtpUtf8")));
      out(st, c, "%s param_missing=%s", h, S(api->call_param(c, "NOTIFY")));
      out(st, c, "%s param_null=%s", h, S(api->call_param(c, NULL)));
      out(st, c, "%s helo_name=%s", h, S(api->helo_name(c)));
      out(st, c, "%s is_esmtp=%d", h, api->is_esmtp(c));
      out(st, c, "%s mail_from=%s", h, S(api->mail_from(c)));
      out(st, c, "%s rcpt_count=%d", h, api->rcpt_count(c));
      {
        static const char *const one[] = {"u@example.test"};
        out(st, c, "%s rcpt_replace=%d", h, api->rcpt_replace(c, one, 1)); /* -EPERM */
      }
      out(st, c, "%s note_early=%s", h, S(api->note_get(c, UVS_NOTE_TRANSACTION, "probe.early")));
      api->note_set(c, UVS_NOTE_TRANSACTION, "probe.txn", "t1");
      char tag[96];
      snprintf(tag, sizeof tag, "txn:%s", addr);
      api->note_set_ptr(c, UVS_NOTE_TRANSACTION, "probe.txnptr", new_tagged(st, tag), tagged_free);
      return UVS_DECLINED;
    }
    case UVS_HOOK_RCPT:
      return on_rcpt(st, c);
    case UVS_HOOK_DATA:
      out(st, c, "%s mail_from=%s", h, S(api->mail_from(c)));
      log_rcpts(st, c, h);
      out(st, c, "%s message_size=%lld", h, (long long)api->message_size(c));
      return UVS_DECLINED;
    case UVS_HOOK_DATA_HEADERS_END:
      out(st, c, "%s header_subject=%s", h, S(api->header_get(c, "Subject", 0)));
      out(st, c, "%s message_size_positive=%d", h, api->message_size(c) > 0);
      return UVS_DECLINED;
    case UVS_HOOK_DATA_POST:
      on_data_post(st, c);
      return UVS_DECLINED;
    case UVS_HOOK_QUEUE:
      out(st, c, "%s message_size_positive=%d", h, api->message_size(c) > 0);
      out(st, c, "%s rcpt_count=%d", h, api->rcpt_count(c));
      api->reply(c, 250, NULL, "probe queued");
      return UVS_OK;
    case UVS_HOOK_QUEUE_POST:
    case UVS_HOOK_RESET_TRANSACTION:
      out(st, c, "%s mail_from=%s", h, S(api->mail_from(c)));
      out(st, c, "%s note_txn=%s", h, S(api->note_get(c, UVS_NOTE_TRANSACTION, "probe.txn")));
      return UVS_DECLINED;
    case UVS_HOOK_DISCONNECT:
      out(st, c, "%s note_conn=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "probe.conn")));
      out(st, c, "%s karma=%s", h, S(api->note_get(c, UVS_NOTE_CONNECTION, "karma")));
      out(st, c, "%s suspend=%s", h, api->suspend(c) ? "non-null" : "(null)");
      return UVS_DECLINED;
    case UVS_HOOK_UNRECOGNIZED_COMMAND:
      out(st, c, "%s call_arg=%s", h, api->call_arg(c));
      out(st, c, "%s call_address=%s", h, api->call_address(c));
      return UVS_DECLINED;
    case UVS_HOOK_VRFY:
      return on_vrfy(st, c);
    case UVS_HOOK_NOOP:
      return on_noop(st, c);
    case UVS_HOOK_HELP:
      return on_help(st, c);
    default:
      out(st, c, "%s call_arg=%s", h, api->call_arg(c));
      return UVS_DECLINED;
  }
}

/* ---- init / fini -------------------------------------------------------------------------- */

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  probe *st = (probe *)calloc(1, sizeof *st);
  st->self = self;
  out(st, NULL, "init api_size=%u abi=%u.%u", (unsigned)api->size, (unsigned)api->abi_major,
      (unsigned)api->abi_minor);
  out(st, NULL, "init has_run_blocking=%d", UVS_API_HAS(api, run_blocking));
  out(st, NULL, "init name=%s", S(api->plugin_name(self)));
  int argc = api->plugin_argc(self);
  out(st, NULL, "init argc=%d", argc);
  for (int i = 0; i < argc; ++i) out(st, NULL, "init argv[%d]=%s", i, S(api->plugin_argv(self, i)));
  out(st, NULL, "init argv_oob=%s", S(api->plugin_argv(self, argc)));
  if (argc == 1 && strcmp(api->plugin_argv(self, 0), "errorf") == 0) {
    /* init fails through set_errorf (1.2): longer than any old fixed buffer (the 600 'y's),
     * with '%' in the arguments, which must come through as they are */
    char big[601];
    memset(big, 'y', sizeof big - 1);
    big[600] = 0;
    free(st);
    if (!UVS_API_HAS(api, set_errorf)) return -ENOSYS;
    int rc = api->set_errorf(self, "probe errorf: %s|%d%%|%s|end", "100% %s %d %n", 42, big);
    return rc == 0 ? -EINVAL : rc;
  }
  out(st, NULL, "init argv_neg=%s", S(api->plugin_argv(self, -1)));
  api->plugin_set_data(self, st);
  out(st, NULL, "init data_roundtrip=%d", api->plugin_data(self) == st);
  out(st, NULL, "init me=%s", S(api->me(self)));
  if (UVS_API_HAS(api, event_loop)) out(st, NULL, "init event_loop=%s", api->event_loop(self) ? "non-null" : "(null)");
  int rc = api->config_lines(self, "probe_list", collect_line, st);
  out(st, NULL, "init config_lines=%d calls=%d", rc, st->config_calls);
  out(st, NULL, "init config_missing=%d", api->config_lines(self, "no_such_file", collect_line, st));
  out(st, NULL, "init config_dotdot=%d", api->config_lines(self, "../etc/passwd", collect_line, st));
  out(st, NULL, "init config_absolute=%d", api->config_lines(self, "/etc/passwd", collect_line, st));
  out(st, NULL, "init config_null_cb=%d", api->config_lines(self, "probe_list", NULL, st));
  if (rc > 1) {
    st->config_calls = 0;
    rc = api->config_lines(self, "probe_list", stop_after_one, st);
    out(st, NULL, "init config_stop calls=%d", st->config_calls);
  }
  out(st, NULL, "init register_999=%d", api->register_hook(self, (uvs_hook)999, on_hook, st));
  out(st, NULL, "init register_0=%d", api->register_hook(self, (uvs_hook)0, on_hook, st));
  out(st, NULL, "init register_null_fn=%d", api->register_hook(self, UVS_HOOK_HELO, NULL, st));
  out(st, NULL, "init set_error=%d", api->set_error(self, "ignored: init succeeds"));
  out(st, NULL, "init has_set_errorf=%d", UVS_API_HAS(api, set_errorf));
  if (UVS_API_HAS(api, set_errorf)) {
    /* 1.2. A wide character with no multibyte form makes the expansion fail (EILSEQ). */
    static const wchar_t unencodable[] = {(wchar_t)-1, 0};
    out(st, NULL, "init set_errorf=%d",
        api->set_errorf(self, "ignored: %s %d", "init succeeds", 1));
    out(st, NULL, "init set_errorf_null_plugin=%d", api->set_errorf(NULL, "x %d", 1));
    out(st, NULL, "init set_errorf_null_fmt=%d", api->set_errorf(self, NULL));
    out(st, NULL, "init set_errorf_bad_conversion=%d", api->set_errorf(self, "x %ls", unencodable));
  }
  if (UVS_API_HAS(api, body_replace_fd)) { /* the newest 1.3 members */
    out(st, NULL, "init hook_timeout_ms=%lld", (long long)api->hook_timeout_ms(self));
    out(st, NULL, "init hook_timeout_ms_null=%lld", (long long)api->hook_timeout_ms(NULL));
    out(st, NULL, "init set_errorfv=%d", probe_set_errorfv(self, "ignored: %s %d", "fv", 3));
    out(st, NULL, "init set_errorfv_null_plugin=%d", probe_set_errorfv(NULL, "x %d", 1));
    probe_logv(st, "init logv %s=%d", "seven", 7);
    uvs_timer *t = api->timer_start(self, 60000, 0, never_timer, st);
    out(st, NULL, "init timer_start=%s", t ? "ok" : "(null)");
    out(st, NULL, "init timer_stop=%d", t ? api->timer_stop(t) : -1);
    out(st, NULL, "init timer_stop_null=%d", api->timer_stop(NULL));
    out(st, NULL, "init timer_start_null_cb=%s",
        api->timer_start(self, 1, 0, NULL, NULL) ? "non-null" : "(null)");
    out(st, NULL, "init timer_once=%s",
        api->timer_start(self, 5, 0, once_timer, st) ? "ok" : "(null)");
  }
  api->log(NULL, NULL, UVS_LOG_NOTICE, "probe log without a plugin");
  for (int hook = 1; hook < NHOOKS; ++hook) {
    rc = api->register_hook(self, (uvs_hook)hook, on_hook, st);
    if (rc != 0) {
      char msg[64];
      snprintf(msg, sizeof msg, "register_hook(%d) failed: %d", hook, rc);
      api->set_error(self, msg);
      free(st);
      return rc;
    }
  }
  out(st, NULL, "init done");
  return 0;
}

static void fini(uvs_plugin *self) {
  probe *st = (probe *)api->plugin_data(self);
  out(st, NULL, "fini");
  free(st);
}

UVS_PLUGIN("api_probe", "1.0", init, fini);
