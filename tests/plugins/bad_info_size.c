/* tests/plugins/bad_info_size.c: a broken plugin for the loader tests: its uvs_plugin_info claims a size too small to hold init/fini. */
#include <stddef.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  (void)self;
  (void)api;
  return 0; /* must never run */
}

UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {8, UVS_ABI_MAJOR, UVS_ABI_MINOR, "bad_info_size", "1.0",
                                                  init, NULL};
