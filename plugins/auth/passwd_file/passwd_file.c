/* plugins/auth/passwd_file/passwd_file.c: the auth/passwd_file plugin: SMTP AUTH against a
 * Dovecot passwd-file, each password checked on the thread pool. */
/*
 * conf/plugins: `auth/passwd_file <absolute path> [allow_plain]`. The file is read at init (so
 * again at every reload: SIGHUP makes new instances); a bad line fails the start (or the reload)
 * with "<path>:<line>: reason" (pf_table.c has the format and the schemes).
 *
 * The auth hook suspends the call and hands a copy of the user and password to run_blocking():
 * the lookup and the hash (yescrypt or bcrypt cost tens of milliseconds by design) run on the
 * thread pool, never on the loop. The verdict comes back through complete():
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
 * auth_passwd_file.md has the details.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pf_table.h"
#include "uvsmtpd/plugin.h"

static const uvs_api *api;

typedef struct passwd_file {
  uvs_plugin *self;
  pf_table table;
} passwd_file;

typedef struct job {
  passwd_file *st;
  char *user;
  char *password;
  size_t password_len;
  char shown[208]; /* the user for log lines: at most 200 bytes, controls replaced */
  int found;       /* the user is in the table */
  int result;      /* pf_verify's: 1, 0 or -1 */
} job;

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

/* Loop: the verdict. The session may have gone (pending_call NULL): complete() all the same. */
static void done(uvs_pending *p, void *ud) {
  job *j = ud;
  passwd_file *st = j->st;
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
  int rc = api->run_blocking(p, work, done, j);
  if (rc < 0) {
    api->log(st->self, call, UVS_LOG_ERR, "cannot start the password check: %s", strerror(-rc));
    job_free(j);
    api->complete(p, UVS_DENYSOFT, 0, NULL, NULL);
  }
  return UVS_PENDING;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int argc = api->plugin_argc(self);
  int allow_plain = 0;
  if (argc == 2 && strcmp(api->plugin_argv(self, 1), "allow_plain") == 0) {
    allow_plain = 1;
  } else if (argc != 1) {
    api->set_error(self, "usage: auth/passwd_file <absolute path of the passwd-file> [allow_plain]");
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
  api->log(self, NULL, UVS_LOG_INFO, "%zu user(s) from %s (%zu with a clear-text password)",
           st->table.n, path, st->table.nplain);
  return 0;
}

static void fini(uvs_plugin *self) {
  passwd_file *st = api->plugin_data(self);
  if (!st) return;
  pf_free(&st->table);
  free(st);
}

UVS_PLUGIN("auth/passwd_file", "1.0", init, fini);
