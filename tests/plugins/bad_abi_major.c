/* tests/plugins/bad_abi_major.c: a broken plugin for the loader tests: built for ABI 2.0 (another major). */
#include <stddef.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  (void)self;
  (void)api;
  return 0; /* must never run: the loader refuses the module before calling any plugin code */
}

UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {sizeof(uvs_plugin_info), 2, 0, "bad_abi_major", "1.0",
                                                  init, NULL};
