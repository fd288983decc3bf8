// tests/outsider/cxx17_headers.cpp: a C++17 plugin written as an outside author would, from the
// installed <uvsmtpd/plugin.h> and docs/plugins.md alone (built out of tree with -std=c++17 by
// tests/install/outsider_test.sh).
//
//   cxx17_headers
//
// At data_headers_end it adds "X-Outsider: yes" at the bottom of the header section (header_add,
// ABI 1.3, tested with UVS_API_HAS: the plugin declares 1.0 as its minimum) and logs, through a
// small printf-style wrapper over logv (1.3; log() where the server has no logv), the result the
// greylist plugin left in the transaction note "greylist".
#define UVS_PLUGIN_MIN_ABI_MINOR 0
#include <uvsmtpd/plugin.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

namespace {

const uvs_api *api = nullptr;

struct State {
  uvs_plugin *self;
  bool can_edit;
  unsigned long added = 0;
};

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void plog(uvs_plugin *self, const uvs_call *call, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (UVS_API_HAS(api, logv)) {
    api->logv(self, call, level, fmt, ap);
  } else {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    api->log(self, call, level, "%s", buf);
  }
  va_end(ap);
}

uvs_verdict on_headers_end(uvs_call *c, void *ud) noexcept {
  auto *st = static_cast<State *>(ud);
  const char *grey = api->note_get(c, UVS_NOTE_TRANSACTION, "greylist");
  plog(st->self, c, UVS_LOG_INFO, "greylist note: %s", grey ? grey : "(none)");
  if (!st->can_edit) return UVS_DECLINED;
  int rc = api->header_add(c, "X-Outsider", "yes", UVS_HEADER_BOTTOM);
  if (rc < 0)
    plog(st->self, c, UVS_LOG_WARNING, "header_add: %s", std::strerror(-rc));
  else
    plog(st->self, c, UVS_LOG_INFO, "added X-Outsider (%lu so far)", ++st->added);
  return UVS_DECLINED;
}

int init(uvs_plugin *self, const uvs_api *a) noexcept {
  api = a;
  if (api->plugin_argc(self) != 0) {
    api->set_error(self, "usage: cxx17_headers (no arguments)");
    return -EINVAL;
  }
  auto *st = new (std::nothrow) State{self, UVS_API_HAS(api, header_add)};
  if (!st) return -ENOMEM;
  if (!st->can_edit)
    plog(self, nullptr, UVS_LOG_WARNING, "this server has no header_add (ABI %u.%u): no header",
         unsigned{api->abi_major}, unsigned{api->abi_minor});
  int rc = api->register_hook(self, UVS_HOOK_DATA_HEADERS_END, on_headers_end, st);
  if (rc < 0) {
    delete st;
    api->set_error(self, "cannot register the data_headers_end hook");
    return rc;
  }
  api->plugin_set_data(self, st);
  return 0;
}

void fini(uvs_plugin *self) noexcept {
  delete static_cast<State *>(api->plugin_data(self));
}

}  // namespace

UVS_PLUGIN("cxx17_headers", "1.0", init, fini);
