/* tests/faults/failshim.c: LD_PRELOAD shim: the k-th matching file call fails or kills. */
/*
 * Environment (read once, at the first intercepted call):
 *   FAILSHIM_CALL    the kind of call that is counted:
 *                      write     write pwrite pwrite64 writev pwritev pwritev64 pwritev2
 *                      fsync     fsync fdatasync on anything but a directory
 *                      dirfsync  fsync fdatasync on a directory
 *                      open      open/openat (and their 64/_2 forms) without O_DIRECTORY
 *                                (O_TMPFILE counts here)
 *                      diropen   open/openat with O_DIRECTORY (the open before a directory fsync)
 *                      close     close (the descriptor is closed all the same, as Linux does)
 *                      link      link linkat
 *                      rename    rename renameat renameat2
 *                      mkdir     mkdir mkdirat
 *                      unlink    unlink unlinkat
 *   FAILSHIM_MATCH   substring the call's path must contain (descriptors are resolved through
 *                    /proc/self/fd; a directory's path gets a trailing '/', so "/new/" matches the
 *                    directory new itself; link/rename match on either path). Empty: every path.
 *   FAILSHIM_NTH     k: the k-th matching call (1-based) is the first that fails. 0/unset: none
 *                    fails (the shim only counts, traces or delays).
 *   FAILSHIM_TIMES   how many matching calls fail from the k-th on (default 1; 0 = all of them).
 *   FAILSHIM_ERRNO   EIO (default), ENOSPC, EDQUOT, EROFS, EFBIG, or a number.
 *   FAILSHIM_ACTION  fail (default): the call is not made and returns -1/errno;
 *                    kill: SIGKILL the process instead of making the k-th call;
 *                    kill_after: make the k-th call, then SIGKILL the process;
 *                    delay: sleep FAILSHIM_DELAY_US in the k-th call, then make it (no error);
 *                    short: (write only) the k-th call writes half of its bytes and returns
 *                    the short count, without any error (callers must loop).
 *   FAILSHIM_SHORT   1: (write only) the k-th call writes half of its bytes and returns the short
 *                    count; the failure comes on the next matching call (what a full disk does).
 *   FAILSHIM_LINK_EPERM  1: every link/linkat on a matching path fails with EPERM and is not
 *                    counted (a file system without hard links: queue/maildir then renames).
 *   FAILSHIM_DELAY_US    sleep this long in every matching call (widens crash windows); with
 *                    FAILSHIM_ACTION=delay only in the calls that fire.
 *   FAILSHIM_LOG     file that gets one line per fired fault:
 *                      "fired <call> #<n> <ERRNO|kill|kill_after|delay|short> <path>"
 *   FAILSHIM_TRACE   1: also log "seen <call> #<n> <path>" for every matching call.
 * Counters are atomic: queue/maildir runs on libuv's pool threads.
 */
#undef _FILE_OFFSET_BITS /* define pwrite and pwrite64 (etc.) as two distinct symbols */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum kind {
  K_NONE,
  K_WRITE,
  K_FSYNC,
  K_DIRFSYNC,
  K_OPEN,
  K_DIROPEN,
  K_CLOSE,
  K_LINK,
  K_RENAME,
  K_MKDIR,
  K_UNLINK,
  K_COUNT
};
static const char *const kind_names[K_COUNT] = {"none",   "write",   "fsync", "dirfsync",
                                                "open",   "diropen", "close", "link",
                                                "rename", "mkdir",   "unlink"};
enum action { A_FAIL, A_KILL, A_KILL_AFTER, A_DELAY, A_SHORT };

/* decide() results besides 0 (go on) and a positive errno (fail). */
#define D_SHORT (-1)
#define D_KILL_AFTER (-2)

static struct {
  int kind;
  char match[1024];
  long nth;
  long times;
  int err;
  int action;
  int short_write;
  int link_eperm;
  long delay_us;
  char log[1024];
  int trace;
} cfg;

static atomic_long seen_count;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The real functions. */
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off64_t, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_close)(int);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

#define RESOLVE(name) (*(void **)&real_##name = dlsym(RTLD_NEXT, #name))

static int parse_errno(const char *s) {
  static const struct {
    const char *name;
    int value;
  } names[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
               {"EROFS", EROFS},   {"EFBIG", EFBIG},   {"EINTR", EINTR},
               {"EACCES", EACCES}, {"EPERM", EPERM},   {"ENOMEM", ENOMEM}};
  if (!s || !*s) return EIO;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (strcmp(s, names[i].name) == 0) return names[i].value;
  int v = atoi(s);
  return v > 0 ? v : EIO;
}

static const char *errno_name(int e) {
  switch (e) {
    case EIO:
      return "EIO";
    case ENOSPC:
      return "ENOSPC";
    case EDQUOT:
      return "EDQUOT";
    case EROFS:
      return "EROFS";
    case EFBIG:
      return "EFBIG";
    case EPERM:
      return "EPERM";
    default:
      return "errno";
  }
}

static void copy_env(char *dst, size_t cap, const char *name) {
  const char *v = getenv(name);
  snprintf(dst, cap, "%s", v ? v : "");
}

static void init(void) {
  RESOLVE(write);
  RESOLVE(pwrite);
  RESOLVE(pwrite64);
  RESOLVE(writev);
  RESOLVE(pwritev);
  RESOLVE(pwritev64);
  RESOLVE(pwritev2);
  RESOLVE(pwritev64v2);
  RESOLVE(fsync);
  RESOLVE(fdatasync);
  RESOLVE(open);
  RESOLVE(open64);
  RESOLVE(openat);
  RESOLVE(openat64);
  RESOLVE(__open_2);
  RESOLVE(__open64_2);
  RESOLVE(__openat_2);
  RESOLVE(__openat64_2);
  RESOLVE(close);
  RESOLVE(link);
  RESOLVE(linkat);
  RESOLVE(rename);
  RESOLVE(renameat);
  RESOLVE(renameat2);
  RESOLVE(mkdir);
  RESOLVE(mkdirat);
  RESOLVE(unlink);
  RESOLVE(unlinkat);
  const char *k = getenv("FAILSHIM_CALL");
  cfg.kind = K_NONE;
  for (int i = 1; k && i < K_COUNT; ++i)
    if (strcmp(k, kind_names[i]) == 0) cfg.kind = i;
  copy_env(cfg.match, sizeof cfg.match, "FAILSHIM_MATCH");
  const char *v = getenv("FAILSHIM_NTH");
  cfg.nth = v ? atol(v) : 0;
  v = getenv("FAILSHIM_TIMES");
  cfg.times = v ? atol(v) : 1;
  cfg.err = parse_errno(getenv("FAILSHIM_ERRNO"));
  v = getenv("FAILSHIM_ACTION");
  cfg.action = v && strcmp(v, "kill") == 0         ? A_KILL
               : v && strcmp(v, "kill_after") == 0 ? A_KILL_AFTER
               : v && strcmp(v, "delay") == 0      ? A_DELAY
               : v && strcmp(v, "short") == 0      ? A_SHORT
                                                   : A_FAIL;
  v = getenv("FAILSHIM_SHORT");
  cfg.short_write = v && atoi(v) > 0;
  v = getenv("FAILSHIM_LINK_EPERM");
  cfg.link_eperm = v && atoi(v) > 0;
  v = getenv("FAILSHIM_DELAY_US");
  cfg.delay_us = v ? atol(v) : 0;
  copy_env(cfg.log, sizeof cfg.log, "FAILSHIM_LOG");
  v = getenv("FAILSHIM_TRACE");
  cfg.trace = v && atoi(v) > 0;
}

static void ensure_init(void) {
  pthread_once(&once, init);
}

static int counting(int kind) {
  ensure_init();
  return cfg.kind == kind;
}

/* ---- paths ------------------------------------------------------------------------------ */

static int fd_path(int fd, char *out, size_t cap) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(proc, out, cap - 2);
  if (n < 0) {
    out[0] = '\0';
    return -1;
  }
  out[n] = '\0';
  struct stat sb;
  if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) strcat(out, "/");
  return 0;
}

/* dirfd + name -> an absolute path (best effort; only used for matching). */
static void at_path(int dirfd, const char *name, char *out, size_t cap) {
  if (!name) name = "";
  if (name[0] == '/') {
    snprintf(out, cap, "%s", name);
    return;
  }
  char base[PATH_MAX];
  if (dirfd == AT_FDCWD) {
    if (!getcwd(base, sizeof base)) base[0] = '\0';
    size_t n = strlen(base);
    if (n + 1 < sizeof base && (n == 0 || base[n - 1] != '/')) strcat(base, "/");
  } else {
    fd_path(dirfd, base, sizeof base);
  }
  snprintf(out, cap, "%s%s", base, name);
}

static void dir_slash(char *p, size_t cap) {
  size_t n = strlen(p);
  if (n + 1 < cap && (n == 0 || p[n - 1] != '/')) {
    p[n] = '/';
    p[n + 1] = '\0';
  }
}

static int path_matches(const char *path) {
  return !cfg.match[0] || (path && strstr(path, cfg.match));
}

/* ---- the decision ----------------------------------------------------------------------- */

static void log_line(const char *what, long n, const char *how, const char *path) {
  if (!cfg.log[0]) return;
  char line[PATH_MAX + 256];
  int len = snprintf(line, sizeof line, "%s %s #%ld %s %s\n", what, kind_names[cfg.kind], n, how,
                     path ? path : "");
  if (len < 0) return;
  if ((size_t)len >= sizeof line) len = (int)sizeof line - 1;
  int saved = errno;
  int fd = real_open(cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ssize_t w = real_write(fd, line, (size_t)len);
    (void)w;
    real_close(fd);
  }
  errno = saved;
}

static void kill_self(void) {
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

/* Counts one matching call of the configured kind; returns 0 (make the call), a positive
 * errno (fail it), D_SHORT or D_KILL_AFTER. The caller has checked the kind. */
static int decide(const char *path) {
  if (!path_matches(path)) return 0;
  long n = atomic_fetch_add(&seen_count, 1) + 1;
  if (cfg.trace) log_line("seen", n, "-", path);
  struct timespec ts = {cfg.delay_us / 1000000, (cfg.delay_us % 1000000) * 1000};
  if (cfg.delay_us > 0 && cfg.action != A_DELAY) nanosleep(&ts, NULL);
  if (cfg.nth <= 0 || n < cfg.nth) return 0;
  if (cfg.short_write && cfg.kind == K_WRITE && n == cfg.nth) {
    log_line("short", n, "half", path);
    return D_SHORT;
  }
  long first = cfg.nth + (cfg.short_write && cfg.kind == K_WRITE ? 1 : 0);
  if (cfg.times > 0 && n >= first + cfg.times) return 0;
  switch (cfg.action) {
    case A_KILL:
      log_line("fired", n, "kill", path);
      kill_self();
      return 0;
    case A_KILL_AFTER:
      log_line("fired", n, "kill_after", path);
      return D_KILL_AFTER;
    case A_DELAY:
      log_line("fired", n, "delay", path);
      nanosleep(&ts, NULL);
      return 0;
    case A_SHORT:
      log_line("fired", n, "short", path);
      return D_SHORT;
    default:
      log_line("fired", n, errno_name(cfg.err), path);
      return cfg.err;
  }
}

static int decide_fd(int fd) {
  char path[PATH_MAX + 2];
  fd_path(fd, path, sizeof path);
  return decide(path);
}

#define FAIL_IF(d) \
  do {             \
    if ((d) > 0) { \
      errno = (d); \
      return -1;   \
    }              \
  } while (0)

#define AFTER(d, rc)                      \
  do {                                    \
    if ((d) == D_KILL_AFTER) kill_self(); \
    return (rc);                          \
  } while (0)

/* ---- write ------------------------------------------------------------------------------ */

/* iovec list cut to half of its bytes (for D_SHORT); returns the new count. */
static int half_iov(const struct iovec *iov, int cnt, struct iovec *out, int cap) {
  size_t total = 0;
  for (int i = 0; i < cnt; ++i) total += iov[i].iov_len;
  size_t want = total / 2 ? total / 2 : total;
  int k = 0;
  for (int i = 0; i < cnt && k < cap && want > 0; ++i) {
    out[k] = iov[i];
    if (out[k].iov_len > want) out[k].iov_len = want;
    want -= out[k].iov_len;
    ++k;
  }
  return k;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  if (d == D_SHORT && n > 1) n /= 2;
  ssize_t rc = real_write(fd, buf, n);
  AFTER(d, rc);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  if (d == D_SHORT && n > 1) n /= 2;
  ssize_t rc = real_pwrite(fd, buf, n, off);
  AFTER(d, rc);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  if (d == D_SHORT && n > 1) n /= 2;
  ssize_t rc = real_pwrite64(fd, buf, n, off);
  AFTER(d, rc);
}

#define IOV_SHORT(d, iov, cnt)          \
  struct iovec cut_[64];                \
  if ((d) == D_SHORT) {                 \
    cnt = half_iov(iov, cnt, cut_, 64); \
    iov = cut_;                         \
  }

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  IOV_SHORT(d, iov, cnt);
  ssize_t rc = real_writev(fd, iov, cnt);
  AFTER(d, rc);
}

EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  IOV_SHORT(d, iov, cnt);
  ssize_t rc = real_pwritev(fd, iov, cnt, off);
  AFTER(d, rc);
}

EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  IOV_SHORT(d, iov, cnt);
  ssize_t rc = real_pwritev64(fd, iov, cnt, off);
  AFTER(d, rc);
}

EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  IOV_SHORT(d, iov, cnt);
  ssize_t rc = real_pwritev2(fd, iov, cnt, off, flags);
  AFTER(d, rc);
}

EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags) {
  int d = counting(K_WRITE) ? decide_fd(fd) : 0;
  FAIL_IF(d);
  IOV_SHORT(d, iov, cnt);
  ssize_t rc = real_pwritev64v2(fd, iov, cnt, off, flags);
  AFTER(d, rc);
}

/* ---- fsync ------------------------------------------------------------------------------ */

static int sync_decision(int fd) {
  ensure_init();
  if (cfg.kind != K_FSYNC && cfg.kind != K_DIRFSYNC) return 0;
  struct stat sb;
  int is_dir = fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode);
  if (is_dir != (cfg.kind == K_DIRFSYNC)) return 0;
  return decide_fd(fd);
}

EXPORT int fsync(int fd) {
  int d = sync_decision(fd);
  FAIL_IF(d);
  int rc = real_fsync(fd);
  AFTER(d, rc);
}

EXPORT int fdatasync(int fd) {
  int d = sync_decision(fd);
  FAIL_IF(d);
  int rc = real_fdatasync(fd);
  AFTER(d, rc);
}

/* ---- open ------------------------------------------------------------------------------- */

static int needs_mode(int flags) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* Declares `mode`: the optional third (or fourth) argument of the open family, present only
 * with O_CREAT or O_TMPFILE. Use first thing in a variadic wrapper whose last named parameter
 * is `flags`. */
#define OPEN_MODE(flags)            \
  mode_t mode = 0;                  \
  if (needs_mode(flags)) {          \
    va_list ap;                     \
    va_start(ap, flags);            \
    mode = (mode_t)va_arg(ap, int); \
    va_end(ap);                     \
  }

static int open_decision(int dirfd, const char *path, int flags) {
  ensure_init();
  int is_dir_open = (flags & O_DIRECTORY) && (flags & O_TMPFILE) != O_TMPFILE;
  int kind = is_dir_open ? K_DIROPEN : K_OPEN;
  if (cfg.kind != kind) return 0;
  char full[PATH_MAX + 2];
  at_path(dirfd, path, full, sizeof full - 1);
  if (is_dir_open) dir_slash(full, sizeof full);
  return decide(full);
}

EXPORT int open(const char *path, int flags, ...) {
  OPEN_MODE(flags)
  int d = open_decision(AT_FDCWD, path, flags);
  FAIL_IF(d);
  int rc = real_open(path, flags, mode);
  AFTER(d, rc);
}

EXPORT int open64(const char *path, int flags, ...) {
  OPEN_MODE(flags)
  int d = open_decision(AT_FDCWD, path, flags);
  FAIL_IF(d);
  int rc = real_open64(path, flags, mode);
  AFTER(d, rc);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags)
  int d = open_decision(dirfd, path, flags);
  FAIL_IF(d);
  int rc = real_openat(dirfd, path, flags, mode);
  AFTER(d, rc);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags)
  int d = open_decision(dirfd, path, flags);
  FAIL_IF(d);
  int rc = real_openat64(dirfd, path, flags, mode);
  AFTER(d, rc);
}

EXPORT int __open_2(const char *path, int flags) {
  int d = open_decision(AT_FDCWD, path, flags);
  FAIL_IF(d);
  int rc = real___open_2(path, flags);
  AFTER(d, rc);
}

EXPORT int __open64_2(const char *path, int flags) {
  int d = open_decision(AT_FDCWD, path, flags);
  FAIL_IF(d);
  int rc = real___open64_2(path, flags);
  AFTER(d, rc);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags) {
  int d = open_decision(dirfd, path, flags);
  FAIL_IF(d);
  int rc = real___openat_2(dirfd, path, flags);
  AFTER(d, rc);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags) {
  int d = open_decision(dirfd, path, flags);
  FAIL_IF(d);
  int rc = real___openat64_2(dirfd, path, flags);
  AFTER(d, rc);
}

/* ---- close ------------------------------------------------------------------------------ */

EXPORT int close(int fd) {
  int d = counting(K_CLOSE) ? decide_fd(fd) : 0;
  int rc = real_close(fd); /* Linux releases the descriptor even when close reports an error */
  if (d > 0) {
    errno = d;
    return -1;
  }
  AFTER(d, rc);
}

/* ---- link / rename ---------------------------------------------------------------------- */

static int two_path_decision(int fd1, const char *p1, int fd2, const char *p2) {
  char a[PATH_MAX + 2], b[PATH_MAX + 2];
  at_path(fd1, p1, a, sizeof a);
  at_path(fd2, p2, b, sizeof b);
  if (!path_matches(a) && !path_matches(b)) return 0;
  return decide(path_matches(b) ? b : a);
}

static int link_decision(int fd1, const char *p1, int fd2, const char *p2) {
  ensure_init();
  if (cfg.link_eperm) {
    char a[PATH_MAX + 2], b[PATH_MAX + 2];
    at_path(fd1, p1, a, sizeof a);
    at_path(fd2, p2, b, sizeof b);
    if (path_matches(a) || path_matches(b)) return EPERM;
  }
  if (cfg.kind != K_LINK) return 0;
  return two_path_decision(fd1, p1, fd2, p2);
}

EXPORT int link(const char *from, const char *to) {
  int d = link_decision(AT_FDCWD, from, AT_FDCWD, to);
  FAIL_IF(d);
  int rc = real_link(from, to);
  AFTER(d, rc);
}

EXPORT int linkat(int fd1, const char *from, int fd2, const char *to, int flags) {
  int d = link_decision(fd1, from, fd2, to);
  FAIL_IF(d);
  int rc = real_linkat(fd1, from, fd2, to, flags);
  AFTER(d, rc);
}

static int rename_decision(int fd1, const char *p1, int fd2, const char *p2) {
  if (!counting(K_RENAME)) return 0;
  return two_path_decision(fd1, p1, fd2, p2);
}

EXPORT int rename(const char *from, const char *to) {
  int d = rename_decision(AT_FDCWD, from, AT_FDCWD, to);
  FAIL_IF(d);
  int rc = real_rename(from, to);
  AFTER(d, rc);
}

EXPORT int renameat(int fd1, const char *from, int fd2, const char *to) {
  int d = rename_decision(fd1, from, fd2, to);
  FAIL_IF(d);
  int rc = real_renameat(fd1, from, fd2, to);
  AFTER(d, rc);
}

EXPORT int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
  int d = rename_decision(fd1, from, fd2, to);
  FAIL_IF(d);
  int rc = real_renameat2(fd1, from, fd2, to, flags);
  AFTER(d, rc);
}

/* ---- mkdir / unlink --------------------------------------------------------------------- */

static int one_path_decision(int kind, int dirfd, const char *p, int is_dir) {
  if (!counting(kind)) return 0;
  char full[PATH_MAX + 2];
  at_path(dirfd, p, full, sizeof full - 1);
  if (is_dir) dir_slash(full, sizeof full);
  return decide(full);
}

EXPORT int mkdir(const char *path, mode_t mode) {
  int d = one_path_decision(K_MKDIR, AT_FDCWD, path, 1);
  FAIL_IF(d);
  int rc = real_mkdir(path, mode);
  AFTER(d, rc);
}

EXPORT int mkdirat(int dirfd, const char *path, mode_t mode) {
  int d = one_path_decision(K_MKDIR, dirfd, path, 1);
  FAIL_IF(d);
  int rc = real_mkdirat(dirfd, path, mode);
  AFTER(d, rc);
}

EXPORT int unlink(const char *path) {
  int d = one_path_decision(K_UNLINK, AT_FDCWD, path, 0);
  FAIL_IF(d);
  int rc = real_unlink(path);
  AFTER(d, rc);
}

EXPORT int unlinkat(int dirfd, const char *path, int flags) {
  int d = one_path_decision(K_UNLINK, dirfd, path, (flags & AT_REMOVEDIR) != 0);
  FAIL_IF(d);
  int rc = real_unlinkat(dirfd, path, flags);
  AFTER(d, rc);
}
