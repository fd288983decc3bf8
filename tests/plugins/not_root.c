/* tests/plugins/not_root.c: a test plugin whose init refuses to run as root (euid 0), for the
 * check that --check-config and a start load plugins only after dropping to `user`. It logs
 * "not_root: init as euid N" and registers no hook.
 */
#include <errno.h>
#include <unistd.h>

#include "uvsmtpd/plugin.h"

static int init(uvs_plugin *self, const uvs_api *api) {
  api->log(self, NULL, UVS_LOG_NOTICE, "not_root: init as euid %u", (unsigned)geteuid());
  if (geteuid() == 0) {
    api->set_error(self, "not_root: init ran as root");
    return -EPERM;
  }
  return 0;
}

UVS_PLUGIN("not_root", "1.0", init, NULL);
