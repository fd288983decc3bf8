/* server/smtpc/smtpc_tls.c: the client side of TLS over a pair of memory BIOs (OpenSSL 3), the
 * same pattern as the server's server/tls/stream.cpp. */
#define _POSIX_C_SOURCE 200809L
#include "smtpc_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct smtpc_tlsc {
  SSL *ssl;
  int done, shutdown_sent;
  char desc[128];
};

int smtpc_buf_add(smtpc_buf *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n) cap *= 2;
    char *q = (char *)realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

void smtpc_buf_free(smtpc_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* OpenSSL's first queued error as text (or fallback), queue cleared. */
static void ssl_reason(char *err, size_t errlen, const char *fallback) {
  unsigned long e = ERR_peek_error();
  if (e) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    const char *reason = ERR_reason_error_string(e);
    snprintf(err, errlen, "%s", reason ? reason : buf);
  } else {
    snprintf(err, errlen, "%s", fallback);
  }
  ERR_clear_error();
}

smtpc_tlsc *smtpc_tls_new(void *ssl_ctx, const char *servername, char *err, size_t errlen) {
  ERR_clear_error();
  smtpc_tlsc *t = (smtpc_tlsc *)calloc(1, sizeof *t);
  BIO *r = NULL, *w = NULL;
  if (t && ssl_ctx) t->ssl = SSL_new((SSL_CTX *)ssl_ctx);
  if (t && t->ssl) {
    r = BIO_new(BIO_s_mem());
    w = BIO_new(BIO_s_mem());
  }
  if (!t || !t->ssl || !r || !w) {
    BIO_free(r);
    BIO_free(w);
    if (t && t->ssl) SSL_free(t->ssl);
    free(t);
    ssl_reason(err, errlen, ssl_ctx ? "cannot create the TLS state" : "no TLS context");
    return NULL;
  }
  BIO_set_mem_eof_return(r, -1);
  BIO_set_mem_eof_return(w, -1);
  SSL_set_bio(t->ssl, r, w);
  SSL_set_connect_state(t->ssl);
  if (servername && *servername) {
    SSL_set_tlsext_host_name(t->ssl, servername);
    /* checked only when the SSL_CTX verifies the peer (SSL_VERIFY_PEER) */
    SSL_set1_host(t->ssl, servername);
  }
  return t;
}

void smtpc_tls_free(smtpc_tlsc *t) {
  if (!t) return;
  SSL_free(t->ssl);
  free(t);
}

static int drain(smtpc_tlsc *t, smtpc_buf *wire) {
  BIO *w = SSL_get_wbio(t->ssl);
  char buf[16384];
  for (;;) {
    int got = BIO_read(w, buf, sizeof buf);
    if (got <= 0) break;
    if (smtpc_buf_add(wire, buf, (size_t)got) < 0) return -1;
  }
  return 0;
}

static void fill_desc(smtpc_tlsc *t) {
  const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
  snprintf(t->desc, sizeof t->desc, "%s %s", SSL_get_version(t->ssl),
           c ? SSL_CIPHER_get_name(c) : "?");
}

/* One handshake step: 1 done, 0 more input needed, -1 error. */
static int step(smtpc_tlsc *t, smtpc_buf *wire, char *err, size_t errlen) {
  int ret = SSL_do_handshake(t->ssl);
  if (ret == 1) {
    t->done = 1;
    fill_desc(t);
    if (drain(t, wire) < 0) return snprintf(err, errlen, "out of memory"), -1;
    return 1;
  }
  int e = SSL_get_error(t->ssl, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    if (drain(t, wire) < 0) return snprintf(err, errlen, "out of memory"), -1;
    return 0;
  }
  long vr = SSL_get_verify_result(t->ssl);
  if (vr != X509_V_OK) {
    snprintf(err, errlen, "certificate verification failed: %s", X509_verify_cert_error_string(vr));
    ERR_clear_error();
  } else {
    ssl_reason(err, errlen, "handshake failed");
  }
  drain(t, wire); /* the alert, if any */
  return -1;
}

int smtpc_tls_start(smtpc_tlsc *t, smtpc_buf *wire, char *err, size_t errlen) {
  ERR_clear_error();
  return step(t, wire, err, errlen) < 0 ? -1 : 0;
}

int smtpc_tls_feed(smtpc_tlsc *t, const char *p, size_t n, smtpc_buf *plain, smtpc_buf *wire,
                   char *err, size_t errlen) {
  ERR_clear_error();
  if (n && BIO_write(SSL_get_rbio(t->ssl), p, (int)n) != (int)n) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int rc = 0;
  if (!t->done) {
    int s = step(t, wire, err, errlen);
    if (s <= 0) return s;
    rc = 1;
  }
  char buf[16384];
  for (;;) {
    size_t got = 0;
    int ret = SSL_read_ex(t->ssl, buf, sizeof buf, &got);
    if (ret == 1) {
      if (smtpc_buf_add(plain, buf, got) < 0) return snprintf(err, errlen, "out of memory"), -1;
      continue;
    }
    int e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      ERR_clear_error();
      drain(t, wire);
      return -2;
    }
    ssl_reason(err, errlen, "TLS protocol error");
    drain(t, wire);
    return -1;
  }
  ERR_clear_error();
  if (drain(t, wire) < 0) return snprintf(err, errlen, "out of memory"), -1;
  return rc;
}

int smtpc_tls_done(const smtpc_tlsc *t) {
  return t && t->done;
}

int smtpc_tls_write(smtpc_tlsc *t, const char *p, size_t n, smtpc_buf *wire, char *err,
                    size_t errlen) {
  if (!t->done) return snprintf(err, errlen, "TLS is not up"), -1;
  ERR_clear_error();
  size_t off = 0;
  while (off < n) {
    size_t wrote = 0;
    if (SSL_write_ex(t->ssl, p + off, n - off, &wrote) != 1) {
      ssl_reason(err, errlen, "TLS write failed");
      return -1;
    }
    off += wrote;
  }
  if (drain(t, wire) < 0) return snprintf(err, errlen, "out of memory"), -1;
  return 0;
}

void smtpc_tls_close_notify(smtpc_tlsc *t, smtpc_buf *wire) {
  if (!t || !t->done || t->shutdown_sent) return;
  t->shutdown_sent = 1;
  SSL_shutdown(t->ssl);
  ERR_clear_error();
  drain(t, wire);
}

const char *smtpc_tls_desc(const smtpc_tlsc *t) {
  return t && t->done ? t->desc : NULL;
}
