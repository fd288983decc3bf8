/* tests/plugins/bad_abi_minor.c: a broken plugin for the loader tests: needs ABI 1.99, newer than the server. */
#include <stddef.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  /* Must never run: the loader refuses the module before calling any plugin code. If it
   * does run, say so (the tests look for this line) and fail. */
  api->log(self, NULL, UVS_LOG_ERR, "%s init ran", "bad_abi_minor");
  return -1;
}

UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {sizeof(uvs_plugin_info), UVS_ABI_MAJOR, 99,
                                                  "bad_abi_minor", "1.0", init, NULL};
