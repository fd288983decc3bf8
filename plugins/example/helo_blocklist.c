/* plugins/example/helo_blocklist.c: the tutorial plugin (docs/plugins.md): refuses HELO/EHLO names found in a flat list file.
 *
 * A small but complete uvsmtpd plugin, written in plain ISO C against the one public header
 * <uvsmtpd/plugin.h>, and nothing else of the server. Read it top to bottom: it shows the
 * whole life of a plugin.
 *
 *   1. The server dlopen()s helo_blocklist.so and reads the exported `uvs_plugin_v1` info
 *      struct (made by UVS_PLUGIN at the bottom of this file) to check the ABI version.
 *   2. It calls init() once per conf/plugins line that names this plugin. init reads its
 *      arguments and its list file, keeps its state with plugin_set_data(), and registers the
 *      hooks it wants (helo and ehlo).
 *   3. For every HELO/EHLO command the server calls on_helo(). It answers with a verdict:
 *      UVS_DECLINED ("no opinion, ask the next plugin") or UVS_DENY plus a 550 reply.
 *   4. Once an hour a plugin-level timer (ABI 1.3, used only if the server has it) logs how
 *      many names were refused in that hour.
 *   5. At shutdown, or when a SIGHUP reload retires this instance, the server calls fini().
 *
 * Configuration
 *   conf/plugins:   helo_blocklist [FILE]
 *                   FILE is a flat file in the config directory; default "badhelo".
 *   FILE, one entry a line ('#' comments and blank lines are ignored, case does not matter):
 *                   mail.example.com     exactly this name
 *                   .example.net         any name ending in ".example.net" (a.example.net,
 *                                        b.c.example.net), but not "example.net" itself
 *   Without an argument, a missing "badhelo" just means an empty list (a warning is logged).
 *   A file named explicitly must exist: otherwise the server refuses to start, with the
 *   conf/plugins file and line in the message.
 *
 * Clients that are "immune" (relay clients, or a connection note whitelisthost set by an
 * earlier plugin) are never refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The oldest server this plugin runs on. It uses only members of ABI 1.0, so it says so:
 * UVS_PLUGIN then stamps 1.0 and every 1.x server loads it, even one older than the header it
 * is built with. (Without this line the stamp is the header's own minor.) A plugin declaring
 * an older minimum must test each newer member with UVS_API_HAS before using it. */
#define UVS_PLUGIN_MIN_ABI_MINOR 0
#include <uvsmtpd/plugin.h>

/* The server's function table. It is the same for every instance and lives for the whole
 * process, so one global is fine. Everything the plugin asks of the server goes through it. */
static const uvs_api *api;

/* Per-instance state: conf/plugins may name this plugin several times ("helo_blocklist:1
 * list1", "helo_blocklist:2 list2"), and each instance gets its own init() call and its own
 * state. So no list in globals: keep it in a struct and hand it to the server with
 * plugin_set_data() (for fini) and as the `ud` pointer of the hook (for on_helo). */
typedef struct blocklist {
  uvs_plugin *self; /* this instance, for api->log() inside hooks */
  char **entries;   /* lower-cased lines of the list file */
  size_t count;
  size_t cap;
  int out_of_memory;
  unsigned long refused; /* since the last report (the hourly timer) */
} blocklist;

/* ASCII-only lower-casing: locale-independent, as DNS names are compared. */
static char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int same_ci(const char *a, const char *b, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return 0;
  return 1;
}

static void blocklist_free(blocklist *bl) {
  if (!bl) return;
  for (size_t i = 0; i < bl->count; ++i) free(bl->entries[i]);
  free(bl->entries);
  free(bl);
}

/* Called by api->config_lines() once per useful line of the file. The string is BORROWED:
 * it is only valid during this call, so we copy it. Returning nonzero stops the reading. */
static int add_entry(const char *line, void *ud) {
  blocklist *bl = (blocklist *)ud;
  if (bl->count == bl->cap) {
    size_t cap = bl->cap ? bl->cap * 2 : 16;
    char **grown = (char **)realloc(bl->entries, cap * sizeof *grown);
    if (!grown) return bl->out_of_memory = 1;
    bl->entries = grown;
    bl->cap = cap;
  }
  size_t len = strlen(line);
  char *copy = (char *)malloc(len + 1);
  if (!copy) return bl->out_of_memory = 1;
  for (size_t i = 0; i <= len; ++i) copy[i] = ascii_lower(line[i]);
  bl->entries[bl->count++] = copy;
  return 0;
}

/* Is the name (len bytes, not NUL-terminated) on the list? */
static int is_blocked(const blocklist *bl, const char *name, size_t len) {
  for (size_t i = 0; i < bl->count; ++i) {
    const char *e = bl->entries[i];
    size_t elen = strlen(e);
    if (e[0] == '.') {
      /* ".example.net": a proper suffix, so the name has at least one more label. */
      if (len > elen && same_ci(name + len - elen, e, elen)) return 1;
    } else if (len == elen && same_ci(name, e, len)) {
      return 1;
    }
  }
  return 0;
}

/* The hook. ONE signature for every hook: the call handle and our `ud` pointer.
 * Everything about the call is read through api accessors; strings they return are
 * BORROWED until this function returns. */
static uvs_verdict on_helo(uvs_call *call, void *ud) {
  blocklist *bl = (blocklist *)ud; /* not const: it counts refusals */

  /* Trusted clients are never refused. */
  if (api->is_immune(call) > 0) return UVS_DECLINED;

  /* The command argument: "mail.example.com" for "EHLO mail.example.com". Some clients
   * send more words; the name is the first one. */
  const char *arg = api->call_arg(call);
  size_t len = strcspn(arg, " ");
  if (len == 0 || !is_blocked(bl, arg, len)) return UVS_DECLINED; /* not ours to judge */

  api->log(bl->self, call, UVS_LOG_INFO, "refusing HELO name %.*s", (int)len, arg);
  bl->refused++;

  /* The reply that goes with the verdict. The server copies the text, and checks it: one
   * line, no control characters, at most 500 bytes, and a code whose class fits the verdict
   * (5xx for DENY). The name comes from the client, so cut it to keep within the limit. If
   * reply() refused anyway (it returns a negative errno), the server's default reply for a
   * denied HELO ("550 5.7.1 Access denied") is sent instead. */
  char text[300];
  snprintf(text, sizeof text, "Your HELO name %.*s is on my blocklist", (int)(len > 200 ? 200 : len),
           arg);
  if (api->reply(call, 550, "5.7.1", text) < 0)
    api->log(bl->self, call, UVS_LOG_WARNING, "reply text refused; the default reply is used");

  /* DENY: the client gets the 550 and may try again with another name. (DENY_DISCONNECT
   * would also close the connection.) The chain stops here: later plugins do not run. */
  return UVS_DENY;
}

/* The hourly report: a plugin-level timer's callback, on the loop thread like the hooks, so it
 * may read and reset the counter without a lock. */
static void report(uvs_timer *timer, void *ud) {
  blocklist *bl = (blocklist *)ud;
  (void)timer;
  if (bl->refused)
    api->log(bl->self, NULL, UVS_LOG_INFO, "%lu HELO name%s refused in the last hour", bl->refused,
             bl->refused == 1 ? "" : "s");
  bl->refused = 0;
}

/* init: called once per conf/plugins line naming this plugin, before the server accepts any
 * connection (and again for the new instances on a SIGHUP reload). Return 0, or a negative
 * errno after set_error(): the server then refuses to start and prints the message with the
 * conf/plugins file and line. */
static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;

  /* Arguments: the words after the plugin name on its conf/plugins line. */
  int argc = api->plugin_argc(self);
  if (argc > 1) {
    api->set_error(self, "usage: helo_blocklist [FILE]");
    return -EINVAL;
  }
  const char *file = argc == 1 ? api->plugin_argv(self, 0) : "badhelo";

  blocklist *bl = (blocklist *)calloc(1, sizeof *bl);
  if (!bl) return -ENOMEM;
  bl->self = self;

  /* Read <config dir>/<file>: the server calls add_entry for each line, with comments and
   * blank lines dropped and blanks trimmed. It returns the number of lines or -errno. */
  int rc = api->config_lines(self, file, add_entry, bl);
  if (bl->out_of_memory) rc = -ENOMEM;
  if (rc == -ENOENT && argc == 0) {
    api->log(self, NULL, UVS_LOG_WARNING, "no %s file in the config directory: nothing is blocked",
             file);
  } else if (rc < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot read the list file '%s': %s", file, strerror(-rc));
    api->set_error(self, msg); /* copied by the server */
    blocklist_free(bl);        /* init failed: fini() will NOT be called, so clean up here */
    return rc;
  }

  /* Register the handlers. They run in conf/plugins order, with this instance's state as
   * their `ud`. Registering is only allowed during init. */
  if ((rc = api->register_hook(self, UVS_HOOK_HELO, on_helo, bl)) < 0 ||
      (rc = api->register_hook(self, UVS_HOOK_EHLO, on_helo, bl)) < 0) {
    api->set_error(self, "cannot register the helo/ehlo hooks");
    blocklist_free(bl);
    return rc;
  }

  api->plugin_set_data(self, bl); /* handed back to fini() */

  /* timer_start is ABI 1.3, newer than the 1.0 this plugin declares as its minimum: on an
   * older server the member is not in the table, so test it first and do without the report.
   * The timer never delays shutdown, and the server stops it before fini() runs, so fini()
   * may free `bl` without stopping it. */
  if (UVS_API_HAS(api, timer_start) && !api->timer_start(self, 3600000, 3600000, report, bl))
    api->log(self, NULL, UVS_LOG_WARNING, "no hourly report: cannot start its timer");
  api->log(self, NULL, UVS_LOG_INFO, "%zu entr%s from %s", bl->count, bl->count == 1 ? "y" : "ies",
           file);
  return 0;
}

/* fini: the instance is retired (shutdown, or replaced by a SIGHUP reload once the last
 * session using it has ended). Free what init allocated. (Its timer is already stopped.) */
static void fini(uvs_plugin *self) { blocklist_free((blocklist *)api->plugin_data(self)); }

/* The one exported symbol: name, version, init and fini, stamped with ABI 1.0 (the
 * UVS_PLUGIN_MIN_ABI_MINOR at the top). Everything else stays hidden (build with
 * -fvisibility=hidden, or meson's gnu_symbol_visibility : 'hidden'). */
UVS_PLUGIN("helo_blocklist", "1.0", init, fini);
