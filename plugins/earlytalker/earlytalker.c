/* plugins/earlytalker/earlytalker.c: the earlytalker plugin: arguments, hooks and checks. */
/*
 * Holds the greeting (and optionally the 354 reply to DATA) for `wait` seconds while watching
 * for client input, on the loop (uvs_api.wait_for_input), and refuses clients that talk first.
 * docs/plugins/earlytalker.md describes the options, the replies and every place where this
 * differs from qpsmtpd's plugins/earlytalker.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "uvsmtpd/plugin.h"
#include "../common/ipnet.h"
#include "../common/plugin_util.h"
#include "../common/state_util.h"
#include "et_passtab.h"

static const uvs_api *api;

#define ET_MAX_WAIT 300.0         /* seconds; the core's hook_timeout (default 30) is lower */
#define ET_MAX_PASS_TTL 2592000.0 /* 30 days */
#define ET_PASS_TABLE_CAP 10000
#define ET_MAX_ALLOW 1024

static const char kConnectText[] = "Connecting host started transmitting before SMTP greeting";
static const char kDataText[] = "Client started transmitting message data before the 354 reply";
static const char kConnectLog[] = "remote started talking before we said hello";
static const char kDataLog[] = "remote started sending data before the 354 reply";

typedef struct et_state {
  uvs_plugin *self;
  double wait;
  int reject;
  pu_reject_type rtype;
  int defer;
  int at_connect, at_data;
  int loglevel_mode; /* 0: as is, 1: fixed level, 2: shifted */
  int loglevel_val;
  int teaser;
  char teaser_text[320];
  ipnet_list allow;
  double pass_ttl;
  et_passtab *passes;
  int pass_shared;       /* pass-shared 1: passes in the shared state (kv_*), not in-process */
  int state_fail_closed; /* state-fail closed: a back-end failure means the client is checked */
  unsigned long long checked, passed, early, skipped;
} et_state;

typedef struct et_job {
  et_state *st;
  int at_data;
  int have_peer;
  ipnet_addr peer;
} et_job;

/* ---- helpers ---------------------------------------------------------------------------- */

static void et_log(et_state *st, const uvs_call *c, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void et_log(et_state *st, const uvs_call *c, int level, const char *fmt, ...) {
  if (st->loglevel_mode == 1)
    level = st->loglevel_val;
  else if (st->loglevel_mode == 2)
    level += st->loglevel_val;
  if (level < UVS_LOG_EMERG) level = UVS_LOG_EMERG;
  if (level > UVS_LOG_DEBUG) level = UVS_LOG_DEBUG;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  api->log(st->self, c, level, "%s", buf);
}

static int parse_bool(const char *s) {
  if (strcmp(s, "0") == 0) return 0;
  if (strcmp(s, "1") == 0) return 1;
  return -1;
}

static int is_temp(pu_reject_type t) {
  return t == PU_RT_TEMP || t == PU_RT_TEMP_DISCONNECT;
}

static int peer_addr(const uvs_call *c, ipnet_addr *out) {
  return ipnet_addr_parse(api->peer_ip(c), out) == 0;
}

/* The shared pass cache's key for a client: "pass:<family>:<reversed address>". */
static int pass_key(const ipnet_addr *a, char *out, size_t cap);

static int allowed(const et_state *st, const ipnet_addr *a) {
  return ipnet_list_find(&st->allow, a) >= 0;
}

/* The wait for this session: connection note earlytalker_wait (alias relayclient_wait), when
 * it holds a positive number of seconds, else the configured wait. */
static double wait_for(et_state *st, const uvs_call *c) {
  static const char *const keys[] = {"earlytalker_wait", "relayclient_wait"};
  for (size_t i = 0; i < 2; ++i) {
    const char *v = api->note_get(c, UVS_NOTE_CONNECTION, keys[i]);
    if (!pu_truthy(v)) continue;
    double w = pu_parse_seconds(v);
    if (w > 0 && w <= ET_MAX_WAIT) return w;
    et_log(st, c, UVS_LOG_WARNING, "ignoring note %s='%s': not seconds in (0, %g]", keys[i], v,
           ET_MAX_WAIT);
  }
  return st->wait;
}

/* Marks the connection as an early talker; karma -1 only the first time per connection. */
static void mark_early(uvs_call *c) {
  if (pu_truthy(api->note_get(c, UVS_NOTE_CONNECTION, "earlytalker"))) return;
  api->note_set(c, UVS_NOTE_CONNECTION, "earlytalker", "1");
  api->adjust_karma(c, -1);
}

/* The reply for a refusal at hook `hook`. */
static void reject_reply(pu_reject_type t, uvs_hook hook, uvs_verdict *v, int *code,
                         const char **enh, const char **text) {
  int temp = is_temp(t);
  *enh = temp ? "4.5.0" : "5.5.0";
  *text = kConnectText;
  switch (hook) {
    case UVS_HOOK_DATA: /* always close: the rest of the stream would be read as commands */
      *v = temp ? UVS_DENYSOFT_DISCONNECT : UVS_DENY_DISCONNECT;
      *code = temp ? 451 : 554;
      *text = kDataText;
      return;
    case UVS_HOOK_CONNECT: /* the core closes after any connect denial */
      *v = t == PU_RT_PERM         ? UVS_DENY
           : t == PU_RT_TEMP       ? UVS_DENYSOFT
           : t == PU_RT_DISCONNECT ? UVS_DENY_DISCONNECT
                                   : UVS_DENYSOFT_DISCONNECT;
      *code = temp ? 450 : 550;
      return;
    default: /* mail, rcpt */
      *v = t == PU_RT_PERM         ? UVS_DENY
           : t == PU_RT_TEMP       ? UVS_DENYSOFT
           : t == PU_RT_DISCONNECT ? UVS_DENY_DISCONNECT
                                   : UVS_DENYSOFT_DISCONNECT;
      *code = t == PU_RT_TEMP_DISCONNECT ? 421 : temp ? 450 : 550;
      return;
  }
}

/* ---- the wait --------------------------------------------------------------------------- */

static void on_input(uvs_pending *p, int result, void *ud) {
  et_job *job = (et_job *)ud;
  et_state *st = job->st;
  int at_data = job->at_data;
  uvs_call *c = api->pending_call(p);
  if (!c) { /* the session went away or the core's hook_timeout answered for us */
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    free(job);
    return;
  }
  if (result == UVS_INPUT_TIMEOUT) {
    st->passed++;
    et_log(st, c, UVS_LOG_INFO, "pass, not spontaneous");
    if (!at_data && st->passes && job->have_peer)
      et_passtab_add(st->passes, &job->peer, pu_now_ms() + (uint64_t)(st->pass_ttl * 1000.0));
    char key[128];
    if (!at_data && st->pass_shared && job->have_peer &&
        pass_key(&job->peer, key, sizeof key) == 0) {
      int rc = api->kv_set(st->self, key, "1", 1, (uint64_t)(st->pass_ttl * 1000.0), NULL, NULL);
      if (rc < 0) et_log(st, c, UVS_LOG_WARNING, "pass not recorded (error %d)", rc);
    }
    free(job);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  free(job);
  st->early++;
  mark_early(c);
  const char *what = at_data ? kDataLog : kConnectLog;
  const char *eof = result == UVS_INPUT_EOF ? " (then closed)" : "";
  if (!st->reject) {
    et_log(st, c, UVS_LOG_INFO, "fail, tolerated, %s%s", what, eof);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (!at_data && st->defer) {
    et_log(st, c, UVS_LOG_INFO, "fail, deferred, %s%s: MAIL and RCPT will be refused", what, eof);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  et_log(st, c, UVS_LOG_INFO, "fail, %s%s", what, eof);
  uvs_verdict v;
  int code;
  const char *enh, *text;
  reject_reply(st->rtype, at_data ? UVS_HOOK_DATA : UVS_HOOK_CONNECT, &v, &code, &enh, &text);
  api->complete(p, v, code, enh, text);
}

/* Waits on a suspended call p (completes it when the wait cannot start). */
static void begin_wait(et_state *st, uvs_call *c, uvs_pending *p, int at_data, double wait) {
  et_job *job = (et_job *)calloc(1, sizeof *job);
  if (!job) {
    et_log(st, c, UVS_LOG_ERR, "skip, out of memory");
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  job->st = st;
  job->at_data = at_data;
  job->have_peer = peer_addr(c, &job->peer);
  st->checked++;
  if (!at_data && st->teaser) {
    int rc = api->send_continuation(c, st->teaser_text);
    if (rc < 0) et_log(st, c, UVS_LOG_WARNING, "banner teaser not sent (error %d)", rc);
  }
  int rc = api->wait_for_input(p, (uint64_t)(wait * 1000.0 + 0.5), on_input, job);
  if (rc < 0) {
    free(job);
    st->checked--;
    st->skipped++;
    et_log(st, c, UVS_LOG_WARNING, "skip, cannot watch the client (error %d)", rc);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
  }
}

/* Suspends the call and waits; returns the verdict the hook returns. */
static uvs_verdict start_wait(et_state *st, uvs_call *c, int at_data, double wait) {
  uvs_pending *p = api->suspend(c);
  if (!p) {
    et_log(st, c, UVS_LOG_ERR, "skip, cannot suspend the call");
    st->skipped++;
    return UVS_DECLINED;
  }
  begin_wait(st, c, p, at_data, wait);
  return UVS_PENDING;
}

/* ---- the shared pass cache (pass-shared 1) ---------------------------------------------- */

typedef struct et_lookup {
  et_state *st;
  uvs_pending *p;
  double wait;
} et_lookup;

static int pass_key(const ipnet_addr *a, char *out, size_t cap) {
  char text[64];
  if (ipnet_reverse(a, text, sizeof text) < 0) return -1;
  return snprintf(out, cap, "pass:%d:%s", a->family, text) < (int)cap ? 0 : -1;
}

static void on_pass_lookup(int status, const char *value, size_t len, int64_t number, void *ud) {
  (void)value;
  (void)len;
  (void)number;
  et_lookup *lk = (et_lookup *)ud;
  et_state *st = lk->st;
  uvs_pending *p = lk->p;
  double wait = lk->wait;
  free(lk);
  uvs_call *c = api->pending_call(p);
  if (!c || status == -ECANCELED) {
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (status == 0) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, passed within pass-ttl (shared)");
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (status != -ENOENT && !st->state_fail_closed) {
    st->skipped++;
    et_log(st, c, UVS_LOG_WARNING, "skip, shared state unavailable (error %d; state-fail open)",
           status);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (status != -ENOENT)
    et_log(st, c, UVS_LOG_WARNING,
           "shared state unavailable (error %d; state-fail closed): checking", status);
  begin_wait(st, c, p, 0, wait);
}

/* Looks the client up in the shared pass cache, then waits unless it passed lately. */
static uvs_verdict start_shared_lookup(et_state *st, uvs_call *c, const ipnet_addr *peer,
                                       double wait) {
  char key[128];
  et_lookup *lk = (et_lookup *)calloc(1, sizeof *lk);
  if (!lk || pass_key(peer, key, sizeof key) != 0) {
    free(lk);
    return start_wait(st, c, 0, wait);
  }
  lk->st = st;
  lk->wait = wait;
  lk->p = api->suspend(c);
  if (!lk->p) {
    free(lk);
    et_log(st, c, UVS_LOG_ERR, "skip, cannot suspend the call");
    st->skipped++;
    return UVS_DECLINED;
  }
  int rc = api->kv_get(st->self, key, on_pass_lookup, lk);
  if (rc < 0) {
    uvs_pending *p = lk->p;
    free(lk);
    et_log(st, c, UVS_LOG_WARNING, "pass lookup not started (error %d): checking", rc);
    begin_wait(st, c, p, 0, wait);
  }
  return UVS_PENDING;
}

/* ---- hooks ------------------------------------------------------------------------------ */

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  et_state *st = (et_state *)ud;
  const char *why = pu_immune_reason(api, c);
  if (why) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, %s", why);
    return UVS_DECLINED;
  }
  const char *karma = api->note_get(c, UVS_NOTE_CONNECTION, "karma_history");
  if (karma && strtod(karma, NULL) > 5) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, karma %s", karma);
    return UVS_DECLINED;
  }
  ipnet_addr peer;
  int have_peer = peer_addr(c, &peer);
  if (have_peer && allowed(st, &peer)) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, allow");
    return UVS_DECLINED;
  }
  if (have_peer && st->passes && et_passtab_check(st->passes, &peer, pu_now_ms())) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, passed within pass-ttl");
    return UVS_DECLINED;
  }
  if (have_peer && st->pass_shared) return start_shared_lookup(st, c, &peer, wait_for(st, c));
  return start_wait(st, c, 0, wait_for(st, c));
}

static uvs_verdict on_data(uvs_call *c, void *ud) {
  et_state *st = (et_state *)ud;
  if (api->rcpt_count(c) <= 0) {
    /* No transaction to start: the core answers 503 and sends no 354. */
    et_log(st, c, UVS_LOG_DEBUG, "skip, no recipients");
    return UVS_DECLINED;
  }
  const char *why = pu_immune_reason(api, c);
  if (why) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, %s", why);
    return UVS_DECLINED;
  }
  ipnet_addr peer;
  if (peer_addr(c, &peer) && allowed(st, &peer)) {
    st->skipped++;
    et_log(st, c, UVS_LOG_INFO, "skip, allow");
    return UVS_DECLINED;
  }
  return start_wait(st, c, 1, wait_for(st, c));
}

/* defer-reject: MAIL and RCPT of an early talker are refused, unless immune by now. */
static uvs_verdict on_mail_rcpt(uvs_call *c, void *ud) {
  et_state *st = (et_state *)ud;
  if (!pu_truthy(api->note_get(c, UVS_NOTE_CONNECTION, "earlytalker"))) return UVS_DECLINED;
  const char *why = pu_immune_reason(api, c);
  if (why) {
    et_log(st, c, UVS_LOG_INFO, "skip, %s (early talker, deferred reject waived)", why);
    return UVS_DECLINED;
  }
  uvs_hook hook = api->call_hook(c);
  et_log(st, c, UVS_LOG_INFO, "fail, %s (deferred reject at %s)", kConnectLog,
         hook == UVS_HOOK_MAIL ? "MAIL" : "RCPT");
  uvs_verdict v;
  int code;
  const char *enh, *text;
  reject_reply(st->rtype, hook, &v, &code, &enh, &text);
  api->reply(c, code, enh, text);
  return v;
}

/* ---- arguments -------------------------------------------------------------------------- */

/* An argument error: the message for the server (set_errorf, 1.2, printf-checked) and -EINVAL. */
#define FAIL(self, ...) (api->set_errorf((self), __VA_ARGS__), -EINVAL)

static int add_allow(et_state *st, const char *list, uvs_plugin *self) {
  const char *p = list;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == 0)
      return FAIL(self, "bad value '%s' for 'allow': empty entry in the CIDR list", list);
    ipnet net;
    if (ipnet_parse(p, len, &net) != 0)
      return FAIL(self, "bad value '%s' for 'allow': '%.*s' is not an IPv4/IPv6 address or CIDR",
                  list, (int)len, p);
    if (st->allow.count >= ET_MAX_ALLOW)
      return FAIL(self, "bad value for 'allow': more than %d entries", ET_MAX_ALLOW);
    if (ipnet_list_add(&st->allow, &net) != 0) return FAIL(self, "out of memory");
    if (!comma) return 0;
    p = comma + 1;
  }
}

static const char *const kKeys[] = {"wait",     "reject",   "reject_type", "defer-reject",
                                    "check-at", "action",   "loglevel",    "banner-teaser",
                                    "allow",    "pass-ttl", "pass-shared", "state-fail"};
enum {
  K_WAIT,
  K_REJECT,
  K_RTYPE,
  K_DEFER,
  K_CHECKAT,
  K_ACTION,
  K_LOGLEVEL,
  K_TEASER,
  K_ALLOW,
  K_PASSTTL,
  K_PASSSHARED,
  K_STATEFAIL,
  K_COUNT
};

static int parse_args(et_state *st, uvs_plugin *self) {
  int argc = api->plugin_argc(self);
  if (argc % 2)
    return FAIL(self,
                "odd number of arguments (%d): arguments are key value pairs, e.g. 'wait 1 "
                "reject_type temp'",
                argc);
  int seen[K_COUNT] = {0};
  int reject = -1, rtype_set = 0;
  const char *action = NULL;
  st->wait = 1;
  st->rtype = PU_RT_PERM;
  for (int i = 0; i < argc; i += 2) {
    const char *key = api->plugin_argv(self, i);
    const char *val = api->plugin_argv(self, i + 1);
    int k = -1;
    for (int j = 0; j < K_COUNT; ++j)
      if (strcasecmp(key, kKeys[j]) == 0) k = j;
    if (k < 0)
      return FAIL(self,
                  "unknown argument '%s' (known: wait, reject, reject_type, defer-reject, "
                  "check-at, action, loglevel, banner-teaser, allow, pass-ttl, pass-shared, "
                  "state-fail)",
                  key);
    if (seen[k]++ && k != K_CHECKAT && k != K_ALLOW)
      return FAIL(self, "argument '%s' given twice", kKeys[k]);
    switch (k) {
      case K_WAIT: {
        double w = pu_parse_seconds(val);
        if (w < 0 || w > ET_MAX_WAIT)
          return FAIL(self,
                      "bad value '%s' for 'wait': expected seconds from 0 to %g (e.g. 1, 0.5)", val,
                      ET_MAX_WAIT);
        st->wait = w;
        break;
      }
      case K_REJECT:
        reject = parse_bool(val);
        if (reject < 0)
          return FAIL(self,
                      "bad value '%s' for 'reject': expected 0 or 1 ('naughty' needs the naughty "
                      "plugin, which uvsmtpd does not have)",
                      val);
        break;
      case K_RTYPE:
        if (pu_reject_type_parse(val, &st->rtype) != 0)
          return FAIL(self,
                      "bad value '%s' for 'reject_type': expected perm, hard, temp, soft, "
                      "disconnect or temp_disconnect",
                      val);
        rtype_set = 1;
        break;
      case K_DEFER:
        st->defer = parse_bool(val);
        if (st->defer < 0)
          return FAIL(self, "bad value '%s' for 'defer-reject': expected 0 or 1", val);
        break;
      case K_CHECKAT:
        if (!strcasecmp(val, "connect"))
          st->at_connect = 1;
        else if (!strcasecmp(val, "data"))
          st->at_data = 1;
        else
          return FAIL(self, "bad value '%s' for 'check-at': expected CONNECT or DATA", val);
        break;
      case K_ACTION:
        if (strcasecmp(val, "deny") && strcasecmp(val, "denysoft") && strcasecmp(val, "log"))
          return FAIL(self, "bad value '%s' for 'action': expected deny, denysoft or log", val);
        action = val;
        break;
      case K_LOGLEVEL: {
        const char *d = val;
        int mode = 1;
        if (*d == '+' || *d == '-') {
          mode = 2;
          ++d;
        }
        if (d[0] < '0' || d[0] > '7' || d[1])
          return FAIL(self, "bad value '%s' for 'loglevel': expected 0-7, +N or -N", val);
        st->loglevel_mode = mode;
        st->loglevel_val = (d[0] - '0') * (val[0] == '-' ? -1 : 1);
        break;
      }
      case K_TEASER:
        st->teaser = parse_bool(val);
        if (st->teaser < 0)
          return FAIL(self, "bad value '%s' for 'banner-teaser': expected 0 or 1", val);
        break;
      case K_ALLOW:
        if (add_allow(st, val, self) != 0) return -EINVAL;
        break;
      case K_PASSTTL: {
        double t = pu_parse_seconds(val);
        if (t < 0 || t > ET_MAX_PASS_TTL)
          return FAIL(self, "bad value '%s' for 'pass-ttl': expected seconds from 0 to %g", val,
                      ET_MAX_PASS_TTL);
        st->pass_ttl = t;
        break;
      }
      case K_PASSSHARED:
        st->pass_shared = parse_bool(val);
        if (st->pass_shared < 0)
          return FAIL(self, "bad value '%s' for 'pass-shared': expected 0 or 1", val);
        break;
      case K_STATEFAIL:
        if (su_fail_parse(val, &st->state_fail_closed) != 0)
          return FAIL(self, "bad value '%s' for 'state-fail': expected open or closed", val);
        break;
    }
  }
  if (!st->at_connect && !st->at_data) st->at_connect = 1;
  if (st->pass_shared && st->pass_ttl <= 0)
    return FAIL(self, "'pass-shared 1' needs 'pass-ttl' (seconds a pass is remembered)");
  if (!seen[K_STATEFAIL]) st->state_fail_closed = 1;
  if (action) {
    if (reject >= 0) {
      api->log(self, NULL, UVS_LOG_NOTICE, "'action %s' ignored: 'reject' is given", action);
    } else {
      reject = strncasecmp(action, "deny", 4) == 0;
      if (!rtype_set && !strcasecmp(action, "denysoft")) st->rtype = PU_RT_TEMP;
    }
  }
  st->reject = reject < 0 ? 1 : reject;
  if (st->defer < 0) st->defer = 0;
  if (st->teaser < 0) st->teaser = 0;
  return 0;
}

static void free_state(et_state *st) {
  if (!st) return;
  ipnet_list_free(&st->allow);
  et_passtab_free(st->passes);
  free(st);
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(api, set_errorf)) {
    api->set_error(self, "needs uvsmtpd plugin ABI 1.2 (set_errorf)");
    return -ENOSYS;
  }
  et_state *st = (et_state *)calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  int rc = parse_args(st, self);
  if (rc != 0) {
    free_state(st);
    return rc;
  }
  const char *me = api->me(self);
  snprintf(st->teaser_text, sizeof st->teaser_text, "%s ESMTP uvsmtpd",
           me && *me ? me : "localhost");
  if (st->pass_shared && !UVS_API_HAS(api, kv_get)) {
    free_state(st);
    return FAIL(self, "'pass-shared 1' needs uvsmtpd plugin ABI 1.5 (kv_get)");
  }
  if (st->pass_ttl > 0 && !st->pass_shared) {
    st->passes = et_passtab_new(ET_PASS_TABLE_CAP);
    if (!st->passes) {
      free_state(st);
      return FAIL(self, "out of memory for the pass-ttl table");
    }
  }
  if (st->at_connect) api->register_hook(self, UVS_HOOK_CONNECT, on_connect, st);
  if (st->at_data) api->register_hook(self, UVS_HOOK_DATA, on_data, st);
  if (st->defer && st->reject) {
    api->register_hook(self, UVS_HOOK_MAIL, on_mail_rcpt, st);
    api->register_hook(self, UVS_HOOK_RCPT, on_mail_rcpt, st);
  }
  api->plugin_set_data(self, st);
  et_log(st, NULL, UVS_LOG_DEBUG,
         "wait %g, reject %d, reject_type %s, defer-reject %d, check-at%s%s, banner-teaser %d, "
         "%zu allow entries, pass-ttl %g%s",
         st->wait, st->reject, pu_reject_type_name(st->rtype), st->defer,
         st->at_connect ? " CONNECT" : "", st->at_data ? " DATA" : "", st->teaser, st->allow.count,
         st->pass_ttl, st->pass_shared ? " (shared)" : "");
  return 0;
}

static void fini(uvs_plugin *self) {
  et_state *st = (et_state *)api->plugin_data(self);
  if (!st) return;
  api->log(self, NULL, UVS_LOG_NOTICE, "checked %llu, passed %llu, early %llu, skipped %llu",
           st->checked, st->passed, st->early, st->skipped);
  api->plugin_set_data(self, NULL);
  free_state(st);
}

UVS_PLUGIN("earlytalker", "1.0", init, fini);
