/* plugins/rcpt_map/rm_maps.h: rcpt_map's tables: local users, aliases and virtual entries,
 * read from the config dir and resolved once at load into final address lists. */
#ifndef UVS_RCPT_MAP_MAPS_H
#define UVS_RCPT_MAP_MAPS_H

#include <stddef.h>

#include "../common/local_domains.h"
#include "uvsmtpd/plugin.h"

#define RM_MAX_DEPTH 16     /* alias/virtual nesting allowed at load */
#define RM_MAX_TARGETS 1000 /* final addresses one entry may expand to */

typedef struct rm_entry {
  char *key;      /* alias name, "user@vdomain" or "@vdomain", lower-cased */
  char **targets; /* as written */
  int ntargets;
  char **final; /* resolved: local mailboxes, duplicates removed */
  int nfinal;
  char where[320]; /* "<file>:<line>" */
  int state;       /* resolution: 0 not yet, 1 in progress, 2 done */
} rm_entry;

typedef struct rm_list {
  rm_entry *v;
  size_t n, cap;
} rm_list;

typedef struct rm_maps {
  const char *me;
  ld_set domains;
  char **users; /* sorted, lower-cased */
  size_t nusers, capusers;
  rm_list aliases;  /* sorted by key */
  rm_list virtuals; /* sorted by key */
  char **vdomains;  /* sorted, lower-cased */
  size_t nvdomains, capvdomains;
  rm_entry postmaster; /* the local postmaster's resolution (final only) */
  char error[640];
} rm_maps;

typedef struct rm_files {
  const char *domains, *recipients, *aliases, *virtuals;              /* config file names */
  int domains_named, recipients_named, aliases_named, virtuals_named; /* must exist */
} rm_files;

/* Loads and resolves everything: 0, or a negative errno with m->error set. */
int rm_load(rm_maps *m, const uvs_api *api, uvs_plugin *p, const rm_files *f);
void rm_free(rm_maps *m);

int rm_is_user(const rm_maps *m, const char *name);
const rm_entry *rm_alias(const rm_maps *m, const char *name);
int rm_is_vdomain(const rm_maps *m, const char *domain); /* lower-cased */
/* The virtual entry for "user@vdomain", else "@vdomain", else NULL (all lower-cased). */
const rm_entry *rm_virtual(const rm_maps *m, const char *user, const char *vdomain);

#endif
