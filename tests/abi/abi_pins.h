/* tests/abi/abi_pins.h: compile-time pins of the 1.x plugin ABI (offsets, sizes, enum values), shared by the C and C++ ABI checks.
 *
 * This file is the append-only proof: a change that moves, removes or renumbers anything
 * released in 1.0 fails to compile here. Offsets are computed, not measured: the table
 * starts with an 8-byte header (uint32_t size, uint16_t abi_major, uint16_t abi_minor),
 * then one pointer per member in declaration order. That holds on LP64 and ILP32 alike.
 * Each minor's appended members get their own block, guarded by UVS_ABI_MINOR; never edit an
 * earlier block. A header whose minor has no block here fails to compile (#error).
 */
#ifndef UVS_TEST_ABI_PINS_H
#define UVS_TEST_ABI_PINS_H

#include <stddef.h>
#include <stdint.h>

#include "uvsmtpd/plugin.h"

#if defined(__cplusplus)
#define PIN(cond) static_assert(cond, #cond)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define PIN(cond) _Static_assert(cond, #cond)
#else /* C99: a negative array size fails */
#define PIN_CAT2(a, b) a##b
#define PIN_CAT(a, b) PIN_CAT2(a, b)
#define PIN(cond) typedef char PIN_CAT(uvs_pin_line_, __LINE__)[(cond) ? 1 : -1]
#endif

#define UVS_API_HEADER_SIZE 8
#define SLOT(i) (UVS_API_HEADER_SIZE + (i) * sizeof(void *))
#define PIN_MEMBER(member, i) PIN(offsetof(uvs_api, member) == SLOT(i))

/* ---- the version ------------------------------------------------------------------------- */
PIN(UVS_ABI_MAJOR == 1);
PIN(UVS_ABI_MINOR >= 0);
/* what UVS_PLUGIN stamps as abi_minor: the plugin's minimum (default: the header's minor) */
PIN(UVS_PLUGIN_MIN_ABI_MINOR >= 0 && UVS_PLUGIN_MIN_ABI_MINOR <= UVS_ABI_MINOR);

/* ---- the uvs_api header ------------------------------------------------------------------- */
PIN(offsetof(uvs_api, size) == 0);
PIN(offsetof(uvs_api, abi_major) == 4);
PIN(offsetof(uvs_api, abi_minor) == 6);
PIN(sizeof(((uvs_api *)0)->size) == 4);
PIN(sizeof(((uvs_api *)0)->abi_major) == 2);
PIN(sizeof(((uvs_api *)0)->abi_minor) == 2);

/* ---- uvs_api 1.0 members, in order (46 slots) --------------------------------------------- */
PIN_MEMBER(register_hook, 0);
PIN_MEMBER(set_error, 1);
PIN_MEMBER(plugin_name, 2);
PIN_MEMBER(plugin_argc, 3);
PIN_MEMBER(plugin_argv, 4);
PIN_MEMBER(plugin_set_data, 5);
PIN_MEMBER(plugin_data, 6);
PIN_MEMBER(config_lines, 7);
PIN_MEMBER(me, 8);
PIN_MEMBER(log, 9);
PIN_MEMBER(call_hook, 10);
PIN_MEMBER(call_arg, 11);
PIN_MEMBER(call_address, 12);
PIN_MEMBER(call_param, 13);
PIN_MEMBER(session_id, 14);
PIN_MEMBER(peer_ip, 15);
PIN_MEMBER(peer_port, 16);
PIN_MEMBER(local_ip, 17);
PIN_MEMBER(local_port, 18);
PIN_MEMBER(helo_name, 19);
PIN_MEMBER(is_esmtp, 20);
PIN_MEMBER(mail_from, 21);
PIN_MEMBER(rcpt_count, 22);
PIN_MEMBER(rcpt_at, 23);
PIN_MEMBER(tls_active, 24);
PIN_MEMBER(auth_user, 25);
PIN_MEMBER(message_size, 26);
PIN_MEMBER(message_read, 27);
PIN_MEMBER(header_get, 28);
PIN_MEMBER(reply, 29);
PIN_MEMBER(reply_line, 30);
PIN_MEMBER(send_continuation, 31);
PIN_MEMBER(note_set, 32);
PIN_MEMBER(note_get, 33);
PIN_MEMBER(note_set_ptr, 34);
PIN_MEMBER(note_get_ptr, 35);
PIN_MEMBER(relay_client, 36);
PIN_MEMBER(set_relay_client, 37);
PIN_MEMBER(is_immune, 38);
PIN_MEMBER(adjust_karma, 39);
PIN_MEMBER(suspend, 40);
PIN_MEMBER(complete, 41);
PIN_MEMBER(pending_call, 42);
PIN_MEMBER(pending_timer, 43);
PIN_MEMBER(wait_for_input, 44);
PIN_MEMBER(run_blocking, 45);
#define UVS_API_SIZE_1_0 SLOT(46)

/* ---- uvs_api 1.1 members (appended after 1.0's last slot) ---------------------------------- */
#if UVS_ABI_MINOR >= 1
PIN_MEMBER(remote_host, 46);
PIN_MEMBER(dns_query, 47);
PIN_MEMBER(event_loop, 48);
PIN_MEMBER(message_fd, 49);
PIN_MEMBER(config_lines_at, 50);
#define UVS_API_SIZE_1_1 SLOT(51)
#endif

/* ---- uvs_api 1.2 members (appended after 1.1's last slot) ---------------------------------- */
#if UVS_ABI_MINOR >= 2
PIN_MEMBER(set_errorf, 51);
#define UVS_API_SIZE_1_2 SLOT(52)
#endif

/* ---- uvs_api 1.3 members (appended after 1.2's last slot) ---------------------------------- */
#if UVS_ABI_MINOR >= 3
PIN_MEMBER(rcpt_replace, 52);
PIN_MEMBER(tls_info, 53);
PIN_MEMBER(timer_start, 54);
PIN_MEMBER(timer_stop, 55);
PIN_MEMBER(pending_note_set, 56);
PIN_MEMBER(pending_on_cancel, 57);
PIN_MEMBER(logv, 58);
PIN_MEMBER(set_errorfv, 59);
PIN_MEMBER(hook_timeout_ms, 60);
PIN_MEMBER(dns_query_conn, 61);
PIN_MEMBER(dns_cancel_conn, 62);
PIN_MEMBER(header_add, 63);
PIN_MEMBER(header_insert, 64);
PIN_MEMBER(header_delete, 65);
PIN_MEMBER(header_replace, 66);
PIN_MEMBER(body_replace_fd, 67);
#define UVS_API_SIZE_1_3 SLOT(68)
#endif

/* ---- uvs_api 1.4 members ------------------------------------------------------------------ */
#if UVS_ABI_MINOR >= 4
PIN_MEMBER(auth_password, 68);
PIN_MEMBER(auth_mechanism, 69);
PIN_MEMBER(queue_id, 70);
#define UVS_API_SIZE_1_4 SLOT(71)
#endif

/* ---- uvs_api 1.5 members ------------------------------------------------------------------ */
#if UVS_ABI_MINOR >= 5
PIN_MEMBER(mail_from_replace, 71);
PIN_MEMBER(rcpt_add, 72);
PIN_MEMBER(rcpt_delete, 73);
PIN_MEMBER(kv_get, 74);
PIN_MEMBER(kv_set, 75);
PIN_MEMBER(kv_incr, 76);
PIN_MEMBER(kv_del, 77);
#define UVS_API_SIZE_1_5 SLOT(78)
#endif

#if UVS_ABI_MINOR >= 3

/* uvs_tls_info (1.3): the caller's size first, then the fields in order, each at its natural
 * alignment (pointers and size_t have one size on LP64 and ILP32); later minors append */
#define PTR_ALIGN(n) (((n) + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *))
PIN(sizeof(size_t) == sizeof(void *));
PIN(offsetof(uvs_tls_info, size) == 0);
PIN(offsetof(uvs_tls_info, protocol) == 1 * sizeof(void *));
PIN(offsetof(uvs_tls_info, cipher) == 2 * sizeof(void *));
PIN(offsetof(uvs_tls_info, bits) == 3 * sizeof(void *));
PIN(offsetof(uvs_tls_info, sni) == PTR_ALIGN(3 * sizeof(void *) + sizeof(int)));
#define TLS_INFO_AFTER_SNI (PTR_ALIGN(3 * sizeof(void *) + sizeof(int)) + sizeof(void *))
PIN(offsetof(uvs_tls_info, client_cert) == TLS_INFO_AFTER_SNI);
PIN(offsetof(uvs_tls_info, client_cert_verified) == TLS_INFO_AFTER_SNI + sizeof(int));
PIN(offsetof(uvs_tls_info, client_subject) == PTR_ALIGN(TLS_INFO_AFTER_SNI + 2 * sizeof(int)));
PIN(offsetof(uvs_tls_info, client_fingerprint_sha256) ==
    PTR_ALIGN(TLS_INFO_AFTER_SNI + 2 * sizeof(int)) + sizeof(void *));
#define UVS_TLS_INFO_SIZE_1_3 (PTR_ALIGN(TLS_INFO_AFTER_SNI + 2 * sizeof(int)) + 2 * sizeof(void *))
PIN(sizeof(uvs_tls_info) == UVS_TLS_INFO_SIZE_1_3);
#endif

/* The table grows with each minor, never shrinks; and it is exactly the table of the minor the
 * header declares: nothing was appended without bumping UVS_ABI_MINOR (and pinning it here). */
PIN(sizeof(uvs_api) >= UVS_API_SIZE_1_0);
#if UVS_ABI_MINOR == 0
PIN(sizeof(uvs_api) == UVS_API_SIZE_1_0);
#elif UVS_ABI_MINOR == 1
PIN(sizeof(uvs_api) == UVS_API_SIZE_1_1);
#elif UVS_ABI_MINOR == 2
PIN(sizeof(uvs_api) == UVS_API_SIZE_1_2);
#elif UVS_ABI_MINOR == 3
PIN(sizeof(uvs_api) == UVS_API_SIZE_1_3);
#elif UVS_ABI_MINOR == 4
PIN(sizeof(uvs_api) == UVS_API_SIZE_1_4);
#elif UVS_ABI_MINOR == 5
PIN(sizeof(uvs_api) == UVS_API_SIZE_1_5);
#else
#error "UVS_ABI_MINOR is newer than tests/abi/abi_pins.h: pin the new members"
#endif

/* ---- uvs_plugin_info: the exported symbol's type ------------------------------------------ */
PIN(offsetof(uvs_plugin_info, size) == 0);
PIN(offsetof(uvs_plugin_info, abi_major) == 4);
PIN(offsetof(uvs_plugin_info, abi_minor) == 6);
PIN(offsetof(uvs_plugin_info, name) == SLOT(0));
PIN(offsetof(uvs_plugin_info, version) == SLOT(1));
PIN(offsetof(uvs_plugin_info, init) == SLOT(2));
PIN(offsetof(uvs_plugin_info, fini) == SLOT(3));
PIN(sizeof(uvs_plugin_info) == SLOT(4));

/* ---- enums: values are ABI ------------------------------------------------------------------ */
PIN(sizeof(uvs_hook) == sizeof(int));
PIN(sizeof(uvs_verdict) == sizeof(int));

PIN(UVS_HOOK_PRE_CONNECTION == 1);
PIN(UVS_HOOK_CONNECT == 2);
PIN(UVS_HOOK_HELO == 3);
PIN(UVS_HOOK_EHLO == 4);
PIN(UVS_HOOK_MAIL == 5);
PIN(UVS_HOOK_RCPT == 6);
PIN(UVS_HOOK_DATA == 7);
PIN(UVS_HOOK_DATA_HEADERS_END == 8);
PIN(UVS_HOOK_DATA_POST == 9);
PIN(UVS_HOOK_QUEUE == 10);
PIN(UVS_HOOK_QUEUE_POST == 11);
PIN(UVS_HOOK_RESET_TRANSACTION == 12);
PIN(UVS_HOOK_QUIT == 13);
PIN(UVS_HOOK_DISCONNECT == 14);
PIN(UVS_HOOK_UNRECOGNIZED_COMMAND == 15);
PIN(UVS_HOOK_VRFY == 16);
PIN(UVS_HOOK_NOOP == 17);
PIN(UVS_HOOK_HELP == 18);
PIN(UVS_HOOK_DENY == 19);
PIN(UVS_HOOK_OK == 20);
#if UVS_ABI_MINOR >= 4
PIN(UVS_HOOK_AUTH == 21);
#endif

PIN(UVS_DECLINED == 0);
PIN(UVS_OK == 1);
PIN(UVS_DENY == 2);
PIN(UVS_DENYSOFT == 3);
PIN(UVS_DENY_DISCONNECT == 4);
PIN(UVS_DENYSOFT_DISCONNECT == 5);
PIN(UVS_DONE == 6);
PIN(UVS_PENDING == 7);

PIN(UVS_NOTE_CONNECTION == 0);
PIN(UVS_NOTE_TRANSACTION == 1);

PIN(UVS_LOG_EMERG == 0);
PIN(UVS_LOG_ALERT == 1);
PIN(UVS_LOG_CRIT == 2);
PIN(UVS_LOG_ERR == 3);
PIN(UVS_LOG_WARNING == 4);
PIN(UVS_LOG_NOTICE == 5);
PIN(UVS_LOG_INFO == 6);
PIN(UVS_LOG_DEBUG == 7);

#if UVS_ABI_MINOR >= 1
PIN(UVS_DNS_A == 1);
PIN(UVS_DNS_AAAA == 2);
PIN(UVS_DNS_MX == 3);
PIN(UVS_DNS_TXT == 4);
PIN(UVS_DNS_PTR == 5);
#endif

PIN(UVS_INPUT_TIMEOUT == 0);
PIN(UVS_INPUT_DATA == 1);
PIN(UVS_INPUT_EOF == 2);
#if UVS_ABI_MINOR >= 3
PIN(UVS_HEADER_TOP == 0);
PIN(UVS_HEADER_BOTTOM == 1);
#endif

/* ---- signatures: a member's type is ABI too ------------------------------------------------- */
#if defined(__cplusplus)
#include <type_traits>
#define PIN_TYPE(expr, ...) static_assert(std::is_same<decltype(expr), __VA_ARGS__>::value, #expr)
#define HAVE_PIN_TYPE 1
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define PIN_TYPE(expr, ...) _Static_assert(_Generic((expr), __VA_ARGS__: 1, default: 0), #expr)
#define HAVE_PIN_TYPE 1
#endif

#ifdef HAVE_PIN_TYPE
#define API_M(member) (((const uvs_api *)0)->member)
#define INFO_M(member) (((const uvs_plugin_info *)0)->member)
#if defined(__cplusplus) /* decltype of a member access through a const pointer keeps the member's type */
#define API_T(member) uvs_api::member
#define INFO_T(member) uvs_plugin_info::member
#else
#define API_T(member) API_M(member)
#define INFO_T(member) INFO_M(member)
#endif

PIN_TYPE(API_T(size), uint32_t);
PIN_TYPE(API_T(abi_major), uint16_t);
PIN_TYPE(API_T(abi_minor), uint16_t);
PIN_TYPE(API_T(register_hook), int (*)(uvs_plugin *, uvs_hook, uvs_hook_fn, void *));
PIN_TYPE(API_T(set_error), int (*)(uvs_plugin *, const char *));
PIN_TYPE(API_T(plugin_name), const char *(*)(const uvs_plugin *));
PIN_TYPE(API_T(plugin_argc), int (*)(const uvs_plugin *));
PIN_TYPE(API_T(plugin_argv), const char *(*)(const uvs_plugin *, int));
PIN_TYPE(API_T(plugin_set_data), void (*)(uvs_plugin *, void *));
PIN_TYPE(API_T(plugin_data), void *(*)(const uvs_plugin *));
PIN_TYPE(API_T(config_lines), int (*)(uvs_plugin *, const char *, uvs_line_fn, void *));
PIN_TYPE(API_T(me), const char *(*)(const uvs_plugin *));
#if defined(__cplusplus)
/* log carries a printf format attribute, which g++ drops (with a warning) from a template
 * argument; an initialisation pins the type just as well: C++ converts no function pointer
 * type into another implicitly. */
inline void pin_log_type(const uvs_api *a) {
  void (*f)(uvs_plugin *, const uvs_call *, int, const char *, ...) = a->log;
  (void)f;
}
#else
PIN_TYPE(API_T(log), void (*)(uvs_plugin *, const uvs_call *, int, const char *, ...));
#endif
PIN_TYPE(API_T(call_hook), uvs_hook (*)(const uvs_call *));
PIN_TYPE(API_T(call_arg), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(call_address), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(call_param), const char *(*)(const uvs_call *, const char *));
PIN_TYPE(API_T(session_id), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(peer_ip), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(peer_port), int (*)(const uvs_call *));
PIN_TYPE(API_T(local_ip), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(local_port), int (*)(const uvs_call *));
PIN_TYPE(API_T(helo_name), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(is_esmtp), int (*)(const uvs_call *));
PIN_TYPE(API_T(mail_from), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(rcpt_count), int (*)(const uvs_call *));
PIN_TYPE(API_T(rcpt_at), const char *(*)(const uvs_call *, int));
PIN_TYPE(API_T(tls_active), int (*)(const uvs_call *));
PIN_TYPE(API_T(auth_user), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(message_size), int64_t (*)(const uvs_call *));
PIN_TYPE(API_T(message_read), int64_t (*)(const uvs_call *, int64_t, void *, size_t));
PIN_TYPE(API_T(header_get), const char *(*)(const uvs_call *, const char *, int));
PIN_TYPE(API_T(reply), int (*)(uvs_call *, int, const char *, const char *));
PIN_TYPE(API_T(reply_line), int (*)(uvs_call *, const char *));
PIN_TYPE(API_T(send_continuation), int (*)(uvs_call *, const char *));
PIN_TYPE(API_T(note_set), int (*)(uvs_call *, int, const char *, const char *));
PIN_TYPE(API_T(note_get), const char *(*)(const uvs_call *, int, const char *));
PIN_TYPE(API_T(note_set_ptr), int (*)(uvs_call *, int, const char *, void *, uvs_free_fn));
PIN_TYPE(API_T(note_get_ptr), void *(*)(const uvs_call *, int, const char *));
PIN_TYPE(API_T(relay_client), int (*)(const uvs_call *));
PIN_TYPE(API_T(set_relay_client), int (*)(uvs_call *, int));
PIN_TYPE(API_T(is_immune), int (*)(const uvs_call *));
PIN_TYPE(API_T(adjust_karma), int (*)(uvs_call *, int));
PIN_TYPE(API_T(suspend), uvs_pending *(*)(uvs_call *));
PIN_TYPE(API_T(complete), int (*)(uvs_pending *, uvs_verdict, int, const char *, const char *));
PIN_TYPE(API_T(pending_call), uvs_call *(*)(uvs_pending *));
PIN_TYPE(API_T(pending_timer), int (*)(uvs_pending *, uint64_t, uvs_pending_fn, void *));
PIN_TYPE(API_T(wait_for_input), int (*)(uvs_pending *, uint64_t, uvs_input_fn, void *));
PIN_TYPE(API_T(run_blocking), int (*)(uvs_pending *, uvs_work_fn, uvs_pending_fn, void *));

#if UVS_ABI_MINOR >= 1
PIN_TYPE(API_T(remote_host), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(dns_query), int (*)(uvs_pending *, const char *, int, uint64_t, uvs_dns_fn, void *));
PIN_TYPE(API_T(event_loop), void *(*)(const uvs_plugin *));
PIN_TYPE(API_T(message_fd), int (*)(const uvs_call *));
PIN_TYPE(API_T(config_lines_at), int (*)(uvs_plugin *, const char *, uvs_line_at_fn, void *));
#endif

#if UVS_ABI_MINOR >= 2
#if defined(__cplusplus) /* a printf format attribute, as log: see pin_log_type */
inline void pin_set_errorf_type(const uvs_api *a) {
  int (*f)(uvs_plugin *, const char *, ...) = a->set_errorf;
  (void)f;
}
#else
PIN_TYPE(API_T(set_errorf), int (*)(uvs_plugin *, const char *, ...));
#endif
#endif

#if UVS_ABI_MINOR >= 3
PIN_TYPE(API_T(rcpt_replace), int (*)(uvs_call *, const char *const *, int));
PIN_TYPE(API_T(tls_info), int (*)(const uvs_call *, uvs_tls_info *));
PIN_TYPE(API_T(timer_start), uvs_timer *(*)(uvs_plugin *, uint64_t, uint64_t, uvs_timer_fn, void *));
PIN_TYPE(API_T(timer_stop), int (*)(uvs_timer *));
PIN_TYPE(API_T(pending_note_set), int (*)(uvs_pending *, int, const char *, const char *));
PIN_TYPE(API_T(pending_on_cancel), int (*)(uvs_pending *, uvs_pending_fn, void *));
#if defined(__cplusplus) /* printf format attributes, as log: see pin_log_type */
inline void pin_logv_types(const uvs_api *a) {
  void (*f)(uvs_plugin *, const uvs_call *, int, const char *, va_list) = a->logv;
  int (*g)(uvs_plugin *, const char *, va_list) = a->set_errorfv;
  (void)f;
  (void)g;
}
#else
PIN_TYPE(API_T(logv), void (*)(uvs_plugin *, const uvs_call *, int, const char *, va_list));
PIN_TYPE(API_T(set_errorfv), int (*)(uvs_plugin *, const char *, va_list));
#endif
PIN_TYPE(API_T(hook_timeout_ms), int64_t (*)(const uvs_plugin *));
PIN_TYPE(API_T(dns_query_conn),
         int64_t (*)(uvs_call *, const char *, int, uint64_t, uvs_dns_conn_fn, void *));
PIN_TYPE(API_T(dns_cancel_conn), int (*)(uvs_call *, int64_t));
PIN_TYPE(API_T(header_add), int (*)(uvs_call *, const char *, const char *, int));
PIN_TYPE(API_T(header_insert), int (*)(uvs_call *, const char *, int, const char *, const char *));
PIN_TYPE(API_T(header_delete), int (*)(uvs_call *, const char *, int));
PIN_TYPE(API_T(header_replace), int (*)(uvs_call *, const char *, int, const char *));
PIN_TYPE(API_T(body_replace_fd), int (*)(uvs_call *, int));
#endif
#if UVS_ABI_MINOR >= 4
PIN_TYPE(API_T(auth_password), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(auth_mechanism), const char *(*)(const uvs_call *));
PIN_TYPE(API_T(queue_id), const char *(*)(const uvs_call *));
#endif
#if UVS_ABI_MINOR >= 5
PIN_TYPE(API_T(mail_from_replace), int (*)(uvs_call *, const char *));
PIN_TYPE(API_T(rcpt_add), int (*)(uvs_call *, const char *));
PIN_TYPE(API_T(rcpt_delete), int (*)(uvs_call *, const char *));
PIN_TYPE(API_T(kv_get), int (*)(uvs_plugin *, const char *, uvs_kv_fn, void *));
PIN_TYPE(API_T(kv_set),
         int (*)(uvs_plugin *, const char *, const char *, size_t, uint64_t, uvs_kv_fn, void *));
PIN_TYPE(API_T(kv_incr), int (*)(uvs_plugin *, const char *, int64_t, uint64_t, uvs_kv_fn, void *));
PIN_TYPE(API_T(kv_del), int (*)(uvs_plugin *, const char *, uvs_kv_fn, void *));
#endif

PIN_TYPE(INFO_T(size), uint32_t);
PIN_TYPE(INFO_T(abi_major), uint16_t);
PIN_TYPE(INFO_T(abi_minor), uint16_t);
PIN_TYPE(INFO_T(name), const char *);
PIN_TYPE(INFO_T(version), const char *);
PIN_TYPE(INFO_T(init), int (*)(uvs_plugin *, const uvs_api *));
PIN_TYPE(INFO_T(fini), void (*)(uvs_plugin *));

/* the callback types */
#if defined(__cplusplus)
#define PIN_TYPEDEF(t, ...) static_assert(std::is_same<t, __VA_ARGS__>::value, #t)
#else
#define PIN_TYPEDEF(t, ...) PIN_TYPE(*(t *)0, __VA_ARGS__)
#endif
PIN_TYPEDEF(uvs_hook_fn, uvs_verdict (*)(uvs_call *, void *));
PIN_TYPEDEF(uvs_pending_fn, void (*)(uvs_pending *, void *));
PIN_TYPEDEF(uvs_input_fn, void (*)(uvs_pending *, int, void *));
PIN_TYPEDEF(uvs_work_fn, void (*)(void *));
PIN_TYPEDEF(uvs_free_fn, void (*)(void *));
PIN_TYPEDEF(uvs_line_fn, int (*)(const char *, void *));
#if UVS_ABI_MINOR >= 1
PIN_TYPEDEF(uvs_dns_fn, void (*)(uvs_pending *, int, int, const char *const *, void *));
PIN_TYPEDEF(uvs_line_at_fn, int (*)(const char *, const char *, int, void *));
#endif
#if UVS_ABI_MINOR >= 3
PIN_TYPEDEF(uvs_timer_fn, void (*)(uvs_timer *, void *));
PIN_TYPEDEF(uvs_dns_conn_fn, void (*)(int64_t, int, int, const char *const *, void *));
#endif
#if UVS_ABI_MINOR >= 5
PIN_TYPEDEF(uvs_kv_fn, void (*)(int, const char *, size_t, int64_t, void *));
#endif
#endif /* HAVE_PIN_TYPE */

#endif /* UVS_TEST_ABI_PINS_H */
