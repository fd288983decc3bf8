/* tests/plugins/edit_probe.c: a test plugin for the message edits of ABI 1.3 (header_add,
 * header_insert, header_delete, header_replace, body_replace_fd), asserted by
 * tests/integration/test_plugin_host.cpp ("message edits").
 *
 * Every result is a NOTICE log line "edit_probe: <what>". Argument "keepbody": no body
 * replacement (headers-only edits); "noread": keepbody, and data_post does not read the
 * message (message_fd is first called by the queue plugin); "bigbody": like noread, but the
 * body is replaced by 20000 lines "big body line NNNNN" plus 40 'z's (memfd, about 1.2 MB);
 * "bodyfile=PATH": like noread, but the body is replaced by the file PATH (opened, handed over
 * and closed at once: "post bodyfile=RC"); "barelf": like noread, the body is "bare\nLF\r\n"
 * (accepted by body_replace_fd, refused when the server copies it); "readerr": like noread, the
 * body is /proc/self/mem (a regular file for fstat whose first read fails with EIO).
 *   data_headers_end  adds "X-Test: 1" at the top and "X-Folded: one\r\n two" at the bottom;
 *                     logs "hde add=RC fold=RC get=V" and the refusals:
 *                     "hde einval name=RC crlf=RC lf=RC cr=RC ctl=RC where=RC blankfold=RC
 *                     8bit=RC i=RC enoent=RC"
 *   data_post         adds "Authentication-Results: mx.test.invalid; none" at the top, deletes
 *                     the first X-Remove, replaces the first Subject, inserts "X-Before-To: yes"
 *                     before the first To, replaces the body with "new body\r\nline 2\r\n"
 *                     (from a memfd), tries a directory as the body; logs "post ar=RC del=RC
 *                     rep=RC ins=RC body=RC badbody=RC subject=V removed=V", the refused
 *                     descriptors "post badfd neg=RC closed=RC pipe=RC wronly=RC" and "post
 *                     size=N read=N fd=N same=0|1"
 *   queue             logs "queue add=RC del=RC body=RC" (all -EPERM), then DECLINED
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uvsmtpd/plugin.h"

static const uvs_api *api;

static const char *str(const char *s) { return s ? s : "(null)"; }

static int memfd_with(const char *text) {
  int fd = memfd_create("edit_probe", MFD_CLOEXEC);
  if (fd < 0) return -errno;
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n) {
    close(fd);
    return -EIO;
  }
  return fd;
}

static uvs_verdict on_headers_end(uvs_call *c, void *ud) {
  uvs_plugin *self = (uvs_plugin *)ud;
  int add = api->header_add(c, "X-Test", "1", UVS_HEADER_TOP);
  int fold = api->header_add(c, "X-Folded", "one\r\n two", UVS_HEADER_BOTTOM);
  api->log(self, c, UVS_LOG_NOTICE, "hde add=%d fold=%d get=%s", add, fold,
           str(api->header_get(c, "X-Test", 0)));
  api->log(self, c, UVS_LOG_NOTICE,
           "hde einval name=%d crlf=%d lf=%d cr=%d ctl=%d where=%d blankfold=%d 8bit=%d i=%d "
           "enoent=%d",
           api->header_add(c, "Bad Name", "v", UVS_HEADER_TOP),
           api->header_add(c, "X-Inj", "a\r\nBcc: victim@example.com", UVS_HEADER_TOP),
           api->header_add(c, "X-Inj", "a\nb", UVS_HEADER_TOP),
           api->header_add(c, "X-Inj", "a\rb", UVS_HEADER_TOP),
           api->header_add(c, "X-Inj", "a\001b", UVS_HEADER_TOP),
           api->header_add(c, "X-Inj", "a", 7),
           api->header_add(c, "X-Inj", "a\r\n ", UVS_HEADER_TOP),
           api->header_add(c, "X-Inj", "caf\xc3\xa9", UVS_HEADER_TOP),
           api->header_delete(c, "X-Test", -1),
           api->header_delete(c, "X-Nowhere", 0));
  return UVS_DECLINED;
}

static uvs_verdict on_data_post(uvs_call *c, void *ud) {
  uvs_plugin *self = (uvs_plugin *)ud;
  const char *mode = api->plugin_argv(self, 0);
  int bigbody = mode && strcmp(mode, "bigbody") == 0;
  int special = mode && (strncmp(mode, "bodyfile=", 9) == 0 || strcmp(mode, "barelf") == 0 ||
                         strcmp(mode, "readerr") == 0);
  int noread = bigbody || special || (mode && strcmp(mode, "noread") == 0);
  int keep = noread || (mode && strcmp(mode, "keepbody") == 0);
  int ar = api->header_add(c, "Authentication-Results", "mx.test.invalid; none", UVS_HEADER_TOP);
  int del = api->header_delete(c, "X-Remove", 0);
  int rep = api->header_replace(c, "Subject", 0, "edited subject");
  int ins = api->header_insert(c, "To", 0, "X-Before-To", "yes");
  int body = 0, badbody = 0;
  if (!keep) {
    int fd = memfd_with("new body\r\nline 2\r\n");
    body = fd < 0 ? fd : api->body_replace_fd(c, fd);
    if (fd >= 0) close(fd);
    fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    badbody = fd < 0 ? -errno : api->body_replace_fd(c, fd);
    if (fd >= 0) close(fd);
    /* what fstat/fcntl can tell is refused at once, with -EINVAL */
    int pipefd[2] = {-1, -1}, wronly = -1, mfd = memfd_with("x\r\n");
    if (pipe(pipefd) == 0 && write(pipefd[1], "x\r\n", 3) < 0) pipefd[0] = -1;
    if (mfd >= 0) { /* the same regular file, opened write-only */
      char path[64];
      snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
      wronly = open(path, O_WRONLY | O_CLOEXEC);
      close(mfd);
    }
    api->log(self, c, UVS_LOG_NOTICE, "post badfd neg=%d closed=%d pipe=%d wronly=%d",
             api->body_replace_fd(c, -1), api->body_replace_fd(c, 999999 /* not open */),
             api->body_replace_fd(c, pipefd[0]), api->body_replace_fd(c, wronly));
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    if (wronly >= 0) close(wronly);
  }
  if (special) {
    int fd = mode[0] == 'b' && mode[1] == 'o' ? open(mode + 9, O_RDONLY | O_CLOEXEC)
             : mode[0] == 'b'                 ? memfd_with("bare\nLF\r\n")
                                              : open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : api->body_replace_fd(c, fd);
    if (fd >= 0) close(fd); /* the server keeps its own duplicate */
    api->log(self, c, UVS_LOG_NOTICE, "post bodyfile=%d", rc);
    return UVS_DECLINED;
  }
  /* both strings are lent until the hook returns: the second header_get must not reuse the
   * first one's buffer */
  const char *subject = str(api->header_get(c, "Subject", 0));
  api->log(self, c, UVS_LOG_NOTICE,
           "post ar=%d del=%d rep=%d ins=%d body=%d badbody=%d subject=%s removed=%s", ar, del,
           rep, ins, body, badbody, subject, str(api->header_get(c, "X-Remove", 0)));
  if (bigbody) {
    int fd = memfd_create("edit_probe", MFD_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    char line[80];
    for (int i = 0; rc == 0 && i < 20000; ++i) {
      int n = snprintf(line, sizeof line, "big body line %05d %s\r\n", i,
                       "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
      if (write(fd, line, (size_t)n) != n) rc = -EIO;
    }
    if (rc == 0) rc = api->body_replace_fd(c, fd);
    if (fd >= 0) close(fd);
    api->log(self, c, UVS_LOG_NOTICE, "post bigbody=%d", rc);
  }
  if (noread) return UVS_DECLINED;
  /* the whole message, through message_read and through message_fd: the same bytes */
  int64_t size = api->message_size(c);
  char *a = malloc((size_t)size + 1), *b = malloc((size_t)size + 1);
  int64_t got = 0, fgot = 0;
  int same = 0;
  if (a && b) {
    for (;;) {
      int64_t n = api->message_read(c, got, a + got, (size_t)(size - got) + 1);
      if (n <= 0) break;
      got += n;
    }
    int fd = api->message_fd(c);
    if (fd >= 0) {
      for (;;) {
        ssize_t n = pread(fd, b + fgot, (size_t)(size - fgot) + 1, fgot);
        if (n <= 0) break;
        fgot += n;
      }
      close(fd);
    }
    same = got == fgot && memcmp(a, b, (size_t)got) == 0;
  }
  api->log(self, c, UVS_LOG_NOTICE, "post size=%lld read=%lld fd=%lld same=%d", (long long)size,
           (long long)got, (long long)fgot, same);
  free(a);
  free(b);
  return UVS_DECLINED;
}

static uvs_verdict on_queue(uvs_call *c, void *ud) {
  uvs_plugin *self = (uvs_plugin *)ud;
  int fd = memfd_with("x\r\n");
  api->log(self, c, UVS_LOG_NOTICE, "queue add=%d del=%d body=%d",
           api->header_add(c, "X-Late", "1", UVS_HEADER_TOP), api->header_delete(c, "To", 0),
           api->body_replace_fd(c, fd));
  if (fd >= 0) close(fd);
  return UVS_DECLINED;
}

static int init(uvs_plugin *self, const uvs_api *a) {
  api = a;
  if (!UVS_API_HAS(a, body_replace_fd)) {
    a->set_error(self, "needs the message edits (uvsmtpd plugin ABI 1.3)");
    return -ENOSYS;
  }
  a->register_hook(self, UVS_HOOK_DATA_HEADERS_END, on_headers_end, self);
  a->register_hook(self, UVS_HOOK_DATA_POST, on_data_post, self);
  a->register_hook(self, UVS_HOOK_QUEUE, on_queue, self);
  return 0;
}

UVS_PLUGIN("edit_probe", "1.0", init, NULL);
