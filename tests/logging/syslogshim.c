/* tests/logging/syslogshim.c: LD_PRELOAD stand-in for the C library's syslog client, so the
 * logging suite checks what uvsmtpd hands to syslog without a system syslog daemon.
 *
 * openlog/syslog/vsyslog (and glibc's fortified __syslog_chk/__vsyslog_chk) append one record
 * per call to the file named by SYSLOGSHIM_FILE (one write(2) with O_APPEND):
 *   openlog ident=<ident> option=<n> facility=<n>
 *   syslog pri=<n> facility=<n from openlog> msg=<formatted message>
 * closelog appends "closelog". Nothing is sent to /dev/log.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static char g_ident[64];
static int g_option, g_facility;

static void record(const char *text) {
  const char *path = getenv("SYSLOGSHIM_FILE");
  if (!path || !*path) return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  (void)w;
  close(fd);
}

EXPORT void openlog(const char *ident, int option, int facility) {
  snprintf(g_ident, sizeof g_ident, "%s", ident ? ident : "");
  g_option = option;
  g_facility = facility;
  char buf[160];
  snprintf(buf, sizeof buf, "openlog ident=%s option=%d facility=%d\n", g_ident, option, facility);
  record(buf);
}

EXPORT void closelog(void) {
  record("closelog\n");
}

EXPORT void vsyslog(int pri, const char *fmt, va_list ap) {
  char msg[16384];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t cap = strlen(msg) + 64;
  char *line = malloc(cap);
  if (!line) return;
  snprintf(line, cap, "syslog pri=%d facility=%d msg=%s\n", pri, g_facility, msg);
  record(line);
  free(line);
}

EXPORT void syslog(int pri, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsyslog(pri, fmt, ap);
  va_end(ap);
}

EXPORT void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) {
  (void)flag;
  vsyslog(pri, fmt, ap);
}

EXPORT void __syslog_chk(int pri, int flag, const char *fmt, ...) {
  (void)flag;
  va_list ap;
  va_start(ap, fmt);
  vsyslog(pri, fmt, ap);
  va_end(ap);
}
