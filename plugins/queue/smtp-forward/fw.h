/* plugins/queue/smtp-forward/fw.h: the plugin's shared types: configuration and forwarding job. */
#ifndef FW_H
#define FW_H

#include <stdint.h>
#include <uv.h>

#include "smtpc.h"
#include "uvsmtpd/plugin.h"

#define FW_MAX_ADDRS 8
#define FW_CHUNK 65536

extern const uvs_api *fw_api;

/* One conf/plugins line. Jobs hold a reference: a reload may retire the instance (fini) while a
 * job still talks to the smarthost; the job then keeps the configuration but not the plugin. */
typedef struct fw_conf {
  int refs;
  int retired;      /* fini ran: `self` is gone */
  uvs_plugin *self;
  char host[256];   /* as configured, brackets removed */
  char label[280];  /* "host:port" / "[v6]:port", for texts */
  int port;
  int numeric;      /* host is an IP literal */
  int lmtp;
  char helo[256];
  uint64_t connect_ms, cmd_ms, data_ms;
} fw_conf;

/* Replies per recipient, folded into what the upstream verdict needs. */
typedef struct fw_tally {
  int ok, soft, hard, bad;
  int soft_i, hard_i, bad_i; /* first recipient with such a reply */
  smtpc_reply first_soft, first_hard, first_bad;
} fw_tally;

typedef struct fw_job {
  struct fw_job *next, *prev; /* live jobs (the client-input callback looks its job up) */
  uint64_t serial;
  fw_conf *conf;
  uvs_pending *p; /* NULL once complete() was called */
  char sid[64];   /* session id, for log lines after the session is gone */
  uv_loop_t *loop;

  /* envelope and message, copied in the queue hook */
  char *from;
  char **rcpts;
  int nrcpt;
  int64_t size;
  uv_file fd;
  int utf8_addr;
  int has_8bit;

  /* libuv: the name lookup, the 8-bit scan of the message, the upstream watch */
  uv_timer_t timer;   /* the lookup/scan timeout, and the watch for the upstream going away */
  uv_getaddrinfo_t gai;
  uv_fs_t fsreq;
  int handles;        /* open handles (the timer), each with its close callback due */
  int gai_active, fs_active;
  int resolving, scanning;
  int64_t off;
  char *inbuf;

  struct sockaddr_storage addrs[FW_MAX_ADDRS];
  int naddr;

  smtpc_conn *sc;     /* the smarthost connection (server/smtpc), NULL when none */
  int client_gone;    /* the upstream client closed or the core stopped waiting */
  int decided;        /* the upstream verdict is given */
  int finished;       /* no more work: freed once the handles are closed */
  fw_tally t;
} fw_job;

/* forward.c */
void fw_log(fw_job *j, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void fw_conf_unref(fw_conf *cf);

/* fw_client.c: takes over a job whose envelope and fd are filled and whose call is suspended
 * (j->p); answers through complete() exactly once and frees the job itself. */
int fw_has_8bit(const char *s, size_t n);
void fw_job_start(fw_job *j);

#endif
