/* plugins/dnsbl/dnsbl.c: the dnsbl plugin: parallel blocklist lookups, verdicts at connect/RCPT. */
/*
 * At connect one A query per zone of conf/dnsbl_zones is sent at once through the core's
 * resolver; each query carries the plugin's `timeout`. A listing is stored in connection notes
 * and enforced at connect (`check-at connect`) or at each RCPT (the default, as in qpsmtpd, so
 * that postmaster and relay clients can be let through). A timeout or a DNS error never
 * rejects.
 * Two ways to wait: the connect call is suspended until every query has answered (the greeting
 * waits; uvs_api.dns_query), or, with check-at rcpt and reject 1 on a server with ABI 1.3's
 * dns_query_conn, the lookups belong to the session, the greeting goes out at once, and only a
 * RCPT that comes before the answers waits for them (the async mode).
 * docs/plugins/dnsbl.md describes the configuration and the differences from qpsmtpd.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/ipnet.h"
#include "../common/plugin_util.h"
#include "dnsbl_util.h"
#include "uvsmtpd/plugin.h"

static const uvs_api *api;

#define BL_MAX_ZONES 64
#define BL_MAX_ALLOW 4096
#define BL_MAX_MSG_LINES 8
#define BL_TEXT 400         /* bytes of reply text kept (the core allows 500 per line)  */
#define BL_MAX_TIMEOUT 60.0 /* seconds; keep it below the core's hook_timeout (30)    */
#define BL_MIN_TXT_MS 20    /* no TXT follow-up when less time than this is left      */
#define BL_ZONE_CAP 184

typedef enum { REJECT_LOG = 0, REJECT_YES = 1, REJECT_NAUGHTY = 2 } reject_mode;

typedef struct bl_zone {
  char name[BL_ZONE_CAP];
  bl_expect expect[BL_MAX_EXPECT];
  int nexpect;
  char msg[BL_TEXT]; /* "" = TXT record or the default text */
} bl_zone;

typedef struct bl_state {
  uvs_plugin *self;
  bl_zone *zones;
  size_t nzones;
  ipnet_list allow;
  char msg_lines[BL_MAX_MSG_LINES][BL_TEXT]; /* conf/dnsbl_rejectmsg */
  int nmsg_lines;
  reject_mode reject;
  pu_reject_type rtype;
  int at_connect;
  int async; /* lookups owned by the session (dns_query_conn, 1.3): see start_conn_lookups */
  int txt;
  double timeout;
  char reject_note[160]; /* this instance's private connection note */
  char job_note[160];    /* its session-owned lookups (async mode), a pointer note */
  char name[128];        /* the instance name, for logging after fini */
  int refs;              /* 1 for the instance (until fini) + 1 per job in flight */
  int retired;           /* fini ran: st->self is gone */
  int init_error;
  char init_msg[512];
  unsigned long long checked, listed, skipped, timeouts, errors;
} bl_state;

/* ---- one connection's lookups ----------------------------------------------------------- */

typedef enum { ZQ_PENDING, ZQ_CLEAN, ZQ_LISTED, ZQ_TIMEOUT, ZQ_ERROR } zq_state;

struct bl_job;
typedef struct bl_zq {
  struct bl_job *job;
  size_t zone;
  zq_state state;
  int txt_asked; /* async mode: the TXT follow-up was started */
  char answer[INET6_ADDRSTRLEN];
  char txt[BL_TEXT];
} bl_zq;

typedef struct bl_job {
  bl_state *st;
  uvs_pending *p;  /* the suspended connect call; NULL in async mode */
  int outstanding; /* queries that will still call back, +1 while launching */
  uint64_t deadline_ms;
  /* async mode: the answers are kept with the session until a RCPT needs them */
  uvs_pending *waiter;    /* a RCPT call suspended until the answers are in */
  uint64_t wait_until_ms; /* when that RCPT stops waiting for a TXT follow-up */
  int decided;            /* the answers were read; the reject note is set if listed */
  int refs;               /* async: 1 for the connection note + 1 while a RCPT waits */
  char ip[INET6_ADDRSTRLEN];
  char prefix[72];
  char sid[64]; /* the session's id, for the lines logged when no call is at hand */
  bl_zq zq[];
} bl_job;

/* ---- helpers ---------------------------------------------------------------------------- */

static void bl_log(const bl_state *st, const uvs_call *c, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Logs as the instance. After fini (a reload retired the instance while a lookup was still in
 * flight) the uvs_plugin handle is gone: log without it, naming the instance in the text. */
static void bl_log(const bl_state *st, const uvs_call *c, int level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (st->retired)
    api->log(NULL, c, level, "%s (retired): %s", st->name, buf);
  else
    api->log(st->self, c, level, "%s", buf);
}

/* Logs about a job: through the call when there is one (the server adds the session id),
 * else (a DNS answer after the call was let go, or in async mode, where answers come without a
 * call) with "(session ID)" in the text, as smtp-forward does. */
static void job_log(const bl_job *job, const uvs_call *c, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void job_log(const bl_job *job, const uvs_call *c, int level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (c)
    bl_log(job->st, c, level, "%s", buf);
  else
    bl_log(job->st, NULL, level, "(session %s) %s", job->sid, buf);
}

static void free_state(bl_state *st);

/* The state lives until fini AND the last job are done: the core may retire an instance (a
 * reload, once the old generation's sessions are gone) while an abandoned lookup of it is
 * still waiting for its answer. */
static void state_release(bl_state *st) {
  if (--st->refs == 0) free_state(st);
}

static void job_free(struct bl_job *job);

static uvs_verdict reject_verdict(pu_reject_type t) {
  switch (t) {
    case PU_RT_TEMP:
      return UVS_DENYSOFT;
    case PU_RT_DISCONNECT:
      return UVS_DENY_DISCONNECT;
    case PU_RT_TEMP_DISCONNECT:
      return UVS_DENYSOFT_DISCONNECT;
    default:
      return UVS_DENY;
  }
}

static int allowed(const bl_state *st, const ipnet_addr *a) {
  return ipnet_list_find(&st->allow, a) >= 0;
}

/* The reply: the dnsbl_rejectmsg lines (if any), then msg. Code 0 = the hook's default
 * (550 5.7.1 / 450 4.7.1, 421 for temp_disconnect at RCPT). */
static void set_reply(const bl_state *st, uvs_call *c, const char *msg) {
  if (st->nmsg_lines == 0) {
    api->reply(c, 0, NULL, msg);
    return;
  }
  api->reply(c, 0, NULL, st->msg_lines[0]);
  for (int i = 1; i < st->nmsg_lines; ++i) api->reply_line(c, st->msg_lines[i]);
  api->reply_line(c, msg);
}

/* qpsmtpd's store_deferred_reject: append "(dnsbl) msg" to the connection note naughty,
 * and set naughty_reject_type unless another plugin set it first. */
static void store_deferred_reject(const bl_state *st, uvs_call *c, const char *msg) {
  char buf[2048];
  const char *old = api->note_get(c, UVS_NOTE_CONNECTION, "naughty");
  if (pu_truthy(old))
    snprintf(buf, sizeof buf, "%s\r\n(dnsbl) %s", old, msg);
  else
    snprintf(buf, sizeof buf, "(dnsbl) %s", msg);
  api->note_set(c, UVS_NOTE_CONNECTION, "naughty", buf);
  if (!api->note_get(c, UVS_NOTE_CONNECTION, "naughty_reject_type"))
    api->note_set(c, UVS_NOTE_CONNECTION, "naughty_reject_type", pu_reject_type_name(st->rtype));
}

/* ---- the lookups ------------------------------------------------------------------------ */

/* The reply text of a listing (the zone's message, its TXT record or the default) and the
 * note "zone: text". */
static void hit_text(const bl_job *job, const bl_zq *hit, char *msg, size_t msglen, char *note,
                     size_t notelen) {
  const bl_zone *z = &job->st->zones[hit->zone];
  if (z->msg[0])
    bl_reply_text(msg, msglen, z->msg, job->ip);
  else if (hit->txt[0])
    bl_reply_text(msg, msglen, hit->txt, NULL);
  else
    snprintf(msg, msglen, "Blocked - see %s", z->name);
  snprintf(note, notelen, "%s: %s", z->name, msg);
}

static bl_zq *first_hit(bl_job *job) {
  for (size_t i = 0; i < job->st->nzones; ++i)
    if (job->zq[i].state == ZQ_LISTED) return &job->zq[i];
  return NULL;
}

/* All answers are in: decide, note, log, complete, free. The call may be gone (client left,
 * hook timeout): then only complete. */
static void job_finish(bl_job *job) {
  bl_state *st = job->st;
  uvs_pending *p = job->p;
  uvs_call *c = api->pending_call(p);
  const bl_zq *hit = first_hit(job);
  if (!hit) {
    job_log(job, c, UVS_LOG_INFO, "pass, %s not listed in %zu zone%s", job->ip, st->nzones,
            st->nzones == 1 ? "" : "s");
    job_free(job);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  st->listed++;
  char msg[BL_TEXT];
  char note[BL_TEXT + BL_ZONE_CAP + 4];
  hit_text(job, hit, msg, sizeof msg, note, sizeof note);
  if (!c) {
    job_free(job);
    api->complete(p, UVS_DECLINED, 0, NULL, NULL);
    return;
  }
  if (!api->note_get(c, UVS_NOTE_CONNECTION, "dnsbl"))
    api->note_set(c, UVS_NOTE_CONNECTION, "dnsbl", note);
  uvs_verdict v = UVS_DECLINED;
  switch (st->reject) {
    case REJECT_LOG:
      bl_log(st, c, UVS_LOG_INFO, "fail, tolerated, %s", note);
      break;
    case REJECT_NAUGHTY:
      bl_log(st, c, UVS_LOG_INFO, "fail, NAUGHTY, %s", note);
      store_deferred_reject(st, c, msg);
      break;
    case REJECT_YES:
      if (st->at_connect) {
        bl_log(st, c, UVS_LOG_INFO, "fail, %s", note);
        set_reply(st, c, msg);
        v = reject_verdict(st->rtype);
      } else {
        bl_log(st, c, UVS_LOG_INFO, "listed, %s (recipients will be refused)", note);
        api->note_set(c, UVS_NOTE_CONNECTION, st->reject_note, note);
      }
      break;
  }
  job_free(job);
  api->complete(p, v, 0, NULL, NULL);
}

static void job_free(bl_job *job) {
  bl_state *st = job->st;
  free(job);
  state_release(st);
}

static void job_release(bl_job *job) {
  if (--job->outstanding == 0) job_finish(job);
}

static void on_txt(uvs_pending *p, int status, int count, const char *const *answers, void *ud) {
  bl_zq *zq = (bl_zq *)ud;
  bl_job *job = zq->job;
  const bl_zone *z = &job->st->zones[zq->zone];
  if (status == 0 && count > 0 && answers[0])
    bl_reply_text(zq->txt, sizeof zq->txt, answers[0], NULL);
  else
    job_log(job, api->pending_call(p), UVS_LOG_DEBUG, "%s: no TXT record (%d)", z->name, status);
  job_release(job);
}

/* An A answer for one zone: its state, counters and log lines (c may be NULL). */
static void a_record(bl_zq *zq, const uvs_call *c, int status, int count,
                     const char *const *answers) {
  bl_job *job = zq->job;
  bl_state *st = job->st;
  const bl_zone *z = &st->zones[zq->zone];
  if (status == 0) {
    for (int i = 0; i < count && zq->state != ZQ_LISTED; ++i) {
      if (!bl_expect_match(z->expect, z->nexpect, answers[i])) continue;
      zq->state = ZQ_LISTED;
      snprintf(zq->answer, sizeof zq->answer, "%s", answers[i]);
    }
    if (zq->state == ZQ_LISTED) {
      job_log(job, c, UVS_LOG_INFO, "%s lists %s (%s)", z->name, job->ip, zq->answer);
    } else {
      zq->state = ZQ_CLEAN;
      job_log(job, c, UVS_LOG_INFO, "%s answered %s for %s, not an expected answer: not listed",
              z->name, count > 0 ? answers[0] : "nothing", job->ip);
    }
  } else if (status == -ENOENT) {
    zq->state = ZQ_CLEAN;
    job_log(job, c, UVS_LOG_DEBUG, "%s: %s not listed", z->name, job->ip);
  } else if (status == -ETIMEDOUT) {
    zq->state = ZQ_TIMEOUT;
    st->timeouts++;
    job_log(job, c, UVS_LOG_WARNING, "%s: no answer within %gs, treated as not listed", z->name,
            st->timeout);
  } else {
    zq->state = ZQ_ERROR;
    st->errors++;
    job_log(job, c, UVS_LOG_WARNING, "%s: lookup failed (%s), treated as not listed", z->name,
            strerror(-status));
  }
}

static void on_a(uvs_pending *p, int status, int count, const char *const *answers, void *ud) {
  bl_zq *zq = (bl_zq *)ud;
  bl_job *job = zq->job;
  bl_state *st = job->st;
  const bl_zone *z = &st->zones[zq->zone];
  a_record(zq, api->pending_call(p), status, count, answers);
  if (zq->state == ZQ_LISTED && !z->msg[0] && st->txt) {
    uint64_t now = pu_now_ms();
    if (job->deadline_ms > now + BL_MIN_TXT_MS) {
      char name[256];
      snprintf(name, sizeof name, "%s.%s", job->prefix, z->name);
      /* The TXT query takes over this zone's slot in job->outstanding. */
      if (api->dns_query(p, name, UVS_DNS_TXT, job->deadline_ms - now, on_txt, zq) == 0) return;
    }
  }
  job_release(job);
}

/* A job with room for every zone and the client's reversed address as the query prefix;
 * NULL (logged) when there is no memory or the address cannot be reversed. */
static bl_job *new_job(bl_state *st, uvs_call *c, const ipnet_addr *addr) {
  bl_job *job = (bl_job *)calloc(1, sizeof *job + st->nzones * sizeof(bl_zq));
  if (!job) {
    bl_log(st, c, UVS_LOG_ERR, "skip, out of memory");
    return NULL;
  }
  if (ipnet_reverse(addr, job->prefix, sizeof job->prefix) < 0) {
    free(job);
    return NULL;
  }
  const char *sid = api->session_id(c);
  snprintf(job->sid, sizeof job->sid, "%s", sid ? sid : "");
  return job;
}

static uvs_verdict start_lookups(bl_state *st, uvs_call *c, const ipnet_addr *addr,
                                 const char *ip) {
  bl_job *job = new_job(st, c, addr);
  if (!job) return UVS_DECLINED;
  uvs_pending *p = api->suspend(c);
  if (!p) {
    free(job);
    st->skipped++;
    bl_log(st, c, UVS_LOG_ERR, "skip, cannot suspend the call");
    return UVS_DECLINED;
  }
  st->checked++;
  st->refs++;
  job->st = st;
  job->p = p;
  job->deadline_ms = pu_now_ms() + (uint64_t)(st->timeout * 1000.0 + 0.5);
  snprintf(job->ip, sizeof job->ip, "%s", ip);
  uint64_t timeout_ms = (uint64_t)(st->timeout * 1000.0 + 0.5);
  /* The +1 keeps a callback that runs inside dns_query() from finishing the job early. */
  job->outstanding = 1;
  for (size_t i = 0; i < st->nzones; ++i) {
    bl_zq *zq = &job->zq[i];
    zq->job = job;
    zq->zone = i;
    char name[256];
    snprintf(name, sizeof name, "%s.%s", job->prefix, st->zones[i].name);
    bl_log(st, c, UVS_LOG_DEBUG, "looking up %s A", name);
    ++job->outstanding;
    int rc = api->dns_query(p, name, UVS_DNS_A, timeout_ms, on_a, zq);
    if (rc < 0) {
      --job->outstanding;
      zq->state = ZQ_ERROR;
      st->errors++;
      bl_log(st, c, UVS_LOG_WARNING, "%s: cannot query (%s), treated as not listed",
             st->zones[i].name, strerror(-rc));
    }
  }
  job_release(job); /* may complete at once if every query failed to start */
  return UVS_PENDING;
}

/* ---- async mode: lookups owned by the session (ABI 1.3) --------------------------------- */
/*
 * With `check-at rcpt` and `reject 1` on a server that has dns_query_conn, the connect hook
 * starts the A queries and returns at once: the banner is not held. The answers are kept in a
 * connection pointer note (the job). The first RCPT that finds them all in reads them (asking
 * the TXT record of a listing zone then, when wanted); a RCPT that comes earlier is suspended
 * until they are in (each query carries the plugin's timeout). When the session ends first,
 * the server cancels the lookups (no callback runs) and then frees the note.
 */

static uvs_verdict rcpt_verdict(bl_state *st, uvs_call *c);

static uint64_t timeout_ms(const bl_state *st) {
  return (uint64_t)(st->timeout * 1000.0 + 0.5);
}

static void job_unref(bl_job *job) {
  if (--job->refs == 0) job_free(job);
}

/* The connection note's destructor: it only drops the note's reference (a waiting RCPT keeps
 * the job until its cancel callback has run). */
static void job_note_free(void *ptr) {
  job_unref((bl_job *)ptr);
}

static void on_conn_txt(int64_t id, int status, int count, const char *const *answers, void *ud);

/* All asked answers are in (outstanding == 0). A listing zone without its own message may
 * first need its TXT record: asked here with the RCPT call c (returns 0: wait for it; also 0
 * when there is no call to ask with). Otherwise reads the answers, once: counters, log, and
 * for a listing the notes that rcpt_verdict() enforces (returns 1). */
static int job_settle(bl_job *job, uvs_call *c) {
  bl_state *st = job->st;
  bl_zq *hit = first_hit(job);
  if (hit && st->txt && !st->zones[hit->zone].msg[0] && !hit->txt_asked) {
    if (!c) return 0;
    hit->txt_asked = 1;
    uint64_t now = pu_now_ms();
    uint64_t until = job->waiter ? job->wait_until_ms : now + timeout_ms(st);
    if (until > now + BL_MIN_TXT_MS) {
      char name[256];
      snprintf(name, sizeof name, "%s.%s", job->prefix, st->zones[hit->zone].name);
      ++job->outstanding;
      int64_t id = api->dns_query_conn(c, name, UVS_DNS_TXT, until - now, on_conn_txt, hit);
      if (id > 0) return 0;
      --job->outstanding;
      bl_log(st, c, UVS_LOG_DEBUG, "%s: cannot ask the TXT record (%s)", st->zones[hit->zone].name,
             strerror((int)-id));
    }
  }
  if (hit && !c) return 0; /* the notes need a call */
  job->decided = 1;
  if (!hit) {
    job_log(job, c, UVS_LOG_INFO, "pass, %s not listed in %zu zone%s", job->ip, st->nzones,
            st->nzones == 1 ? "" : "s");
    return 1;
  }
  st->listed++;
  char msg[BL_TEXT];
  char note[BL_TEXT + BL_ZONE_CAP + 4];
  hit_text(job, hit, msg, sizeof msg, note, sizeof note);
  if (!api->note_get(c, UVS_NOTE_CONNECTION, "dnsbl"))
    api->note_set(c, UVS_NOTE_CONNECTION, "dnsbl", note);
  bl_log(st, c, UVS_LOG_INFO, "listed, %s (recipients will be refused)", note);
  api->note_set(c, UVS_NOTE_CONNECTION, st->reject_note, note);
  return 1;
}

/* An answer came in: when it was the last one, read them all and answer a waiting RCPT. */
static void job_answered(bl_job *job) {
  if (--job->outstanding > 0) return;
  uvs_pending *p = job->waiter;
  uvs_call *c = p ? api->pending_call(p) : NULL;
  if (!job->decided && !job_settle(job, c)) return; /* a TXT follow-up, or no call yet */
  if (!p) return;
  job->waiter = NULL;
  uvs_verdict v = c ? rcpt_verdict(job->st, c) : UVS_DECLINED;
  api->complete(p, v, 0, NULL, NULL);
  job_unref(job);
}

static void on_conn_a(int64_t id, int status, int count, const char *const *answers, void *ud) {
  (void)id;
  bl_zq *zq = (bl_zq *)ud;
  a_record(zq, NULL, status, count, answers);
  job_answered(zq->job);
}

static void on_conn_txt(int64_t id, int status, int count, const char *const *answers, void *ud) {
  (void)id;
  bl_zq *zq = (bl_zq *)ud;
  bl_job *job = zq->job;
  if (status == 0 && count > 0 && answers[0])
    bl_reply_text(zq->txt, sizeof zq->txt, answers[0], NULL);
  else
    job_log(job, NULL, UVS_LOG_DEBUG, "%s: no TXT record (%d)", job->st->zones[zq->zone].name,
            status);
  job_answered(job);
}

/* The core let go of the waiting RCPT (hook_timeout, or the session closes): release it. */
static void on_waiter_cancel(uvs_pending *p, void *ud) {
  bl_job *job = (bl_job *)ud;
  if (job->waiter != p) return;
  job->waiter = NULL;
  api->complete(p, UVS_DECLINED, 0, NULL, NULL);
  job_unref(job);
}

static uvs_verdict start_conn_lookups(bl_state *st, uvs_call *c, const ipnet_addr *addr,
                                      const char *ip) {
  bl_job *job = new_job(st, c, addr);
  if (!job) return UVS_DECLINED;
  job->st = st;
  job->refs = 1;
  st->refs++;
  if (api->note_set_ptr(c, UVS_NOTE_CONNECTION, st->job_note, job, job_note_free) != 0) {
    job_free(job);
    st->skipped++;
    bl_log(st, c, UVS_LOG_ERR, "skip, cannot keep the lookup state");
    return UVS_DECLINED;
  }
  st->checked++;
  job->deadline_ms = pu_now_ms() + timeout_ms(st);
  snprintf(job->ip, sizeof job->ip, "%s", ip);
  job->outstanding = 1; /* held while launching */
  for (size_t i = 0; i < st->nzones; ++i) {
    bl_zq *zq = &job->zq[i];
    zq->job = job;
    zq->zone = i;
    char name[256];
    snprintf(name, sizeof name, "%s.%s", job->prefix, st->zones[i].name);
    bl_log(st, c, UVS_LOG_DEBUG, "looking up %s A", name);
    ++job->outstanding;
    int64_t id = api->dns_query_conn(c, name, UVS_DNS_A, timeout_ms(st), on_conn_a, zq);
    if (id < 0) {
      --job->outstanding;
      zq->state = ZQ_ERROR;
      st->errors++;
      bl_log(st, c, UVS_LOG_WARNING, "%s: cannot query (%s), treated as not listed",
             st->zones[i].name, strerror((int)-id));
    }
  }
  job_answered(job); /* reads the answers at once if every query failed to start */
  return UVS_DECLINED;
}

/* RCPT in async mode: wait (suspended) while answers are outstanding, then enforce as in the
 * other mode (immune clients and special recipients pass then, with the listing logged). */
static uvs_verdict async_rcpt(bl_state *st, uvs_call *c) {
  bl_job *job = (bl_job *)api->note_get_ptr(c, UVS_NOTE_CONNECTION, st->job_note);
  if (!job || job->decided || job->waiter) return rcpt_verdict(st, c);
  if (job->outstanding == 0 && job_settle(job, c)) return rcpt_verdict(st, c);
  uvs_pending *p = api->suspend(c);
  if (!p) {
    bl_log(st, c, UVS_LOG_ERR, "skip, cannot suspend the call");
    return UVS_DECLINED;
  }
  job->waiter = p;
  job->wait_until_ms = pu_now_ms() + timeout_ms(st);
  job->refs++;
  bl_log(st, c, UVS_LOG_DEBUG, "RCPT waits for %d answer%s", job->outstanding,
         job->outstanding == 1 ? "" : "s");
  api->pending_on_cancel(p, on_waiter_cancel, job);
  return UVS_PENDING;
}

/* ---- hooks ------------------------------------------------------------------------------ */

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  bl_state *st = (bl_state *)ud;
  const char *why = pu_immune_reason(api, c);
  if (why) {
    st->skipped++;
    bl_log(st, c, UVS_LOG_INFO, "skip, %s", why);
    return UVS_DECLINED;
  }
  const char *ip = api->peer_ip(c);
  ipnet_addr addr;
  if (ipnet_addr_parse(ip, &addr) != 0) {
    st->skipped++;
    bl_log(st, c, UVS_LOG_INFO, "skip, peer address '%s' is not IPv4/IPv6", ip ? ip : "");
    return UVS_DECLINED;
  }
  if (allowed(st, &addr)) {
    st->skipped++;
    bl_log(st, c, UVS_LOG_INFO, "skip, %s is in dnsbl_allow", ip);
    return UVS_DECLINED;
  }
  if (st->async) return start_conn_lookups(st, c, &addr, ip);
  return start_lookups(st, c, &addr, ip);
}

/* RFC 5321 §4.5.1 (postmaster) and RFC 2142 (abuse) mailboxes, as qpsmtpd's list. */
static int special_recipient(const char *address) {
  static const char *const names[] = {"postmaster", "abuse", "mailer-daemon", "root"};
  const char *at = strrchr(address, '@');
  size_t len = at ? (size_t)(at - address) : strlen(address);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (strlen(names[i]) == len && strncasecmp(address, names[i], len) == 0) return 1;
  return 0;
}

/* Enforces a listing stored in the reject note (not listed: DECLINED). */
static uvs_verdict rcpt_verdict(bl_state *st, uvs_call *c) {
  const char *note = api->note_get(c, UVS_NOTE_CONNECTION, st->reject_note);
  if (!pu_truthy(note)) return UVS_DECLINED;
  const char *why = pu_immune_reason(api, c);
  if (why) {
    bl_log(st, c, UVS_LOG_INFO, "skip, %s (listed: %s)", why, note);
    return UVS_DECLINED;
  }
  const char *rcpt = api->call_address(c);
  if (rcpt && special_recipient(rcpt)) {
    bl_log(st, c, UVS_LOG_INFO, "skip, special recipient %s (listed: %s)", rcpt, note);
    return UVS_DECLINED;
  }
  bl_log(st, c, UVS_LOG_INFO, "fail, %s", note);
  const char *sep = strstr(note, ": ");
  set_reply(st, c, sep ? sep + 2 : note);
  return reject_verdict(st->rtype);
}

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  bl_state *st = (bl_state *)ud;
  return st->async ? async_rcpt(st, c) : rcpt_verdict(st, c);
}

/* ---- configuration ---------------------------------------------------------------------- */

/* An init error: the message for the server (set_errorf, 1.2, printf-checked) and -EINVAL. */
#define FAIL(self, ...) (api->set_errorf((self), __VA_ARGS__), -EINVAL)

/* config_lines_at callbacks report the first error into st->init_msg, as
 * "<file>:<line>: <message>", and stop. */
static int line_error(bl_state *st, const char *file, int lineno, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static int line_error(bl_state *st, const char *file, int lineno, const char *fmt, ...) {
  int n = snprintf(st->init_msg, sizeof st->init_msg, "%.300s:%d: ", file, lineno);
  if (n < 0 || (size_t)n >= sizeof st->init_msg) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->init_msg + n, sizeof st->init_msg - (size_t)n, fmt, ap);
  va_end(ap);
  st->init_error = 1;
  return 1;
}

static const char *skip_blanks(const char *s) {
  while (*s == ' ' || *s == '\t') ++s;
  return s;
}

/* One conf/dnsbl_zones line: "zone [expected|-] [message]", or qpsmtpd's "zone:message". */
static int zone_line(const char *line, const char *file, int lineno, void *ud) {
  bl_state *st = (bl_state *)ud;
  if (st->nzones >= BL_MAX_ZONES)
    return line_error(st, file, lineno, "more than %d zones", BL_MAX_ZONES);
  bl_zone z;
  memset(&z, 0, sizeof z);
  size_t len = strcspn(line, " \t:");
  const char *rest = line + len;
  if (len == 0 || len >= sizeof z.name)
    return line_error(st, file, lineno, "bad zone name in '%s'", line);
  memcpy(z.name, line, len);
  if (z.name[len - 1] == '.') z.name[len - 1] = 0; /* a rooted name */
  if (!bl_zone_ok(z.name))
    return line_error(st, file, lineno, "'%s' is not a DNS zone name", z.name);
  if (*rest == ':') {
    rest = rest + 1; /* qpsmtpd: everything after the colon is the message */
  } else {
    rest = skip_blanks(rest);
    size_t tlen = strcspn(rest, " \t");
    char tok[128];
    if (tlen > 0 && tlen < sizeof tok) {
      memcpy(tok, rest, tlen);
      tok[tlen] = 0;
      if (strcmp(tok, "-") == 0) {
        rest += tlen;
      } else if ((tok[0] >= '0' && tok[0] <= '9') || tok[0] == '&') {
        int n = bl_expect_parse(tok, z.expect);
        if (n <= 0)
          return line_error(st, file, lineno,
                            "'%s' is not an expected answer (an IPv4 address, a.b.c.d/len, "
                            "&mask, or a comma-separated list of these; write '-' before a "
                            "message that starts with a digit)",
                            tok);
        z.nexpect = n;
        rest += tlen;
      }
    } else if (tlen >= sizeof tok && ((rest[0] >= '0' && rest[0] <= '9') || rest[0] == '&')) {
      return line_error(st, file, lineno, "expected answer too long in '%s'", line);
    }
  }
  bl_reply_text(z.msg, sizeof z.msg, skip_blanks(rest), NULL);
  for (size_t i = 0; i < st->nzones; ++i)
    if (strcasecmp(st->zones[i].name, z.name) == 0) {
      api->log(st->self, NULL, UVS_LOG_WARNING, "%s:%d: zone %s listed twice; first kept", file,
               lineno, z.name);
      return 0;
    }
  bl_zone *grown = (bl_zone *)realloc(st->zones, (st->nzones + 1) * sizeof *grown);
  if (!grown) return line_error(st, file, lineno, "out of memory");
  st->zones = grown;
  st->zones[st->nzones++] = z;
  return 0;
}

static int allow_line(const char *line, const char *file, int lineno, void *ud) {
  bl_state *st = (bl_state *)ud;
  ipnet net;
  if (ipnet_parse(line, strlen(line), &net) != 0)
    return line_error(st, file, lineno,
                      "'%s' is not an IPv4/IPv6 address, CIDR or IPv4 prefix ending in '.'", line);
  if (st->allow.count >= BL_MAX_ALLOW)
    return line_error(st, file, lineno, "more than %d entries", BL_MAX_ALLOW);
  if (ipnet_list_add(&st->allow, &net) != 0) return line_error(st, file, lineno, "out of memory");
  return 0;
}

static int rejectmsg_line(const char *line, void *ud) {
  bl_state *st = (bl_state *)ud;
  if (st->nmsg_lines >= BL_MAX_MSG_LINES) return 1; /* the rest is ignored */
  if (bl_reply_text(st->msg_lines[st->nmsg_lines], BL_TEXT, line, NULL) > 0) st->nmsg_lines++;
  return 0;
}

static int parse_args(bl_state *st, uvs_plugin *self) {
  int argc = api->plugin_argc(self);
  int i = 0;
  st->reject = REJECT_YES;
  st->rtype = PU_RT_PERM;
  st->timeout = 5;
  st->txt = 1;
  if (argc % 2) { /* qpsmtpd's legacy form: "dnsbl disconnect" = reject_type disconnect */
    const char *v = api->plugin_argv(self, 0);
    if (pu_reject_type_parse(v, &st->rtype) != 0)
      return FAIL(self,
                  "odd number of arguments: the first one ('%s') must then be a reject_type "
                  "(perm, temp, disconnect, temp_disconnect); otherwise give key value pairs",
                  v);
    i = 1;
  }
  for (; i < argc; i += 2) {
    const char *key = api->plugin_argv(self, i);
    const char *val = api->plugin_argv(self, i + 1);
    if (!strcasecmp(key, "reject")) {
      if (!strcmp(val, "0"))
        st->reject = REJECT_LOG;
      else if (!strcmp(val, "1"))
        st->reject = REJECT_YES;
      else if (!strcasecmp(val, "naughty"))
        st->reject = REJECT_NAUGHTY;
      else
        return FAIL(self, "bad value '%s' for 'reject': expected 0, 1 or naughty", val);
    } else if (!strcasecmp(key, "reject_type")) {
      if (pu_reject_type_parse(val, &st->rtype) != 0)
        return FAIL(self,
                    "bad value '%s' for 'reject_type': expected perm, hard, temp, soft, "
                    "disconnect or temp_disconnect",
                    val);
    } else if (!strcasecmp(key, "check-at")) {
      if (!strcasecmp(val, "connect"))
        st->at_connect = 1;
      else if (!strcasecmp(val, "rcpt"))
        st->at_connect = 0;
      else
        return FAIL(self, "bad value '%s' for 'check-at': expected connect or rcpt", val);
    } else if (!strcasecmp(key, "timeout")) {
      double t = pu_parse_seconds(val);
      if (t <= 0 || t > BL_MAX_TIMEOUT)
        return FAIL(self,
                    "bad value '%s' for 'timeout': expected seconds in (0, %g], e.g. 5 or 0.5", val,
                    BL_MAX_TIMEOUT);
      st->timeout = t;
    } else if (!strcasecmp(key, "txt")) {
      if (strcmp(val, "0") && strcmp(val, "1"))
        return FAIL(self, "bad value '%s' for 'txt': expected 0 or 1", val);
      st->txt = val[0] == '1';
    } else {
      return FAIL(
          self, "unknown argument '%s' (known: reject, reject_type, check-at, timeout, txt)", key);
    }
  }
  return 0;
}

static void free_state(bl_state *st) {
  if (!st) return;
  free(st->zones);
  ipnet_list_free(&st->allow);
  free(st);
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(api, dns_query) || !UVS_API_HAS(api, set_errorf)) {
    api->set_error(self, "this server has no dns_query or set_errorf (ABI 1.2 needed)");
    return -ENOSYS;
  }
  bl_state *st = (bl_state *)calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->refs = 1;
  snprintf(st->name, sizeof st->name, "%s", api->plugin_name(self));
  int rc = parse_args(st, self);
  if (rc != 0) {
    free_state(st);
    return rc;
  }
  snprintf(st->reject_note, sizeof st->reject_note, "dnsbl_reject:%s", api->plugin_name(self));
  snprintf(st->job_note, sizeof st->job_note, "dnsbl_lookups:%s", api->plugin_name(self));
  /* Session-owned lookups (1.3) let the banner go out at once when only RCPT enforces. */
  st->async = !st->at_connect && st->reject == REJECT_YES && UVS_API_HAS(api, dns_query_conn) &&
              UVS_API_HAS(api, dns_cancel_conn) && UVS_API_HAS(api, pending_on_cancel) &&
              UVS_API_HAS(api, note_set_ptr);
  int nz = api->config_lines_at(self, "dnsbl_zones", zone_line, st);
  if (!st->init_error) api->config_lines_at(self, "dnsbl_allow", allow_line, st);
  if (!st->init_error) api->config_lines(self, "dnsbl_rejectmsg", rejectmsg_line, st);
  if (st->init_error) {
    rc = FAIL(self, "%s", st->init_msg);
    free_state(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  if (st->nzones == 0) {
    api->log(self, NULL, UVS_LOG_NOTICE, "no zones in dnsbl_zones (%s): nothing to check",
             nz == -ENOENT ? "file missing" : "file empty");
    return 0;
  }
  api->register_hook(self, UVS_HOOK_CONNECT, on_connect, st);
  if (st->reject == REJECT_YES && !st->at_connect)
    api->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st);
  api->log(self, NULL, UVS_LOG_DEBUG,
           "%zu zone(s), %zu allow entries, reject %s, reject_type %s, check-at %s, timeout %g, "
           "txt %d, %s",
           st->nzones, st->allow.count,
           st->reject == REJECT_LOG   ? "0"
           : st->reject == REJECT_YES ? "1"
                                      : "naughty",
           pu_reject_type_name(st->rtype), st->at_connect ? "connect" : "rcpt", st->timeout,
           st->txt, st->async ? "lookups owned by the session" : "connect waits for the lookups");
  return 0;
}

static void fini(uvs_plugin *self) {
  bl_state *st = (bl_state *)api->plugin_data(self);
  if (!st) return;
  api->log(self, NULL, UVS_LOG_NOTICE,
           "checked %llu, listed %llu, skipped %llu, timeouts %llu, errors %llu", st->checked,
           st->listed, st->skipped, st->timeouts, st->errors);
  api->plugin_set_data(self, NULL);
  st->retired = 1;
  st->self = NULL;
  state_release(st);
}

UVS_PLUGIN("dnsbl", "1.0", init, fini);
