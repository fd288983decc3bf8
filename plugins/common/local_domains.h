/* plugins/common/local_domains.h: the server's local domains, as rcpt_ok, rcpt_map and
 * queue/maildir all see them: me (the hostname), the entries of a list file (rcpthosts by
 * default: "domain", ".suffix", "[address literal]"), and any address literal naming the
 * session's own address (RFC 1123 5.2.17, RFC 5321 4.1.3). */
#ifndef UVS_PLUGINS_COMMON_LOCAL_DOMAINS_H
#define UVS_PLUGINS_COMMON_LOCAL_DOMAINS_H

#include <stddef.h>

#include "uvsmtpd/plugin.h"

typedef struct ld_set {
  char **hosts; /* lower-cased entries */
  size_t count;
  size_t cap;
  char error[512]; /* "<file>:<line>: ..." after a failed ld_load */
} ld_set;

/* Reads the list file `name` from the config dir into s (zeroed first by the caller).
 * Returns the number of lines, -ENOENT when the file is missing (s stays empty), or another
 * negative errno with s->error set. */
int ld_load(ld_set *s, const uvs_api *api, uvs_plugin *p, const char *name);
void ld_free(ld_set *s);

/* Is domain local? The rule that matched, for log lines ("me", "own address literal", the
 * list entry), or NULL. local_ip may be NULL (no session: only me and the list count). A
 * trailing '.' is not stripped here. */
const char *ld_match(const ld_set *s, const char *domain, const char *me, const char *local_ip);

#endif
