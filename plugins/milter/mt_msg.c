/* plugins/milter/mt_msg.c: the data_post conversation with a milter: the message's header fields
 * (each one), end of header, the body in chunks of at most 64 KiB, end of message; then the
 * milter's end-of-message edits (header fields, body, sender, recipients), quarantine and
 * discard, applied through the server's edit calls. */
/*
 * As Postfix does, the milter does not see the Received: field the server prepends: header
 * events start with the client's first field, SMFIR_CHGHEADER indexes count the client's fields,
 * and SMFIR_INSHEADER positions count the server's field as position 0 (a field cannot go above
 * it: index 0 inserts at the top of the client's fields). Values go out in Sendmail's form: one
 * space after the colon eaten (unless the milter asked for SMFIP_HDR_LEADSPC), folded lines
 * joined with a bare LF. The message is read from message_fd() on the thread pool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mt.h"

#define api mt_api

#define MAX_HEADER_SECTION (1024 * 1024)

void mt_msg_clear(mt_op *op) {
  if (op->fd >= 0) close(op->fd);
  op->fd = -1;
  if (op->body_fd >= 0) close(op->body_fd);
  op->body_fd = -1;
  for (int i = 0; i < op->nhdrs; i++) {
    free(op->hdrs[i].name);
    free(op->hdrs[i].value);
  }
  free(op->hdrs);
  op->hdrs = NULL;
  op->nhdrs = op->hdr_i = 0;
  for (int i = 0; i < op->nnames; i++) free(op->names[i]);
  free(op->names);
  op->names = NULL;
  op->nnames = 0;
  free(op->chunk);
  op->chunk = NULL;
  op->chunk_len = 0;
  op->phase = PH_HEADERS;
  op->off = op->size = 0;
  op->body_cr = op->edit_err = 0;
}

/* ---- reading (thread pool) ------------------------------------------------------------- */

/* Reads the header section: up to the empty line (included), at most MAX_HEADER_SECTION. */
static void read_header_work(void *ud) {
  mt_op *op = &((mt_sess *)ud)->op;
  size_t cap = 65536, len = 0;
  char *b = malloc(cap + 1);
  op->chunk_err = 0;
  if (!b) {
    op->chunk_err = ENOMEM;
    return;
  }
  for (;;) {
    if (cap - len < 16384) {
      if (cap >= MAX_HEADER_SECTION) break;
      char *nb = realloc(b, cap * 2 + 1);
      if (!nb) {
        op->chunk_err = ENOMEM;
        break;
      }
      b = nb;
      cap *= 2;
    }
    ssize_t n = pread(op->fd, b + len, cap - len, (off_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      op->chunk_err = errno;
      break;
    }
    if (n == 0) break;
    size_t from = len >= 3 ? len - 3 : 0;
    len += (size_t)n;
    b[len] = '\0';
    if (memmem(b + from, len - from, "\r\n\r\n", 4) || (len >= 2 && b[0] == '\r' && b[1] == '\n'))
      break;
  }
  op->chunk = b;
  op->chunk_len = (long)len;
}

static void read_body_work(void *ud) {
  mt_op *op = &((mt_sess *)ud)->op;
  op->chunk_err = 0;
  if (!op->chunk) op->chunk = malloc(MT_CHUNK);
  if (!op->chunk) {
    op->chunk_err = ENOMEM;
    return;
  }
  for (;;) {
    ssize_t n = pread(op->fd, op->chunk, MT_CHUNK, (off_t)op->off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) op->chunk_err = errno;
    op->chunk_len = n < 0 ? 0 : (long)n;
    return;
  }
}

/* ---- header parsing -------------------------------------------------------------------- */

static int add_hdr(mt_op *op, const char *name, size_t nl, const char *val, size_t vl,
                   int leadspc) {
  mt_hdr *h = realloc(op->hdrs, sizeof *h * (size_t)(op->nhdrs + 1));
  if (!h) return -1;
  op->hdrs = h;
  while (nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t')) nl--;
  if (!leadspc && vl > 0 && val[0] == ' ') val++, vl--;
  char *v = malloc(vl + 1);
  char *n = strndup(name, nl);
  if (!v || !n) {
    free(v);
    free(n);
    return -1;
  }
  size_t o = 0;
  for (size_t i = 0; i < vl; i++) {
    if (val[i] == '\r' && i + 1 < vl && val[i + 1] == '\n') continue; /* folding: CRLF -> LF */
    v[o++] = val[i];
  }
  v[o] = '\0';
  op->hdrs[op->nhdrs].name = n;
  op->hdrs[op->nhdrs].value = v;
  op->nhdrs++;
  return 0;
}

/* Splits the header section into fields; returns the body's offset, or -1 (out of memory). The
 * first field is the server's Received: (kept out of the milter's view). */
static int64_t parse_headers(mt_sess *s, const char *b, size_t len) {
  mt_op *op = &s->op;
  int leadspc = (s->protocol & SMFIP_HDR_LEADSPC) != 0;
  size_t pos = 0;
  int first = 1;
  while (pos < len) {
    if (b[pos] == '\r' && pos + 1 < len && b[pos + 1] == '\n')
      return (int64_t)pos + 2; /* empty line */
    /* a field: name ':' value, continued by lines that start with SP or HTAB */
    const char *colon = memchr(b + pos, ':', len - pos);
    const char *eol = memmem(b + pos, len - pos, "\r\n", 2);
    if (!colon || (eol && colon > eol)) return (int64_t)pos; /* not a field: the body starts */
    size_t end = eol ? (size_t)(eol - b) + 2 : len;
    while (end < len && (b[end] == ' ' || b[end] == '\t')) {
      const char *e2 = memmem(b + end, len - end, "\r\n", 2);
      end = e2 ? (size_t)(e2 - b) + 2 : len;
    }
    size_t vstart = (size_t)(colon - b) + 1;
    size_t vend = end >= 2 && b[end - 2] == '\r' && b[end - 1] == '\n' ? end - 2 : end;
    if (first && (size_t)(colon - (b + pos)) == 8 && strncasecmp(b + pos, "Received", 8) == 0) {
      first = 0;
      pos = end;
      continue;
    }
    first = 0;
    if (add_hdr(op, b + pos, (size_t)(colon - (b + pos)), b + vstart, vend - vstart, leadspc) < 0)
      return -1;
    pos = end;
  }
  return (int64_t)len;
}

/* ---- the conversation ------------------------------------------------------------------ */

static void step(mt_sess *s);

/* Ends the op with 451 4.3.0 (the message cannot be read, or memory ran out). */
static void tempfail(mt_sess *s) {
  mt_sess_complete_reply(s, UVS_DENYSOFT, 451, "4.3.0",
                         "Temporary failure, please try again later");
}

/* Starts a read of the message on the thread pool (done follows on the loop); if it cannot
 * start, logs why (for call c) and ends the op with 451. */
static void start_read(mt_sess *s, uvs_call *c, uvs_work_fn work, uvs_pending_fn done) {
  s->op.work = 1;
  int rc = api->run_blocking(s->op.p, work, done, s);
  if (rc < 0) {
    s->op.work = 0;
    api->log(s->cf->self, c, UVS_LOG_ERR, "milter %s: cannot start reading the message: %s",
             s->cf->spec, strerror(-rc));
    tempfail(s);
  }
}

/* The start of a read's done callback: 1 when the op has ended meanwhile (cancelled: 451, or
 * the read failed: logged, 451), 0 to go on with what was read. */
static int read_ended(mt_sess *s) {
  s->op.work = 0;
  if (s->op.cancelled) {
    mt_sess_complete(s, UVS_DENYSOFT);
    return 1;
  }
  if (s->op.chunk_err) {
    api->log(s->cf->self, api->pending_call(s->op.p), UVS_LOG_ERR,
             "milter %s: cannot read the message: %s", s->cf->spec, strerror(s->op.chunk_err));
    tempfail(s);
    return 1;
  }
  return 0;
}

static void complete_discard(mt_sess *s) {
  uvs_call *c = api->pending_call(s->op.p);
  if (c) {
    const char *qid = api->queue_id(c);
    char text[160];
    snprintf(text, sizeof text, "Queued as %s", qid ? qid : "");
    api->reply(c, 250, "2.0.0", text);
    api->log(s->cf->self, c, UVS_LOG_NOTICE, "milter %s: message discarded", s->cf->spec);
  }
  mt_sess_complete(s, UVS_DONE);
}

static void body_read_done(uvs_pending *p, void *ud) {
  mt_sess *s = ud;
  (void)p;
  if (read_ended(s)) return;
  if (s->state != MT_ENVELOPE || !s->conn) { /* failed meanwhile */
    mt_sess_finish(s, MT_R_FAIL);
    return;
  }
  if (s->op.chunk_len == 0) {
    s->op.phase = PH_EOB;
    step(s);
    return;
  }
  uvs_call *c = api->pending_call(s->op.p);
  mt_buf d = {0};
  d.data = s->op.chunk;
  d.len = (size_t)s->op.chunk_len;
  s->op.off += s->op.chunk_len;
  int rc = mt_sess_event(s, c, -1, SMFIC_BODY, &d, SMFIP_NOBODY, SMFIP_NR_BODY, s->cf->content_ms);
  if (rc < 0) {
    mt_sess_finish(s, MT_R_FAIL);
    return;
  }
  if (rc == 0) step(s); /* no reply awaited: the next chunk */
}

static void start_body_read(mt_sess *s) {
  start_read(s, api->pending_call(s->op.p), read_body_work, body_read_done);
}

/* Sends what comes next until a reply is awaited (or blocking work runs, or the op ends). */
static void step(mt_sess *s) {
  mt_op *op = &s->op;
  uvs_call *c = api->pending_call(op->p);
  if (!c) return; /* cancelled: the cancel callback ends the op */
  for (;;) {
    int rc = 0;
    switch (op->phase) {
      case PH_HEADERS:
        if (op->hdr_i >= op->nhdrs) {
          op->phase = PH_EOH;
          continue;
        } else {
          mt_hdr *h = &op->hdrs[op->hdr_i++];
          mt_buf d = {0};
          if (mt_pkt_str(&d, h->name) < 0 || mt_pkt_str(&d, h->value) < 0) {
            mt_buf_free(&d);
            mt_sess_fail(s, "out of memory");
            rc = -1;
            break;
          }
          rc = mt_sess_event(s, c, -1, SMFIC_HEADER, &d, SMFIP_NOHDRS, SMFIP_NR_HDR,
                             s->cf->content_ms);
          mt_buf_free(&d);
        }
        break;
      case PH_EOH:
        op->phase = PH_BODY;
        rc = mt_sess_event(s, c, SMFIM_EOH, SMFIC_EOH, NULL, SMFIP_NOEOH, SMFIP_NR_EOH,
                           s->cf->content_ms);
        break;
      case PH_BODY:
        if ((s->protocol & SMFIP_NOBODY) || s->skip_event == SMFIC_BODY || op->off >= op->size) {
          op->phase = PH_EOB;
          continue;
        }
        start_body_read(s);
        return;
      case PH_EOB:
        op->phase = PH_DONE;
        rc = mt_sess_event(s, c, SMFIM_EOM, SMFIC_BODYEOB, NULL, 0, 0, s->cf->content_ms);
        if (rc == 0) rc = -1; /* the end of message always has a reply */
        break;
      case PH_DONE:
        return;
    }
    if (rc < 0) {
      mt_sess_finish(s, MT_R_FAIL);
      return;
    }
    if (rc == 1) return; /* mt_msg_result follows */
  }
}

static void header_read_done(uvs_pending *p, void *ud) {
  mt_sess *s = ud;
  (void)p;
  if (read_ended(s)) return;
  int64_t body = parse_headers(s, s->op.chunk, (size_t)s->op.chunk_len);
  free(s->op.chunk);
  s->op.chunk = NULL;
  s->op.chunk_len = 0;
  if (body < 0) {
    tempfail(s);
    return;
  }
  s->op.off = body;
  api->log(s->cf->self, api->pending_call(s->op.p), UVS_LOG_DEBUG,
           "milter %s: %d header fields, body at %lld of %lld bytes", s->cf->spec, s->op.nhdrs,
           (long long)body, (long long)s->op.size);
  /* the names of the client's fields, for SMFIR_INSHEADER positions */
  s->op.names = calloc((size_t)s->op.nhdrs + 1, sizeof *s->op.names);
  if (!s->op.names) {
    tempfail(s);
    return;
  }
  for (int i = 0; i < s->op.nhdrs; i++) {
    s->op.names[i] = strdup(s->op.hdrs[i].name);
    if (!s->op.names[i]) {
      tempfail(s);
      return;
    }
    s->op.nnames++;
  }
  if (s->state != MT_ENVELOPE || !s->conn) {
    mt_sess_finish(s, MT_R_FAIL);
    return;
  }
  step(s);
}

void mt_msg_start(mt_sess *s, uvs_call *c) {
  mt_op *op = &s->op;
  op->message = 1;
  op->phase = PH_HEADERS;
  op->size = api->message_size(c);
  op->fd = api->message_fd(c);
  if (op->fd < 0 || op->size < 0) {
    api->log(s->cf->self, c, UVS_LOG_ERR, "milter %s: cannot open the message: %s", s->cf->spec,
             strerror(op->fd < 0 ? -op->fd : EIO));
    tempfail(s);
    return;
  }
  start_read(s, c, read_header_work, header_read_done);
}

/* The end of message's decision, with the edits collected: the body replacement and quarantine
 * are applied now (header and envelope edits were applied as they came). */
static void final(mt_sess *s, mt_result r) {
  mt_op *op = &s->op;
  uvs_call *c = api->pending_call(op->p);
  if (!c) return;
  int ok = r == MT_R_CONTINUE || r == MT_R_ACCEPT || r == MT_R_SKIP || r == MT_R_DISCARD;
  if (ok && op->body_fd >= 0) {
    if (op->body_cr && write(op->body_fd, "\r\n", 2) != 2) op->edit_err = 1; /* a final lone CR */
    op->body_cr = 0;
    off_t end = lseek(op->body_fd, 0, SEEK_END);
    if (end > 0) {
      char last[2] = {0, 0};
      if (pread(op->body_fd, last, 2, end - 2) == 2 && !(last[0] == '\r' && last[1] == '\n'))
        if (write(op->body_fd, "\r\n", 2) != 2) op->edit_err = 1;
    }
    int rc = api->body_replace_fd(c, op->body_fd);
    if (rc < 0) {
      api->log(s->cf->self, c, UVS_LOG_WARNING, "milter %s: cannot replace the body: %s",
               s->cf->spec, strerror(-rc));
      op->edit_err = 1;
    }
  }
  if (ok && s->quarantine) {
    api->note_set(c, UVS_NOTE_TRANSACTION, "quarantine", s->quarantine);
    api->log(s->cf->self, c, UVS_LOG_NOTICE, "milter %s: quarantine: %s", s->cf->spec,
             s->quarantine);
  }
  if (ok && op->edit_err) {
    api->log(s->cf->self, c, UVS_LOG_WARNING,
             "milter %s: the milter's changes could not all be made; answering 451", s->cf->spec);
    tempfail(s);
    return;
  }
  if (r == MT_R_DISCARD || (ok && s->discard)) {
    complete_discard(s);
    return;
  }
  mt_sess_finish(s, r);
}

void mt_msg_result(mt_sess *s, mt_result r) {
  mt_op *op = &s->op;
  if (op->phase == PH_DONE) { /* the reply to the end of message */
    final(s, r);
    return;
  }
  switch (r) {
    case MT_R_CONTINUE:
      step(s);
      return;
    case MT_R_SKIP:
      if (op->phase == PH_BODY) op->phase = PH_EOB; /* skip the rest of the body */
      step(s);
      return;
    case MT_R_DISCARD:
      complete_discard(s);
      return;
    case MT_R_ACCEPT:
      if (s->discard) {
        complete_discard(s);
        return;
      }
      mt_sess_finish(s, r);
      return;
    default:
      mt_sess_finish(s, r);
      return;
  }
}

/* ---- end-of-message edits -------------------------------------------------------------- */

/* A header value from the milter as the server takes it: folding with CRLF (milters fold with a
 * bare LF), one leading space dropped when SMFIP_HDR_LEADSPC is on (the server writes "Name: "). */
static char *server_value(mt_sess *s, const char *v) {
  if ((s->protocol & SMFIP_HDR_LEADSPC) && v[0] == ' ') v++;
  size_t n = strlen(v);
  char *out = malloc(2 * n + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '\n' && (i == 0 || v[i - 1] != '\r')) out[o++] = '\r';
    if (v[i] == '\r' && (i + 1 >= n || v[i + 1] != '\n')) continue; /* a lone CR */
    out[o++] = v[i];
  }
  out[o] = '\0';
  return out;
}

static int names_insert(mt_op *op, int at, const char *name) {
  char *n = strdup(name);
  char **nn = realloc(op->names, sizeof *nn * (size_t)(op->nnames + 1));
  if (!n || !nn) {
    free(n);
    if (nn) op->names = nn;
    return -1;
  }
  op->names = nn;
  if (at > op->nnames) at = op->nnames;
  memmove(op->names + at + 1, op->names + at, sizeof *nn * (size_t)(op->nnames - at));
  op->names[at] = n;
  op->nnames++;
  return 0;
}

/* The position of the i-th (0-based) field named name in op->names, or -1. */
static int names_find(const mt_op *op, const char *name, int i) {
  for (int k = 0; k < op->nnames; k++)
    if (strcasecmp(op->names[k], name) == 0 && i-- == 0) return k;
  return -1;
}

static void names_erase(mt_op *op, int at) {
  if (at < 0 || at >= op->nnames) return;
  free(op->names[at]);
  memmove(op->names + at, op->names + at + 1, sizeof *op->names * (size_t)(op->nnames - at - 1));
  op->nnames--;
}

/* An address from the milter, "<a@b>" or "a@b", without the brackets (in buf). */
static const char *bare_addr(const char *a, char *buf, size_t n) {
  while (*a == ' ') a++;
  size_t l = strlen(a);
  if (l >= 2 && a[0] == '<' && a[l - 1] == '>') {
    snprintf(buf, n, "%.*s", (int)(l - 2), a + 1);
    return buf;
  }
  return a;
}

static void edit_result(mt_sess *s, uvs_call *c, const char *what, const char *arg, int rc) {
  if (rc == -ENOMEM) s->op.edit_err = 1;
  if (rc < 0)
    api->log(s->cf->self, c, UVS_LOG_WARNING, "milter %s: %s %s: %s (ignored)", s->cf->spec, what,
             arg, strerror(-rc));
  else
    api->log(s->cf->self, c, UVS_LOG_INFO, "milter %s: %s %s", s->cf->spec, what, arg);
}

static int body_append(mt_sess *s, const char *p, size_t n) {
  mt_op *op = &s->op;
  if (op->body_fd < 0) {
    op->body_fd = memfd_create("uvsmtpd-milter-body", MFD_CLOEXEC);
    if (op->body_fd < 0) return -1;
  }
  /* bare LF -> CRLF; a lone CR is dropped */
  char *out = malloc(2 * n + 2);
  if (!out) return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (op->body_cr) {
      op->body_cr = 0;
      if (ch == '\n') {
        out[o++] = '\r';
        out[o++] = '\n';
        continue;
      }
    }
    if (ch == '\r') {
      op->body_cr = 1;
      continue;
    }
    if (ch == '\n') out[o++] = '\r';
    out[o++] = ch;
  }
  size_t done = 0;
  while (done < o) {
    ssize_t w = write(op->body_fd, out + done, o - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      free(out);
      return -1;
    }
    done += (size_t)w;
  }
  free(out);
  return 0;
}

int mt_msg_edit(mt_sess *s, const mt_packet *pk) {
  mt_op *op = &s->op;
  uvs_call *c = api->pending_call(op->p);
  size_t off = 0;
  uint32_t index = 0;
  const char *name = NULL, *value = NULL;
  char why[200];
  char abuf[1024];
  if (!c) return 0;
  switch (pk->cmd) {
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER: {
      if (pk->cmd != SMFIR_ADDHEADER && mt_get_u32(pk, &off, &index) < 0) goto bad;
      if (!(name = mt_get_str(pk, &off)) || !(value = mt_get_str(pk, &off)) || !*name) goto bad;
      char *v = server_value(s, value);
      if (!v) {
        op->edit_err = 1;
        return 0;
      }
      int rc;
      if (pk->cmd == SMFIR_ADDHEADER) {
        rc = api->header_add(c, name, v, UVS_HEADER_BOTTOM);
        if (rc == 0 && names_insert(op, op->nnames, name) < 0) op->edit_err = 1;
        edit_result(s, c, "add header", name, rc);
      } else if (pk->cmd == SMFIR_INSHEADER) {
        /* position index in [server's Received, client fields...]: before client field index-1 */
        int at =
            index == 0 ? 0 : (int)(index > (uint32_t)op->nnames ? (uint32_t)op->nnames : index - 1);
        if (at >= op->nnames) {
          rc = api->header_add(c, name, v, UVS_HEADER_BOTTOM);
        } else if (at == 0) {
          rc = api->header_add(c, name, v, UVS_HEADER_TOP);
        } else {
          int occ = 0;
          for (int k = 0; k < at; k++)
            if (strcasecmp(op->names[k], op->names[at]) == 0) occ++;
          rc = api->header_insert(c, op->names[at], occ, name, v);
        }
        if (rc == 0 && names_insert(op, at, name) < 0) op->edit_err = 1;
        edit_result(s, c, "insert header", name, rc);
      } else {
        int i = index == 0 ? 0 : (int)(index - 1);
        if (index > 100000) i = 100000;
        if (!*value) {
          rc = api->header_delete(c, name, i);
          if (rc == 0) names_erase(op, names_find(op, name, i));
          if (rc == -ENOENT) rc = 0; /* nothing to delete */
          edit_result(s, c, "delete header", name, rc);
        } else {
          rc = api->header_replace(c, name, i, v);
          if (rc == -ENOENT) { /* as Sendmail: a field that is not there is added */
            rc = api->header_add(c, name, v, UVS_HEADER_BOTTOM);
            if (rc == 0 && names_insert(op, op->nnames, name) < 0) op->edit_err = 1;
          }
          edit_result(s, c, "change header", name, rc);
        }
      }
      free(v);
      return 0;
    }
    case SMFIR_CHGFROM: {
      if (!(value = mt_get_str(pk, &off))) goto bad;
      const char *a = bare_addr(value, abuf, sizeof abuf);
      edit_result(s, c, "change sender to", a, api->mail_from_replace(c, a));
      return 0;
    }
    case SMFIR_ADDRCPT:
    case SMFIR_ADDRCPT_PAR: {
      if (!(value = mt_get_str(pk, &off))) goto bad;
      const char *a = bare_addr(value, abuf, sizeof abuf);
      edit_result(s, c, "add recipient", a, api->rcpt_add(c, a));
      return 0;
    }
    case SMFIR_DELRCPT: {
      if (!(value = mt_get_str(pk, &off))) goto bad;
      const char *a = bare_addr(value, abuf, sizeof abuf);
      edit_result(s, c, "delete recipient", a, api->rcpt_delete(c, a));
      return 0;
    }
    case SMFIR_REPLBODY:
      if (body_append(s, pk->data, pk->len) < 0) {
        api->log(s->cf->self, c, UVS_LOG_ERR, "milter %s: cannot keep the new body: %s",
                 s->cf->spec, strerror(errno));
        op->edit_err = 1;
      }
      return 0;
    default:
      snprintf(why, sizeof why, "protocol error: %s after the end of message",
               mt_reply_name(pk->cmd));
      mt_sess_error(s, why);
      return -1;
  }
bad:
  snprintf(why, sizeof why, "protocol error: a malformed %s", mt_reply_name(pk->cmd));
  mt_sess_error(s, why);
  return -1;
}
