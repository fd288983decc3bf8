/* tests/plugins/min_abi.c: a test plugin built against this header but declaring that it runs on 1.0 servers (UVS_PLUGIN_MIN_ABI_MINOR 0).
 *
 * Its uvs_plugin_v1 says ABI 1.0, so every 1.x server loads it; it tests each member newer than
 * 1.0 with UVS_API_HAS and does without when the member is missing. Arguments (any order):
 *   as=N   pretend the server is 1.N: use a copy of the table cut to 1.N's size (only the first
 *          api->size bytes are copied), so the fallbacks run in a current server
 *   fail   init fails: set_errorf (1.2) when the table has it, else set_error
 * Logs (NOTICE) "init stamp=1.0 server=1.M api_size=S has_remote_host=0|1 has_set_errorf=0|1".
 * HELO/EHLO: DONE, 250 "min_abi ok, remote_host <name|none|n/a>" (n/a: the table has no
 * remote_host).
 */
#define UVS_PLUGIN_MIN_ABI_MINOR 0 /* runs on every 1.x server; newer members via UVS_API_HAS */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

UVS_EXPORT extern const uvs_plugin_info uvs_plugin_v1; /* UVS_PLUGIN, at the bottom */

static const uvs_api *api;
static uvs_api shrunk; /* the table as an older server would have it (as=N) */

/* The size of a 1.N server's table: offsetof the first member 1.N does not have. */
static size_t table_size(int minor) {
  if (minor <= 0) return offsetof(uvs_api, remote_host);
  if (minor == 1) return offsetof(uvs_api, set_errorf);
  if (minor == 2) return offsetof(uvs_api, rcpt_replace);
  return sizeof(uvs_api);
}

static uvs_verdict on_helo(uvs_call *c, void *ud) {
  (void)ud;
  const char *host = "n/a";
  if (UVS_API_HAS(api, remote_host)) { /* 1.1 */
    host = api->remote_host(c);
    if (!host) host = "none";
  }
  char text[300];
  snprintf(text, sizeof text, "min_abi ok, remote_host %.200s", host);
  api->reply(c, 250, NULL, text);
  return UVS_DONE; /* only DONE sends a plugin's text for helo/ehlo */
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  int fail = 0;
  int argc = a->plugin_argc(self);
  for (int i = 0; i < argc; ++i) {
    const char *arg = a->plugin_argv(self, i);
    if (strcmp(arg, "fail") == 0) {
      fail = 1;
    } else if (strncmp(arg, "as=", 3) == 0) {
      size_t size = table_size(atoi(arg + 3));
      memcpy(&shrunk, a, a->size < size ? a->size : size);
      shrunk.size = (uint32_t)(a->size < size ? a->size : size);
      shrunk.abi_minor = (uint16_t)atoi(arg + 3);
      api = &shrunk;
    }
  }
  api->log(self, NULL, UVS_LOG_NOTICE,
           "init stamp=%u.%u server=%u.%u api_size=%u has_remote_host=%d has_set_errorf=%d",
           (unsigned)uvs_plugin_v1.abi_major, (unsigned)uvs_plugin_v1.abi_minor,
           (unsigned)api->abi_major, (unsigned)api->abi_minor, (unsigned)api->size,
           UVS_API_HAS(api, remote_host), UVS_API_HAS(api, set_errorf));
  if (fail) {
    if (UVS_API_HAS(api, set_errorf)) /* 1.2 */
      api->set_errorf(self, "min_abi: refusing to start (%s, ABI 1.%u)", "set_errorf",
                      (unsigned)api->abi_minor);
    else
      api->set_error(self, "min_abi: refusing to start (set_error, an older server)");
    return -EINVAL;
  }
  int rc = api->register_hook(self, UVS_HOOK_HELO, on_helo, NULL);
  if (rc == 0) rc = api->register_hook(self, UVS_HOOK_EHLO, on_helo, NULL);
  if (rc != 0) api->set_error(self, "cannot register the helo/ehlo hooks");
  return rc;
}

UVS_PLUGIN("min_abi", "1.0", init, NULL);
