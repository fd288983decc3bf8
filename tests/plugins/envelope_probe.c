/* tests/plugins/envelope_probe.c: a test plugin for the envelope edits of ABI 1.5
 * (mail_from_replace, rcpt_add, rcpt_delete), asserted by tests/integration/test_envelope.cpp.
 *
 * Every result is a NOTICE log line "envelope_probe: <what>". Arguments, applied in order at
 * data_post: "from=ADDR" (mail_from_replace; "from=" for the null sender), "add=ADDR" (rcpt_add),
 * "del=ADDR" (rcpt_delete); each logs "post <arg> rc=RC". Argument "checks" also logs the
 * refusals at data_post: "post einval call=RC addr=RC from=RC route=RC rcpt=RC null=RC 8bit=RC"
 * "post delbad=RC" (rcpt_delete of a bad address) and "post enoent=RC".
 *   rcpt   logs "rcpt from=RC add=RC del=RC" (all -EPERM), then DECLINED
 *   queue  logs "queue from=<S> rcpts=<A>,<B>... perm=RC" (an edit there: -EPERM) and says OK
 *          (the probe is the queue plugin)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

static uvs_verdict on_rcpt(uvs_call *c, void *ud) {
  api->log(ud, c, UVS_LOG_NOTICE, "rcpt from=%d add=%d del=%d",
           api->mail_from_replace(c, "x@y.test"), api->rcpt_add(c, "x@y.test"),
           api->rcpt_delete(c, "x@y.test"));
  return UVS_DECLINED;
}

static uvs_verdict on_data_post(uvs_call *c, void *ud) {
  uvs_plugin *self = ud;
  int argc = api->plugin_argc(self);
  for (int i = 0; i < argc; i++) {
    const char *a = api->plugin_argv(self, i);
    int rc;
    if (strncmp(a, "from=", 5) == 0)
      rc = api->mail_from_replace(c, a + 5);
    else if (strncmp(a, "add=", 4) == 0)
      rc = api->rcpt_add(c, a + 4);
    else if (strncmp(a, "del=", 4) == 0)
      rc = api->rcpt_delete(c, a + 4);
    else if (strcmp(a, "checks") == 0) {
      api->log(self, c, UVS_LOG_NOTICE,
               "post einval call=%d addr=%d from=%d route=%d rcpt=%d null=%d 8bit=%d",
               api->rcpt_add(NULL, "a@b.test"), api->rcpt_add(c, NULL),
               api->mail_from_replace(c, "no at sign@x"), api->rcpt_add(c, "@r.test:a@b.test"),
               api->rcpt_add(c, "a@@b.test"), api->rcpt_add(c, ""),
               api->rcpt_add(c, "caf\xc3\xa9@b.test"));
      api->log(self, c, UVS_LOG_NOTICE, "post delbad=%d", api->rcpt_delete(c, "not an address"));
      api->log(self, c, UVS_LOG_NOTICE, "post enoent=%d",
               api->rcpt_delete(c, "nobody@nowhere.test"));
      continue;
    } else
      continue;
    api->log(self, c, UVS_LOG_NOTICE, "post %s rc=%d", a, rc);
  }
  return UVS_DECLINED;
}

static uvs_verdict on_queue(uvs_call *c, void *ud) {
  char list[2048] = "";
  size_t o = 0;
  int n = api->rcpt_count(c);
  for (int i = 0; i < n && o < sizeof list - 300; i++)
    o += (size_t)snprintf(list + o, sizeof list - o, "%s<%s>", i ? "," : "", api->rcpt_at(c, i));
  const char *from = api->mail_from(c);
  api->log(ud, c, UVS_LOG_NOTICE, "queue from=<%s> rcpts=%s perm=%d", from ? from : "(null)", list,
           api->rcpt_add(c, "late@y.test"));
  return UVS_OK;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(a, rcpt_delete)) {
    a->set_error(self, "needs ABI 1.5");
    return -EINVAL;
  }
  a->register_hook(self, UVS_HOOK_RCPT, on_rcpt, self);
  a->register_hook(self, UVS_HOOK_DATA_POST, on_data_post, self);
  a->register_hook(self, UVS_HOOK_QUEUE, on_queue, self);
  return 0;
}

UVS_PLUGIN("envelope_probe", "1.0", init, NULL);
