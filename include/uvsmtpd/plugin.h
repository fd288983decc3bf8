/* uvsmtpd/plugin.h: the whole plugin ABI of uvsmtpd, plain C (C11 and C++).
 *
 * A plugin is a shared object that exports ONE data symbol, `uvs_plugin_v1`, of type
 * uvs_plugin_info (use the UVS_PLUGIN macro). The server checks its size and version
 * before calling any plugin code, then calls init() once per instance named in
 * conf/plugins. Everything else goes through the function table (uvs_api) handed to
 * init: opaque handles, accessors, no server structs cross this boundary.
 *
 * Rules (see docs/abi.md and docs/plugins.md):
 *  - Append-only: enum values and uvs_api members are never renumbered, reordered or
 *    removed. A minor version appends; test with UVS_API_HAS before using a member
 *    newer than 1.0 (a MUST for members newer than UVS_PLUGIN_MIN_ABI_MINOR, below).
 *  - API functions return 0 (or a count/size) on success and a negative errno on
 *    failure. Hooks return a uvs_verdict, a separate type.
 *  - Strings the server hands out are BORROWED: valid until the hook returns (or, for
 *    plugin-level data, for the plugin's life). Strings handed to the server are
 *    COPIED before the call returns. Pointers handed over carry their destructor.
 *  - All functions are loop-thread only, except uvs_api.complete(), log(), logv() and
 *    pending_note_set(), which any thread may call.
 */
#ifndef UVSMTPD_PLUGIN_H
#define UVSMTPD_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UVS_ABI_MAJOR 1 /* bump = incompatible; the server refuses other majors */
#define UVS_ABI_MINOR 5 /* bump = members appended; older plugins still load    */

/* The oldest server minor (1.N) this plugin runs on: UVS_PLUGIN stamps it into
 * uvs_plugin_info.abi_minor, and a server older than that refuses the plugin. By default
 * it is this header's minor. A plugin that also runs on older servers #defines it before
 * including this header (or passes -DUVS_PLUGIN_MIN_ABI_MINOR=N), and then MUST test every
 * member newer than 1.N with UVS_API_HAS before using it. */
#ifndef UVS_PLUGIN_MIN_ABI_MINOR
#define UVS_PLUGIN_MIN_ABI_MINOR UVS_ABI_MINOR
#endif
#if UVS_PLUGIN_MIN_ABI_MINOR < 0 || UVS_PLUGIN_MIN_ABI_MINOR > UVS_ABI_MINOR
#error "UVS_PLUGIN_MIN_ABI_MINOR must be from 0 to this header's UVS_ABI_MINOR"
#endif

typedef struct uvs_plugin uvs_plugin;   /* one plugin instance (a conf/plugins line)  */
typedef struct uvs_call uvs_call;       /* one hook invocation: session, txn, args    */
typedef struct uvs_pending uvs_pending; /* a suspended call; the plugin owns it until
                                           it calls complete(), exactly once          */
typedef struct uvs_timer uvs_timer;     /* a plugin-level timer (1.3)                 */

/* Hooks, named as in qpsmtpd. Append only. docs/hooks.md has the table of replies. */
typedef enum uvs_hook {
  UVS_HOOK_PRE_CONNECTION = 1,
  UVS_HOOK_CONNECT = 2,
  UVS_HOOK_HELO = 3,
  UVS_HOOK_EHLO = 4,
  UVS_HOOK_MAIL = 5,
  UVS_HOOK_RCPT = 6,
  UVS_HOOK_DATA = 7,
  UVS_HOOK_DATA_HEADERS_END = 8,
  UVS_HOOK_DATA_POST = 9,
  UVS_HOOK_QUEUE = 10,
  UVS_HOOK_QUEUE_POST = 11,
  UVS_HOOK_RESET_TRANSACTION = 12,
  UVS_HOOK_QUIT = 13,
  UVS_HOOK_DISCONNECT = 14,
  UVS_HOOK_UNRECOGNIZED_COMMAND = 15,
  UVS_HOOK_VRFY = 16,
  UVS_HOOK_NOOP = 17,
  UVS_HOOK_HELP = 18,
  UVS_HOOK_DENY = 19, /* observer: after any DENY* verdict; return ignored      */
  UVS_HOOK_OK = 20,   /* observer: after any other verdict; return ignored      */
  UVS_HOOK_AUTH = 21, /* 1.4: SMTP AUTH credentials to check (RFC 4954)          */
  UVS_HOOK_MAX_ENUM_ = 0x7fffffff /* not a hook: keeps the enum int-sized in C and C++ */
} uvs_hook;

/* Verdicts: qpsmtpd's vocabulary plus PENDING. Append only. */
typedef enum uvs_verdict {
  UVS_DECLINED = 0,            /* no opinion: the next plugin runs                 */
  UVS_OK = 1,                  /* accept; the chain stops                          */
  UVS_DENY = 2,                /* permanent failure (5xx); the chain stops         */
  UVS_DENYSOFT = 3,            /* temporary failure (4xx); the chain stops         */
  UVS_DENY_DISCONNECT = 4,     /* 5xx, then the server closes the connection       */
  UVS_DENYSOFT_DISCONNECT = 5, /* 4xx (421 where qpsmtpd says so), then close      */
  UVS_DONE = 6,                /* the plugin answered: only the reply it set (if
                                  any) is sent, with no default                    */
  UVS_PENDING = 7,             /* the plugin called suspend(); answer comes later  */
  UVS_VERDICT_MAX_ENUM_ = 0x7fffffff /* not a verdict: keeps the enum int-sized       */
} uvs_verdict;

/* Note scopes. */
#define UVS_NOTE_CONNECTION 0 /* lives until the connection closes           */
#define UVS_NOTE_TRANSACTION 1 /* lives until MAIL, RSET, end of DATA, close  */

/* Log levels: syslog's. */
#define UVS_LOG_EMERG 0
#define UVS_LOG_ALERT 1
#define UVS_LOG_CRIT 2
#define UVS_LOG_ERR 3
#define UVS_LOG_WARNING 4
#define UVS_LOG_NOTICE 5
#define UVS_LOG_INFO 6
#define UVS_LOG_DEBUG 7

/* DNS record types for dns_query() (1.1). */
#define UVS_DNS_A 1
#define UVS_DNS_AAAA 2
#define UVS_DNS_MX 3
#define UVS_DNS_TXT 4
#define UVS_DNS_PTR 5 /* name is an IPv4/IPv6 address */

/* Where header_add() (1.3) puts a field. */
#define UVS_HEADER_TOP 0    /* first in the header section, after the server's Received:  */
#define UVS_HEADER_BOTTOM 1 /* last, just before the empty line that ends the section     */

/* wait_for_input() results. */
#define UVS_INPUT_TIMEOUT 0 /* nothing arrived within the time               */
#define UVS_INPUT_DATA 1    /* the client sent at least one byte             */
#define UVS_INPUT_EOF 2     /* the client closed or half-closed              */

typedef uvs_verdict (*uvs_hook_fn)(uvs_call *call, void *ud);
typedef void (*uvs_pending_fn)(uvs_pending *pending, void *ud);
typedef void (*uvs_input_fn)(uvs_pending *pending, int result, void *ud);
typedef void (*uvs_work_fn)(void *ud);
/* DNS answer (1.1): status 0, or -ENOENT (no such name/data), -ETIMEDOUT, -EIO; answers are
 * borrowed for the callback: A/AAAA addresses, MX "preference host", TXT strings, PTR names. */
typedef void (*uvs_dns_fn)(uvs_pending *pending, int status, int count,
                           const char *const *answers, void *ud);
typedef void (*uvs_free_fn)(void *ptr);
typedef int (*uvs_line_fn)(const char *line, void *ud); /* nonzero return stops */
/* A flat config line with where it came from (1.1): the file that holds it (after $include)
 * and its 1-based line number in that file. Both strings borrowed for the callback. Nonzero
 * return stops. */
typedef int (*uvs_line_at_fn)(const char *line, const char *file, int lineno, void *ud);
/* A plugin-level timer fired (1.3), on the loop thread. */
typedef void (*uvs_timer_fn)(uvs_timer *timer, void *ud);
/* A connection-scoped DNS answer (1.3, dns_query_conn): id as dns_query_conn() returned it;
 * status, count and answers as for uvs_dns_fn (answers borrowed for the callback), plus
 * -ECANCELED when the server shuts its resolver down first. On the loop thread, outside any
 * hook: there is no call here (keep what the later hook needs in ud). */
typedef void (*uvs_dns_conn_fn)(int64_t id, int status, int count, const char *const *answers,
                                void *ud);
/* A shared-state answer (1.5): see kv_get(). */
typedef void (*uvs_kv_fn)(int status, const char *value, size_t len, int64_t number, void *ud);

/* What tls_info() (1.3) reports about the session's TLS layer. The caller sets `size` to
 * sizeof(uvs_tls_info) as its header declares it; the server fills the fields that size covers
 * and never writes past it. Fields are appended in later minors, never moved. Strings are
 * BORROWED, valid for the duration of the hook call (until it returns); never NULL: "" when
 * there is nothing to report. */
typedef struct uvs_tls_info {
  size_t size;                           /* set by the caller: sizeof(uvs_tls_info)         */
  const char *protocol;                  /* "TLSv1.2", "TLSv1.3"                            */
  const char *cipher;                    /* "TLS_AES_256_GCM_SHA384" (OpenSSL's name)       */
  int bits;                              /* the cipher's secret bits, e.g. 256              */
  const char *sni;                       /* the name the client asked for (SNI); "" if none */
  int client_cert;                       /* 1: the client presented a certificate           */
  int client_cert_verified;              /* 1: it verified against the configured client CA */
  const char *client_subject;            /* its subject (one line, RFC 2253); "" if none    */
  const char *client_fingerprint_sha256; /* SHA-256 of its DER, lower-case hex, no colons;
                                            "" if none                                      */
} uvs_tls_info;

typedef struct uvs_api {
  uint32_t size; /* sizeof(uvs_api) in the running server */
  uint16_t abi_major;
  uint16_t abi_minor;

  /* ---- 1.0 ------------------------------------------------------------------- */

  /* -- plugin level (init and later) -- */
  /* Register fn for hook; handlers run in conf/plugins order, then registration
   * order. Only during init. -ENOSYS for a hook this server does not know. */
  int (*register_hook)(uvs_plugin *p, uvs_hook hook, uvs_hook_fn fn, void *ud);
  /* Message for a failing init (copied); init then returns a negative errno. */
  int (*set_error)(uvs_plugin *p, const char *msg);
  /* Instance name as written in conf/plugins ("earlytalker:1"). Borrowed, plugin life. */
  const char *(*plugin_name)(const uvs_plugin *p);
  /* Arguments after the name on the conf/plugins line. Borrowed, plugin life. */
  int (*plugin_argc)(const uvs_plugin *p);
  const char *(*plugin_argv)(const uvs_plugin *p, int i);
  /* One pointer of plugin state, returned by plugin_data (for fini and callbacks). */
  void (*plugin_set_data)(uvs_plugin *p, void *data);
  void *(*plugin_data)(const uvs_plugin *p);
  /* Flat config file <config dir>/<name>: cb for each line, comments (#) and blank
   * lines dropped, trimmed. Returns the number of lines, -ENOENT if missing. */
  int (*config_lines)(uvs_plugin *p, const char *name, uvs_line_fn cb, void *ud);
  /* The server's name (the `hostname` setting). Borrowed, plugin life. */
  const char *(*me)(const uvs_plugin *p);
  /* Log at a syslog level with the instance name and, if call is not NULL, the
   * session id prepended. Any thread. */
  void (*log)(uvs_plugin *p, const uvs_call *call, int level, const char *fmt, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 4, 5)))
#endif
      ;

  /* -- the call (inside a hook, or from pending_call) -- */
  uvs_hook (*call_hook)(const uvs_call *c);
  /* The hook's argument: the command argument (helo/ehlo host, the MAIL/RCPT
   * argument text, the VRFY/HELP argument, the unrecognized command's rest of line);
   * for deny/ok the previous plugin's name. "" when none. Borrowed. */
  const char *(*call_arg)(const uvs_call *c);
  /* mail/rcpt: the address without <> ("" for the null sender); the unrecognized
   * command's lower-cased verb; for deny/ok the verdict as a decimal string. */
  const char *(*call_address)(const uvs_call *c);
  /* mail/rcpt ESMTP parameter by (case-insensitive) key: the value, "" for a
   * parameter without value, NULL if absent. Borrowed. */
  const char *(*call_param)(const uvs_call *c, const char *key);
  const char *(*session_id)(const uvs_call *c);
  const char *(*peer_ip)(const uvs_call *c);
  int (*peer_port)(const uvs_call *c);
  const char *(*local_ip)(const uvs_call *c);
  int (*local_port)(const uvs_call *c);
  /* HELO/EHLO name, NULL before it; is_esmtp 1 after EHLO. */
  const char *(*helo_name)(const uvs_call *c);
  int (*is_esmtp)(const uvs_call *c);
  /* Transaction: sender (NULL before MAIL, "" for <>), accepted recipients. */
  const char *(*mail_from)(const uvs_call *c);
  int (*rcpt_count)(const uvs_call *c);
  const char *(*rcpt_at)(const uvs_call *c, int i);
  /* 1 if the session is in TLS (after STARTTLS, or on an implicit-TLS listener), else 0.
   * auth_user: the user a successful AUTH authenticated (RFC 4954), NULL before it and
   * inside the auth hook (the user being checked is call_address() there). Servers before
   * 1.4 had no AUTH and always returned NULL. */
  int (*tls_active)(const uvs_call *c);
  const char *(*auth_user)(const uvs_call *c);

  /* -- the message (data_headers_end and later) -- */
  /* Size in bytes of the spooled message as stored (dot-unstuffed, CRLF lines). */
  int64_t (*message_size)(const uvs_call *c);
  /* Read up to len bytes at offset; returns bytes read (0 at end) or -errno. */
  int64_t (*message_read)(const uvs_call *c, int64_t offset, void *buf, size_t len);
  /* The i-th (0-based) header field named `name` (case-insensitive), unfolded,
   * without the name and colon, leading blanks trimmed. NULL if absent. Borrowed. */
  const char *(*header_get)(const uvs_call *c, const char *name, int i);

  /* -- the reply that goes with the verdict -- */
  /* Set the reply: code 0 = the hook's default code for the verdict; enhanced NULL =
   * the default enhanced code; text one line, no CR/LF or other controls, <= 500 bytes
   * (-EINVAL otherwise, as for a code outside 200..599 or an enhanced code whose class
   * differs from the code's). When the hook returns, the code's class must fit the
   * verdict (2 for OK, 5 for DENY*, 4 for DENYSOFT*, any for DONE); a reply that does
   * not fit is logged and the default reply is sent. Replaces earlier text. Copied. */
  int (*reply)(uvs_call *c, int code, const char *enhanced, const char *text);
  /* Append one more line to a multi-line reply. Copied. */
  int (*reply_line)(uvs_call *c, const char *text);
  /* Send NOW one continuation line "220-text" of the greeting that will follow (connect
   * hook only, also from pending_call): Postfix's banner teaser. -EPERM elsewhere. */
  int (*send_continuation)(uvs_call *c, const char *text);

  /* -- notes -- */
  int (*note_set)(uvs_call *c, int scope, const char *key, const char *value);
  const char *(*note_get)(const uvs_call *c, int scope, const char *key);
  int (*note_set_ptr)(uvs_call *c, int scope, const char *key, void *ptr, uvs_free_fn dtor);
  void *(*note_get_ptr)(const uvs_call *c, int scope, const char *key);
  int (*relay_client)(const uvs_call *c);
  int (*set_relay_client)(uvs_call *c, int on);
  /* qpsmtpd's is_immune: relay client, connection note whitelisthost, or transaction
   * note whitelistsender. */
  int (*is_immune)(const uvs_call *c);
  /* Add delta to the connection note "karma"; returns the new total. */
  int (*adjust_karma)(uvs_call *c, int delta);

  /* -- async -- */
  /* Suspend the call: the hook must then return UVS_PENDING. The session interprets no
   * more input until complete() (it buffers it, and notices a client that goes away: see
   * pending_on_cancel). The handle is the plugin's until it calls
   * complete() exactly once, even if the client has gone or the hook timed out. */
  uvs_pending *(*suspend)(uvs_call *c);
  /* Finish a pending call with a verdict and optional reply (code 0 = default).
   * Any thread. Frees the handle; no timer, input or work callback of it runs after
   * this call. -ECANCELED if the session no longer waits (the handle is freed all the
   * same). A pending call keeps its plugin instance alive: fini waits for it, and for
   * run_blocking work of it still running (a work function that called complete() may go on
   * using the instance, e.g. log(), until it returns). May be called inside the hook, before
   * it returns UVS_PENDING: the verdict is applied after the hook returns, never inside it.
   * After complete() the instance itself (log() from any thread) stays valid until its fini
   * returns: a plugin's own threads must be joined in fini (docs/plugins.md, lifetimes). */
  int (*complete)(uvs_pending *p, uvs_verdict v, int code, const char *enhanced,
                  const char *text);
  /* The call behind a pending handle, for loop-thread callbacks (timers, input,
   * blocking-work completions): NULL once the session no longer waits (the client gone,
   * hook timeout, session closed). */
  uvs_call *(*pending_call)(uvs_pending *p);
  /* The next three return 0, or a negative errno and then nothing was started: -EINVAL
   * (NULL handle or callback), -EALREADY (the handle was completed), wait_for_input also
   * -EBUSY (a wait is already running), run_blocking a libuv error from the thread pool.
   * Either way the handle stays the plugin's: it still owes complete().
   * Run cb on the loop after ms milliseconds (once); stopped by complete(). */
  int (*pending_timer)(uvs_pending *p, uint64_t ms, uvs_pending_fn cb, void *ud);
  /* Report whether the client sends anything (or closes) within ms milliseconds:
   * cb(p, UVS_INPUT_*, ud) on the loop, at once if input is already buffered. */
  int (*wait_for_input)(uvs_pending *p, uint64_t ms, uvs_input_fn cb, void *ud);
  /* Run work(ud) on the thread pool, then done(p, ud) on the loop (done may be NULL). */
  int (*run_blocking)(uvs_pending *p, uvs_work_fn work, uvs_pending_fn done, void *ud);

  /* ---- 1.1 ------------------------------------------------------------------- */

  /* The client's reverse DNS name, looked up at connect (bounded in time); NULL if it has
   * none, the lookup failed or lookups are off. Borrowed. */
  const char *(*remote_host)(const uvs_call *c);
  /* Asynchronous DNS through the server's resolver: cb(p, status, count, answers, ud) on
   * the loop within timeout_ms (0 = the server's default). Several may run at once. */
  int (*dns_query)(uvs_pending *p, const char *name, int type, uint64_t timeout_ms,
                   uvs_dns_fn cb, void *ud);
  /* The server's libuv loop (a uv_loop_t *, libuv 1.x), for plugins that do their own
   * network I/O (they link libuv themselves). Loop thread only; never run or close it. */
  void *(*event_loop)(const uvs_plugin *p);
  /* A new read-only file descriptor on the spooled message (data_post, queue): the
   * plugin owns it (close it) and may read it with pread() from any thread, e.g. in
   * run_blocking work. Content as message_read() sees it. -ENOENT before DATA. */
  int (*message_fd)(const uvs_call *c);
  /* config_lines() with the place of each line, for "file:line: message" errors:
   * cb(line, file, lineno, ud), file being the path as the server names it
   * ("<config dir>/relayclients", or an included file as "$include" names it, joined to the
   * including file's directory) and lineno 1-based in that file (comments and blank lines
   * counted). Same lines, order and return values as config_lines(). */
  int (*config_lines_at)(uvs_plugin *p, const char *name, uvs_line_at_fn cb, void *ud);

  /* ---- 1.2 ------------------------------------------------------------------- */

  /* set_error() with a printf format, formatted in full (no length limit) and copied.
   * Returns what set_error() returns: 0, or -EINVAL for a NULL plugin; also -EINVAL if the
   * format cannot be expanded (the message is then the format itself), -ENOMEM if memory ran
   * out (the message is then unchanged). A NULL fmt sets an empty message, as set_error(NULL). */
  int (*set_errorf)(uvs_plugin *p, const char *fmt, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 2, 3)))
#endif
      ;

  /* ---- 1.3 ------------------------------------------------------------------- */

  /* rcpt hook only (also from pending_call): replace the recipient being added by these n
   * addresses (aliases). Each must be an RFC 5321 mailbox, local-part "@" domain, without <>
   * (the core checks it as it checks RCPT TO; non-ASCII only when the recipient itself had
   * it). Takes effect only if this handler's verdict is OK; a later call replaces an earlier
   * one. The core then adds the addresses instead of the RCPT address, dropping duplicates
   * (of each other and of recipients already accepted), and answers 452 4.5.3 if the list
   * would exceed max_recipients. Copied. Returns 0, -EPERM outside the rcpt hook, -EINVAL
   * for n < 1, a NULL or bad address (nothing is recorded then). */
  int (*rcpt_replace)(uvs_call *c, const char *const *addrs, int n);
  /* The session's TLS parameters (any hook, also from pending_call): fills *out (see
   * uvs_tls_info; set out->size first). Returns 0; -ENOENT when the session is not in TLS
   * (*out untouched); -EINVAL for a NULL call or out, or an out->size smaller than the 1.3
   * struct. Strings borrowed until the hook returns. */
  int (*tls_info)(const uvs_call *c, uvs_tls_info *out);

  /* Plugin-level timers (not tied to a call): cb(timer, ud) on the loop after ms
   * milliseconds, then every repeat_ms milliseconds if repeat_ms > 0 (0: once). From init on;
   * loop thread only. A timer never keeps the server running: it does not delay shutdown.
   * Returns the handle, or NULL (a NULL plugin or cb, no event loop, out of memory).
   * The handle is valid until timer_stop() on it, or, for a one-shot timer, until its
   * callback returns. When the instance is retired (shutdown, or a reload once its last
   * session ends), every timer it still has is stopped BEFORE its fini runs; fini may still
   * pass those handles to timer_stop() (0), and must not start new timers. */
  uvs_timer *(*timer_start)(uvs_plugin *p, uint64_t ms, uint64_t repeat_ms, uvs_timer_fn cb,
                            void *ud);
  /* Stop a timer and free its handle: its callback does not run again. Allowed inside that
   * callback (for a one-shot timer that is a no-op). Returns 0; -EINVAL for NULL. */
  int (*timer_stop)(uvs_timer *t);
  /* Set a note from ANY thread (e.g. a worker computing the result) on a pending call's
   * session: copied now, applied on the loop just before the verdict of complete() is
   * applied, in the order set (value NULL deletes the key; a plain note_set() from a
   * loop-thread callback happens earlier, so these win). Dropped if the session no longer
   * waits. Call it before complete(): the handle is gone after. Returns 0; -EINVAL for a
   * NULL handle or key, an empty key or a bad scope; -EALREADY after complete(); -E2BIG
   * beyond 256 notes per call; -ENOMEM. */
  int (*pending_note_set)(uvs_pending *p, int scope, const char *key, const char *value);
  /* Learn that the core let go of a pending call before complete(): the client went away
   * (noticed at once, as the session keeps reading while a call is pending: an EOF or TLS
   * close_notify right after the pending command, or a reset; a half-close behind more
   * commands lets the call finish, and while the plugin watches the input with
   * wait_for_input the EOF goes to its watch instead), the hook timeout answered, or the
   * session closed
   * while the call was pending (e.g. at the end of the shutdown grace). cb(p, ud) runs once,
   * on the loop thread, never after
   * complete() was called and never from inside this call. The handle stays the plugin's:
   * pending_call() returns NULL, timers, input watches (EOF), blocking work and DNS queries
   * still report, and the plugin must still call complete() exactly once (it returns
   * -ECANCELED). A later call replaces cb. Returns 0; -EINVAL for NULL; -EALREADY after
   * complete(); -ECANCELED if the core has already let go (cb is not kept). */
  int (*pending_on_cancel)(uvs_pending *p, uvs_pending_fn cb, void *ud);
  /* log() and set_errorf() with a va_list, for a plugin's own printf-style wrappers. ap is
   * used (as vprintf does); the caller va_end()s it. logv: any thread. */
  void (*logv)(uvs_plugin *p, const uvs_call *call, int level, const char *fmt, va_list ap)
#if defined(__GNUC__)
      __attribute__((format(printf, 4, 0)))
#endif
      ;
  int (*set_errorfv)(uvs_plugin *p, const char *fmt, va_list ap)
#if defined(__GNUC__)
      __attribute__((format(printf, 2, 0)))
#endif
      ;
  /* The hook_timeout setting (milliseconds) of the configuration that loaded this instance:
   * how long a pending call may wait before the core answers 451 4.3.0 (a reload loads new
   * instances with the new value). -EINVAL for NULL. */
  int64_t (*hook_timeout_ms)(const uvs_plugin *p);
  /* Connection-scoped DNS (no suspended call needed): start a lookup through the server's
   * resolver in any hook (also from pending_call) and go on; cb(id, status, count, answers,
   * ud) runs later on the loop, within timeout_ms (0 = the server's default), e.g. while the
   * banner is out and the client talks. So a plugin can ask at connect and read the answer
   * at rcpt, from what cb stored in ud (a connection note_set_ptr() is a good home for it).
   * The lookup belongs to the session: when the session ends first it is cancelled and cb
   * never runs (before the session's notes are freed, so ud may be such a note). Returns the
   * lookup's id (> 0, unique in the process), or -EINVAL (NULL call, name or cb, bad type),
   * -ENOSYS (the server has no resolver), -ECANCELED (the session is ending), -E2BIG (more
   * than 64 lookups of this session open at once). */
  int64_t (*dns_query_conn)(uvs_call *c, const char *name, int type, uint64_t timeout_ms,
                            uvs_dns_conn_fn cb, void *ud);
  /* Cancel a lookup of dns_query_conn() on the call's session: its cb does not run. Returns
   * 0, -EINVAL for a NULL call, -ENOENT if this session has no such open lookup (answered,
   * cancelled already, or another session's). */
  int (*dns_cancel_conn)(uvs_call *c, int64_t id);

  /* Message edits: in the data_headers_end and data_post hooks only (also from pending_call);
   * -EPERM in any other hook, queue included: by then the message is what gets queued. Edits
   * apply at once and in order: message_size(), message_read(), message_fd() and header_get()
   * see them, in this hook and every later one, and so does what the queue plugins store. They
   * change the client's header section only: the Received: field the server prepends stays
   * first and cannot be edited. The spooled body is not rewritten (the edited header section is
   * kept apart and spliced in when the message is read). Names: 1 to 200 printable ASCII
   * characters without ':'. Values (without the name, the colon and the final CRLF; copied):
   * printable ASCII, SP and HTAB, UTF-8 only when the transaction is SMTPUTF8 (RFC 6532); a CR
   * or LF only as folding, CRLF followed by SP or HTAB and more text on that line; no line over
   * 998 bytes. The field is written "Name: value" ("Name:" for ""). The i-th field counts from
   * 0 among the fields with that name (case-insensitive), as header_get() counts, edits
   * included. Each returns 0, or -EINVAL (NULL call or name, bad name or value, i < 0, bad
   * where), -EPERM (wrong hook), -ENOENT (no message, or no i-th field of that name), -E2BIG
   * (the header section is larger than the 256 KiB the server keeps of it), -ENOMEM. */
  int (*header_add)(uvs_call *c, const char *name, const char *value, int where);
  /* Insert a field just before the i-th field named `before`. */
  int (*header_insert)(uvs_call *c, const char *before, int i, const char *name,
                       const char *value);
  /* Delete the i-th field named `name`. */
  int (*header_delete)(uvs_call *c, const char *name, int i);
  /* Replace the i-th field named `name` by "name: value", in its place. */
  int (*header_replace)(uvs_call *c, const char *name, int i, const char *value);
  /* Replace the body (everything after the header section's empty line) with the content of
   * fd from offset 0 to its end (a regular file or memfd, read with pread(): its offset is
   * untouched). Nothing is copied on the loop: the call checks what fstat tells and keeps a
   * duplicate of fd, so the plugin may close fd at once (it must not change the file). It
   * returns -EINVAL, synchronously, for fd < 0, an fd that is not open, not a regular file (a
   * directory, pipe or socket) or opened write-only, and -EFBIG for a file already too large
   * for max_message_size; else the same errors as header_add(), or 0. The body is copied on
   * the thread pool before the next hook that needs the whole message (data_post, queue);
   * there its lines must end in CRLF, with no bare CR or LF, the last one included, and the
   * message must stay within max_message_size. A body that fails then (or cannot be read)
   * ends DATA with 451 4.3.0 and a log line: the message is not accepted. Until the copy,
   * message_read() reads the file where it is. A later call replaces an earlier replacement.
   * Header edits are kept. */
  int (*body_replace_fd)(uvs_call *c, int fd);

  /* ---- 1.4 ------------------------------------------------------------------- */

  /* The auth hook (UVS_HOOK_AUTH) runs when a client has sent its credentials: call_arg() is
   * the SASL mechanism ("PLAIN", "LOGIN"), call_address() the user (authentication identity),
   * call_param(c, "authzid") PLAIN's authorization identity when the client gave one that
   * differs from the user (NULL otherwise), and auth_password() the password. OK: the user
   * is authenticated (235 2.7.0); DENY: 535 5.7.8; DENYSOFT: 454 4.7.0; DECLINED: the next
   * plugin decides, and when none says OK the answer is 535 5.7.8.
   *
   * auth_password: the password, in the auth hook only (also through pending_call() until
   * complete()); NULL in every other hook. Borrowed: the core overwrites it with zeros as
   * soon as the auth hook has its verdict, so copy it (and wipe the copy) if a worker thread
   * needs it. Never log it. */
  const char *(*auth_password)(const uvs_call *c);
  /* The SASL mechanism: in the auth hook the one being tried; after a successful AUTH the
   * one that succeeded ("PLAIN"); NULL otherwise. Borrowed. */
  const char *(*auth_mechanism)(const uvs_call *c);
  /* The open transaction's queue id, from the rcpt hook through the queue hook (NULL in the
   * mail hook, which decides whether there is a transaction, in queue_post and outside a
   * transaction): the id in the
   * server's Received: field and its log lines; a queue plugin that stores the message should
   * name it so. Borrowed until the hook returns. */
  const char *(*queue_id)(const uvs_call *c);

  /* ---- 1.5 ------------------------------------------------------------------- */

  /* Envelope edits, in the data_post hook only (also from pending_call until complete());
   * -EPERM in every other hook. They change what the queue hook and the queue plugins see
   * (mail_from(), rcpt_count(), rcpt_at()), as a milter's end-of-message actions do.
   * mail_from_replace: the new sender, an RFC 5321 path without <> ("" for the null sender),
   * checked as MAIL FROM's address is. rcpt_add: append a recipient (checked as RCPT TO's
   * address; one already present is not added twice: 0); -E2BIG beyond max_recipients.
   * rcpt_delete: remove the recipient equal to addr (local part as written, domain
   * case-insensitive); -ENOENT if there is none. A transaction left with no recipient at the
   * queue hook is not queued: DATA still ends 250 (the message is dropped with a log line), as
   * when a milter deletes every recipient. Each returns 0, or -EINVAL (NULL call or address,
   * a bad address), -EPERM, -ENOMEM. Copied. */
  int (*mail_from_replace)(uvs_call *c, const char *addr);
  int (*rcpt_add)(uvs_call *c, const char *addr);
  int (*rcpt_delete)(uvs_call *c, const char *addr);

  /* Shared state: a key-value store shared by every process of this server, and by every
   * server pointed at the same back end ([state] in uvsmtpd.toml: in-process by default, Redis
   * when configured). Keys are namespaced by the plugin's name (uvs_plugin_info.name, not the
   * instance), so the same plugin on another host sees the same keys. From init on, loop
   * thread only. cb(status, value, len, number, ud) runs later on the loop, never inside the
   * call: status 0 (done; for kv_get the value was found), -ENOENT (kv_get: no such key or it
   * expired), -EINVAL (kv_incr: the value there is not a 64-bit integer, or the sum would
   * overflow; nothing changed), -EIO or -ETIMEDOUT (the back end is unreachable or slow: the
   * plugin applies its own fail-open or fail-closed policy), -ECANCELED (the server is
   * stopping). value/len: kv_get's value (borrowed for the callback, NUL-terminated
   * for convenience; NULL otherwise); number: kv_incr's new value (0 otherwise). A pending
   * operation keeps its instance alive (fini waits for it, as for a pending call). cb may be
   * NULL for kv_set, kv_incr and kv_del. ttl_ms 0 = no expiry. kv_incr adds delta to the
   * integer at key (a missing key counts as 0) and, when it creates the key, sets ttl_ms
   * (a fixed window: later increments keep the first expiry). Each returns 0 (the operation
   * is under way), or -EINVAL (NULL plugin or key, an empty key, a key over 512 bytes or with
   * a control character, a value over 1 MiB, a NULL cb for kv_get), -ENOMEM, -ECANCELED (the
   * instance is being retired: called from its fini, or the server is gone; nothing runs
   * later). */
  int (*kv_get)(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud);
  int (*kv_set)(uvs_plugin *p, const char *key, const char *value, size_t len, uint64_t ttl_ms,
                uvs_kv_fn cb, void *ud);
  int (*kv_incr)(uvs_plugin *p, const char *key, int64_t delta, uint64_t ttl_ms, uvs_kv_fn cb,
                 void *ud);
  int (*kv_del)(uvs_plugin *p, const char *key, uvs_kv_fn cb, void *ud);

  /* ---- 1.6 and later: append below this line only ----------------------------- */
} uvs_api;

/* Does the running server's table have this member? */
#define UVS_API_HAS(api, member) \
  ((api)->size >= offsetof(uvs_api, member) + sizeof((api)->member) && (api)->member != NULL)

typedef struct uvs_plugin_info {
  uint32_t size; /* sizeof(uvs_plugin_info) the plugin was built with */
  uint16_t abi_major;
  uint16_t abi_minor;  /* the oldest server minor it runs on (UVS_PLUGIN_MIN_ABI_MINOR) */
  const char *name;    /* e.g. "earlytalker" */
  const char *version; /* the plugin's own version */
  /* Called once per instance: read arguments, register hooks. 0, or a negative
   * errno after set_error(). */
  int (*init)(uvs_plugin *self, const uvs_api *api);
  /* Optional: called at shutdown or when a reload retires the instance. */
  void (*fini)(uvs_plugin *self);
} uvs_plugin_info;

#if defined(__GNUC__)
#define UVS_EXPORT __attribute__((visibility("default")))
#else
#define UVS_EXPORT
#endif

/* Use once per plugin: UVS_PLUGIN("name", "1.0", my_init, my_fini); it stamps the major of
 * this header and UVS_PLUGIN_MIN_ABI_MINOR. */
#ifdef __cplusplus
#define UVS_PLUGIN(name_, version_, init_, fini_)                                    \
  extern "C" UVS_EXPORT const uvs_plugin_info uvs_plugin_v1;                         \
  extern "C" UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {                      \
      sizeof(uvs_plugin_info), UVS_ABI_MAJOR, UVS_PLUGIN_MIN_ABI_MINOR, (name_),     \
      (version_), (init_), (fini_)}
#else
#define UVS_PLUGIN(name_, version_, init_, fini_)                                    \
  UVS_EXPORT const uvs_plugin_info uvs_plugin_v1 = {                                 \
      sizeof(uvs_plugin_info), UVS_ABI_MAJOR, UVS_PLUGIN_MIN_ABI_MINOR, (name_),     \
      (version_), (init_), (fini_)}
#endif

#ifdef __cplusplus
}
#endif

#endif /* UVSMTPD_PLUGIN_H */
