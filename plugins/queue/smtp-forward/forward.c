/* plugins/queue/smtp-forward/forward.c: the plugin: arguments, the queue hook, logging, fini. */
/*
 * `queue/smtp-forward <host> [port] [key value ...]` relays each accepted message to a smarthost
 * over SMTP (or LMTP) and answers the end of DATA with what the smarthost said. The client runs
 * on the server's loop (fw_client.c, over the shared client library server/smtpc); docs/plugins/queue-smtp-forward.md has the options, the
 * reply mapping and the decisions behind it.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fw.h"

const uvs_api *fw_api;

void fw_conf_unref(fw_conf *cf) {
  if (--cf->refs == 0) free(cf);
}

void fw_log(fw_job *j, int level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  uvs_call *call = j->p ? fw_api->pending_call(j->p) : NULL;
  uvs_plugin *self = j->conf->retired ? NULL : j->conf->self;
  if (call)
    fw_api->log(self, call, level, "%s", msg);
  else
    fw_api->log(self, NULL, level, "%s(session %s) %s", self ? "" : "smtp-forward: ", j->sid, msg);
}

/* An init error: the message for the server (set_errorf, 1.2, printf-checked; the arguments may
 * point into cf, so it is freed after), then -EINVAL. */
#define INIT_ERROR(self, cf, ...) (fw_api->set_errorf((self), __VA_ARGS__), free(cf), -EINVAL)

static int all_digits(const char *s) {
  if (!*s) return 0;
  for (; *s; ++s)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Seconds (fractions allowed) to milliseconds; 0 on a bad value. */
static uint64_t parse_seconds(const char *v) {
  char *end;
  double s = strtod(v, &end);
  if (end == v || *end || !(s > 0) || s > 86400) return 0;
  uint64_t ms = (uint64_t)(s * 1000.0 + 0.5);
  return ms ? ms : 1;
}

static uvs_verdict on_queue(uvs_call *c, void *ud) {
  fw_conf *cf = (fw_conf *)ud;
  const char *from = fw_api->mail_from(c);
  int n = fw_api->rcpt_count(c);
  if (!from || n <= 0) {
    fw_api->log(cf->self, c, UVS_LOG_ERR, "queue hook without an envelope");
    fw_api->reply(c, 451, "4.3.0", "Internal error: no envelope to forward");
    return UVS_DENYSOFT;
  }
  int fd = fw_api->message_fd(c);
  if (fd < 0) {
    fw_api->log(cf->self, c, UVS_LOG_ERR, "cannot open the spooled message: %s", strerror(-fd));
    fw_api->reply(c, 451, "4.3.0", "Temporary failure: cannot read the message, try again later");
    return UVS_DENYSOFT;
  }
  fw_job *j = (fw_job *)calloc(1, sizeof *j);
  char **rcpts = (char **)calloc((size_t)n, sizeof *rcpts);
  char *inbuf = (char *)malloc(FW_CHUNK);
  char *fromcopy = strdup(from);
  int ok = j && rcpts && inbuf && fromcopy;
  for (int i = 0; ok && i < n; ++i) {
    const char *r = fw_api->rcpt_at(c, i);
    ok = r && (rcpts[i] = strdup(r)) != NULL;
  }
  uvs_pending *p = ok ? fw_api->suspend(c) : NULL;
  if (!p) {
    if (rcpts)
      for (int i = 0; i < n; ++i) free(rcpts[i]);
    free(rcpts), free(inbuf), free(fromcopy), free(j);
    close(fd);
    fw_api->log(cf->self, c, UVS_LOG_ERR, "out of memory or cannot suspend the queue hook");
    fw_api->reply(c, 451, "4.3.0", "Temporary failure, try again later");
    return UVS_DENYSOFT;
  }
  j->conf = cf;
  cf->refs++;
  j->p = p;
  snprintf(j->sid, sizeof j->sid, "%s", fw_api->session_id(c));
  j->loop = (uv_loop_t *)fw_api->event_loop(cf->self);
  j->from = fromcopy;
  j->rcpts = rcpts;
  j->nrcpt = n;
  j->size = fw_api->message_size(c);
  j->fd = fd;
  j->inbuf = inbuf;
  j->utf8_addr = fw_has_8bit(from, strlen(from));
  for (int i = 0; i < n; ++i) j->utf8_addr |= fw_has_8bit(rcpts[i], strlen(rcpts[i]));
  fw_job_start(j);
  return UVS_PENDING;
}

static int init(uvs_plugin *self, const uvs_api *api) {
  fw_api = api;
  if (!UVS_API_HAS(api, event_loop) || !UVS_API_HAS(api, message_fd) ||
      !UVS_API_HAS(api, set_errorf)) {
    api->set_error(self, "needs uvsmtpd ABI 1.2 (event_loop, message_fd, set_errorf)");
    return -ENOSYS;
  }
  fw_conf *cf = (fw_conf *)calloc(1, sizeof *cf);
  if (!cf) return -ENOMEM;
  cf->refs = 1;
  cf->self = self;
  cf->connect_ms = 10000;
  cf->cmd_ms = 25000;
  cf->data_ms = 0; /* = cmd_ms unless set */
  int argc = api->plugin_argc(self);
  if (argc < 1) return INIT_ERROR(self, cf, "usage: queue/smtp-forward <host> [port] [key value ...]");
  const char *host = api->plugin_argv(self, 0);
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    host++;
    hl -= 2;
  }
  if (hl == 0 || hl >= sizeof cf->host) return INIT_ERROR(self, cf, "bad smarthost '%s'", host);
  memcpy(cf->host, host, hl);
  cf->host[hl] = 0;
  for (size_t i = 0; i < hl; ++i)
    if ((unsigned char)cf->host[i] <= ' ' || (unsigned char)cf->host[i] >= 0x7f)
      return INIT_ERROR(self, cf, "bad smarthost '%s'", host);
  int i = 1, port = 0;
  if (i < argc && all_digits(api->plugin_argv(self, i))) {
    port = atoi(api->plugin_argv(self, i));
    if (port < 1 || port > 65535)
      return INIT_ERROR(self, cf, "port must be 1..65535, got '%s'", api->plugin_argv(self, i));
    i++;
  }
  const char *helo = NULL;
  for (; i < argc; i += 2) {
    const char *k = api->plugin_argv(self, i);
    if (i + 1 >= argc) return INIT_ERROR(self, cf, "option '%s' needs a value", k);
    const char *v = api->plugin_argv(self, i + 1);
    if (strcmp(k, "timeout") == 0 || strcmp(k, "connect_timeout") == 0 ||
        strcmp(k, "data_timeout") == 0) {
      uint64_t ms = parse_seconds(v);
      if (!ms) return INIT_ERROR(self, cf, "%s must be a number of seconds > 0 and <= 86400, got '%s'", k, v);
      if (k[0] == 't') cf->cmd_ms = ms;
      else if (k[0] == 'c') cf->connect_ms = ms;
      else cf->data_ms = ms;
    } else if (strcmp(k, "lmtp") == 0) {
      if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return INIT_ERROR(self, cf, "lmtp must be 0 or 1, got '%s'", v);
      cf->lmtp = v[0] == '1';
    } else if (strcmp(k, "helo") == 0) {
      helo = v;
    } else {
      return INIT_ERROR(self, cf, "unknown option '%s' (known: timeout connect_timeout data_timeout lmtp helo)", k);
    }
  }
  if (!cf->data_ms) cf->data_ms = cf->cmd_ms;
  cf->port = port ? port : cf->lmtp ? 24 : 25;
  if (!helo) helo = api->me(self);
  if (!helo || !*helo || strlen(helo) >= sizeof cf->helo || strpbrk(helo, " \t\r\n"))
    return INIT_ERROR(self, cf, "bad helo name '%s'", helo ? helo : "");
  snprintf(cf->helo, sizeof cf->helo, "%s", helo);
  unsigned char tmp[16];
  int v6 = inet_pton(AF_INET6, cf->host, tmp) == 1;
  cf->numeric = v6 || inet_pton(AF_INET, cf->host, tmp) == 1;
  snprintf(cf->label, sizeof cf->label, v6 ? "[%s]:%d" : "%s:%d", cf->host, cf->port);
  api->plugin_set_data(self, cf);
  int rc = api->register_hook(self, UVS_HOOK_QUEUE, on_queue, cf);
  if (rc < 0) {
    api->set_error(self, "cannot register the queue hook");
    free(cf);
    return rc;
  }
  api->log(self, NULL, UVS_LOG_DEBUG, "forwarding to %s over %s (connect %.1fs, commands %.1fs, end of data %.1fs)",
           cf->label, cf->lmtp ? "LMTP" : "SMTP", (double)cf->connect_ms / 1000, (double)cf->cmd_ms / 1000,
           (double)cf->data_ms / 1000);
  return 0;
}

static void fini(uvs_plugin *self) {
  fw_conf *cf = (fw_conf *)fw_api->plugin_data(self);
  if (!cf) return;
  cf->retired = 1;
  cf->self = NULL;
  fw_conf_unref(cf);
}

UVS_PLUGIN("smtp-forward", "1.0", init, fini);
