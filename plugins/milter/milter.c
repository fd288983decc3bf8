/* plugins/milter/milter.c: the milter plugin: its conf/plugins arguments, and the hooks that
 * carry an SMTP session to one milter (Sendmail's mail filter protocol, version 6, as Postfix
 * speaks it): connect, helo/ehlo, mail, rcpt, data, data_post (the message and the end-of-message
 * actions), reset_transaction (abort) and disconnect (quit). The conversation is mt_sess.c and
 * mt_msg.c, the socket mt_conn.c, the packets mt_proto.c. docs/plugins/milter.md has the details.
 */
/*
 * conf/plugins: `milter inet:127.0.0.1:11332 [connect_timeout=S] [command_timeout=S]
 * [content_timeout=S] [default_action=tempfail|accept]` or `milter unix:/path/to/socket ...`;
 * one line per milter, run in conf/plugins order. Each SMTP session opens its own connection to
 * the milter at connect and closes it at disconnect. Every hook that talks to the milter suspends
 * its call and completes it when the milter has answered (or failed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/plugin_util.h"
#include "mt.h"

const uvs_api *mt_api;
#define api mt_api

#define DEFAULT_CONNECT_MS 5000u
#define DEFAULT_COMMAND_MS 10000u
#define DEFAULT_CONTENT_MS 20000u

static mt_sess *sess_of(mt_conf *cf, uvs_call *c) {
  return api->note_get_ptr(c, UVS_NOTE_CONNECTION, cf->note_key);
}

static void sess_dtor(void *p) {
  mt_sess_unref(p);
}

static void on_cancel(uvs_pending *p, void *ud) {
  mt_sess *s = ud;
  (void)p;
  s->op.cancelled = 1;
  api->log(s->cf->self, NULL, UVS_LOG_INFO,
           "[%s] milter %s: the session no longer waits (client gone or hook_timeout); closing the "
           "milter connection",
           s->sid, s->cf->spec);
  s->state = MT_FAILED;
  if (s->conn) mt_conn_close(s->conn);
  if (!s->op.work) mt_sess_complete(s, UVS_DENYSOFT);
}

/* Suspends the call for a conversation with the milter. 0, or -1 (then answer DENYSOFT or as
 * default_action says). */
static int begin(mt_sess *s, uvs_call *c, uvs_hook hook) {
  uvs_pending *p = api->suspend(c);
  if (!p) return -1;
  s->refs++;
  s->op.p = p;
  s->op.hook = hook;
  s->op.event = 0;
  s->op.message = 0;
  s->op.cancelled = 0;
  s->op.work = 0;
  api->pending_on_cancel(p, on_cancel, s);
  return 0;
}

/* After mt_sess_event: finish at once when no reply is awaited. */
static uvs_verdict sent(mt_sess *s, int rc) {
  if (rc == 0) mt_sess_finish(s, MT_R_CONTINUE);
  if (rc < 0) mt_sess_finish(s, MT_R_FAIL);
  return UVS_PENDING;
}

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = mt_sess_new(cf, api->session_id(c));
  if (!s) return cf->default_accept ? UVS_DECLINED : UVS_DENYSOFT;
  if (api->note_set_ptr(c, UVS_NOTE_CONNECTION, cf->note_key, s, sess_dtor) < 0) {
    mt_sess_unref(s);
    return cf->default_accept ? UVS_DECLINED : UVS_DENYSOFT;
  }
  if (begin(s, c, UVS_HOOK_CONNECT) < 0) {
    mt_sess_fail(s, "cannot suspend the connect hook");
    return UVS_DECLINED;
  }
  int rc = mt_conn_open(s);
  if (rc < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(rc));
    mt_sess_fail(s, why);
    mt_sess_finish(s, MT_R_FAIL);
  }
  return UVS_PENDING;
}

/* The state's answer without asking the milter; 1 when it decides (*v). */
static int decided(mt_sess *s, uvs_call *c, uvs_hook hook, uvs_verdict *v) {
  if (!s || s->op.p) {
    *v = UVS_DECLINED;
    return 1;
  }
  return mt_sess_state_verdict(s, c, hook, v);
}

/* The start of a hook that talks to the milter: 1 when it is answered without that (*v: the
 * state's answer, or UVS_DECLINED when the call cannot be suspended), 0 once suspended for it. */
static int enter(mt_sess *s, uvs_call *c, uvs_hook hook, uvs_verdict *v) {
  if (decided(s, c, hook, v)) return 1;
  if (begin(s, c, hook) < 0) {
    *v = UVS_DECLINED;
    return 1;
  }
  return 0;
}

static uvs_verdict on_helo(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  uvs_verdict v;
  uvs_hook hook = api->call_hook(c);
  if (enter(s, c, hook, &v)) return v;
  mt_buf d = {0};
  if (mt_pkt_str(&d, api->call_address(c)) < 0) {
    mt_sess_fail(s, "out of memory");
    mt_sess_finish(s, MT_R_FAIL);
    return UVS_PENDING;
  }
  int rc =
      mt_sess_event(s, c, SMFIM_HELO, SMFIC_HELO, &d, SMFIP_NOHELO, SMFIP_NR_HELO, cf->command_ms);
  mt_buf_free(&d);
  return sent(s, rc);
}

/* Sends SMFIC_ABORT when a transaction is open on the milter's side. */
static void abort_txn(mt_sess *s) {
  if (s->in_txn && s->conn && (s->state == MT_ENVELOPE || s->state == MT_ACCEPT_MSG)) {
    mt_buf b = {0};
    size_t start;
    if (mt_pkt_begin(&b, SMFIC_ABORT, &start) == 0 && mt_pkt_end(&b, start) == 0)
      if (mt_conn_write(s->conn, b.data, b.len) < 0) mt_sess_fail(s, "cannot write the abort");
    mt_buf_free(&b);
  }
  s->in_txn = 0;
  s->discard = 0;
  s->skip_event = 0;
  free(s->quarantine);
  s->quarantine = NULL;
  if (s->state == MT_ACCEPT_MSG) s->state = MT_ENVELOPE;
}

/* The MAIL parameters after the path in call_arg ("FROM:<a@b> SIZE=10 BODY=8BITMIME"). */
static const char *params_of(const char *arg) {
  int q = 0;
  for (const char *p = arg; *p; p++) {
    if (*p == '"') q = !q;
    if (*p == '\\' && p[1])
      p++;
    else if (!q && *p == '>')
      return p + 1;
  }
  return "";
}

/* MAIL (with_params: its parameters too, each a string) or RCPT: the path as "<address>",
 * sent as cmd after the macros of stage; out of memory fails the session. */
static uvs_verdict send_envelope(mt_sess *s, uvs_call *c, int with_params, int stage, char cmd,
                                 uint32_t no_flag, uint32_t nr_flag) {
  mt_buf d = {0};
  char path[1100];
  snprintf(path, sizeof path, "<%s>", api->call_address(c));
  int bad = mt_pkt_str(&d, path) < 0;
  const char *p = with_params ? params_of(api->call_arg(c)) : "";
  while (!bad && *p) {
    while (*p == ' ') p++;
    const char *e = p;
    while (*e && *e != ' ') e++;
    if (e > p) {
      char *one = strndup(p, (size_t)(e - p));
      bad = !one || mt_pkt_str(&d, one) < 0;
      free(one);
    }
    p = e;
  }
  if (bad) {
    mt_buf_free(&d);
    mt_sess_fail(s, "out of memory");
    mt_sess_finish(s, MT_R_FAIL);
    return UVS_PENDING;
  }
  int rc = mt_sess_event(s, c, stage, cmd, &d, no_flag, nr_flag, s->cf->command_ms);
  mt_buf_free(&d);
  return sent(s, rc);
}

static uvs_verdict on_mail(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  uvs_verdict v;
  if (decided(s, c, UVS_HOOK_MAIL, &v)) return v;
  /* a MAIL the milter saw but a later plugin refused left a transaction open over there */
  abort_txn(s);
  if (!s->conn) return mt_sess_state_verdict(s, c, UVS_HOOK_MAIL, &v), v;
  if (begin(s, c, UVS_HOOK_MAIL) < 0) return UVS_DECLINED;
  s->in_txn = 1;
  return send_envelope(s, c, 1, SMFIM_ENVFROM, SMFIC_MAIL, SMFIP_NOMAIL, SMFIP_NR_MAIL);
}

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  uvs_verdict v;
  if (enter(s, c, UVS_HOOK_RCPT, &v)) return v;
  return send_envelope(s, c, 0, SMFIM_ENVRCPT, SMFIC_RCPT, SMFIP_NORCPT, SMFIP_NR_RCPT);
}

static uvs_verdict on_data(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  uvs_verdict v;
  if (enter(s, c, UVS_HOOK_DATA, &v)) return v;
  int rc = mt_sess_event(s, c, SMFIM_DATA, SMFIC_DATA, NULL, SMFIP_NODATA, SMFIP_NR_DATA,
                         cf->command_ms);
  return sent(s, rc);
}

static uvs_verdict on_data_post(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  uvs_verdict v;
  if (s && !s->op.p && s->discard) { /* discarded at MAIL, RCPT or DATA */
    const char *qid = api->queue_id(c);
    char text[160];
    snprintf(text, sizeof text, "Queued as %s", qid ? qid : "");
    api->reply(c, 250, "2.0.0", text);
    api->log(cf->self, c, UVS_LOG_NOTICE, "milter %s: message discarded", cf->spec);
    return UVS_DONE;
  }
  if (enter(s, c, UVS_HOOK_DATA_POST, &v)) return v;
  mt_msg_start(s, c);
  return UVS_PENDING;
}

static uvs_verdict on_reset(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  if (s && !s->op.p) abort_txn(s);
  return UVS_DECLINED;
}

static uvs_verdict on_disconnect(uvs_call *c, void *ud) {
  mt_conf *cf = ud;
  mt_sess *s = sess_of(cf, c);
  if (!s || !s->conn) return UVS_DECLINED;
  if (!s->op.p && (s->state == MT_ENVELOPE || s->state == MT_ACCEPT_MSG)) {
    mt_buf b = {0};
    size_t start;
    if (mt_pkt_begin(&b, SMFIC_QUIT, &start) == 0 && mt_pkt_end(&b, start) == 0)
      mt_conn_write(s->conn, b.data, b.len);
    mt_buf_free(&b);
  }
  mt_conn_finish(s->conn);
  s->state = MT_CLOSED;
  return UVS_DECLINED;
}

/* ---- arguments ------------------------------------------------------------------------- */

static int parse_endpoint(uvs_plugin *self, mt_conf *cf, const char *spec) {
  if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
    const char *path = strchr(spec, ':') + 1;
    if (path[0] != '/' || strlen(path) >= sizeof cf->path) {
      api->set_errorf(self, "'%s': the socket path must be absolute and shorter than %zu bytes",
                      spec, sizeof cf->path);
      return -1;
    }
    cf->is_unix = 1;
    snprintf(cf->path, sizeof cf->path, "%s", path);
    return 0;
  }
  if (strncmp(spec, "inet:", 5) != 0 && strncmp(spec, "inet6:", 6) != 0) {
    api->set_errorf(self, "'%s': a milter is inet:HOST:PORT or unix:/path", spec);
    return -1;
  }
  const char *rest = strchr(spec, ':') + 1;
  char host[128] = "", portstr[16] = "";
  const char *at = strchr(rest, '@');
  if (at) { /* Sendmail's form: inet:PORT@HOST */
    snprintf(portstr, sizeof portstr, "%.*s", (int)(at - rest < 15 ? at - rest : 15), rest);
    snprintf(host, sizeof host, "%s", at + 1);
  } else {
    const char *colon = strrchr(rest, ':');
    if (!colon) {
      api->set_errorf(self, "'%s': no port (inet:HOST:PORT)", spec);
      return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - rest < 127 ? colon - rest : 127), rest);
    snprintf(portstr, sizeof portstr, "%s", colon + 1);
  }
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  char *end = NULL;
  long port = strtol(portstr, &end, 10);
  if (!portstr[0] || *end || port < 1 || port > 65535) {
    api->set_errorf(self, "'%s': the port must be a number from 1 to 65535", spec);
    return -1;
  }
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&cf->addr) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&cf->addr) != 0) {
    api->set_errorf(self, "'%s': the host must be an IP address (or localhost)", spec);
    return -1;
  }
  return 0;
}

static int parse_timeout(uvs_plugin *self, const char *key, const char *val, uint64_t *out) {
  double sec = pu_parse_seconds(val);
  if (sec <= 0 || sec > 3600) {
    api->set_errorf(self, "%s '%s' must be a number of seconds above 0 and at most 3600", key, val);
    return -1;
  }
  *out = (uint64_t)(sec * 1000 + 0.5);
  if (*out == 0) *out = 1;
  return 0;
}

static void conf_free(mt_conf *cf) {
  if (!cf) return;
  free(cf->spec);
  free(cf->note_key);
  free(cf);
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  if (argc < 1) {
    api->set_error(self,
                   "usage: milter inet:HOST:PORT|unix:/path [connect_timeout=S] "
                   "[command_timeout=S] [content_timeout=S] [default_action=tempfail|accept]");
    return -EINVAL;
  }
  if (!UVS_API_HAS(api, rcpt_delete)) {
    api->set_error(self, "this server is older than ABI 1.5 (envelope edits)");
    return -EINVAL;
  }
  mt_conf *cf = calloc(1, sizeof *cf);
  if (!cf) return -ENOMEM;
  cf->self = self;
  cf->connect_ms = DEFAULT_CONNECT_MS;
  cf->command_ms = DEFAULT_COMMAND_MS;
  cf->content_ms = DEFAULT_CONTENT_MS;
  const char *spec = api->plugin_argv(self, 0);
  if (parse_endpoint(self, cf, spec) < 0) goto bad;
  for (int i = 1; i < argc; i++) {
    const char *arg = api->plugin_argv(self, i);
    const char *eq = strchr(arg, '=');
    if (!eq) {
      api->set_errorf(self,
                      "'%s': options are key=value (connect_timeout, command_timeout, "
                      "content_timeout, default_action)",
                      arg);
      goto bad;
    }
    size_t kl = (size_t)(eq - arg);
    const char *val = eq + 1;
#define KEY(k) (kl == strlen(k) && strncmp(arg, k, kl) == 0)
    if (KEY("connect_timeout")) {
      if (parse_timeout(self, "connect_timeout", val, &cf->connect_ms) < 0) goto bad;
    } else if (KEY("command_timeout")) {
      if (parse_timeout(self, "command_timeout", val, &cf->command_ms) < 0) goto bad;
    } else if (KEY("content_timeout")) {
      if (parse_timeout(self, "content_timeout", val, &cf->content_ms) < 0) goto bad;
    } else if (KEY("default_action")) {
      if (strcmp(val, "tempfail") == 0)
        cf->default_accept = 0;
      else if (strcmp(val, "accept") == 0)
        cf->default_accept = 1;
      else {
        api->set_errorf(self, "default_action '%s' must be tempfail or accept", val);
        goto bad;
      }
    } else {
      api->set_errorf(self,
                      "unknown option '%.*s' (connect_timeout, command_timeout, "
                      "content_timeout, default_action)",
                      (int)kl, arg);
      goto bad;
    }
#undef KEY
  }
  int64_t hook_ms = api->hook_timeout_ms(self);
  uint64_t longest = cf->connect_ms + cf->command_ms;
  if (cf->content_ms > longest) longest = cf->content_ms;
  if (hook_ms > 0 && longest >= (uint64_t)hook_ms)
    api->log(self, NULL, UVS_LOG_WARNING,
             "a milter timeout (%llu ms) is not below hook_timeout (%lld ms): the core's 451 "
             "comes first",
             (unsigned long long)longest, (long long)hook_ms);
  cf->loop = api->event_loop(self);
  if (!cf->loop) {
    api->set_error(self, "the server has no event loop");
    goto bad;
  }
  cf->spec = strdup(spec);
  const char *inst = api->plugin_name(self);
  cf->note_key = malloc(strlen(inst) + 16);
  if (!cf->spec || !cf->note_key) goto oom;
  sprintf(cf->note_key, "milter.session:%s", inst);
  static const uvs_hook hooks[] = {
      UVS_HOOK_CONNECT,   UVS_HOOK_HELO, UVS_HOOK_EHLO,      UVS_HOOK_MAIL,
      UVS_HOOK_RCPT,      UVS_HOOK_DATA, UVS_HOOK_DATA_POST, UVS_HOOK_RESET_TRANSACTION,
      UVS_HOOK_DISCONNECT};
  static const uvs_hook_fn fns[] = {on_connect, on_helo,      on_helo,  on_mail,      on_rcpt,
                                    on_data,    on_data_post, on_reset, on_disconnect};
  for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
    int rc = api->register_hook(self, hooks[i], fns[i], cf);
    if (rc < 0) {
      api->set_error(self, "cannot register the hooks");
      conf_free(cf);
      return rc;
    }
  }
  api->plugin_set_data(self, cf);
  api->log(self, NULL, UVS_LOG_INFO,
           "milter %s (timeouts: connect %llu ms, command %llu ms, content %llu ms; "
           "default_action %s)",
           spec, (unsigned long long)cf->connect_ms, (unsigned long long)cf->command_ms,
           (unsigned long long)cf->content_ms, cf->default_accept ? "accept" : "tempfail");
  return 0;
oom:
  conf_free(cf);
  return -ENOMEM;
bad:
  conf_free(cf);
  return -EINVAL;
}

static void fini(uvs_plugin *self) {
  conf_free(api->plugin_data(self));
}

UVS_PLUGIN("milter", "1.0", init, fini);
