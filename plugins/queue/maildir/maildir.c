/* plugins/queue/maildir/maildir.c: queue/maildir, durable local delivery of each message into
 * one Maildir per recipient (arguments, path building, the RCPT-time check, the Maildir protocol,
 * group commit of the new/ fsyncs, rollback, the tmp/ sweep). */
/*
 * conf/plugins:  queue/maildir <dir> [pattern] [domains=FILE]  (pattern default "%d/%u",
 *                domains default rcpthosts)
 *
 * The rcpt hook refuses at RCPT what could not be delivered: a local name that cannot be a
 * Maildir (550 5.1.3) and, for sessions that may relay, a foreign domain (550 5.4.4); it says
 * DECLINED for the rest. It must stand before rcpt_ok (and after rcpt_map) in conf/plugins.
 *
 * The queue hook suspends; the delivery runs in stages, the disk work on the thread pool
 * (uvs_api.run_blocking), the bookkeeping on the loop:
 *   1. pool: for each distinct Maildir: create <maildir>/{tmp,new,cur} as needed (a created
 *      directory is made durable by fsyncing its parent); the first time this process uses the
 *      Maildir, sweep its tmp/ (leftovers of this host's dead runs, files older than 36 h);
 *      create tmp/<unique> with O_EXCL, copy the spooled message into it with pread/write in
 *      64 KiB chunks, fsync, close. Then link every tmp/<unique> to new/<unique> (the moment of
 *      delivery) and unlink the tmp/ names (cosmetic, best effort; tmp/ is not fsynced).
 *   2. loop: each copy waits for an fsync of its new/ that STARTS after its link (group
 *      commit, one md_dirq per new/ directory): if none is queued or running, one is queued
 *      now (pool); if one is queued but has not started, the copy joins it; if one runs, the
 *      copy joins the next batch, queued when the running one ends. One fsync settles every
 *      copy of its batch.
 *   3. loop: when every copy of the message is settled: OK (the core says 250) if all of them
 *      are durable and the session still waits; otherwise (pool) every copy is removed, from
 *      new/ as well, and the answer is 452 4.3.1 for ENOSPC/EDQUOT, 451 4.3.0 for the rest.
 * The log line names the operation, the path and the errno. docs/plugins/queue-maildir.md has
 * the details.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
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

/* Uses ABI 1.1 members at most (message_fd): runs on any 1.1 or later server. */
#define UVS_PLUGIN_MIN_ABI_MINOR 1
#include "uvsmtpd/plugin.h"
#include "../../common/local_domains.h"
#include "../../common/mailbox.h"

#define MD_CHUNK (64 * 1024)       /* copy buffer: the message is streamed, never loaded whole */
#define MD_HOST_MAX 64             /* the host part of unique names                          */
#define MD_NAME_MAX 192            /* a whole unique name                                     */
#define MD_OPEN_TRIES 5            /* fresh names tried when tmp/<name> exists                */
#define MD_STALE_SECS (36L * 3600) /* maildir(5): tmp/ files untouched this long are dead   */
#define MD_START_SLACK 2           /* seconds of rounding in a process's start time           */
#define MD_DIRQ_BUCKETS 256        /* hash buckets of the new/ directories being synced       */

static const uvs_api *api;
static atomic_ulong md_counter; /* the Q part of unique names: never reused in this process */

typedef struct md_state {
  uvs_plugin *self;
  char *dir;     /* base directory, no trailing '/' */
  char *pattern; /* validated at init */
  ld_set domains; /* the local domains besides me: rcpthosts, or domains=FILE */
  char host[MD_HOST_MAX + 1];
} md_state;

typedef struct md_job md_job;

typedef struct md_copy {
  char *maildir; /* <dir>/<expanded pattern> */
  char *trace;   /* "Return-Path: <sender>\r\nDelivered-To: <rcpt>\r\n", written before the message */
  char name[MD_NAME_MAX];
  int tmp_made;          /* tmp/<name> exists and is ours */
  int new_made;          /* new/<name> exists and is ours */
  md_job *job;           /* the delivery this copy belongs to */
  struct md_copy *qnext; /* loop: the next copy in the same md_dirq list */
} md_copy;

/* One delivery. Touched by one thread at a time: the pool during a stage, the loop between
 * stages (uv_queue_work orders the two). */
struct md_job {
  uvs_plugin *self;
  uvs_pending *p;
  int msg_fd;
  int64_t size;
  char host[MD_HOST_MAX + 1];
  md_copy *copies;
  int ncopies;
  int nrcpt;
  int unsynced; /* loop: copies whose new/ fsync has not settled yet */
  int gone;     /* durable, but the session no longer waited: being undone */
  /* the first failure */
  int err;
  const char *op;
  char *err_path;
  int cleanup_failures; /* unlinks that failed while rolling back */
};

/* Group commit of one new/ directory. Loop thread only, except what dirq_work touches on the
 * pool while `syncing`: it reads path, sets `started` just before it calls fsync, and writes
 * err. Exists while a copy waits on it. */
typedef struct md_dirq {
  struct md_dirq *hnext; /* hash chain */
  char *path;            /* <maildir>/new */
  md_copy *waiting;      /* linked, waiting for the fsync after the running one */
  md_copy **wait_tail;
  md_copy *batch;     /* the copies the queued or running fsync settles */
  int syncing;        /* an fsync of path is queued on the pool or runs there */
  atomic_int started; /* ... and the pool thread has got to it (fsync is called next) */
  int err;            /* its result: 0 or an errno */
} md_dirq;

static md_dirq *md_dirqs[MD_DIRQ_BUCKETS];

/* ---- small helpers -------------------------------------------------------------------- */

static const char *errno_name(int e) {
  switch (e) {
    case EPERM:
      return "EPERM";
    case ENOENT:
      return "ENOENT";
    case EIO:
      return "EIO";
    case EBADF:
      return "EBADF";
    case ENOMEM:
      return "ENOMEM";
    case EACCES:
      return "EACCES";
    case EEXIST:
      return "EEXIST";
    case EXDEV:
      return "EXDEV";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case EINVAL:
      return "EINVAL";
    case ENFILE:
      return "ENFILE";
    case EMFILE:
      return "EMFILE";
    case EFBIG:
      return "EFBIG";
    case ENOSPC:
      return "ENOSPC";
    case EROFS:
      return "EROFS";
    case EMLINK:
      return "EMLINK";
    case ENAMETOOLONG:
      return "ENAMETOOLONG";
    case ELOOP:
      return "ELOOP";
    case EDQUOT:
      return "EDQUOT";
    case ENOSYS:
      return "ENOSYS";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case ESTALE:
      return "ESTALE";
    case EINTR:
      return "EINTR";
    default:
      return "errno";
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

/* ---- recipients -> Maildir paths ------------------------------------------------------ */

static const char kBadDomain[] = "domain has characters outside [-a-z0-9_.] (a non-ASCII domain "
                                 "among them), a leading '.' or \"..\"";

/* Builds <dir>/<pattern expanded for addr> or returns NULL with *why set. The local part is
 * stored unquoted (plugins/common/mailbox.c); an address literal that is a local domain (the
 * session's own address, or listed) stands for me. local_ip: the session's, or NULL. */
static char *maildir_for(const md_state *st, const char *addr, const char *local_ip,
                         const char **why) {
  char local[256], llocal[256], domain[256];
  const char *at = strrchr(addr, '@');
  size_t ln = at ? (size_t)(at - addr) : strlen(addr);
  const char *me = api->me(st->self);
  const char *dom = at ? at + 1 : NULL; /* "postmaster" has no domain: me */
  /* An address literal that is a local domain stands for me. (An address's domain never ends
   * in '.': the core's RFC 5321 parser refuses an empty label; me may, and loses it.) */
  int local_literal = dom && dom[0] == '[' && ld_match(&st->domains, dom, me, local_ip);
  if (ln >= sizeof local) {
    *why = "address too long";
    return NULL;
  }
  int un = mb_local(addr, ln, local, sizeof local);
  if (un < 0) {
    *why = "local part has characters outside [-A-Za-z0-9+_.,=] (quoted or not), a leading "
           "'.' or \"..\"";
    return NULL;
  }
  ln = (size_t)un;
  for (size_t i = 0; i <= ln; ++i) llocal[i] = mb_lower(local[i]);
  if (mb_store_domain(dom, me, local_literal, domain, sizeof domain) < 0) {
    *why = kBadDomain;
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
  free(j->err_path); /* NULL until the first failure */
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
  if (slash == path)
    slash[1] = '\0';
  else
    *slash = '\0';
  rc = fsync_dir(path);
  if (rc < 0) fail(j, "fsync", path, -rc);
  if (slash == path)
    slash[1] = keep;
  else
    *slash = '/';
  return rc;
}

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Can this process (its effective ids: the user uvsmtpd runs as) create Maildirs under dir? It
 * must be a writable directory, or, while it does not exist yet, its nearest existing ancestor
 * must be. 0, or -errno with the directory that failed in `where`. */
static int dir_usable(const char *dir, char *where, size_t cap) {
  if (strlen(dir) >= cap) return -ENAMETOOLONG;
  snprintf(where, cap, "%s", dir);
  for (size_t n = strlen(where); n > 1 && where[n - 1] == '/'; --n) where[n - 1] = '\0'; /* "a/" */
  for (;;) {
    struct stat sb;
    if (stat(where, &sb) == 0) {
      if (!S_ISDIR(sb.st_mode)) return -ENOTDIR;
      return faccessat(AT_FDCWD, where, W_OK | X_OK, AT_EACCESS) == 0 ? 0 : -errno;
    }
    if (errno != ENOENT && errno != ENOTDIR) return -errno; /* ENOTDIR: a file on the way */
    char *slash = strrchr(where, '/');
    while (slash && slash > where && slash[-1] == '/') --slash; /* "a//b" */
    if (!slash) {
      snprintf(where, cap, ".");
    } else if (slash == where) {
      where[1] = '\0'; /* "/" */
    } else {
      *slash = '\0';
    }
  }
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

/* ---- the tmp/ sweep (thread pool) ----------------------------------------------------- */

/* Maildirs this process has swept, by a 64-bit hash of the path (open addressing, 0 = empty).
 * A collision only skips a sweep. Shared by every instance and reload: the module stays
 * mapped for the life of the process. */
static pthread_mutex_t md_swept_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *md_swept;
static size_t md_swept_cap, md_swept_n;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; ++s) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h ? h : 1;
}

static int swept_insert(uint64_t *tab, size_t cap, uint64_t h) {
  for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
    if (tab[i] == h) return 0;
    if (tab[i] == 0) {
      tab[i] = h;
      return 1;
    }
  }
}

/* First use of this Maildir in this process? Marks it used. No memory: "not the first". */
static int first_use(const char *maildir) {
  uint64_t h = hash_str(maildir);
  int first = 0;
  pthread_mutex_lock(&md_swept_mu);
  if ((md_swept_n + 1) * 2 > md_swept_cap) { /* keep the table at most half full */
    size_t cap = md_swept_cap ? md_swept_cap * 2 : 256;
    uint64_t *tab = calloc(cap, sizeof *tab);
    if (tab) {
      for (size_t i = 0; i < md_swept_cap; ++i)
        if (md_swept[i]) swept_insert(tab, cap, md_swept[i]);
      free(md_swept);
      md_swept = tab;
      md_swept_cap = cap;
    }
  }
  if ((md_swept_n + 1) * 2 <= md_swept_cap && swept_insert(md_swept, md_swept_cap, h)) {
    ++md_swept_n;
    first = 1;
  }
  pthread_mutex_unlock(&md_swept_mu);
  return first;
}

/* Decimal digits at *p (at least one, no sign, no blanks) into *v; advances *p. */
static int digits(const char **p, unsigned long long *v) {
  const char *s = *p;
  unsigned long long x = 0;
  if (!isdigit((unsigned char)*s)) return 0;
  for (; isdigit((unsigned char)*s); ++s) {
    if (x > (ULLONG_MAX - 9) / 10) return 0;
    x = x * 10 + (unsigned)(*s - '0');
  }
  *p = s;
  *v = x;
  return 1;
}

/* Is name one of ours, as unique_name() makes it for this host
 * ("<secs>.M<usec>P<pid>Q<n>R<16 hex>.<host>")? Then *secs and *pid are set. */
static int own_name(const char *name, const char *host, long long *secs, long *pid) {
  const char *p = name;
  unsigned long long s, us, pd, q;
  if (!digits(&p, &s) || *p++ != '.' || *p++ != 'M' || !digits(&p, &us) || *p++ != 'P' ||
      !digits(&p, &pd) || *p++ != 'Q' || !digits(&p, &q) || *p++ != 'R')
    return 0;
  for (int i = 0; i < 16; ++i, ++p)
    if (!isxdigit((unsigned char)*p)) return 0;
  if (*p++ != '.' || strcmp(p, host) != 0 || s > (unsigned long long)LLONG_MAX || pd == 0 ||
      pd > (unsigned long long)INT_MAX)
    return 0;
  *secs = (long long)s;
  *pid = (long)pd;
  return 1;
}

/* The boot time (realtime seconds) from /proc/stat, -1 if unknown. */
static long long boot_time(void) {
  FILE *f = fopen("/proc/stat", "re");
  if (!f) return -1;
  char line[256];
  long long bt = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "btime ", 6) == 0) {
      bt = atoll(line + 6);
      break;
    }
  fclose(f);
  return bt;
}

/* When process pid started (realtime seconds), -1 if unknown: /proc/<pid>/stat field 22. */
static long long start_time(long pid, long long btime) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0 || btime < 0) return -1;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold blanks and ')' */
  if (!p) return -1;
  ++p;
  for (int field = 2; field < 21; ++field) { /* after ')' come fields 3 (state) .. 22 */
    p = strchr(p + 1, ' ');
    if (!p) return -1;
  }
  unsigned long long ticks;
  ++p;
  long hz = sysconf(_SC_CLK_TCK);
  if (!digits(&p, &ticks) || hz <= 0) return -1;
  return btime + (long long)(ticks / (unsigned long long)hz);
}

/* Could process pid, alive now, have made a file at secs? Only if it exists and started no
 * later. Unknown start time: yes (keep the file). */
static int may_be_owner(long pid, long long secs, long long btime) {
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
  long long started = start_time(pid, btime);
  return started < 0 || started <= secs + MD_START_SLACK;
}

/* Removes from <maildir>/tmp (regular files only, symlinks not followed):
 *  - this host's own names (host part, format) whose process is dead, or is a newer process
 *    that reuses the pid: the leftovers of a crashed or killed run of uvsmtpd;
 *  - any file whose mtime, ctime and atime are all older than 36 hours (maildir(5): anyone
 *    may remove those, whoever wrote them).
 * Everything else stays: another delivery agent's fresh files, and the files of a live
 * uvsmtpd (this process, or another one sharing the Maildir). Best effort: errors only count. */
static void sweep_tmp(md_job *j, const char *maildir) {
  char *tmp = join3(maildir, "tmp", "");
  DIR *d = tmp ? opendir(tmp) : NULL;
  if (!d) {
    free(tmp);
    return;
  }
  time_t now = time(NULL);
  long long btime = -1;
  int dead = 0, old = 0, failed = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    const char *n = de->d_name;
    if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) continue;
    struct stat sb;
    if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) continue;
    long long secs;
    long pid;
    int stale = now - sb.st_mtime > MD_STALE_SECS && now - sb.st_ctime > MD_STALE_SECS &&
                now - sb.st_atime > MD_STALE_SECS;
    int orphan = 0;
    if (!stale && own_name(n, j->host, &secs, &pid)) {
      if (btime < 0) btime = boot_time();
      orphan = !may_be_owner(pid, secs, btime);
    }
    if (!stale && !orphan) continue;
    if (unlinkat(dirfd(d), n, 0) == 0) {
      if (stale)
        ++old;
      else
        ++dead;
    } else if (errno != ENOENT) {
      ++failed;
    }
  }
  closedir(d);
  if (dead + old + failed > 0)
    api->log(j->self, NULL, UVS_LOG_NOTICE,
             "swept %s: removed %d leftover file(s) of dead uvsmtpd runs on this host and %d "
             "older than 36 hours%s",
             tmp, dead, old, failed ? " (some could not be removed)" : "");
  free(tmp);
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
  /* The trace lines go out with the first chunk of the message (one write as without them). */
  size_t lead = strlen(c->trace);
  memcpy(buf, c->trace, lead);
  for (int64_t off = 0; off < j->size || lead > 0;) {
    size_t room = MD_CHUNK - lead;
    size_t want = (size_t)(j->size - off < (int64_t)room ? j->size - off : (int64_t)room);
    ssize_t n = want ? pread(j->msg_fd, buf + lead, want, (off_t)off) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (want && n <= 0) { /* the spool ended early: never deliver a truncated copy */
      rc = n < 0 ? -errno : -EIO;
      fail(j, "read spool for", tmp, -rc);
      break;
    }
    rc = write_all(fd, buf, lead + (size_t)n);
    if (rc < 0) {
      fail(j, "write", tmp, -rc);
      break;
    }
    off += n;
    lead = 0;
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

/* Stage 1 (pool): every copy written, synced, linked into new/; on failure, all undone. */
static void md_work(void *ud) {
  md_job *j = ud;
  char *buf = malloc(MD_CHUNK);
  if (!buf) {
    fail(j, "malloc", "copy buffer", ENOMEM);
    goto out;
  }
  for (int i = 0; i < j->ncopies; ++i) {
    md_copy *c = &j->copies[i];
    if (ensure_maildir(j, c) < 0) goto undo;
    if (first_use(c->maildir)) sweep_tmp(j, c->maildir);
    if (write_copy(j, c, buf) < 0) goto undo;
  }
  for (int i = 0; i < j->ncopies; ++i)
    if (publish_copy(j, &j->copies[i]) < 0) goto undo;
  /* Every copy has its new/ name; the tmp/ names are leftovers now. Removing them is cosmetic,
   * so tmp/ is not fsynced (that would cost a disk flush before the 250): after a crash a name
   * may come back in tmp/, where the next run's sweep or a Maildir reader removes it. If the
   * new/ fsync fails later, the rollback removes the new/ name, and the file is gone. */
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

static void undo_work(void *ud) {
  rollback(ud);
}

/* ---- the loop side -------------------------------------------------------------------- */

static void job_free(md_job *j) {
  if (!j) return;
  if (j->msg_fd >= 0) close(j->msg_fd);
  for (int i = 0; i < j->ncopies; ++i) {
    free(j->copies[i].maildir);
    free(j->copies[i].trace);
  }
  free(j->copies);
  free(j->err_path);
  free(j);
}

static const char kSoftText[] = "Temporary local delivery failure, try again later";
static const char kFullText[] = "Insufficient system storage, try again later";

/* A failed delivery's answer: 452 4.3.1 when the disk or the quota is full, else 451 4.3.0. */
static void complete_failed(md_job *j) {
  if (j->err == ENOSPC || j->err == EDQUOT)
    api->complete(j->p, UVS_DENYSOFT, 452, "4.3.1", kFullText);
  else
    api->complete(j->p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
}

static void log_failed(md_job *j) {
  api->log(j->self, api->pending_call(j->p), UVS_LOG_ERR,
           "delivery failed: %s %s: %s (%s %d); no copy delivered%s", j->op,
           j->err_path ? j->err_path : "", strerror(j->err), errno_name(j->err), j->err,
           j->cleanup_failures ? ", but some copies could not be removed" : "");
}

/* Stage 3 (loop), after the undo on the pool. */
static void undo_done(uvs_pending *p, void *ud) {
  md_job *j = ud;
  (void)p;
  if (j->gone) {
    /* The session stopped waiting (hook timeout, client gone): no 250 could follow an OK,
     * so the client will send again. The delivery is undone rather than duplicated. */
    api->log(j->self, NULL, UVS_LOG_WARNING,
             "session no longer waits; removed the %d copies just delivered%s", j->ncopies,
             j->cleanup_failures ? " (some could not be removed: possible duplicate)" : "");
    api->complete(j->p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  } else {
    log_failed(j);
    complete_failed(j);
  }
  job_free(j);
}

/* Removes every copy on the pool, then answers (undo_done). */
static void start_undo(md_job *j) {
  if (api->run_blocking(j->p, undo_work, undo_done, j) < 0) {
    rollback(j); /* the pool refused the work: never leave a copy nobody answers 250 for */
    undo_done(j->p, j);
  }
}

/* Stage 3 (loop): every copy's new/ fsync has settled. */
static void job_settle(md_job *j) {
  uvs_call *call = api->pending_call(j->p);
  if (j->err == 0 && call) {
    api->log(j->self, call, UVS_LOG_INFO,
             "delivered %lld bytes to %d Maildir(s) for %d recipient(s)", (long long)j->size,
             j->ncopies, j->nrcpt);
    for (int i = 0; i < j->ncopies; ++i)
      api->log(j->self, call, UVS_LOG_DEBUG, "delivered %s/new/%s", j->copies[i].maildir,
               j->copies[i].name);
    api->complete(j->p, UVS_OK, 0, NULL, NULL);
    job_free(j);
    return;
  }
  j->gone = j->err == 0;
  start_undo(j);
}

/* One copy's new/ fsync has settled with err (0: durable). */
static void copy_synced(md_job *j, md_copy *c, int err) {
  if (err && c) {
    char *dir = join3(c->maildir, "new", "");
    fail(j, "fsync", dir ? dir : c->maildir, err);
    free(dir);
  }
  if (--j->unsynced == 0) job_settle(j);
}

/* ---- group commit of new/ (loop) ------------------------------------------------------ */

static void dirq_start(md_dirq *q);

static md_dirq **dirq_slot(const char *path) {
  md_dirq **slot = &md_dirqs[hash_str(path) % MD_DIRQ_BUCKETS];
  while (*slot && strcmp((*slot)->path, path) != 0) slot = &(*slot)->hnext;
  return slot;
}

static void dirq_release(md_dirq *q) {
  md_dirq **slot = dirq_slot(q->path);
  if (*slot == q) *slot = q->hnext;
  free(q->path);
  free(q);
}

static void dirq_work(void *ud) {
  md_dirq *q = ud;
  atomic_store(&q->started, 1); /* from here on, no copy joins this batch */
  int rc = fsync_dir(q->path);
  q->err = rc < 0 ? -rc : 0;
}

/* The fsync of q->path has ended: it settles its whole batch. The copies that arrived after
 * it started need the next one, which starts now. */
static void dirq_done(uvs_pending *p, void *ud) {
  md_dirq *q = ud;
  (void)p;
  md_copy *batch = q->batch;
  int err = q->err;
  q->batch = NULL;
  q->syncing = 0;
  if (q->waiting)
    dirq_start(q);
  else
    dirq_release(q);
  for (md_copy *c = batch, *next; c; c = next) {
    next = c->qnext;
    c->qnext = NULL;
    copy_synced(c->job, c, err);
  }
}

/* Starts an fsync for every copy waiting on q, as work of the first one's pending call (which
 * stays uncompleted until dirq_done, because its copy is in the batch). */
static void dirq_start(md_dirq *q) {
  q->batch = q->waiting;
  q->waiting = NULL;
  q->wait_tail = &q->waiting;
  q->syncing = 1;
  atomic_store(&q->started, 0);
  q->err = 0;
  int rc = api->run_blocking(q->batch->job->p, dirq_work, dirq_done, q);
  if (rc < 0) {
    q->err = -rc;
    dirq_done(NULL, q);
  }
}

/* Stage 2 (loop): c is linked into new/ (the link happened before this call); it needs an
 * fsync of new/ that starts after the link:
 *  - none queued or running: one starts now, for c;
 *  - one queued on the pool that has not started (it waits behind other work): c joins its
 *    batch. Its fsync is called after `started` is set, and c saw it unset, after its link;
 *  - one running (it may have started before the link): c waits for the next one, which
 *    starts when the running one ends, for every copy that arrived meanwhile. */
static void dirq_add(md_copy *c) {
  char *path = join3(c->maildir, "new", "");
  md_dirq *q = NULL;
  if (path) {
    md_dirq **slot = dirq_slot(path);
    if (*slot) {
      q = *slot;
      free(path);
    } else if ((q = calloc(1, sizeof *q)) != NULL) {
      q->path = path;
      q->wait_tail = &q->waiting;
      *slot = q;
    } else {
      free(path);
    }
  }
  if (!q) {
    copy_synced(c->job, c, ENOMEM);
    return;
  }
  c->qnext = NULL;
  if (q->syncing && !atomic_load(&q->started)) {
    c->qnext = q->batch;
    q->batch = c;
    return;
  }
  *q->wait_tail = c;
  q->wait_tail = &c->qnext;
  if (!q->syncing) dirq_start(q);
}

/* Stage 1 done (loop). */
static void md_done(uvs_pending *p, void *ud) {
  md_job *j = ud;
  if (j->err) { /* already rolled back on the pool */
    log_failed(j);
    complete_failed(j);
    job_free(j);
  } else if (!api->pending_call(p)) {
    j->gone = 1; /* nobody waits: no point making new/ durable */
    start_undo(j);
  } else {
    j->unsynced = j->ncopies + 1; /* + 1: j stays alive until every copy is queued */
    for (int i = 0; i < j->ncopies; ++i) dirq_add(&j->copies[i]);
    copy_synced(j, NULL, 0);
  }
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
    char *path = addr ? maildir_for(st, addr, api->local_ip(call), &why) : NULL;
    if (!path) {
      char shown[256];
      mb_printable(shown, sizeof shown, addr ? addr : "");
      api->log(st->self, call, UVS_LOG_NOTICE, "refusing the message: recipient <%s>: %s", shown,
               why);
      job_free(j);
      api->reply(call, 554, "5.1.3", "Cannot deliver locally: unsafe mailbox name for a recipient");
      return UVS_DENY;
    }
    /* The envelope in the stored copy, as Postfix's local(8) and Dovecot's LDA write it: the
     * sender (RFC 5321 4.4: Return-Path at final delivery) and the recipient it was for (a bare
     * <postmaster> is the server's own, RFC 5321 4.1.1.3). */
    const char *from = api->mail_from(call);
    const char *me = api->me(st->self);
    int bare = strchr(addr, '@') == NULL;
    size_t tn = strlen(from ? from : "") + strlen(addr) + (bare ? strlen(me) + 1 : 0) + 40;
    char *trace = malloc(tn);
    if (!trace) {
      free(path);
      job_free(j);
      api->log(st->self, call, UVS_LOG_ERR, "out of memory");
      api->reply(call, 451, "4.3.0", kSoftText);
      return UVS_DENYSOFT;
    }
    snprintf(trace, tn, "Return-Path: <%s>\r\nDelivered-To: %s%s%s\r\n", from ? from : "", addr,
             bare ? "@" : "", bare ? me : "");
    j->copies[j->ncopies].maildir = path;
    j->copies[j->ncopies++].trace = trace;
  }
  /* One copy per distinct Maildir. */
  qsort(j->copies, (size_t)j->ncopies, sizeof *j->copies, cmp_copy);
  int k = 0;
  for (int i = 0; i < j->ncopies; ++i) {
    if (k > 0 && strcmp(j->copies[k - 1].maildir, j->copies[i].maildir) == 0) {
      free(j->copies[i].maildir);
      free(j->copies[i].trace);
      continue;
    }
    j->copies[k++] = j->copies[i];
  }
  j->ncopies = k;
  for (int i = 0; i < k; ++i) j->copies[i].job = j;
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
  j->p = p;
  int rc = api->run_blocking(p, md_work, md_done, j);
  if (rc < 0) {
    api->log(st->self, call, UVS_LOG_ERR, "cannot start the delivery: %s", strerror(-rc));
    job_free(j);
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  }
  return UVS_PENDING;
}

/* ---- RCPT: accept only what can be delivered ---------------------------------------------- */

/* DECLINED for a deliverable recipient (the next plugin decides); DENY for a local one whose
 * name cannot be stored, and for a foreign one when this session could relay (nothing routes
 * it: there is no outbound delivery here). Other sessions' foreign recipients are left to
 * rcpt_ok's "Relaying denied". */
static uvs_verdict on_rcpt(uvs_call *call, void *ud) {
  md_state *st = ud;
  const char *addr = api->call_address(call);
  const char *at = strrchr(addr, '@');
  char shown[256], text[600]; /* at most 200 + 200 + 30 bytes are used */
  mb_printable(shown, sizeof shown, addr);
  if (at) {
    const char *domain = at + 1; /* as the core parsed it: no trailing '.' */
    if (!ld_match(&st->domains, domain, api->me(st->self), api->local_ip(call))) {
      if (api->is_immune(call) <= 0) return UVS_DECLINED; /* rcpt_ok: Relaying denied */
      char d[256];
      mb_printable(d, sizeof d, domain);
      api->log(st->self, call, UVS_LOG_INFO, "refusing <%s>: %s is not a local domain", shown, d);
      snprintf(text, sizeof text, "<%s>: no route to domain %s", shown, d);
      api->reply(call, 550, "5.4.4", text);
      return UVS_DENY;
    }
  }
  /* a percent hack or bang path to a local domain: a relaying attempt, for rcpt_ok to refuse
   * unless this session may relay (then it is refused below: it cannot be stored) */
  if (mb_has_routing(addr, at ? (size_t)(at - addr) : 0) && api->is_immune(call) <= 0)
    return UVS_DECLINED;
  const char *why = "no address";
  char *path = maildir_for(st, addr, api->local_ip(call), &why);
  if (path) {
    free(path);
    return UVS_DECLINED;
  }
  api->log(st->self, call, UVS_LOG_INFO, "refusing <%s>: %s", shown, why);
  snprintf(text, sizeof text, "<%s>: %s cannot be stored in a Maildir", shown,
           why == kBadDomain ? "domain" : "local part");
  api->reply(call, 550, "5.1.3", text);
  return UVS_DENY;
}

/* ---- init / fini ---------------------------------------------------------------------- */

static void state_free(md_state *st) {
  if (!st) return;
  ld_free(&st->domains);
  free(st->dir);
  free(st->pattern);
  free(st);
}

/* The host part of unique names: maildir(5) writes '/' as \057 and ':' as \072. */
static void host_part(char *out, size_t cap, const char *me) {
  size_t o = 0;
  for (size_t i = 0; me && me[i] && i < MD_HOST_MAX && o + 5 < cap; ++i) {
    unsigned char ch = (unsigned char)me[i];
    if (ch == '/' || ch == ':')
      o += (size_t)snprintf(out + o, cap - o, "\\%03o", ch);
    else
      out[o++] =
          (isascii(ch) && (isalnum(ch) || ch == '-' || ch == '.' || ch == '_')) ? (char)ch : '_';
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
  const char *domains_file = NULL;
  if (argc > 1 && strncmp(a->plugin_argv(self, argc - 1), "domains=", 8) == 0)
    domains_file = a->plugin_argv(self, --argc) + 8;
  if (argc < 1 || argc > 2 || (domains_file && !domains_file[0])) {
    a->set_error(self, "usage: queue/maildir <dir> [pattern] [domains=FILE]");
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
  int rc = ld_load(&st->domains, a, self, domains_file ? domains_file : "rcpthosts");
  if (rc == -ENOENT && domains_file)
    snprintf(st->domains.error, sizeof st->domains.error, "domains=%.200s: no such file in the "
             "config directory", domains_file);
  else if (rc == -ENOENT)
    rc = 0; /* no rcpthosts: only me (and the own address literal) is local */
  if (rc < 0) {
    a->set_error(self, st->domains.error);
    state_free(st);
    return rc;
  }
  char where[PATH_MAX];
  rc = dir_usable(dir, where, sizeof where);
  if (rc < 0) {
    a->set_errorf(self,
                  "%s: %s (uid %d): the user uvsmtpd runs as must be able to create Maildirs "
                  "under %s: make it a directory writable by that user (user in uvsmtpd.toml)",
                  where, strerror(-rc), (int)geteuid(), dir);
    state_free(st);
    return rc;
  }
  rc = a->register_hook(self, UVS_HOOK_QUEUE, on_queue, st);
  if (rc == 0) rc = a->register_hook(self, UVS_HOOK_RCPT, on_rcpt, st);
  if (rc < 0) {
    state_free(st);
    a->set_error(self, "cannot register the queue and rcpt hooks");
    return rc;
  }
  a->plugin_set_data(self, st);
  if (!is_dir(dir))
    a->log(self, NULL, UVS_LOG_NOTICE, "%s does not exist yet; it is created on first delivery",
           dir);
  a->log(self, NULL, UVS_LOG_INFO, "delivering into %s/%s for %s and %zu %s entr%s", st->dir,
         st->pattern, a->me(self), st->domains.count, domains_file ? domains_file : "rcpthosts",
         st->domains.count == 1 ? "y" : "ies");
  return 0;
}

static void md_fini(uvs_plugin *self) {
  state_free(api ? api->plugin_data(self) : NULL);
}

UVS_PLUGIN("queue/maildir", "1.0", md_init, md_fini);
