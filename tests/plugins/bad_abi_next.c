/* tests/plugins/bad_abi_next.c: a broken plugin for the loader tests: needs the minor just after this server's (the boundary of bad_abi_minor's 1.99). */
#include <stddef.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  /* Must never run: the loader refuses the module before calling any plugin code. If it
   * does run, say so (the tests look for this line) and fail. */
  api->log(self, NULL, UVS_LOG_ERR, "%s init ran", "bad_abi_next");
  return -1;
}

/* What a plugin built against the next minor's header (with the default minimum) carries. */
UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {
    sizeof(uvs_plugin_info), UVS_ABI_MAJOR, UVS_ABI_MINOR + 1, "bad_abi_next", "1.0", init, NULL};
