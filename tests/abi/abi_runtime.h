/* tests/abi/abi_runtime.h: the run-time half of the ABI checks (UVS_API_HAS, UVS_PLUGIN), written once in the common subset of C and C++.
 *
 * Included by abi_c.c and abi_cpp.cpp after abi_pins.h. Each program also instantiates
 * UVS_PLUGIN, so the macro is proven to compile in C and C++ with -Werror -pedantic. */
#ifndef UVS_TEST_ABI_RUNTIME_H
#define UVS_TEST_ABI_RUNTIME_H

#include <stdio.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                            \
    }                                                                        \
  } while (0)

static int fake_init(uvs_plugin *self, const uvs_api *api) {
  (void)self;
  (void)api;
  return 0;
}
static void fake_fini(uvs_plugin *self) { (void)self; }
static int fake_run_blocking(uvs_pending *p, uvs_work_fn w, uvs_pending_fn d, void *ud) {
  (void)p;
  (void)w;
  (void)d;
  (void)ud;
  return 0;
}

#if UVS_ABI_MINOR >= 1
static int fake_message_fd(const uvs_call *c) {
  (void)c;
  return -1;
}
#endif

#if UVS_ABI_MINOR >= 2
static int fake_set_errorf(uvs_plugin *p, const char *fmt, ...) {
  (void)p;
  (void)fmt;
  return 0;
}
#endif

#if UVS_ABI_MINOR >= 3
static int fake_rcpt_replace(uvs_call *c, const char *const *addrs, int n) {
  (void)c;
  (void)addrs;
  (void)n;
  return 0;
}
static int fake_tls_info(const uvs_call *c, uvs_tls_info *out) {
  (void)c;
  (void)out;
  return -2; /* -ENOENT: not in TLS */
}
static int64_t fake_hook_timeout_ms(const uvs_plugin *p) {
  (void)p;
  return 30000;
}
static int fake_body_replace_fd(uvs_call *c, int fd) {
  (void)c;
  (void)fd;
  return -1; /* -EPERM */
}
static int fake_dns_cancel_conn(uvs_call *c, int64_t id) {
  (void)c;
  (void)id;
  return -2; /* -ENOENT */
}
#endif

#if UVS_ABI_MINOR >= 4
static const char *fake_auth_mechanism(const uvs_call *c) {
  (void)c;
  return NULL;
}
#if UVS_ABI_MINOR >= 5
static int fake_kv_del(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud) {
  (void)p, (void)key, (void)cb, (void)ud;
  return -22;
}
#endif
#endif

UVS_PLUGIN("abi_check", "1.2.3", fake_init, fake_fini);

static int run_abi_checks(const char *lang) {
  /* UVS_PLUGIN stamps the header's major, the plugin's minimum minor (by default the header's
   * minor; the *_min0 builds define UVS_PLUGIN_MIN_ABI_MINOR 0) and the struct's size. */
  CHECK(uvs_plugin_v1.size == sizeof(uvs_plugin_info));
  CHECK(uvs_plugin_v1.abi_major == UVS_ABI_MAJOR);
  CHECK(uvs_plugin_v1.abi_minor == UVS_PLUGIN_MIN_ABI_MINOR);
#ifdef UVS_TEST_MIN_ABI_MINOR
  CHECK(uvs_plugin_v1.abi_minor == UVS_TEST_MIN_ABI_MINOR);
#else
  CHECK(uvs_plugin_v1.abi_minor == UVS_ABI_MINOR);
#endif
  CHECK(strcmp(uvs_plugin_v1.name, "abi_check") == 0);
  CHECK(strcmp(uvs_plugin_v1.version, "1.2.3") == 0);
  CHECK(uvs_plugin_v1.init == fake_init);
  CHECK(uvs_plugin_v1.fini == fake_fini);

  /* UVS_API_HAS: covered by size AND not NULL. A 1.0 server's table ends at run_blocking. */
  uvs_api t;
  memset(&t, 0, sizeof t);
  t.size = (uint32_t)sizeof t;
  t.abi_major = UVS_ABI_MAJOR;
  t.abi_minor = UVS_ABI_MINOR;
  CHECK(!UVS_API_HAS(&t, run_blocking)); /* covered, but NULL: not in this build */
  t.run_blocking = fake_run_blocking;
  CHECK(UVS_API_HAS(&t, run_blocking));
  /* an older server's smaller table does not cover the last member, whatever follows */
  t.size = (uint32_t)offsetof(uvs_api, run_blocking);
  CHECK(!UVS_API_HAS(&t, run_blocking));
  t.size = (uint32_t)(offsetof(uvs_api, run_blocking) + sizeof(void *) - 1);
  CHECK(!UVS_API_HAS(&t, run_blocking));
  t.size = (uint32_t)(offsetof(uvs_api, run_blocking) + sizeof(void *));
  CHECK(UVS_API_HAS(&t, run_blocking));
#if UVS_ABI_MINOR >= 1
  /* a 1.1 member is not there in a 1.0 server's table, even if the memory says otherwise */
  t.message_fd = fake_message_fd;
  CHECK(!UVS_API_HAS(&t, message_fd));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, message_fd));
#endif
#if UVS_ABI_MINOR >= 2
  /* a 1.1 server's table ends at config_lines_at: no set_errorf, whatever the memory says */
  t.set_errorf = fake_set_errorf;
  t.size = (uint32_t)offsetof(uvs_api, set_errorf);
  CHECK(!UVS_API_HAS(&t, set_errorf));
  CHECK(UVS_API_HAS(&t, message_fd)); /* 1.1 members are still there */
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, set_errorf));
  t.set_errorf = NULL; /* covered, but NULL (a retired member) */
  CHECK(!UVS_API_HAS(&t, set_errorf));
#endif
#if UVS_ABI_MINOR >= 3
  /* a 1.2 server's table ends at set_errorf: no rcpt_replace, whatever the memory says */
  t.set_errorf = fake_set_errorf;
  t.rcpt_replace = fake_rcpt_replace;
  t.size = (uint32_t)offsetof(uvs_api, rcpt_replace);
  CHECK(!UVS_API_HAS(&t, rcpt_replace));
  CHECK(UVS_API_HAS(&t, set_errorf)); /* 1.2 members are still there */
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, rcpt_replace));
  t.rcpt_replace = NULL;
  CHECK(!UVS_API_HAS(&t, rcpt_replace));
  /* tls_info, the second 1.3 member: a table ending at rcpt_replace does not have it */
  t.rcpt_replace = fake_rcpt_replace;
  t.tls_info = fake_tls_info;
  t.size = (uint32_t)offsetof(uvs_api, tls_info);
  CHECK(!UVS_API_HAS(&t, tls_info));
  CHECK(UVS_API_HAS(&t, rcpt_replace));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, tls_info));
  t.tls_info = NULL;
  CHECK(!UVS_API_HAS(&t, tls_info));
  /* the last 1.3 member, hook_timeout_ms: a table ending at tls_info (the first 1.3 servers'
   * size) or one byte short of it does not have it */
  t.tls_info = fake_tls_info;
  t.hook_timeout_ms = fake_hook_timeout_ms;
  t.size = (uint32_t)offsetof(uvs_api, timer_start);
  CHECK(!UVS_API_HAS(&t, hook_timeout_ms));
  CHECK(!UVS_API_HAS(&t, timer_start));
  CHECK(UVS_API_HAS(&t, tls_info));
  t.size = (uint32_t)(offsetof(uvs_api, hook_timeout_ms) + sizeof(void *) - 1);
  CHECK(!UVS_API_HAS(&t, hook_timeout_ms));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, hook_timeout_ms));
  CHECK(t.hook_timeout_ms(NULL) == 30000);
  /* the connection-scoped DNS members follow hook_timeout_ms: a table ending there (the
   * servers before them) does not have them */
  t.dns_cancel_conn = fake_dns_cancel_conn;
  t.size = (uint32_t)offsetof(uvs_api, dns_query_conn);
  CHECK(UVS_API_HAS(&t, hook_timeout_ms));
  CHECK(!UVS_API_HAS(&t, dns_cancel_conn));
  t.size = (uint32_t)(offsetof(uvs_api, dns_cancel_conn) + sizeof(void *) - 1);
  CHECK(!UVS_API_HAS(&t, dns_cancel_conn));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, dns_cancel_conn));
  CHECK(t.dns_cancel_conn(NULL, 1) == -2);
  /* the message edits follow dns_cancel_conn: a table ending there does not have them */
  t.body_replace_fd = fake_body_replace_fd;
  t.size = (uint32_t)offsetof(uvs_api, header_add);
  CHECK(UVS_API_HAS(&t, dns_cancel_conn));
  CHECK(!UVS_API_HAS(&t, header_add));
  CHECK(!UVS_API_HAS(&t, body_replace_fd));
  t.size = (uint32_t)(offsetof(uvs_api, body_replace_fd) + sizeof(void *) - 1);
  CHECK(!UVS_API_HAS(&t, body_replace_fd));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, body_replace_fd));
  CHECK(!UVS_API_HAS(&t, header_add)); /* a NULL slot */
  CHECK(t.body_replace_fd(NULL, 0) == -1);
#if UVS_ABI_MINOR == 3
  CHECK(offsetof(uvs_api, body_replace_fd) + sizeof(void *) == sizeof(uvs_api));
#endif
  /* uvs_tls_info starts with the caller's size */
  CHECK(offsetof(uvs_tls_info, size) == 0);
#endif
#if UVS_ABI_MINOR >= 4
  /* the AUTH members follow body_replace_fd: a 1.3 server's table ends there */
  t.auth_mechanism = fake_auth_mechanism;
  t.size = (uint32_t)offsetof(uvs_api, auth_password);
  CHECK(UVS_API_HAS(&t, body_replace_fd));
  CHECK(!UVS_API_HAS(&t, auth_password));
  CHECK(!UVS_API_HAS(&t, auth_mechanism));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, auth_mechanism));
  CHECK(t.auth_mechanism(NULL) == NULL);
#if UVS_ABI_MINOR == 4
  CHECK(offsetof(uvs_api, queue_id) + sizeof(void *) == sizeof(uvs_api));
#endif
#endif
#if UVS_ABI_MINOR >= 5
  /* the envelope edits and the shared state follow queue_id: a 1.4 server's table ends there */
  t.kv_del = fake_kv_del;
  t.size = (uint32_t)offsetof(uvs_api, mail_from_replace);
  CHECK(UVS_API_HAS(&t, auth_mechanism));
  CHECK(!UVS_API_HAS(&t, mail_from_replace));
  CHECK(!UVS_API_HAS(&t, kv_del));
  t.size = (uint32_t)sizeof t;
  CHECK(UVS_API_HAS(&t, kv_del));
  CHECK(!UVS_API_HAS(&t, kv_get)); /* a NULL slot */
  CHECK(t.kv_del(NULL, "k", NULL, NULL) == -22);
  CHECK(offsetof(uvs_api, kv_del) + sizeof(void *) == sizeof(uvs_api));
#endif

  printf("abi %s: %s (uvs_api %u bytes, uvs_plugin_info %u bytes, ABI %d.%d, plugin stamp 1.%d)\n",
         lang, failures ? "FAILED" : "ok", (unsigned)sizeof(uvs_api),
         (unsigned)sizeof(uvs_plugin_info), UVS_ABI_MAJOR, UVS_ABI_MINOR,
         (int)uvs_plugin_v1.abi_minor);
  return failures ? 1 : 0;
}

#endif /* UVS_TEST_ABI_RUNTIME_H */
