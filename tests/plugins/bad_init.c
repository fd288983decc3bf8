/* tests/plugins/bad_init.c: a broken plugin for the loader tests: its init fails.
 *
 * Arguments: none -> set_error("bad_init: refusing to start (no arguments)") and -EINVAL;
 * "silent" -> -EACCES without set_error (the server prints strerror); anything else ->
 * set_error naming the first argument. It registers a hook before failing, to show that a
 * failed instance's handlers are never used.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

static uvs_verdict never_called(uvs_call *c, void *ud) {
  (void)ud;
  api->log(NULL, c, UVS_LOG_ERR, "bad_init: handler of a failed instance called");
  return UVS_DENY;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  api->register_hook(self, UVS_HOOK_HELO, never_called, NULL);
  if (api->plugin_argc(self) == 0) {
    api->set_error(self, "bad_init: refusing to start (no arguments)");
    return -EINVAL;
  }
  const char *arg = api->plugin_argv(self, 0);
  if (strcmp(arg, "silent") == 0) return -EACCES;
  char msg[200];
  snprintf(msg, sizeof msg, "bad_init: refusing to start (argument '%s')", arg);
  api->set_error(self, msg);
  return -EINVAL;
}

static void fini(uvs_plugin *self) {
  (void)self;
  api->log(NULL, NULL, UVS_LOG_ERR, "bad_init: fini of a failed instance called");
}

UVS_PLUGIN("bad_init", "1.0", init, fini);
