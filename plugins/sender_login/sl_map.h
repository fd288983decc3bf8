/* plugins/sender_login/sl_map.h: the sender login map (address or @domain → login names): parsing
 * its lines and looking addresses up. No server API: unit-tested. */
#ifndef UVS_SL_MAP_H
#define UVS_SL_MAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_entry {
  char *key;    /* lower-case "local@domain" or "@domain" */
  char **users; /* login names as written */
  size_t nusers;
  const char *file; /* as given to sl_map_add (interned by the map) */
  int line;
} sl_entry;

typedef struct sl_map {
  sl_entry *e;
  size_t n, cap;
  int sorted;
  char **files; /* distinct file names, for messages */
  size_t nfiles;
} sl_map;

/* Adds one line (trimmed, not a comment): `address-or-@domain  user1, user2 ...` (the names
 * separated by commas and/or blanks). 0, or -1 with a message (without file:line) in err. */
int sl_map_add(sl_map *m, const char *line, const char *file, int lineno, char *err, size_t errcap);

/* Sorts the map for lookups; -1 with a message "file:line: ..." in err if a key is listed
 * twice (naming the later line). */
int sl_map_finish(sl_map *m, char *err, size_t errcap);

/* The entry for an address ("local@domain"): the address itself, else its "@domain" (case does
 * not matter); NULL when neither is listed. */
const sl_entry *sl_map_find(const sl_map *m, const char *addr);

/* 1 if user is one of the entry's login names (compared without regard to case, as Postfix
 * does), else 0. */
int sl_entry_has(const sl_entry *e, const char *user);

void sl_map_free(sl_map *m);

#ifdef __cplusplus
}
#endif

#endif
