/* tests/plugins/bad_info_size.c: a broken plugin for the loader tests: its uvs_plugin_info claims a size too small to hold init/fini. */
#include <stddef.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  /* Must never run: the loader refuses the module before calling any plugin code. If it
   * does run, say so (the tests look for this line) and fail. */
  api->log(self, NULL, UVS_LOG_ERR, "%s init ran", "bad_info_size");
  return -1;
}

UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {8, UVS_ABI_MAJOR, UVS_ABI_MINOR, "bad_info_size", "1.0",
                                                  init, NULL};
