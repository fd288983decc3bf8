/* server/smtpc/smtpc_tls.h: the client side of one TLS connection over memory BIOs (no
 * sockets): wire bytes from the server go in, plaintext comes out, and what TLS must send
 * (handshake, alerts, encrypted data) is appended to a byte buffer for the caller to write. */
#ifndef SMTPC_TLS_H
#define SMTPC_TLS_H

#include <stddef.h>

typedef struct smtpc_tlsc smtpc_tlsc;

/* A growable byte buffer. */
typedef struct smtpc_buf {
  char *p;
  size_t len, cap;
} smtpc_buf;
int smtpc_buf_add(smtpc_buf *b, const char *p, size_t n); /* 0 or -1 (out of memory) */
void smtpc_buf_free(smtpc_buf *b);

/* NULL with err filled when the SSL object cannot be made. */
smtpc_tlsc *smtpc_tls_new(void *ssl_ctx, const char *servername, char *err, size_t errlen);
void smtpc_tls_free(smtpc_tlsc *t);
/* Starts the handshake: the ClientHello into wire. 0 or -1 (err). */
int smtpc_tls_start(smtpc_tlsc *t, smtpc_buf *wire, char *err, size_t errlen);
/* Wire bytes in; plaintext to plain, bytes to send to wire. Returns 1 when the handshake
 * completed in this call, 0 otherwise, -1 on a fatal error (err: OpenSSL's reason), -2 when
 * the server sent close_notify. */
int smtpc_tls_feed(smtpc_tlsc *t, const char *p, size_t n, smtpc_buf *plain, smtpc_buf *wire,
                   char *err, size_t errlen);
int smtpc_tls_done(const smtpc_tlsc *t);
/* Plaintext to encrypt into wire (after the handshake). 0 or -1 (err). */
int smtpc_tls_write(smtpc_tlsc *t, const char *p, size_t n, smtpc_buf *wire, char *err,
                    size_t errlen);
/* Our close_notify into wire (once, after the handshake). */
void smtpc_tls_close_notify(smtpc_tlsc *t, smtpc_buf *wire);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once done. */
const char *smtpc_tls_desc(const smtpc_tlsc *t);

#endif
