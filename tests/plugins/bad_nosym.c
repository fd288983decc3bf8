/* tests/plugins/bad_nosym.c: a broken plugin for the loader tests: a shared object without the uvs_plugin_v1 symbol. */
#include "uvsmtpd/plugin.h"

/* Looks like a plugin (it even has an init), but never says UVS_PLUGIN(...). */
__attribute__((visibility("default"))) int bad_nosym_init(uvs_plugin *self, const uvs_api *api);
int bad_nosym_init(uvs_plugin *self, const uvs_api *api) {
  (void)self;
  (void)api;
  return 0;
}
