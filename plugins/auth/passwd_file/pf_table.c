/* plugins/auth/passwd_file/pf_table.c: auth/passwd_file's user table (see pf_table.h): the
 * Dovecot passwd-file parser, the scheme rules and the password check. */
/*
 * Format (https://doc.dovecot.org/configuration_manual/authentication/passwd_file/):
 *   user:password[:uid:gid:gecos:home:shell:extra_fields]
 * Only the first two fields are used. Blank lines and lines whose first non-blank character is
 * '#' are skipped. The password is `{SCHEME}value` or a bare crypt hash. Schemes: CRYPT (any
 * hash below), BLF-CRYPT ($2a$, $2b$, $2y$), SHA512-CRYPT ($6$), SHA256-CRYPT ($5$), and
 * PLAIN / CLEARTEXT (only when the caller allows them). Crypt hashes: yescrypt $y$, scrypt $7$,
 * bcrypt $2a$/$2b$/$2y$, SHA-crypt $6$/$5$; libcrypt must accept the setting (crypt_checksalt).
 * DES and MD5 crypt are refused: too weak to guard a mail relay.
 */
#define _DEFAULT_SOURCE
#include "pf_table.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kCryptPrefixes[] = {"$y$", "$7$", "$2a$", "$2b$", "$2y$", "$6$", "$5$"};
#define PF_SUPPORTED_HASHES "$y$, $7$, $2a$, $2b$, $2y$, $6$, $5$"

static int ascii_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int ascii_casecmp(const char *a, const char *b) {
  for (;; ++a, ++b) {
    int ca = ascii_lower((unsigned char)*a), cb = ascii_lower((unsigned char)*b);
    if (ca != cb || ca == 0) return ca - cb;
  }
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int has_crypt_prefix(const char *h) {
  for (size_t i = 0; i < sizeof kCryptPrefixes / sizeof kCryptPrefixes[0]; ++i)
    if (starts_with(h, kCryptPrefixes[i])) return 1;
  return 0;
}

/* Characters a crypt hash is written with: printable ASCII without blanks or ':'. */
static int hash_chars_ok(const char *h) {
  for (; *h; ++h)
    if ((unsigned char)*h <= ' ' || (unsigned char)*h >= 0x7f) return 0;
  return 1;
}

static int fail(pf_table *t, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(pf_table *t, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->error, sizeof t->error, fmt, ap);
  va_end(ap);
  return rc;
}

static void wipe_free(char *s, size_t n) {
  if (!s) return;
  explicit_bzero(s, n);
  free(s);
}

static void entries_free(pf_table *t) {
  for (size_t i = 0; i < t->n; ++i) {
    free(t->v[i].user);
    wipe_free(t->v[i].secret, t->v[i].secret_len);
  }
  free(t->v);
  t->v = NULL;
  t->n = t->cap = t->nplain = 0;
}

void pf_free(pf_table *t) {
  if (t) entries_free(t);
}

static int b64_chars(const char *s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '/'))
      return 0;
  }
  return 1;
}

/* The shape libcrypt's own output has (crypt_checksalt only looks at the setting): a setting
 * beyond the method prefix, then after the last '$' a digest of the method's length in crypt's
 * base64 alphabet. bcrypt: $2?$NN$ with a cost of 04..31, then 22 + 31 characters. */
static int shape_ok(const char *h) {
  size_t len = strlen(h);
  if (h[1] == '2') {
    if (len != 60 || h[6] != '$' || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9') return 0;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    return cost >= 4 && cost <= 31 && b64_chars(h + 7, 53);
  }
  const char *last = strrchr(h, '$');
  size_t prefix = (size_t)(strchr(h + 1, '$') - h) + 1; /* "$6$" -> 3 */
  size_t digest = starts_with(h, "$6$") ? 86 : 43;
  if ((size_t)(last - h) <= prefix) return 0; /* nothing between the prefix and the digest */
  return strlen(last + 1) == digest && b64_chars(last + 1, digest);
}

/* The crypt hash rules for one entry (hash without any {SCHEME}); NULL if fine, else why not. */
static const char *check_hash(const char *scheme, const char *h) {
  if (!hash_chars_ok(h)) return "the hash holds a blank or control character";
  if (!scheme || strcmp(scheme, "CRYPT") == 0) {
    if (!has_crypt_prefix(h))
      return "not a supported crypt hash (" PF_SUPPORTED_HASHES "; DES and MD5 crypt are refused)";
  } else if (strcmp(scheme, "BLF-CRYPT") == 0) {
    if (!starts_with(h, "$2a$") && !starts_with(h, "$2b$") && !starts_with(h, "$2y$"))
      return "{BLF-CRYPT} needs a bcrypt hash ($2a$, $2b$, $2y$)";
  } else if (strcmp(scheme, "SHA512-CRYPT") == 0) {
    if (!starts_with(h, "$6$")) return "{SHA512-CRYPT} needs a $6$ hash";
  } else if (strcmp(scheme, "SHA256-CRYPT") == 0) {
    if (!starts_with(h, "$5$")) return "{SHA256-CRYPT} needs a $5$ hash";
  }
  int salt = shape_ok(h) ? crypt_checksalt(h) : CRYPT_SALT_INVALID;
  if (salt != CRYPT_SALT_OK && salt != CRYPT_SALT_METHOD_LEGACY) /* legacy: $5$ still works */
    return "libcrypt does not accept this hash (cut short, or a bad setting)";
  return NULL;
}

static int add_entry(pf_table *t, const char *user, size_t ulen, const char *secret, size_t slen,
                     pf_scheme scheme, int lineno) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    pf_entry *v = realloc(t->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  pf_entry *e = &t->v[t->n];
  e->user = strndup(user, ulen);
  e->secret = malloc(slen + 1);
  if (!e->user || !e->secret) {
    free(e->user);
    free(e->secret);
    return -ENOMEM;
  }
  memcpy(e->secret, secret, slen);
  e->secret[slen] = '\0';
  e->secret_len = slen;
  e->scheme = scheme;
  e->line = lineno;
  ++t->n;
  if (scheme == PF_PLAIN) ++t->nplain;
  return 0;
}

/* One line without its newline. 0, or a negative errno with t->error set. */
static int parse_line(pf_table *t, const char *path, int lineno, char *line, size_t len,
                      int allow_plain) {
  if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
  if (strlen(line) != len) return fail(t, -EINVAL, "%s:%d: NUL byte in the line", path, lineno);
  if (len > PF_MAX_LINE)
    return fail(t, -EINVAL, "%s:%d: line longer than %d bytes", path, lineno, PF_MAX_LINE);
  const char *p = line + strspn(line, " \t");
  if (*p == '\0' || *p == '#') return 0;
  char *colon = strchr(line, ':');
  if (!colon)
    return fail(t, -EINVAL, "%s:%d: no password field (expected user:password[:...])", path,
                lineno);
  size_t ulen = (size_t)(colon - line);
  if (ulen == 0) return fail(t, -EINVAL, "%s:%d: empty user name", path, lineno);
  for (size_t i = 0; i < ulen; ++i)
    if ((unsigned char)line[i] <= ' ' || (unsigned char)line[i] == 0x7f)
      return fail(t, -EINVAL, "%s:%d: the user name holds a blank or control character", path,
                  lineno);
  int ushow = ulen > 200 ? 200 : (int)ulen;
  char *pw = colon + 1;
  char *end = strchr(pw, ':');
  if (end) *end = '\0';
  if (*pw == '\0')
    return fail(t, -EINVAL, "%s:%d: empty password for user '%.*s'", path, lineno, ushow, line);
  const char *scheme = NULL;
  char name[32] = "";
  if (*pw == '{') {
    char *close = strchr(pw, '}');
    if (!close || close == pw + 1)
      return fail(t, -EINVAL, "%s:%d: password scheme of user '%.*s' is not {NAME}", path, lineno,
                  ushow, line);
    size_t n = (size_t)(close - pw - 1);
    if (n >= sizeof name) n = sizeof name - 1;
    for (size_t i = 0; i < n; ++i) {
      int c = (unsigned char)pw[1 + i];
      name[i] = (char)((c >= 'a' && c <= 'z') ? c - ('a' - 'A') : (c < ' ' || c >= 0x7f) ? '?' : c);
    }
    name[n] = '\0';
    scheme = name;
    pw = close + 1;
    if (strcmp(scheme, "PLAIN") == 0 || strcmp(scheme, "CLEARTEXT") == 0) {
      if (!allow_plain)
        return fail(t, -EINVAL,
                    "%s:%d: {%s} (clear-text) password for user '%.*s' refused: give the plugin "
                    "the allow_plain argument to accept clear-text passwords",
                    path, lineno, scheme, ushow, line);
      if (*pw == '\0')
        return fail(t, -EINVAL, "%s:%d: empty password for user '%.*s'", path, lineno, ushow, line);
      return add_entry(t, line, ulen, pw, strlen(pw), PF_PLAIN, lineno) < 0
                 ? fail(t, -ENOMEM, "%s:%d: out of memory", path, lineno)
                 : 0;
    }
    if (strcmp(scheme, "CRYPT") != 0 && strcmp(scheme, "BLF-CRYPT") != 0 &&
        strcmp(scheme, "SHA512-CRYPT") != 0 && strcmp(scheme, "SHA256-CRYPT") != 0)
      return fail(t, -EINVAL,
                  "%s:%d: unsupported password scheme {%s} for user '%.*s' (supported: CRYPT, "
                  "BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, and PLAIN/CLEARTEXT with allow_plain)",
                  path, lineno, scheme, ushow, line);
  }
  const char *why = check_hash(scheme, pw);
  if (why)
    return fail(t, -EINVAL, "%s:%d: password of user '%.*s': %s", path, lineno, ushow, line, why);
  if (add_entry(t, line, ulen, pw, strlen(pw), PF_CRYPT, lineno) < 0)
    return fail(t, -ENOMEM, "%s:%d: out of memory", path, lineno);
  return 0;
}

static int by_user(const void *a, const void *b) {
  const pf_entry *x = a, *y = b;
  int c = ascii_casecmp(x->user, y->user);
  return c ? c : x->line - y->line;
}

int pf_load(pf_table *t, const char *path, int allow_plain) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "re");
  if (!f) {
    int err = errno;
    return fail(t, -err, "%s: cannot open: %s", path, strerror(err));
  }
  char *line = NULL;
  size_t size = 0;
  ssize_t len;
  int lineno = 0, rc = 0;
  while ((len = getline(&line, &size, f)) >= 0) {
    ++lineno;
    if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    rc = parse_line(t, path, lineno, line, (size_t)len, allow_plain);
    if (rc < 0) break;
  }
  if (rc == 0 && ferror(f)) rc = fail(t, -EIO, "%s: read error", path);
  if (line) explicit_bzero(line, size);
  free(line);
  fclose(f);
  if (rc == 0 && t->n > 1) {
    qsort(t->v, t->n, sizeof *t->v, by_user);
    for (size_t i = 1; i < t->n; ++i)
      if (ascii_casecmp(t->v[i - 1].user, t->v[i].user) == 0) {
        rc = fail(t, -EINVAL, "%s:%d: user '%.200s' already defined at line %d", path, t->v[i].line,
                  t->v[i].user, t->v[i - 1].line);
        break;
      }
  }
  if (rc < 0) {
    char keep[sizeof t->error];
    memcpy(keep, t->error, sizeof keep);
    entries_free(t);
    memcpy(t->error, keep, sizeof keep);
  }
  return rc;
}

const pf_entry *pf_find(const pf_table *t, const char *user) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = ascii_casecmp(user, t->v[mid].user);
    if (c == 0) return &t->v[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

int pf_equal(const char *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen > blen ? alen : blen;
  volatile unsigned char diff = (unsigned char)(alen != blen);
  for (size_t i = 0; i < n; ++i) {
    unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
    unsigned char cb = i < blen ? (unsigned char)b[i] : 0;
    diff |= (unsigned char)(ca ^ cb);
  }
  return diff == 0;
}

/* crypt_rn into a heap crypt_data (about 32 KiB), wiped after. 1 match, 0 not, -1 failure. */
static int crypt_check(const char *password, const char *hash, size_t hash_len) {
  struct crypt_data *cd = calloc(1, sizeof *cd);
  if (!cd) return -1;
  int rc = -1;
  const char *out = crypt_rn(password, hash, cd, (int)sizeof *cd);
  if (out && out[0] != '*') rc = pf_equal(out, strlen(out), hash, hash_len);
  explicit_bzero(cd, sizeof *cd);
  free(cd);
  return rc;
}

int pf_verify(const pf_table *t, const pf_entry *e, const char *password) {
  if (!password) password = "";
  if (!e) {
    for (size_t i = 0; i < t->n; ++i)
      if (t->v[i].scheme == PF_CRYPT) {
        (void)crypt_check(password, t->v[i].secret, t->v[i].secret_len);
        break;
      }
    return 0;
  }
  if (e->scheme == PF_PLAIN) return pf_equal(password, strlen(password), e->secret, e->secret_len);
  return crypt_check(password, e->secret, e->secret_len);
}
