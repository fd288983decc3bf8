/* plugins/auth/passwd_file/passwd_file.c: the auth/passwd_file plugin: SMTP AUTH against a
 * Dovecot passwd-file, each password checked on the thread pool. */
/*
 * conf/plugins: `auth/passwd_file <absolute path> [allow_plain] [max_parallel=N]`. The file is
 * read at init (so again at every reload: SIGHUP makes new instances); a bad line fails the start
 * (or the reload) with "<path>:<line>: reason" (pf_table.c has the format and the schemes).
 *
 * The auth hook suspends the call and hands a copy of the user and password to run_blocking():
 * the lookup and the hash (yescrypt or bcrypt cost tens of milliseconds by design) run on the
 * thread pool, never on the loop. At most max_parallel checks (default: the number of CPUs)
 * run at once; later ones wait in a FIFO on the loop, so a burst of logins neither takes every
 * pool thread (spool writes and queue fsyncs share the pool) nor more CPUs than there are; one
 * still waiting when the core lets go of its call (hook timeout, session closed) leaves the queue
 * unhashed. The verdict comes back through complete():
 *   - the password matches: OK (235);
 *   - a known user, wrong password: DENY (535);
 *   - an unknown user: DECLINED, so another auth plugin may know the user (when none does the
 *     core answers 535). A dummy hash runs first, so the time to answer does not tell a known
 *     user from an unknown one;
 *   - an authorization identity that differs from the user (PLAIN's authzid): DECLINED without
 *     checking anything: this plugin has no rules for acting as another user;
 *   - libcrypt failing, or the thread pool refusing the job: DENYSOFT (454).
 * The job's copy of the password is wiped (explicit_bzero) as soon as the hash is done. Passwords
 * are never logged; user names are logged with control characters replaced. docs/plugins/
 * auth-passwd_file.md has the details.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pf_table.h"
#include "uvsmtpd/plugin.h"

static const uvs_api *api;

#define PF_MAX_PARALLEL 1024

typedef struct job job;

typedef struct passwd_file {
  uvs_plugin *self;
  pf_table table;
  int max_parallel; /* checks on the thread pool at once */
  int running;      /* loop thread only, as the queue */
  job *head, *tail; /* checks waiting for a slot, oldest first */
} passwd_file;

struct job {
  passwd_file *st;
  uvs_pending *pending;
  job *next;
  char *user;
  char *password;
  size_t password_len;
  char shown[208]; /* the user for log lines: at most 200 bytes, controls replaced */
  int queued;      /* waiting in st's queue for a slot */
  int found;       /* the user is in the table */
  int result;      /* pf_verify's: 1, 0 or -1 */
};

static void shown_user(char *out, size_t size, const char *user) {
  size_t i = 0;
  for (; user[i] && i + 1 < size && i < 200; ++i) {
    unsigned char c = (unsigned char)user[i];
    out[i] = (c < ' ' || c == 0x7f) ? '?' : (char)c;
  }
  out[i] = '\0';
}

static void job_free(job *j) {
  if (!j) return;
  free(j->user);
  if (j->password) {
    explicit_bzero(j->password, j->password_len);
    free(j->password);
  }
  free(j);
}

/* Thread pool: the lookup and the hash. */
static void work(void *ud) {
  job *j = ud;
  const pf_entry *e = pf_find(&j->st->table, j->user);
  j->found = e != NULL;
  j->result = pf_verify(&j->st->table, e, j->password);
  explicit_bzero(j->password, j->password_len);
}

static void start_waiting(passwd_file *st);

/* Loop: the verdict. The session may have gone (pending_call NULL): complete() all the same. */
static void done(uvs_pending *p, void *ud) {
  job *j = ud;
  passwd_file *st = j->st;
  --st->running;
  const uvs_call *call = api->pending_call(p);
  uvs_verdict v;
  if (!j->found) {
    api->log(st->self, call, UVS_LOG_INFO, "skip, unknown user '%s'", j->shown);
    v = UVS_DECLINED;
  } else if (j->result == 1) {
    api->log(st->self, call, UVS_LOG_INFO, "pass, user '%s'", j->shown);
    v = UVS_OK;
  } else if (j->result == 0) {
    api->log(st->self, call, UVS_LOG_INFO, "fail, wrong password for user '%s'", j->shown);
    v = UVS_DENY;
  } else {
    api->log(st->self, call, UVS_LOG_ERR,
             "libcrypt could not check the password of user '%s' (out of memory, or a hash "
             "it cannot use)",
             j->shown);
    v = UVS_DENYSOFT;
  }
  job_free(j);
  api->complete(p, v, 0, NULL, NULL);
  start_waiting(st);
}

/* Loop: hands j to the thread pool; on failure answers 454 at once. */
static void start_job(job *j) {
  passwd_file *st = j->st;
  uvs_pending *p = j->pending;
  ++st->running;
  int rc = api->run_blocking(p, work, done, j);
  if (rc < 0) {
    --st->running;
    api->log(st->self, api->pending_call(p), UVS_LOG_ERR, "cannot start the password check: %s",
             strerror(-rc));
    job_free(j);
    api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
  }
}

/* Loop: a waiting check dropped without hashing; its password copy is wiped now. */
static void drop_waiting(job *j) {
  uvs_pending *p = j->pending;
  api->log(j->st->self, NULL, UVS_LOG_INFO,
           "skip, the session of user '%s' stopped waiting before its check started", j->shown);
  job_free(j);
  api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
}

/* Loop: starts waiting checks while slots are free. A check whose session no longer waits (the
 * hook timed out, or the session closed) is dropped. */
static void start_waiting(passwd_file *st) {
  while (st->head && st->running < st->max_parallel) {
    job *j = st->head;
    st->head = j->next;
    if (!st->head) st->tail = NULL;
    j->next = NULL;
    j->queued = 0;
    if (!api->pending_call(j->pending))
      drop_waiting(j);
    else
      start_job(j);
  }
}

/* Loop: the core let go of the call (hook timeout, session closed). A check still waiting for a
 * slot leaves the queue at once; a running one finishes and done() completes it. */
static void on_cancel(uvs_pending *p, void *ud) {
  (void)p;
  job *j = ud;
  if (!j->queued) return;
  passwd_file *st = j->st;
  job **link = &st->head, *prev = NULL;
  while (*link && *link != j) {
    prev = *link;
    link = &(*link)->next;
  }
  if (!*link) return;
  *link = j->next;
  if (st->tail == j) st->tail = prev;
  j->queued = 0;
  drop_waiting(j);
}

static uvs_verdict on_auth(uvs_call *call, void *ud) {
  passwd_file *st = ud;
  const char *user = api->call_address(call);
  const char *password = api->auth_password(call);
  if (!user || !*user || !password) return UVS_DECLINED;
  const char *authzid = api->call_param(call, "authzid");
  if (authzid) {
    api->log(st->self, call, UVS_LOG_INFO,
             "skip, an authorization identity other than the user is not supported");
    return UVS_DECLINED;
  }
  job *j = calloc(1, sizeof *j);
  if (j) {
    j->st = st;
    j->user = strdup(user);
    j->password_len = strlen(password);
    j->password = malloc(j->password_len + 1);
    if (j->password) memcpy(j->password, password, j->password_len + 1);
  }
  if (!j || !j->user || !j->password) {
    job_free(j);
    api->log(st->self, call, UVS_LOG_ERR, "out of memory");
    return UVS_DENYSOFT;
  }
  shown_user(j->shown, sizeof j->shown, user);
  uvs_pending *p = api->suspend(call);
  if (!p) {
    job_free(j);
    api->log(st->self, call, UVS_LOG_ERR, "cannot suspend the auth call");
    return UVS_DENYSOFT;
  }
  j->pending = p;
  if (st->running < st->max_parallel) {
    start_job(j);
  } else {
    j->queued = 1;
    if (st->tail)
      st->tail->next = j;
    else
      st->head = j;
    st->tail = j;
    api->pending_on_cancel(p, on_cancel, j);
  }
  return UVS_PENDING;
}

static int default_parallel(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > PF_MAX_PARALLEL ? PF_MAX_PARALLEL : (int)n;
}

/* "max_parallel=N", N from 1 to PF_MAX_PARALLEL: N, else -1. */
static int parse_parallel(const char *v) {
  if (*v < '1' || *v > '9') return -1;
  long n = 0;
  for (; *v; ++v) {
    if (*v < '0' || *v > '9') return -1;
    n = n * 10 + (*v - '0');
    if (n > PF_MAX_PARALLEL) return -1;
  }
  return (int)n;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  int allow_plain = 0, parallel = default_parallel();
  int bad = argc < 1;
  for (int i = 1; i < argc && !bad; ++i) {
    const char *arg = api->plugin_argv(self, i);
    if (strcmp(arg, "allow_plain") == 0 && !allow_plain)
      allow_plain = 1;
    else if (strncmp(arg, "max_parallel=", 13) == 0 && (parallel = parse_parallel(arg + 13)) > 0)
      continue;
    else
      bad = 1;
  }
  if (bad) {
    api->set_errorf(self,
                    "usage: auth/passwd_file <absolute path of the passwd-file> [allow_plain] "
                    "[max_parallel=N] (N from 1 to %d)",
                    PF_MAX_PARALLEL);
    return -EINVAL;
  }
  const char *path = api->plugin_argv(self, 0);
  if (path[0] != '/') {
    api->set_errorf(self, "the passwd-file path must be absolute: '%.300s'", path);
    return -EINVAL;
  }
  passwd_file *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->self = self;
  st->max_parallel = parallel;
  int rc = pf_load(&st->table, path, allow_plain);
  if (rc < 0) {
    api->set_error(self, st->table.error);
  } else if ((rc = api->register_hook(self, UVS_HOOK_AUTH, on_auth, st)) < 0) {
    api->set_error(self, "cannot register the auth hook");
  }
  if (rc < 0) {
    pf_free(&st->table);
    free(st);
    return rc;
  }
  api->plugin_set_data(self, st);
  api->log(self, NULL, UVS_LOG_INFO,
           "%zu user(s) from %s (%zu with a clear-text password), at most %d check(s) at once",
           st->table.n, path, st->table.nplain, st->max_parallel);
  return 0;
}

static void fini(uvs_plugin *self) {
  passwd_file *st = api->plugin_data(self);
  if (!st) return;
  pf_free(&st->table);
  free(st);
}

UVS_PLUGIN("auth/passwd_file", "1.0", init, fini);
