/* tests/plugins/tls_probe.c: a test plugin that logs what tls_active() and tls_info() return
 * (tests/integration/test_tls_abi.cpp asserts it). Built only when plugin.h has tls_info
 * (tests/plugins/meson.build checks). At ehlo and mail it logs one NOTICE line:
 *   "<hook> active=A rc=R protocol=[P] cipher=[C] bits=B sni=[S] client_cert=N verified=V
 *    subject=[SUBJ] fp=[HEX]"   (NULL strings as [])
 * and then "<hook> small_size_rc=R" for a struct whose size field is too small for any member
 * beyond it (the server must not write past `size`). Always DECLINED. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;
static uvs_plugin *me;

static const char *S(const char *s) {
  return s ? s : "";
}

static uvs_verdict on_hook(uvs_call *c, void *ud) {
  const char *h = (const char *)ud;
  uvs_plugin *self = me;
  uvs_tls_info info;
  memset(&info, 0, sizeof info);
  info.size = sizeof info;
  int rc = api->tls_info(c, &info);
  api->log(
      self, c, UVS_LOG_NOTICE,
      "%s active=%d rc=%d protocol=[%s] cipher=[%s] bits=%d sni=[%s] client_cert=%d verified=%d "
      "subject=[%s] fp=[%s]",
      h, api->tls_active(c), rc, S(info.protocol), S(info.cipher), (int)info.bits, S(info.sni),
      (int)info.client_cert, (int)info.client_cert_verified, S(info.client_subject),
      S(info.client_fingerprint_sha256));
  /* an older caller's struct: only `size` itself; nothing may be written beyond it */
  struct {
    uvs_tls_info head;
    char guard[16];
  } small;
  memset(&small, 0x5a, sizeof small);
  small.head.size = offsetof(uvs_tls_info, size) + sizeof small.head.size;
  int src = api->tls_info(c, &small.head);
  int intact = 1;
  for (size_t i = small.head.size; i < sizeof small; ++i)
    if (((const unsigned char *)&small)[i] != 0x5a) intact = 0;
  api->log(self, c, UVS_LOG_NOTICE, "%s small_size_rc=%d small_untouched=%d", h, src, intact);
  return UVS_DECLINED;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  me = self;
  if (!UVS_API_HAS(api, tls_info)) {
    api->set_error(self, "tls_probe: the server has no tls_info");
    return -ENOSYS;
  }
  int rc = api->register_hook(self, UVS_HOOK_EHLO, on_hook, (void *)"ehlo");
  if (rc == 0) rc = api->register_hook(self, UVS_HOOK_MAIL, on_hook, (void *)"mail");
  return rc;
}

UVS_PLUGIN("tls_probe", "1.0", init, NULL);
