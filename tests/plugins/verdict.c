/* tests/plugins/verdict.c: a test plugin whose answer for each hook is set from conf/plugins.
 *
 * Arguments are key=value words:
 *   <hook>=<VERDICT>        e.g. rcpt=OK, mail=DENYSOFT, data_post=DENY_DISCONNECT, queue=OK
 *   <hook>.text=<text>      reply text, '_' stands for a space
 *   <hook>.line=<text>      one more reply line (repeatable in order: .line, .line2, .line3)
 *   <hook>.code=<n>         reply code;  <hook>.enh=<x.y.z> enhanced code
 *   <hook>.async=<mode>     timer (complete from a loop timer), thread (from a worker thread
 *                           via run_blocking), rawthread (complete() called on a pool thread),
 *                           never (never complete: the core's hook timeout answers)
 *   <hook>.delay=<ms>       delay for async modes (default 20)
 *   <hook>.note=<k>:<v>     set a connection note before answering
 *   trace=1                 log "trace <instance> <hook> arg=<...> address=<...>" for every hook
 * Hook names are qpsmtpd's: pre-connection connect helo ehlo mail rcpt data data_headers_end
 * data_post queue queue_post reset_transaction quit disconnect unrecognized_command vrfy noop
 * help deny ok auth. A hook not named gets DECLINED (and is registered only when trace=1).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

enum { NHOOKS = 22, MAXLINES = 4 };
static const char *const hook_names[NHOOKS] = {
    "", "pre-connection", "connect", "helo", "ehlo", "mail", "rcpt", "data",
    "data_headers_end", "data_post", "queue", "queue_post", "reset_transaction", "quit",
    "disconnect", "unrecognized_command", "vrfy", "noop", "help", "deny", "ok", "auth"};
static const char *const verdict_names[] = {"DECLINED", "OK", "DENY", "DENYSOFT",
                                            "DENY_DISCONNECT", "DENYSOFT_DISCONNECT", "DONE"};

typedef struct hook_conf {
  int set;
  uvs_verdict verdict;
  int code;
  char enh[16];
  char lines[MAXLINES][256];
  int nlines;
  char async[16];
  unsigned delay;
  char note_key[64];
  char note_val[128];
} hook_conf;

typedef struct state {
  hook_conf hooks[NHOOKS];
  int trace;
} state;

typedef struct async_job {
  state *st;
  int hook;
  uvs_pending *p;
  unsigned delay;
} async_job;

static int hook_id(const char *name, size_t len) {
  for (int i = 1; i < NHOOKS; ++i)
    if (strlen(hook_names[i]) == len && strncmp(hook_names[i], name, len) == 0) return i;
  return 0;
}

static void copy_text(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < cap; ++i) dst[i] = src[i] == '_' ? ' ' : src[i];
  dst[i] = 0;
}

static void set_reply(uvs_call *c, const hook_conf *h) {
  if (h->code || h->nlines) {
    api->reply(c, h->code, h->enh[0] ? h->enh : NULL, h->nlines ? h->lines[0] : "");
    for (int i = 1; i < h->nlines; ++i) api->reply_line(c, h->lines[i]);
  }
}

static void complete_job(async_job *j) {
  const hook_conf *h = &j->st->hooks[j->hook];
  api->complete(j->p, h->verdict, h->code, h->enh[0] ? h->enh : NULL, h->nlines ? h->lines[0] : NULL);
  free(j);
}

static void on_timer(uvs_pending *p, void *ud) {
  (void)p;
  complete_job((async_job *)ud);
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void work_sleep(void *ud) { sleep_ms(((async_job *)ud)->delay); }
static void work_done(uvs_pending *p, void *ud) {
  (void)p;
  complete_job((async_job *)ud);
}
static void work_complete_on_thread(void *ud) {
  async_job *j = (async_job *)ud;
  sleep_ms(j->delay);
  complete_job(j); /* complete() from a pool thread */
}

static uvs_verdict on_hook(uvs_call *c, void *ud) {
  state *st = (state *)ud;
  int hook = (int)api->call_hook(c);
  if (hook <= 0 || hook >= NHOOKS) return UVS_DECLINED;
  if (st->trace)
    api->log(NULL, c, UVS_LOG_NOTICE, "trace %s %s arg=%s address=%s", "verdict", hook_names[hook],
             api->call_arg(c), api->call_address(c));
  const hook_conf *h = &st->hooks[hook];
  if (!h->set) return UVS_DECLINED;
  if (h->note_key[0]) api->note_set(c, UVS_NOTE_CONNECTION, h->note_key, h->note_val);
  if (h->async[0]) {
    uvs_pending *p = api->suspend(c);
    if (!p) return UVS_DENYSOFT;
    if (strcmp(h->async, "never") == 0) return UVS_PENDING;
    async_job *j = (async_job *)calloc(1, sizeof *j);
    j->st = st;
    j->hook = hook;
    j->p = p;
    j->delay = h->delay;
    if (strcmp(h->async, "timer") == 0)
      api->pending_timer(p, h->delay, on_timer, j);
    else if (strcmp(h->async, "thread") == 0)
      api->run_blocking(p, work_sleep, work_done, j);
    else
      api->run_blocking(p, work_complete_on_thread, NULL, j);
    return UVS_PENDING;
  }
  set_reply(c, h);
  return h->verdict;
}

static int parse_verdict(const char *v, uvs_verdict *out) {
  for (int i = 0; i < 7; ++i)
    if (strcmp(v, verdict_names[i]) == 0) {
      *out = (uvs_verdict)i;
      return 0;
    }
  if (strncmp(v, "RAW", 3) == 0) { /* RAW<n>: an invalid verdict number, for the tests */
    *out = (uvs_verdict)atoi(v + 3);
    return 0;
  }
  return -1;
}

/* init failed: fini will not run, so free the state here (no leak under LSan). */
static int fail(uvs_plugin *self, state *st, const char *msg) {
  api->set_error(self, msg);
  api->plugin_set_data(self, NULL);
  free(st);
  return -EINVAL;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  state *st = (state *)calloc(1, sizeof *st);
  api->plugin_set_data(self, st);
  char msg[300];
  for (int i = 0; i < api->plugin_argc(self); ++i) {
    const char *arg = api->plugin_argv(self, i);
    const char *eq = strchr(arg, '=');
    if (!eq) {
      snprintf(msg, sizeof msg, "argument '%s' is not key=value", arg);
      return fail(self, st, msg);
    }
    if (strncmp(arg, "trace=", 6) == 0) {
      st->trace = atoi(eq + 1);
      continue;
    }
    const char *dot = memchr(arg, '.', (size_t)(eq - arg));
    int hook = hook_id(arg, (size_t)((dot ? dot : eq) - arg));
    if (!hook) {
      snprintf(msg, sizeof msg, "unknown hook in '%s'", arg);
      return fail(self, st, msg);
    }
    hook_conf *h = &st->hooks[hook];
    const char *val = eq + 1;
    if (!dot) {
      if (parse_verdict(val, &h->verdict) != 0) {
        snprintf(msg, sizeof msg, "unknown verdict '%s'", val);
        return fail(self, st, msg);
      }
      h->set = 1;
      if (!h->delay) h->delay = 20;
    } else {
      size_t klen = (size_t)(eq - dot - 1);
      if (klen == 4 && strncmp(dot + 1, "text", 4) == 0) {
        copy_text(h->lines[0], sizeof h->lines[0], val);
        if (h->nlines < 1) h->nlines = 1;
      } else if (klen >= 4 && strncmp(dot + 1, "line", 4) == 0 && h->nlines < MAXLINES) {
        copy_text(h->lines[h->nlines], sizeof h->lines[0], val);
        h->nlines++;
      } else if (klen == 4 && strncmp(dot + 1, "code", 4) == 0) {
        h->code = atoi(val);
      } else if (klen == 3 && strncmp(dot + 1, "enh", 3) == 0) {
        snprintf(h->enh, sizeof h->enh, "%s", val);
      } else if (klen == 5 && strncmp(dot + 1, "async", 5) == 0) {
        snprintf(h->async, sizeof h->async, "%s", val);
      } else if (klen == 5 && strncmp(dot + 1, "delay", 5) == 0) {
        h->delay = (unsigned)atoi(val);
      } else if (klen == 4 && strncmp(dot + 1, "note", 4) == 0) {
        const char *colon = strchr(val, ':');
        if (!colon) return fail(self, st, "note needs key:value");
        snprintf(h->note_key, sizeof h->note_key, "%.*s", (int)(colon - val), val);
        copy_text(h->note_val, sizeof h->note_val, colon + 1);
      } else {
        snprintf(msg, sizeof msg, "unknown option in '%s'", arg);
        return fail(self, st, msg);
      }
    }
  }
  for (int hook = 1; hook < NHOOKS; ++hook)
    if (st->hooks[hook].set || st->trace) api->register_hook(self, (uvs_hook)hook, on_hook, st);
  return 0;
}

static void fini(uvs_plugin *self) { free(api->plugin_data(self)); }

UVS_PLUGIN("verdict", "1.0", init, fini);
