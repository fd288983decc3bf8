/* plugins/auth/passwd_file/pf_table.h: auth/passwd_file's user table: a Dovecot passwd-file
 * read into memory (user name -> password scheme and hash) and the password check against one
 * entry (libcrypt's crypt_rn, or a constant-time comparison for {PLAIN}). No server calls: the
 * unit tests link this file directly. */
#ifndef UVS_AUTH_PASSWD_FILE_TABLE_H
#define UVS_AUTH_PASSWD_FILE_TABLE_H

#include <stddef.h>

#define PF_MAX_LINE 4096 /* longest line accepted in the file (bytes, without the newline) */

typedef enum pf_scheme {
  PF_CRYPT = 0, /* a libcrypt hash: $y$, $7$, $2a$/$2b$/$2y$, $6$, $5$ */
  PF_PLAIN = 1  /* {PLAIN} or {CLEARTEXT}: the password itself (only with allow_plain) */
} pf_scheme;

typedef struct pf_entry {
  char *user;   /* as written in the file */
  char *secret; /* the crypt hash (without any {SCHEME} prefix), or the plain password */
  size_t secret_len;
  pf_scheme scheme;
  int line; /* 1-based line in the file */
} pf_entry;

typedef struct pf_table {
  pf_entry *v; /* sorted by user, ASCII case-insensitively */
  size_t n, cap;
  size_t nplain; /* how many entries are {PLAIN} */
  char error[768];
} pf_table;

/* Reads `path`. allow_plain: accept {PLAIN}/{CLEARTEXT} entries. 0, or a negative errno with
 * t->error set ("<path>:<line>: reason" for a bad line, "<path>: reason" for the file). On
 * failure the table is left empty (nothing to free, though pf_free is harmless). */
int pf_load(pf_table *t, const char *path, int allow_plain);
/* Wipes the secrets and frees everything; the table is then empty. */
void pf_free(pf_table *t);

/* The entry for `user` (ASCII case-insensitive), or NULL. */
const pf_entry *pf_find(const pf_table *t, const char *user);

/* Checks `password` against e: 1 if it matches, 0 if not, -1 if libcrypt failed (out of memory,
 * or a hash it cannot use). The comparison of the results takes the same time wherever they
 * differ. e NULL: a dummy check costing what a check of the table's first crypt entry costs (for
 * unknown users: the answer's timing does not tell whether the user exists); returns 0. Any
 * thread: nothing shared is written. */
int pf_verify(const pf_table *t, const pf_entry *e, const char *password);

/* Constant-time equality of two byte strings (time depends on the lengths only). 1 or 0. */
int pf_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
