/* plugins/milter/mt_sess.c: one SMTP session's conversation with one milter: negotiation, the
 * macros of each stage, sending an event and reading its reply, failures and default_action, and
 * turning the milter's decision into the hook's verdict and reply. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mt.h"

#define api mt_api

mt_sess *mt_sess_new(mt_conf *cf, const char *sid) {
  mt_sess *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cf = cf;
  s->refs = 1;
  s->op.fd = -1;
  s->op.body_fd = -1;
  snprintf(s->sid, sizeof s->sid, "%s", sid ? sid : "");
  return s;
}

void mt_sess_unref(mt_sess *s) {
  if (--s->refs > 0) return;
  if (s->conn) mt_conn_close(s->conn);
  mt_msg_clear(&s->op);
  for (int i = 0; i < MT_NSTAGES; i++) free(s->symlist[i]);
  mt_reply_free(&s->rej);
  mt_reply_free(&s->reply);
  free(s->quarantine);
  free(s);
}

static const char *action_name(const mt_conf *cf) {
  return cf->default_accept ? "accept" : "tempfail";
}

void mt_sess_fail(mt_sess *s, const char *why) {
  if (s->state != MT_FAILED)
    api->log(s->cf->self, NULL, UVS_LOG_WARNING, "[%s] milter %s: %s; default_action %s", s->sid,
             s->cf->spec, why, action_name(s->cf));
  s->state = MT_FAILED;
  if (s->conn) mt_conn_close(s->conn);
}

/* The op is waiting for a reply (and not for blocking work). */
static int awaiting(const mt_sess *s) {
  return s->op.p && s->op.event && !s->op.cancelled;
}

void mt_sess_error(mt_sess *s, const char *why) {
  /* a call waits for the milter (a reply, or the connection): it ends now */
  int wait = s->op.p && !s->op.cancelled && !s->op.work;
  mt_sess_fail(s, why);
  if (wait) {
    s->op.event = 0;
    mt_sess_result(s, MT_R_FAIL);
  }
}

static const char *event_name(char e) {
  switch (e) {
    case SMFIC_OPTNEG:
      return "negotiation";
    case SMFIC_CONNECT:
      return "connect";
    case SMFIC_HELO:
      return "helo";
    case SMFIC_MAIL:
      return "mail";
    case SMFIC_RCPT:
      return "rcpt";
    case SMFIC_DATA:
      return "data";
    case SMFIC_HEADER:
      return "header";
    case SMFIC_EOH:
      return "end of header";
    case SMFIC_BODY:
      return "body";
    case SMFIC_BODYEOB:
      return "end of message";
    default:
      return "connection";
  }
}

void mt_sess_timeout(mt_sess *s) {
  char why[160];
  if (s->conn && !s->conn->connected)
    snprintf(why, sizeof why, "no connection within %" PRIu64 " ms", s->cf->connect_ms);
  else
    snprintf(why, sizeof why, "no reply to the %s event in time", event_name(s->op.event));
  mt_sess_error(s, why);
}

/* ---- macros ---------------------------------------------------------------------------- */

static const char *const default_macros[MT_NSTAGES] = {
    /* SMFIM_CONNECT */
    "j _ {daemon_name} {daemon_addr} {daemon_port} v {client_addr} "
    "{client_name} {client_port} {client_ptr}",
    /* SMFIM_HELO */ "{tls_version} {cipher} {cipher_bits} {cert_subject}",
    /* SMFIM_ENVFROM */
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
    "{mail_mailer}",
    /* SMFIM_ENVRCPT */ "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    /* SMFIM_DATA */ "i",
    /* SMFIM_EOM */ "i",
    /* SMFIM_EOH */ "i",
};

static const char *domain_of(const char *addr) {
  const char *at = addr ? strrchr(addr, '@') : NULL;
  return at ? at + 1 : NULL;
}

/* The value of one macro for this call, or NULL when it has none. buf holds formatted values. */
static const char *macro_value(uvs_call *c, const char *name, char *buf, size_t bufsz) {
  uvs_hook hook = api->call_hook(c);
  const char *rh = api->remote_host(c);
  uvs_tls_info ti;
  memset(&ti, 0, sizeof ti);
  ti.size = sizeof ti;
#define IS(n) (strcmp(name, n) == 0)
  if (IS("j")) return NULL; /* the plugin knows it: add_macros */
  if (IS("_")) {
    snprintf(buf, bufsz, "%s [%s]", rh ? rh : "unknown", api->peer_ip(c));
    return buf;
  }
  if (IS("{daemon_name}")) return "uvsmtpd";
  if (IS("v")) return "uvsmtpd";
  if (IS("{daemon_addr}")) return api->local_ip(c);
  if (IS("{daemon_port}")) {
    snprintf(buf, bufsz, "%d", api->local_port(c));
    return buf;
  }
  if (IS("{client_addr}")) return api->peer_ip(c);
  if (IS("{client_port}")) {
    snprintf(buf, bufsz, "%d", api->peer_port(c));
    return buf;
  }
  if (IS("{client_name}") || IS("{client_ptr}")) return rh ? rh : "unknown";
  if (IS("{tls_version}") || IS("{cipher}") || IS("{cipher_bits}") || IS("{cert_subject}")) {
    if (api->tls_info(c, &ti) < 0) return NULL;
    if (IS("{tls_version}")) return ti.protocol;
    if (IS("{cipher}")) return ti.cipher;
    if (IS("{cert_subject}")) return ti.client_subject[0] ? ti.client_subject : NULL;
    snprintf(buf, bufsz, "%d", ti.bits);
    return buf;
  }
  if (IS("i")) return api->queue_id(c);
  if (IS("{auth_type}")) return api->auth_mechanism(c);
  if (IS("{auth_authen}")) return api->auth_user(c);
  if (IS("{auth_author}")) {
    const char *a = hook == UVS_HOOK_MAIL ? api->call_param(c, "AUTH") : NULL;
    return a && *a && strcmp(a, "<>") != 0 ? a : NULL;
  }
  if (IS("{mail_addr}") || IS("{mail_host}")) {
    const char *from = hook == UVS_HOOK_MAIL ? api->call_address(c) : api->mail_from(c);
    if (!from) return NULL;
    return IS("{mail_addr}") ? from : domain_of(from);
  }
  if (IS("{mail_mailer}")) return "smtp";
  if (IS("{rcpt_addr}") || IS("{rcpt_host}") || IS("{rcpt_mailer}")) {
    if (hook != UVS_HOOK_RCPT) return NULL;
    const char *to = api->call_address(c);
    if (IS("{rcpt_addr}")) return to;
    if (IS("{rcpt_host}")) return domain_of(to);
    return "smtp";
  }
#undef IS
  return NULL;
}

/* Appends the SMFIC_MACRO packet of a stage for event cmd to out (nothing when no macro has a
 * value). 0, or -1 when out of memory. */
static int add_macros(mt_sess *s, uvs_call *c, int stage, char cmd, mt_buf *out) {
  const char *list = s->symlist[stage] ? s->symlist[stage] : default_macros[stage];
  mt_buf b = {0};
  size_t start = 0;
  int n = 0;
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    const char *e = p;
    while (*e && *e != ' ' && *e != ',' && *e != '\t') e++;
    if (e > p && e - p < 64) {
      char name[68];
      size_t nl = (size_t)(e - p);
      /* a list entry may be written without braces: "auth_authen" */
      if (nl > 1 && p[0] != '{')
        snprintf(name, sizeof name, "{%.*s}", (int)nl, p);
      else
        snprintf(name, sizeof name, "%.*s", (int)nl, p);
      char vbuf[600];
      const char *v =
          strcmp(name, "j") == 0 ? api->me(s->cf->self) : macro_value(c, name, vbuf, sizeof vbuf);
      if (v) {
        if (n == 0 && (mt_pkt_begin(&b, SMFIC_MACRO, &start) < 0 || mt_pkt_bytes(&b, &cmd, 1) < 0))
          goto oom;
        if (mt_pkt_str(&b, name) < 0 || mt_pkt_str(&b, v) < 0) goto oom;
        n++;
      }
    }
    p = e;
  }
  if (n > 0 && (mt_pkt_end(&b, start) < 0 || mt_buf_add(out, b.data, b.len) < 0)) goto oom;
  mt_buf_free(&b);
  return 0;
oom:
  mt_buf_free(&b);
  return -1;
}

/* ---- events ---------------------------------------------------------------------------- */

int mt_sess_event(mt_sess *s, uvs_call *c, int stage, char cmd, const mt_buf *data,
                  uint32_t no_send, uint32_t no_reply, uint64_t timeout_ms) {
  if (!s->conn) return -1;
  if (s->skip_event && s->skip_event != cmd) s->skip_event = 0;
  int skipped = cmd == 0 || (s->skip_event == cmd) || (no_send && (s->protocol & no_send));
  mt_buf out = {0};
  size_t start;
  if (stage >= 0 && c && add_macros(s, c, stage, cmd, &out) < 0) goto oom;
  if (!skipped) {
    if (mt_pkt_begin(&out, cmd, &start) < 0 ||
        (data && data->len && mt_pkt_bytes(&out, data->data, data->len) < 0) ||
        mt_pkt_end(&out, start) < 0)
      goto oom;
  }
  if (out.len) {
    int rc = mt_conn_write(s->conn, out.data, out.len);
    mt_buf_free(&out);
    if (rc < 0) {
      char why[160];
      snprintf(why, sizeof why, "write failed: %s", uv_strerror(rc));
      mt_sess_fail(s, why);
      return -1;
    }
  }
  if (skipped || (no_reply && (s->protocol & no_reply))) return 0;
  s->op.event = cmd;
  mt_conn_timer(s->conn, timeout_ms);
  return 1;
oom:
  mt_buf_free(&out);
  mt_sess_fail(s, "out of memory");
  return -1;
}

void mt_sess_connected(mt_sess *s) {
  mt_buf b = {0};
  size_t start;
  if (mt_pkt_begin(&b, SMFIC_OPTNEG, &start) < 0 || mt_pkt_u32(&b, MT_VERSION) < 0 ||
      mt_pkt_u32(&b, MT_ACTIONS) < 0 || mt_pkt_u32(&b, MT_PROTOCOL) < 0 ||
      mt_pkt_end(&b, start) < 0) {
    mt_buf_free(&b);
    mt_sess_error(s, "out of memory");
    return;
  }
  int rc = mt_conn_write(s->conn, b.data, b.len);
  mt_buf_free(&b);
  if (rc < 0) {
    mt_sess_error(s, "cannot write the negotiation");
    return;
  }
  s->op.event = SMFIC_OPTNEG;
  mt_conn_timer(s->conn, s->cf->command_ms);
}

/* The negotiation reply: check it, keep it, then send the connect event. */
static void negotiated(mt_sess *s, const mt_packet *pk) {
  mt_optneg o;
  const char *err = NULL;
  char why[200];
  s->op.event = 0;
  if (mt_optneg_parse(pk, &o, &err) < 0) {
    snprintf(why, sizeof why, "protocol error: %s", err);
    mt_sess_error(s, why);
    return;
  }
  if (o.version < 2 || o.version > MT_VERSION) {
    snprintf(why, sizeof why, "the milter speaks protocol version %" PRIu32 "; this client 2 to 6",
             o.version);
    mt_optneg_free(&o);
    mt_sess_error(s, why);
    return;
  }
  /* as Postfix: actions beyond the offer are an error, unknown step bits are ignored */
  if ((o.actions & ~MT_ACTIONS) != 0) {
    snprintf(why, sizeof why,
             "the milter asks for actions 0x%" PRIx32 " beyond what this client offers", o.actions);
    mt_optneg_free(&o);
    mt_sess_error(s, why);
    return;
  }
  s->version = o.version;
  s->actions = o.actions;
  s->protocol = o.protocol & MT_PROTOCOL;
  /* an older milter does not know SMFIC_DATA (version 4) nor the later steps */
  if (o.version < 4) s->protocol |= SMFIP_NODATA;
  if (o.version < 6)
    s->protocol &= ~(uint32_t)(SMFIP_SKIP | SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL |
                               SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH |
                               SMFIP_NR_BODY | SMFIP_HDR_LEADSPC | SMFIP_RCPT_REJ);
  for (int i = 0; i < MT_NSTAGES; i++) {
    free(s->symlist[i]);
    s->symlist[i] = o.symlist[i];
    o.symlist[i] = NULL;
  }
  s->state = MT_ENVELOPE;
  uvs_call *c = api->pending_call(s->op.p);
  if (!c) return; /* cancelled: the cancel callback ends the op */
  const char *ip = api->peer_ip(c);
  const char *rh = api->remote_host(c);
  char host[300];
  if (rh)
    snprintf(host, sizeof host, "%s", rh);
  else
    snprintf(host, sizeof host, "[%s]", ip);
  mt_buf d = {0};
  char fam = strchr(ip, ':') ? '6' : '4';
  int port = api->peer_port(c);
  if (mt_pkt_str(&d, host) < 0 || mt_pkt_bytes(&d, &fam, 1) < 0 ||
      mt_pkt_u16(&d, (uint16_t)(port > 0 ? port : 0)) < 0 || mt_pkt_str(&d, ip) < 0) {
    mt_buf_free(&d);
    mt_sess_error(s, "out of memory");
    return;
  }
  int rc = mt_sess_event(s, c, SMFIM_CONNECT, SMFIC_CONNECT, &d, SMFIP_NOCONNECT, SMFIP_NR_CONN,
                         s->cf->command_ms);
  mt_buf_free(&d);
  if (rc == 0) mt_sess_result(s, MT_R_CONTINUE);
  if (rc < 0) mt_sess_result(s, MT_R_FAIL);
}

void mt_sess_result(mt_sess *s, mt_result r) {
  if (s->conn) mt_conn_timer_stop(s->conn);
  s->op.event = 0;
  if (!s->op.p) return;
  if (s->op.message)
    mt_msg_result(s, r);
  else
    mt_sess_finish(s, r);
}

void mt_sess_packet(mt_sess *s, const mt_packet *pk) {
  char why[200];
  char ev = s->op.event;
  if (!awaiting(s)) {
    snprintf(why, sizeof why, "protocol error: %s while no reply was expected",
             mt_reply_name(pk->cmd));
    mt_sess_error(s, why);
    return;
  }
  if (ev == SMFIC_OPTNEG) {
    negotiated(s, pk);
    return;
  }
  int empty_only = 1;
  mt_result r = MT_R_CONTINUE;
  switch (pk->cmd) {
    case SMFIR_PROGRESS:
      if (pk->len) break;
      mt_conn_timer(s->conn, s->op.message ? s->cf->content_ms : s->cf->command_ms);
      return;
    case SMFIR_CONTINUE:
      r = MT_R_CONTINUE;
      break;
    case SMFIR_ACCEPT:
      r = MT_R_ACCEPT;
      break;
    case SMFIR_REJECT:
      r = MT_R_REJECT;
      break;
    case SMFIR_TEMPFAIL:
      r = MT_R_TEMPFAIL;
      break;
    case SMFIR_DISCARD:
      r = MT_R_DISCARD;
      break;
    case SMFIR_SHUTDOWN:
      r = MT_R_SHUTDOWN;
      break;
    case SMFIR_SKIP:
      r = MT_R_SKIP;
      break;
    case SMFIR_REPLYCODE: {
      const char *err = NULL;
      empty_only = 0;
      mt_reply_free(&s->reply);
      if (mt_reply_parse(pk->data, pk->len, &s->reply, &err) < 0) {
        snprintf(why, sizeof why, "a malformed SMFIR_REPLYCODE: %s", err);
        mt_sess_error(s, why);
        return;
      }
      r = MT_R_REPLY;
      break;
    }
    case SMFIR_QUARANTINE: {
      size_t n = pk->len;
      while (n > 0 && pk->data[n - 1] == '\0') n--;
      if (n > 100) n = 100;
      free(s->quarantine);
      s->quarantine = strndup(pk->data, n);
      if (s->quarantine)
        for (char *q = s->quarantine; *q; q++)
          if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = ' ';
      return; /* the decision is still to come */
    }
    default:
      if (ev == SMFIC_BODYEOB) {
        if (mt_msg_edit(s, pk) < 0) return; /* it failed the milter */
        return;
      }
      snprintf(why, sizeof why, "protocol error: %s after the %s event", mt_reply_name(pk->cmd),
               event_name(ev));
      mt_sess_error(s, why);
      return;
  }
  if (empty_only && pk->len != 0) {
    snprintf(why, sizeof why, "protocol error: %s with %zu bytes of data", mt_reply_name(pk->cmd),
             pk->len);
    mt_sess_error(s, why);
    return;
  }
  if (r == MT_R_SKIP) {
    if (ev != SMFIC_BODY && !(s->protocol & SMFIP_SKIP)) {
      /* tolerated as Postfix does: a skip is a continue for this kind of event */
    }
    s->skip_event = ev;
  }
  mt_sess_result(s, r);
}

/* ---- verdicts -------------------------------------------------------------------------- */

static void set_reply(uvs_call *c, const mt_reply *r) {
  if (!c) return;
  api->reply(c, r->code, r->enhanced[0] ? r->enhanced : NULL, r->lines[0]);
  for (int i = 1; i < r->nlines; i++) api->reply_line(c, r->lines[i]);
}

static int fixed_reply(mt_reply *r, int code, const char *enh, const char *text) {
  mt_reply_free(r);
  r->code = code;
  snprintf(r->enhanced, sizeof r->enhanced, "%s", enh);
  r->lines[0] = strdup(text);
  if (!r->lines[0]) return -1;
  r->nlines = 1;
  return 0;
}

static void copy_reply(mt_reply *dst, const mt_reply *src) {
  mt_reply_free(dst);
  dst->code = src->code;
  memcpy(dst->enhanced, src->enhanced, sizeof dst->enhanced);
  for (int i = 0; i < src->nlines; i++) {
    dst->lines[i] = strdup(src->lines[i]);
    if (!dst->lines[i]) break;
    dst->nlines++;
  }
}

uvs_verdict mt_verdict(mt_sess *s, uvs_call *c, mt_result r) {
  uvs_hook hook = s->op.hook;
  int conn_stage = hook == UVS_HOOK_CONNECT || hook == UVS_HOOK_HELO || hook == UVS_HOOK_EHLO;
  mt_reply tmp = {0};
  switch (r) {
    case MT_R_CONTINUE:
    case MT_R_SKIP:
      return UVS_DECLINED;
    case MT_R_ACCEPT:
      if (conn_stage) {
        s->state = MT_ACCEPT_CON;
        if (s->conn) mt_conn_finish(s->conn);
      } else if (s->state == MT_ENVELOPE) {
        s->state = MT_ACCEPT_MSG;
      }
      return UVS_DECLINED;
    case MT_R_DISCARD:
      if (conn_stage) {
        api->log(s->cf->self, c, UVS_LOG_WARNING,
                 "milter %s: a discard at connect or HELO is not allowed; ignored", s->cf->spec);
        return UVS_DECLINED;
      }
      s->discard = 1;
      if (s->state == MT_ENVELOPE) s->state = MT_ACCEPT_MSG;
      return UVS_DECLINED;
    case MT_R_SHUTDOWN:
      fixed_reply(&tmp, 421, "4.7.0", "Service unavailable - closing connection");
      set_reply(c, &tmp);
      mt_reply_free(&tmp);
      s->state = MT_REJECT_CON;
      if (s->conn) mt_conn_close(s->conn);
      return UVS_DENYSOFT_DISCONNECT;
    case MT_R_REJECT:
    case MT_R_TEMPFAIL:
    case MT_R_REPLY: {
      if (r == MT_R_REJECT)
        fixed_reply(&tmp, 550, "5.7.1", "Command rejected");
      else if (r == MT_R_TEMPFAIL)
        fixed_reply(&tmp, 451, "4.7.1", "Service unavailable - try again later");
      else
        copy_reply(&tmp, &s->reply);
      /* 421 closes the session, as it does in Postfix */
      uvs_verdict v = tmp.code >= 500   ? UVS_DENY
                      : tmp.code == 421 ? UVS_DENYSOFT_DISCONNECT
                                        : UVS_DENYSOFT;
      if (tmp.nlines == 0) { /* out of memory copying */
        mt_reply_free(&tmp);
        return UVS_DENYSOFT;
      }
      if (conn_stage) {
        /* As Postfix: a milter that refuses the connection answers every later command. */
        s->state = MT_REJECT_CON;
        s->rej_v = v;
        mt_reply_free(&s->rej);
        s->rej = tmp;
        if (s->conn) mt_conn_finish(s->conn);
        if (hook == UVS_HOOK_CONNECT) return UVS_DECLINED;
        set_reply(c, &s->rej);
        return v;
      }
      set_reply(c, &tmp);
      mt_reply_free(&tmp);
      return v;
    }
    case MT_R_FAIL:
    default:
      if (s->state != MT_FAILED) mt_sess_fail(s, "failed");
      if (s->cf->default_accept || conn_stage) return UVS_DECLINED;
      fixed_reply(&tmp, 451, "4.7.1", "Service unavailable - try again later");
      set_reply(c, &tmp);
      mt_reply_free(&tmp);
      return UVS_DENYSOFT;
  }
}

void mt_sess_finish(mt_sess *s, mt_result r) {
  if (!s->op.p) return;
  mt_sess_complete(s, mt_verdict(s, api->pending_call(s->op.p), r));
}

void mt_sess_complete_reply(mt_sess *s, uvs_verdict v, int code, const char *enh,
                            const char *text) {
  uvs_call *c = s->op.p ? api->pending_call(s->op.p) : NULL;
  if (c) api->reply(c, code, enh, text);
  mt_sess_complete(s, v);
}

int mt_sess_state_verdict(mt_sess *s, uvs_call *c, uvs_hook hook, uvs_verdict *v) {
  *v = UVS_DECLINED;
  switch (s->state) {
    case MT_REJECT_CON:
      if (hook == UVS_HOOK_CONNECT) return 1;
      set_reply(c, &s->rej);
      *v = s->rej_v;
      return 1;
    case MT_FAILED:
      if (s->cf->default_accept || hook == UVS_HOOK_HELO || hook == UVS_HOOK_EHLO ||
          hook == UVS_HOOK_CONNECT)
        return 1;
      api->reply(c, 451, "4.7.1", "Service unavailable - try again later");
      *v = UVS_DENYSOFT;
      return 1;
    case MT_ACCEPT_CON:
    case MT_CLOSED:
      return 1;
    case MT_ACCEPT_MSG:
      /* a new transaction starts at MAIL; until then the milter wants nothing of this one */
      if (hook == UVS_HOOK_MAIL || hook == UVS_HOOK_HELO || hook == UVS_HOOK_EHLO) return 0;
      if (hook == UVS_HOOK_DATA_POST && s->discard) return 0;
      return 1;
    default:
      return 0;
  }
}

void mt_sess_complete(mt_sess *s, uvs_verdict v) {
  uvs_pending *p = s->op.p;
  if (!p) return;
  mt_msg_clear(&s->op);
  s->op.p = NULL;
  s->op.event = 0;
  s->op.message = 0;
  s->op.cancelled = 0;
  s->op.work = 0;
  api->complete(p, v, 0, NULL, NULL);
  mt_sess_unref(s); /* the op's reference */
}
