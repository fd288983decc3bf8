/* plugins/queue/maildir/maildir.c: queue/maildir, durable local delivery of each message into
 * one Maildir per recipient (arguments, path building, the Maildir protocol, rollback). */
/*
 * conf/plugins:  queue/maildir <dir> [pattern]       (pattern default "%d/%u")
 *
 * The queue hook suspends and runs the delivery on the thread pool (uvs_api.run_blocking):
 *   1. for each distinct Maildir: create <maildir>/{tmp,new,cur} as needed (a created
 *      directory is made durable by fsyncing its parent), create tmp/<unique> with O_EXCL,
 *      copy the spooled message into it with pread/write in 64 KiB chunks, fsync, close;
 *   2. link every tmp/<unique> to new/<unique> (the moment of delivery), fsync every new/;
 *   3. unlink the tmp/ names (cosmetic, best effort; tmp/ is not fsynced).
 * Only when every copy is durable does the hook answer OK (the core says 250). Any failure
 * removes every copy made so far, from new/ as well, and answers 451 4.3.0; the log line
 * names the operation, the path and the errno. docs/plugins/queue-maildir.md has the details.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "uvsmtpd/plugin.h"

#define MD_CHUNK (64 * 1024) /* copy buffer: the message is streamed, never loaded whole */
#define MD_HOST_MAX 64       /* the host part of unique names                          */
#define MD_NAME_MAX 192      /* a whole unique name                                     */
#define MD_OPEN_TRIES 5      /* fresh names tried when tmp/<name> exists                */

static const uvs_api *api;
static atomic_ulong md_counter; /* the Q part of unique names: never reused in this process */

typedef struct md_state {
  uvs_plugin *self;
  char *dir;     /* base directory, no trailing '/' */
  char *pattern; /* validated at init */
  char host[MD_HOST_MAX + 1];
} md_state;

typedef struct md_copy {
  char *maildir; /* <dir>/<expanded pattern> */
  char name[MD_NAME_MAX];
  int tmp_made; /* tmp/<name> exists and is ours */
  int new_made; /* new/<name> exists and is ours */
} md_copy;

typedef struct md_job {
  uvs_plugin *self;
  int msg_fd;
  int64_t size;
  char host[MD_HOST_MAX + 1];
  md_copy *copies;
  int ncopies;
  int nrcpt;
  /* the first failure */
  int err;
  const char *op;
  char *err_path;
  int cleanup_failures; /* unlinks that failed while rolling back */
} md_job;

/* ---- small helpers -------------------------------------------------------------------- */

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case EMLINK: return "EMLINK";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ELOOP: return "ELOOP";
    case EDQUOT: return "EDQUOT";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ESTALE: return "ESTALE";
    case EINTR: return "EINTR";
    default: return "errno";
  }
}

static char *md_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static char *join3(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *out = malloc(la + lb + lc + 3);
  if (!out) return NULL;
  memcpy(out, a, la);
  out[la] = '/';
  memcpy(out + la + 1, b, lb);
  if (c[0]) {
    out[la + 1 + lb] = '/';
    memcpy(out + la + 2 + lb, c, lc + 1);
  } else {
    out[la + 1 + lb] = '\0';
  }
  return out;
}

/* Printable copy for log lines: at most 200 bytes, anything but graphic ASCII as '?'. */
static void printable(char *out, size_t cap, const char *s) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap && i < 200; ++i) {
    unsigned char ch = (unsigned char)s[i];
    out[i] = (ch > 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  out[i] = '\0';
}

/* ---- recipients -> Maildir paths ------------------------------------------------------ */

/* The local part: qpsmtpd's character set (without '@'), no leading '.', no "..". */
static int local_ok(const char *s, size_t n) {
  if (n == 0 || n > 255 || s[0] == '.') return 0;
  for (size_t i = 0; i < n; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (!(isascii(ch) && isalnum(ch)) && !strchr("-+_.,=", ch)) return 0;
    if (ch == '.' && i + 1 < n && s[i + 1] == '.') return 0;
  }
  return 1;
}

/* The domain, already lower-cased: letters, digits, '-', '_', '.'; no leading '.', no "..". */
static int domain_ok(const char *s, size_t n) {
  if (n == 0 || n > 255 || s[0] == '.') return 0;
  for (size_t i = 0; i < n; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (!(isascii(ch) && isalnum(ch)) && !strchr("-_.", ch)) return 0;
    if (ch == '.' && i + 1 < n && s[i + 1] == '.') return 0;
  }
  return 1;
}

/* Builds <dir>/<pattern expanded for addr> or returns NULL with *why set. */
static char *maildir_for(const md_state *st, const char *addr, const char **why) {
  char local[256], llocal[256], domain[256];
  const char *at = strrchr(addr, '@');
  size_t ln = at ? (size_t)(at - addr) : strlen(addr);
  const char *me = api->me(st->self);
  const char *dom = at ? at + 1 : me ? me : ""; /* "postmaster" has no domain */
  size_t dn = strlen(dom);
  if (dn > 0 && dom[dn - 1] == '.') --dn; /* "example.test." is "example.test" */
  if (ln >= sizeof local || dn >= sizeof domain) {
    *why = "address too long";
    return NULL;
  }
  memcpy(local, addr, ln);
  local[ln] = '\0';
  for (size_t i = 0; i <= ln; ++i) llocal[i] = (char)tolower((unsigned char)local[i]);
  for (size_t i = 0; i < dn; ++i) domain[i] = (char)tolower((unsigned char)dom[i]);
  domain[dn] = '\0';
  if (!local_ok(local, ln)) {
    *why = "local part has characters outside [-A-Za-z0-9+_.,=], a leading '.' or \"..\"";
    return NULL;
  }
  if (!domain_ok(domain, dn)) {
    *why = "domain has characters outside [-a-z0-9_.], a leading '.' or \"..\"";
    return NULL;
  }
  char sub[PATH_MAX];
  size_t o = 0, comp = 0; /* comp: length of the current path component */
  for (const char *p = st->pattern; *p; ++p) {
    const char *val = NULL;
    char lit[2] = {0, 0};
    if (*p == '%') {
      ++p; /* validated at init: %d %u %l %% only */
      val = *p == 'd' ? domain : *p == 'u' ? local : *p == 'l' ? llocal : "%";
    } else {
      lit[0] = *p;
      val = lit;
    }
    for (const char *v = val; *v; ++v) {
      if (o + 1 >= sizeof sub - MD_NAME_MAX - 16) {
        *why = "Maildir path too long";
        return NULL;
      }
      sub[o++] = *v;
      comp = *v == '/' ? 0 : comp + 1;
      if (comp > NAME_MAX - 8) {
        *why = "Maildir path component too long";
        return NULL;
      }
    }
  }
  sub[o] = '\0';
  char *full = join3(st->dir, sub, "");
  if (!full) *why = "out of memory";
  return full;
}

/* Pattern at init: relative, no empty, "." or ".." components, escapes %d %u %l %% only. */
static const char *pattern_error(const char *pat) {
  if (!pat[0]) return "empty pattern";
  if (pat[0] == '/') return "pattern must be relative to <dir>";
  for (const char *p = pat; *p; ++p) {
    if (*p == '%') {
      ++p;
      if (*p != 'd' && *p != 'u' && *p != 'l' && *p != '%')
        return "unknown escape (use %d, %u, %l or %%)";
    }
  }
  const char *c = pat;
  for (;;) {
    const char *e = strchr(c, '/');
    size_t n = e ? (size_t)(e - c) : strlen(c);
    if (n == 0) return "empty path component in pattern";
    if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
      return "\".\" or \"..\" component in pattern";
    if (!e) break;
    c = e + 1;
  }
  return NULL;
}

/* ---- the worker (thread pool) ------------------------------------------------------- */

static void fail(md_job *j, const char *op, const char *path, int err) {
  if (j->err) return; /* keep the first failure */
  j->err = err ? err : EIO;
  j->op = op;
  j->err_path = md_strdup(path ? path : "");
}

/* fsync a directory; EINVAL means the file system cannot, which Exim tolerates too. */
static int fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : -errno;
  if (close(fd) != 0 && rc == 0 && errno != EINTR) rc = -errno;
  return rc;
}

static int fsync_parent(md_job *j, char *path) {
  char *slash = strrchr(path, '/');
  int rc;
  if (!slash) {
    rc = fsync_dir(".");
    if (rc < 0) fail(j, "fsync", ".", -rc);
    return rc;
  }
  char keep = slash[1];
  if (slash == path) slash[1] = '\0';
  else *slash = '\0';
  rc = fsync_dir(path);
  if (rc < 0) fail(j, "fsync", path, -rc);
  if (slash == path) slash[1] = keep;
  else *slash = '/';
  return rc;
}

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* mkdir -p with mode 0700; every directory created is made durable in its parent. */
static int mkdir_p(md_job *j, char *path, int depth) {
  if (mkdir(path, 0700) == 0) return fsync_parent(j, path);
  int e = errno;
  if (e == EEXIST) {
    if (is_dir(path)) return 0;
    fail(j, "mkdir", path, ENOTDIR);
    return -ENOTDIR;
  }
  char *slash = strrchr(path, '/');
  if (e != ENOENT || !slash || slash == path || depth > 64) {
    fail(j, "mkdir", path, e);
    return -e;
  }
  *slash = '\0';
  int rc = mkdir_p(j, path, depth + 1);
  *slash = '/';
  if (rc < 0) return rc;
  if (mkdir(path, 0700) == 0) return fsync_parent(j, path);
  e = errno;
  if (e == EEXIST && is_dir(path)) return 0; /* another delivery made it meanwhile */
  fail(j, "mkdir", path, e == EEXIST ? ENOTDIR : e);
  return -e;
}

static int ensure_maildir(md_job *j, md_copy *c) {
  static const char *const subs[] = {"tmp", "new", "cur"};
  for (int i = 0; i < 3; ++i) {
    char *p = join3(c->maildir, subs[i], "");
    if (!p) {
      fail(j, "malloc", c->maildir, ENOMEM);
      return -ENOMEM;
    }
    int rc = is_dir(p) ? 0 : mkdir_p(j, p, 0);
    free(p);
    if (rc < 0) return rc;
  }
  return 0;
}

static void unique_name(char *out, size_t cap, const char *host) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned long q = atomic_fetch_add(&md_counter, 1) + 1;
  unsigned long long r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    r = ((unsigned long long)ts.tv_nsec << 32) ^ (q * 0x9E3779B97F4A7C15ull) ^ (uintptr_t)&ts;
  snprintf(out, cap, "%lld.M%06ldP%ldQ%luR%016llx.%s", (long long)ts.tv_sec, ts.tv_nsec / 1000,
           (long)getpid(), q, r, host);
}

static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return -EIO;
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

/* tmp/<unique>: create, copy the message, fsync, close — every result checked. */
static int write_copy(md_job *j, md_copy *c, char *buf) {
  char *tmp = NULL;
  int fd = -1;
  for (int attempt = 0; attempt < MD_OPEN_TRIES && fd < 0; ++attempt) {
    unique_name(c->name, sizeof c->name, j->host);
    free(tmp);
    tmp = join3(c->maildir, "tmp", c->name);
    if (!tmp) {
      fail(j, "malloc", c->maildir, ENOMEM);
      return -ENOMEM;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    int e = errno;
    fail(j, "open", tmp, e);
    free(tmp);
    return -e;
  }
  c->tmp_made = 1;
  int rc = 0;
  for (int64_t off = 0; off < j->size;) {
    size_t want = (size_t)(j->size - off < MD_CHUNK ? j->size - off : MD_CHUNK);
    ssize_t n = pread(j->msg_fd, buf, want, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { /* the spool ended early: never deliver a truncated copy */
      rc = n < 0 ? -errno : -EIO;
      fail(j, "read spool for", tmp, -rc);
      break;
    }
    rc = write_all(fd, buf, (size_t)n);
    if (rc < 0) {
      fail(j, "write", tmp, -rc);
      break;
    }
    off += n;
  }
  if (rc == 0 && fsync(fd) != 0) {
    rc = -errno;
    fail(j, "fsync", tmp, -rc);
  }
  if (close(fd) != 0 && rc == 0 && errno != EINTR) {
    rc = -errno;
    fail(j, "close", tmp, -rc);
  }
  free(tmp);
  return rc;
}

/* new/<unique>: link (the moment of delivery); rename where the file system has no links. */
static int publish_copy(md_job *j, md_copy *c) {
  char *tmp = join3(c->maildir, "tmp", c->name);
  char *nw = join3(c->maildir, "new", c->name);
  int rc = 0;
  if (!tmp || !nw) {
    fail(j, "malloc", c->maildir, ENOMEM);
    rc = -ENOMEM;
  } else if (link(tmp, nw) == 0) {
    c->new_made = 1;
  } else if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS) {
    struct stat sb;
    if (lstat(nw, &sb) == 0) { /* rename would replace it */
      fail(j, "rename", nw, EEXIST);
      rc = -EEXIST;
    } else if (rename(tmp, nw) == 0) {
      c->tmp_made = 0;
      c->new_made = 1;
    } else {
      rc = -errno;
      fail(j, "rename", nw, -rc);
    }
  } else {
    rc = -errno;
    fail(j, "link", nw, -rc);
  }
  free(tmp);
  free(nw);
  return rc;
}

/* Remove every copy made (new/ first: nothing partial stays visible), then the tmp/ files. */
static void rollback(md_job *j) {
  for (int i = 0; i < j->ncopies; ++i) {
    md_copy *c = &j->copies[i];
    if (c->new_made) {
      char *nw = join3(c->maildir, "new", c->name);
      if (!nw || (unlink(nw) != 0 && errno != ENOENT)) ++j->cleanup_failures;
      free(nw);
      char *dir = join3(c->maildir, "new", "");
      if (dir) fsync_dir(dir); /* best effort: the copy is gone either way */
      free(dir);
      c->new_made = 0;
    }
    if (c->tmp_made) {
      char *tmp = join3(c->maildir, "tmp", c->name);
      if (!tmp || (unlink(tmp) != 0 && errno != ENOENT)) ++j->cleanup_failures;
      free(tmp);
      c->tmp_made = 0;
    }
  }
}

static void md_work(void *ud) {
  md_job *j = ud;
  char *buf = malloc(MD_CHUNK);
  if (!buf) {
    fail(j, "malloc", "copy buffer", ENOMEM);
    goto out;
  }
  for (int i = 0; i < j->ncopies; ++i)
    if (ensure_maildir(j, &j->copies[i]) < 0 || write_copy(j, &j->copies[i], buf) < 0) goto undo;
  for (int i = 0; i < j->ncopies; ++i)
    if (publish_copy(j, &j->copies[i]) < 0) goto undo;
  for (int i = 0; i < j->ncopies; ++i) {
    char *dir = join3(j->copies[i].maildir, "new", "");
    int rc = dir ? fsync_dir(dir) : -ENOMEM;
    if (rc < 0) fail(j, "fsync", dir ? dir : j->copies[i].maildir, -rc);
    free(dir);
    if (rc < 0) goto undo;
  }
  /* Delivered. The tmp/ names are leftovers now; removing them is cosmetic, so tmp/ is not
   * fsynced (that would cost the client a third disk flush before its 250): after a crash a
   * name may come back in tmp/, which Maildir readers ignore and clean. */
  for (int i = 0; i < j->ncopies; ++i) {
    md_copy *c = &j->copies[i];
    if (!c->tmp_made) continue;
    char *tmp = join3(c->maildir, "tmp", c->name);
    if (tmp && unlink(tmp) == 0) c->tmp_made = 0;
    free(tmp);
  }
  goto out;
undo:
  rollback(j);
out:
  free(buf);
  close(j->msg_fd);
  j->msg_fd = -1;
}

/* ---- the loop side -------------------------------------------------------------------- */

static void job_free(md_job *j) {
  if (!j) return;
  if (j->msg_fd >= 0) close(j->msg_fd);
  for (int i = 0; i < j->ncopies; ++i) free(j->copies[i].maildir);
  free(j->copies);
  free(j->err_path);
  free(j);
}

static const char kSoftText[] = "Temporary local delivery failure, try again later";

static void md_done(uvs_pending *p, void *ud) {
  md_job *j = ud;
  uvs_call *call = api->pending_call(p);
  if (j->err == 0 && !call) {
    /* The session stopped waiting (hook timeout, client gone): no 250 can follow this OK,
     * so the client will send again. Undo the delivery rather than duplicate it. */
    rollback(j);
    api->log(j->self, NULL, UVS_LOG_WARNING,
             "session no longer waits; removed the %d copies just delivered%s", j->ncopies,
             j->cleanup_failures ? " (some could not be removed: possible duplicate)" : "");
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  } else if (j->err == 0) {
    api->log(j->self, call, UVS_LOG_INFO, "delivered %lld bytes to %d Maildir(s) for %d recipient(s)",
             (long long)j->size, j->ncopies, j->nrcpt);
    for (int i = 0; i < j->ncopies; ++i)
      api->log(j->self, call, UVS_LOG_DEBUG, "delivered %s/new/%s", j->copies[i].maildir,
               j->copies[i].name);
    api->complete(p, UVS_OK, 0, NULL, NULL);
  } else {
    api->log(j->self, call, UVS_LOG_ERR,
             "delivery failed: %s %s: %s (%s %d); no copy delivered%s", j->op,
             j->err_path ? j->err_path : "", strerror(j->err), errno_name(j->err), j->err,
             j->cleanup_failures ? ", but some copies could not be removed" : "");
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  }
  job_free(j);
}

static int cmp_copy(const void *a, const void *b) {
  return strcmp(((const md_copy *)a)->maildir, ((const md_copy *)b)->maildir);
}

static uvs_verdict on_queue(uvs_call *call, void *ud) {
  md_state *st = ud;
  int n = api->rcpt_count(call);
  if (n <= 0) return UVS_DECLINED;
  md_job *j = calloc(1, sizeof *j);
  if (j) j->copies = calloc((size_t)n, sizeof *j->copies);
  if (!j || !j->copies) {
    if (j) free(j);
    api->log(st->self, call, UVS_LOG_ERR, "out of memory");
    api->reply(call, 451, "4.3.0", kSoftText);
    return UVS_DENYSOFT;
  }
  j->self = st->self;
  j->msg_fd = -1;
  j->nrcpt = n;
  memcpy(j->host, st->host, sizeof j->host);
  for (int i = 0; i < n; ++i) {
    const char *addr = api->rcpt_at(call, i);
    const char *why = "no address";
    char *path = addr ? maildir_for(st, addr, &why) : NULL;
    if (!path) {
      char shown[256];
      printable(shown, sizeof shown, addr ? addr : "");
      api->log(st->self, call, UVS_LOG_NOTICE, "refusing the message: recipient <%s>: %s", shown,
               why);
      job_free(j);
      api->reply(call, 554, "5.1.3", "Cannot deliver locally: unsafe mailbox name for a recipient");
      return UVS_DENY;
    }
    j->copies[j->ncopies++].maildir = path;
  }
  /* One copy per distinct Maildir. */
  qsort(j->copies, (size_t)j->ncopies, sizeof *j->copies, cmp_copy);
  int k = 0;
  for (int i = 0; i < j->ncopies; ++i) {
    if (k > 0 && strcmp(j->copies[k - 1].maildir, j->copies[i].maildir) == 0) {
      free(j->copies[i].maildir);
      continue;
    }
    j->copies[k++] = j->copies[i];
  }
  j->ncopies = k;
  j->size = api->message_size(call);
  int fd = j->size >= 0 ? api->message_fd(call) : -ENOENT;
  if (fd < 0) {
    api->log(st->self, call, UVS_LOG_ERR, "cannot open the spooled message: %s",
             strerror(fd < 0 ? -fd : EIO));
    job_free(j);
    api->reply(call, 451, "4.3.0", kSoftText);
    return UVS_DENYSOFT;
  }
  j->msg_fd = fd;
  uvs_pending *p = api->suspend(call);
  if (!p) {
    api->log(st->self, call, UVS_LOG_ERR, "cannot suspend the queue hook");
    job_free(j);
    api->reply(call, 451, "4.3.0", kSoftText);
    return UVS_DENYSOFT;
  }
  int rc = api->run_blocking(p, md_work, md_done, j);
  if (rc < 0) {
    api->log(st->self, call, UVS_LOG_ERR, "cannot start the delivery: %s", strerror(-rc));
    job_free(j);
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  }
  return UVS_PENDING;
}

/* ---- init / fini ---------------------------------------------------------------------- */

static void state_free(md_state *st) {
  if (!st) return;
  free(st->dir);
  free(st->pattern);
  free(st);
}

/* The host part of unique names: maildir(5) writes '/' as \057 and ':' as \072. */
static void host_part(char *out, size_t cap, const char *me) {
  size_t o = 0;
  for (size_t i = 0; me && me[i] && i < MD_HOST_MAX && o + 5 < cap; ++i) {
    unsigned char ch = (unsigned char)me[i];
    if (ch == '/' || ch == ':') o += (size_t)snprintf(out + o, cap - o, "\\%03o", ch);
    else out[o++] = (isascii(ch) && (isalnum(ch) || ch == '-' || ch == '.' || ch == '_')) ? (char)ch : '_';
  }
  out[o] = '\0';
  if (o == 0) snprintf(out, cap, "localhost");
}

static int md_init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(a, message_fd)) {
    a->set_error(self, "needs uvsmtpd ABI 1.1 (message_fd)");
    return -ENOTSUP;
  }
  int argc = a->plugin_argc(self);
  if (argc < 1 || argc > 2) {
    a->set_error(self, "usage: queue/maildir <dir> [pattern]");
    return -EINVAL;
  }
  const char *dir = a->plugin_argv(self, 0);
  const char *pattern = argc > 1 ? a->plugin_argv(self, 1) : "%d/%u";
  if (!dir || !dir[0]) {
    a->set_error(self, "empty <dir>");
    return -EINVAL;
  }
  const char *perr = pattern_error(pattern);
  if (perr) {
    char msg[512];
    snprintf(msg, sizeof msg, "bad pattern \"%.200s\": %s", pattern, perr);
    a->set_error(self, msg);
    return -EINVAL;
  }
  md_state *st = calloc(1, sizeof *st);
  if (!st || !(st->dir = md_strdup(dir)) || !(st->pattern = md_strdup(pattern))) {
    state_free(st);
    a->set_error(self, "out of memory");
    return -ENOMEM;
  }
  size_t dl = strlen(st->dir);
  while (dl > 1 && st->dir[dl - 1] == '/') st->dir[--dl] = '\0';
  if (strcmp(st->dir, "/") == 0) st->dir[0] = '\0'; /* "/" + "/" + sub */
  st->self = self;
  host_part(st->host, sizeof st->host, a->me(self));
  int rc = a->register_hook(self, UVS_HOOK_QUEUE, on_queue, st);
  if (rc < 0) {
    state_free(st);
    a->set_error(self, "cannot register the queue hook");
    return rc;
  }
  a->plugin_set_data(self, st);
  if (!is_dir(dir))
    a->log(self, NULL, UVS_LOG_NOTICE, "%s does not exist yet; it is created on first delivery", dir);
  a->log(self, NULL, UVS_LOG_INFO, "delivering into %s/%s", st->dir, st->pattern);
  return 0;
}

static void md_fini(uvs_plugin *self) {
  state_free(api ? api->plugin_data(self) : NULL);
}

UVS_PLUGIN("queue/maildir", "1.0", md_init, md_fini);
