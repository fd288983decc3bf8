/* tests/plugins/bad_abi_major.c: a broken plugin for the loader tests: built for ABI 2.0 (another major). */
#include <stddef.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  /* Must never run: the loader refuses the module before calling any plugin code. If it
   * does run, say so (the tests look for this line) and fail. */
  api->log(self, NULL, UVS_LOG_ERR, "%s init ran", "bad_abi_major");
  return -1;
}

UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {sizeof(uvs_plugin_info), 2, 0, "bad_abi_major", "1.0",
                                                  init, NULL};
