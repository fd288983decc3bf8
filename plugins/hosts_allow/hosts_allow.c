/* plugins/hosts_allow/hosts_allow.c: per-IP connection limit and conf/hosts_allow rows. */
/*
 * At pre-connection: first the limit of concurrent connections from one IP (`max-from-ip N`,
 * default 50, 0 = none; adjusted by the connection note karma_history as in qpsmtpd), counted
 * over the connections this instance let through (counted at pre-connection, released at
 * disconnect); over it, `451 4.7.0 too many connections from <ip>, try again later` and
 * close. Then the rows of conf/hosts_allow, `CIDR VERDICT [text]`, first match wins.
 * docs/plugins/hosts_allow.md has the details and the differences from qpsmtpd.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "uvsmtpd/plugin.h"
#include "../common/ipnet.h"

static const uvs_api *api;

#define HA_DEFAULT_MAX 50 /* Postfix's smtpd_client_connection_count_limit; qpsmtpd: 5 */
#define HA_MAX_MAX 1000000L
#define HA_BUCKETS 1024
#define HA_MAX_TEXT 500

/* One row of conf/hosts_allow. */
typedef struct ha_row {
  ipnet net;
  uvs_verdict verdict;
  char *text; /* NULL: the core's default text */
} ha_row;

/* Open connections from one address. */
typedef struct ha_count {
  ipnet_addr addr;
  long n;
  struct ha_count *next;
} ha_count;

typedef struct hosts_allow {
  uvs_plugin *self;
  long max; /* 0: no limit */
  ha_row *rows;
  size_t nrows, caprows;
  ha_count *buckets[HA_BUCKETS]; /* address -> open connections */
  char note[160];                /* connection note: "this instance counted the connection" */
  const char *row_file;          /* the row being read (borrowed for add_row), for errors */
  int row_line;
  char error[600];               /* the first bad row: "<file>:<line>: ..." */
} hosts_allow;

/* ---- the table of open connections ---------------------------------------------------- */

static ha_count **find_slot(hosts_allow *st, const ipnet_addr *a) {
  ha_count **slot = &st->buckets[ipnet_addr_hash(a) % HA_BUCKETS];
  while (*slot && !ipnet_addr_equal(&(*slot)->addr, a)) slot = &(*slot)->next;
  return slot;
}

static long open_count(hosts_allow *st, const ipnet_addr *a) {
  ha_count *c = *find_slot(st, a);
  return c ? c->n : 0;
}

/* Adds delta to the address's count; an entry that drops to 0 is freed. 0, or -1 (no memory). */
static int add_count(hosts_allow *st, const ipnet_addr *a, long delta) {
  ha_count **slot = find_slot(st, a);
  if (!*slot) {
    if (delta <= 0) return 0;
    if (!(*slot = calloc(1, sizeof **slot))) return -1;
    (*slot)->addr = *a;
  }
  ha_count *c = *slot;
  c->n += delta;
  if (c->n <= 0) {
    *slot = c->next;
    free(c);
  }
  return 0;
}

/* ---- state ------------------------------------------------------------------------------ */

static void state_free(hosts_allow *st) {
  if (!st) return;
  for (size_t i = 0; i < st->nrows; ++i) free(st->rows[i].text);
  free(st->rows);
  for (size_t b = 0; b < HA_BUCKETS; ++b) {
    while (st->buckets[b]) {
      ha_count *next = st->buckets[b]->next;
      free(st->buckets[b]);
      st->buckets[b] = next;
    }
  }
  free(st);
}

/* ---- conf/hosts_allow ------------------------------------------------------------------- */

static const struct {
  const char *name;
  uvs_verdict verdict;
} kVerdicts[] = {
    {"OK", UVS_OK},
    {"DENY", UVS_DENY},
    {"DENYSOFT", UVS_DENYSOFT},
    {"DENY_DISCONNECT", UVS_DENY_DISCONNECT},
    {"DENYSOFT_DISCONNECT", UVS_DENYSOFT_DISCONNECT},
    {"DECLINED", UVS_DECLINED},
};

static int parse_verdict(const char *s, size_t len, uvs_verdict *out) {
  for (size_t i = 0; i < sizeof kVerdicts / sizeof kVerdicts[0]; ++i) {
    if (strlen(kVerdicts[i].name) == len && strncasecmp(s, kVerdicts[i].name, len) == 0) {
      *out = kVerdicts[i].verdict;
      return 0;
    }
  }
  return -1;
}

static const char *verdict_name(uvs_verdict v) {
  for (size_t i = 0; i < sizeof kVerdicts / sizeof kVerdicts[0]; ++i)
    if (kVerdicts[i].verdict == v) return kVerdicts[i].name;
  return "?";
}

static int text_ok(const char *t) {
  if (strlen(t) > HA_MAX_TEXT) return 0;
  for (; *t; ++t)
    if ((unsigned char)*t < 32 || *t == 127) return 0;
  return 1;
}

static int row_error(hosts_allow *st, const char *line, const char *why) {
  snprintf(st->error, sizeof st->error, "%.300s:%d: '%.80s': %s", st->row_file, st->row_line,
           line, why);
  return 1;
}

static int append_row(hosts_allow *st, const ha_row *row) {
  if (st->nrows == st->caprows) {
    size_t cap = st->caprows ? st->caprows * 2 : 8;
    ha_row *grown = realloc(st->rows, cap * sizeof *grown);
    if (!grown) return -1;
    st->rows = grown;
    st->caprows = cap;
  }
  st->rows[st->nrows++] = *row;
  return 0;
}

/* One line: CIDR, blanks, VERDICT, then optionally blanks and the reply text. */
static int add_row(const char *line, const char *file, int lineno, void *ud) {
  hosts_allow *st = ud;
  st->row_file = file;
  st->row_line = lineno;
  ha_row row = {0};
  size_t cidr_len = strcspn(line, " \t");
  if (ipnet_parse(line, cidr_len, &row.net) < 0)
    return row_error(st, line, "the first word is not an IPv4/IPv6 address or CIDR");
  const char *v = line + cidr_len + strspn(line + cidr_len, " \t");
  size_t vlen = strcspn(v, " \t");
  if (vlen == 0) return row_error(st, line, "no verdict (expected CIDR VERDICT [text])");
  if (parse_verdict(v, vlen, &row.verdict) < 0)
    return row_error(st, line,
                     "unknown verdict (expected OK, DENY, DENYSOFT, DENY_DISCONNECT, "
                     "DENYSOFT_DISCONNECT or DECLINED)");
  const char *text = v + vlen + strspn(v + vlen, " \t");
  if (!text_ok(text)) return row_error(st, line, "the text has control characters or is too long");
  if (*text && !(row.text = strdup(text))) return row_error(st, line, "out of memory");
  if (append_row(st, &row) < 0) {
    free(row.text);
    return row_error(st, line, "out of memory");
  }
  return 0;
}

static int load_rows(hosts_allow *st) {
  int rc = api->config_lines_at(st->self, "hosts_allow", add_row, st);
  st->row_file = NULL; /* borrowed for the callbacks only */
  if (st->error[0]) {
    api->set_error(st->self, st->error);
    return -EINVAL;
  }
  if (rc == -ENOENT) return 0;
  if (rc < 0) {
    char msg[200];
    snprintf(msg, sizeof msg, "cannot read hosts_allow: %s", strerror(-rc));
    api->set_error(st->self, msg);
    return rc;
  }
  return 0;
}

/* ---- hooks ------------------------------------------------------------------------------ */

/* qpsmtpd's karma_bump: history > 5 raises the limit by 3, <= 0 lowers it to 1. */
static long effective_max(const hosts_allow *st, const uvs_call *call) {
  const char *note = api->note_get(call, UVS_NOTE_CONNECTION, "karma_history");
  if (!note || !*note) return st->max;
  char *end;
  long karma = strtol(note, &end, 10);
  if (*end) {
    api->log(st->self, call, UVS_LOG_WARNING, "karma_history '%.40s' is not a number; ignored",
             note);
    return st->max;
  }
  if (karma > 5) return st->max + 3;
  if (karma <= 0) return 1;
  return st->max;
}

static uvs_verdict too_many(const hosts_allow *st, uvs_call *call, const char *ip, long n,
                            long max) {
  char text[200];
  snprintf(text, sizeof text, "too many connections from %.64s", ip);
  api->log(st->self, call, UVS_LOG_INFO, "fail, %s (%ld > %ld)", text, n, max);
  size_t len = strlen(text);
  snprintf(text + len, sizeof text - len, ", try again later");
  api->reply(call, 451, "4.7.0", text);
  return UVS_DENYSOFT;
}

static int is_refusal(uvs_verdict v) {
  return v == UVS_DENY || v == UVS_DENYSOFT || v == UVS_DENY_DISCONNECT ||
         v == UVS_DENYSOFT_DISCONNECT;
}

/* Counts the connection as open and marks it for on_disconnect. */
static void count_in(hosts_allow *st, uvs_call *call, const ipnet_addr *peer) {
  if (add_count(st, peer, 1) < 0) {
    api->log(st->self, call, UVS_LOG_ERR, "out of memory: connection not counted");
    return;
  }
  api->note_set(call, UVS_NOTE_CONNECTION, st->note, "1");
}

/* The first row whose network holds the address, or NULL. */
static const ha_row *match_row(const hosts_allow *st, const ipnet_addr *peer) {
  for (size_t r = 0; r < st->nrows; ++r)
    if (ipnet_contains(&st->rows[r].net, peer)) return &st->rows[r];
  return NULL;
}

static uvs_verdict on_pre_connection(uvs_call *call, void *ud) {
  hosts_allow *st = ud;
  const char *ip = api->peer_ip(call);
  ipnet_addr peer;
  if (ipnet_addr_parse(ip, &peer) < 0) {
    api->log(st->self, call, UVS_LOG_WARNING, "skip, peer address '%.64s' not understood",
             ip ? ip : "");
    return UVS_DECLINED;
  }
  if (st->max > 0) {
    long max = effective_max(st, call);
    long n = open_count(st, &peer) + 1;
    if (n > max) return too_many(st, call, ip, n, max);
  }
  const ha_row *row = match_row(st, &peer);
  uvs_verdict v = row ? row->verdict : UVS_DECLINED;
  if (row && is_refusal(v)) {
    api->log(st->self, call, UVS_LOG_INFO, "fail, hosts_allow: %s %s", verdict_name(v),
             row->text ? row->text : "(default text)");
    if (row->text) api->reply(call, 0, NULL, row->text);
    return v;
  }
  count_in(st, call, &peer);
  if (row)
    api->log(st->self, call, UVS_LOG_INFO, "pass, hosts_allow: %s", verdict_name(v));
  else
    api->log(st->self, call, UVS_LOG_DEBUG, "pass");
  return v;
}

static uvs_verdict on_disconnect(uvs_call *call, void *ud) {
  hosts_allow *st = ud;
  if (!api->note_get(call, UVS_NOTE_CONNECTION, st->note)) return UVS_DECLINED;
  api->note_set(call, UVS_NOTE_CONNECTION, st->note, NULL);
  ipnet_addr peer;
  if (ipnet_addr_parse(api->peer_ip(call), &peer) == 0) add_count(st, &peer, -1);
  return UVS_DECLINED;
}

/* ---- init ------------------------------------------------------------------------------- */

static long parse_count(const char *s) {
  if (!s || !*s) return -1;
  long v = 0;
  for (const char *p = s; *p; ++p) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
    if (v > HA_MAX_MAX) return -1;
  }
  return v;
}

/* Arguments: key value pairs; the only key is max-from-ip. 0, or -EINVAL after set_error(). */
static int parse_args(hosts_allow *st) {
  int argc = api->plugin_argc(st->self);
  char msg[300] = "";
  int seen = 0;
  for (int i = 0; i < argc && !msg[0]; i += 2) {
    const char *key = api->plugin_argv(st->self, i);
    const char *val = i + 1 < argc ? api->plugin_argv(st->self, i + 1) : NULL;
    if (strcmp(key, "max-from-ip") != 0)
      snprintf(msg, sizeof msg, "unknown argument '%.60s' (known: max-from-ip)", key);
    else if (!val)
      snprintf(msg, sizeof msg, "max-from-ip needs a value");
    else if (seen++)
      snprintf(msg, sizeof msg, "argument 'max-from-ip' given twice");
    else if ((st->max = parse_count(val)) < 0)
      snprintf(msg, sizeof msg, "bad value '%.60s' for 'max-from-ip': expected 0 (no limit) to %ld",
               val, HA_MAX_MAX);
  }
  if (!msg[0]) return 0;
  api->set_error(st->self, msg);
  return -EINVAL;
}

static int register_hooks(hosts_allow *st) {
  int rc = api->register_hook(st->self, UVS_HOOK_PRE_CONNECTION, on_pre_connection, st);
  if (rc == 0) rc = api->register_hook(st->self, UVS_HOOK_DISCONNECT, on_disconnect, st);
  if (rc < 0) api->set_error(st->self, "cannot register the pre-connection and disconnect hooks");
  return rc;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  hosts_allow *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->max = HA_DEFAULT_MAX;
  snprintf(st->note, sizeof st->note, "hosts_allow.counted:%.100s", api->plugin_name(self));
  int rc = parse_args(st);
  if (rc == 0) rc = load_rows(st);
  if (rc == 0) rc = register_hooks(st);
  if (rc < 0) {
    state_free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO, "max-from-ip %ld, %zu hosts_allow row(s)", st->max, st->nrows);
  return 0;
}

static void fini(uvs_plugin *self) {
  state_free(api->plugin_data(self));
}

UVS_PLUGIN("hosts_allow", "1.0", init, fini);
