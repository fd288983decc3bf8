/* tests/abi/abi10_plugin.c: a plugin built against the frozen ABI 1.0 header
 * (tests/abi/frozen-1.0/uvsmtpd/plugin.h, never include/), loaded by the current server in
 * test_abi10.cpp. It uses 1.0 members only: hooks with verdicts and replies, notes in both
 * scopes, log, the call accessors and the message. Any change to the current header that is
 * not an append (a moved member, a renumbered enum, a changed struct) breaks it.
 *   abi10 deny=ADDR soft=ADDR   RCPT ADDR: 550 5.7.1 / 450 4.7.1; any other: 250 2.1.5 (OK)
 * connect and HELO/EHLO set connection notes, MAIL a transaction note, which the RCPT reply
 * shows; queue: 250 with size, recipients, Subject, the transaction note and the first bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uvsmtpd/plugin.h>

#if UVS_ABI_MAJOR != 1 || UVS_ABI_MINOR != 0
#error "abi10_plugin.c must be built against the frozen 1.0 header"
#endif

static const uvs_api *api;

static char *copy(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

typedef struct {
  char *deny;
  char *soft;
} abi10;

static uvs_verdict on_connect(uvs_call *c, void *ud) {
  (void)ud;
  api->note_set(c, UVS_NOTE_CONNECTION, "abi10.peer", api->peer_ip(c));
  return UVS_DECLINED;
}

static uvs_verdict on_helo(uvs_call *c, void *ud) {
  (void)ud;
  api->note_set(c, UVS_NOTE_CONNECTION, "abi10.greeting",
                api->call_hook(c) == UVS_HOOK_EHLO ? "EHLO" : "HELO");
  return UVS_DECLINED;
}

static uvs_verdict on_mail(uvs_call *c, void *ud) {
  (void)ud;
  api->note_set(c, UVS_NOTE_TRANSACTION, "abi10.from", api->call_address(c));
  api->log(NULL, c, UVS_LOG_INFO, "abi10: MAIL FROM <%s>", api->call_address(c));
  return UVS_DECLINED;
}

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  const abi10 *cfg = ud;
  const char *to = api->call_address(c);
  const char *from = api->note_get(c, UVS_NOTE_TRANSACTION, "abi10.from");
  const char *peer = api->note_get(c, UVS_NOTE_CONNECTION, "abi10.peer");
  const char *greeting = api->note_get(c, UVS_NOTE_CONNECTION, "abi10.greeting");
  char text[400];
  if (cfg->deny && strcmp(to, cfg->deny) == 0) {
    snprintf(text, sizeof text, "abi10 refuses <%s>", to);
    api->reply(c, 550, "5.7.1", text);
    return UVS_DENY;
  }
  if (cfg->soft && strcmp(to, cfg->soft) == 0) {
    snprintf(text, sizeof text, "abi10 defers <%s>", to);
    api->reply(c, 450, "4.7.1", text);
    return UVS_DENYSOFT;
  }
  snprintf(text, sizeof text, "abi10 accepts <%s> from <%s>, %s %s [%s], recipient %d", to,
           from ? from : "?", greeting ? greeting : "?", api->helo_name(c), peer ? peer : "?",
           api->rcpt_count(c) + 1);
  api->reply(c, 250, "2.1.5", text);
  return UVS_OK;
}

static uvs_verdict on_queue(uvs_call *c, void *ud) {
  const char *subject = api->header_get(c, "Subject", 0);
  const char *from = api->note_get(c, UVS_NOTE_TRANSACTION, "abi10.from");
  char first[6] = {0};
  char text[400];
  (void)ud;
  api->message_read(c, 0, first, sizeof first - 1);
  snprintf(text, sizeof text,
           "abi10 queued %lld bytes for %d recipient(s) from <%s>, subject %s, starting %s",
           (long long)api->message_size(c), api->rcpt_count(c), from ? from : "?",
           subject ? subject : "(none)", first);
  api->log(NULL, c, UVS_LOG_NOTICE, "abi10: %s", text);
  api->reply(c, 250, "2.0.0", text);
  return UVS_OK;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  abi10 *cfg;
  int i;
  api = a;
  if (a->abi_major != 1 || a->size < sizeof(uvs_api)) {
    a->set_error(self, "abi10: the server's table is smaller than ABI 1.0");
    return -1;
  }
  cfg = calloc(1, sizeof *cfg);
  if (!cfg) return -1;
  for (i = 0; i < a->plugin_argc(self); i++) {
    const char *arg = a->plugin_argv(self, i);
    if (strncmp(arg, "deny=", 5) == 0)
      cfg->deny = copy(arg + 5);
    else if (strncmp(arg, "soft=", 5) == 0)
      cfg->soft = copy(arg + 5);
    else {
      a->set_error(self, "abi10: unknown argument");
      free(cfg);
      return -1;
    }
  }
  a->plugin_set_data(self, cfg);
  a->register_hook(self, UVS_HOOK_CONNECT, on_connect, cfg);
  a->register_hook(self, UVS_HOOK_HELO, on_helo, cfg);
  a->register_hook(self, UVS_HOOK_EHLO, on_helo, cfg);
  a->register_hook(self, UVS_HOOK_MAIL, on_mail, cfg);
  a->register_hook(self, UVS_HOOK_RCPT, on_rcpt, cfg);
  a->register_hook(self, UVS_HOOK_QUEUE, on_queue, cfg);
  a->log(self, NULL, UVS_LOG_NOTICE,
         "abi10: init as %s on server ABI %u.%u, table %u bytes (1.0: %u)", a->plugin_name(self),
         (unsigned)a->abi_major, (unsigned)a->abi_minor, (unsigned)a->size,
         (unsigned)sizeof(uvs_api));
  return 0;
}

static void fini(uvs_plugin *self) {
  abi10 *cfg = api->plugin_data(self);
  if (!cfg) return;
  free(cfg->deny);
  free(cfg->soft);
  free(cfg);
}

UVS_PLUGIN("abi10", "1.0", init, fini);
