// bench/tlscost.cpp: the CPU one full TLS 1.3 handshake costs OpenSSL on each side, without
// sockets: a server SSL (uvsmtpd's [tls] defaults: TLS_AES_256_GCM_SHA384, X25519:P-256, release
// buffers, one session ticket or none) and a client SSL (as bench/tlsload: no verification, no
// resumption) joined by a BIO pair in one thread, each side's calls timed with the thread's CPU
// clock; then one small record each way (the EHLO after STARTTLS and its reply). It shows how
// much of a STARTTLS session is the library's, and that the client's share is as large as the
// server's (the load generator shares the benchmark host's cores).
//
//   g++ -std=c++20 -O2 bench/tlscost.cpp -o tlscost -lssl -lcrypto
//   ./tlscost CERT.pem KEY.pem [handshakes (2000)] [tickets 0|1 (1)] [client groups (X25519)]
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

double cpu_now() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

SSL_CTX *server_ctx(const char *cert, const char *key, int tickets) {
  SSL_CTX *s = SSL_CTX_new(TLS_server_method());
  if (!s) return nullptr;
  SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
  SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | (tickets ? 0 : SSL_OP_NO_TICKET));
  SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_ciphersuites(s, "TLS_AES_256_GCM_SHA384");
  SSL_CTX_set1_groups_list(s, "X25519:P-256");
  SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(s, tickets ? 1 : 0);
  if (SSL_CTX_use_certificate_chain_file(s, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1) {
    SSL_CTX_free(s);
    return nullptr;
  }
  return s;
}

SSL_CTX *client_ctx(const char *groups) {
  SSL_CTX *c = SSL_CTX_new(TLS_client_method());
  if (!c) return nullptr;
  SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(c, "TLS_AES_256_GCM_SHA384");
  if (SSL_CTX_set1_groups_list(c, groups) != 1) {
    SSL_CTX_free(c);
    return nullptr;
  }
  return c;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tlscost CERT KEY [handshakes] [tickets 0|1] [client groups]\n");
    return 2;
  }
  int n = argc > 3 ? atoi(argv[3]) : 2000;
  int tickets = argc > 4 ? atoi(argv[4]) : 1;
  const char *groups = argc > 5 ? argv[5] : "X25519";
  SSL_CTX *s = server_ctx(argv[1], argv[2], tickets);
  SSL_CTX *c = client_ctx(groups);
  if (!s || !c || n <= 0) {
    fprintf(stderr, "tlscost: cannot set up the contexts\n");
    ERR_print_errors_fp(stderr);
    return 1;
  }
  double server = 0, client = 0;
  for (int i = 0; i < n; ++i) {
    double t0 = cpu_now();
    SSL *ss = SSL_new(s);
    BIO *sb = nullptr, *cb = nullptr;
    BIO_new_bio_pair(&sb, 0, &cb, 0);
    SSL_set_bio(ss, sb, sb);
    SSL_set_accept_state(ss);
    double t1 = cpu_now();
    server += t1 - t0;
    SSL *cs = SSL_new(c);
    SSL_set_bio(cs, cb, cb);
    SSL_set_connect_state(cs);
    client += cpu_now() - t1;
    bool s_done = false, c_done = false;
    for (int k = 0; k < 20 && !(s_done && c_done); ++k) {
      double a = cpu_now();
      if (!c_done) c_done = SSL_do_handshake(cs) == 1;
      double b = cpu_now();
      client += b - a;
      if (!s_done) s_done = SSL_do_handshake(ss) == 1;
      server += cpu_now() - b;
    }
    char buf[256];
    double a = cpu_now();
    SSL_write(cs, "EHLO client.test\r\n", 18);
    double b = cpu_now();
    client += b - a;
    int got = SSL_read(ss, buf, sizeof buf);
    SSL_write(ss, "250 server.test\r\n", 17);
    double d = cpu_now();
    server += d - b;
    SSL_read(cs, buf, sizeof buf);  // the reply, and the session ticket before it
    double e = cpu_now();
    client += e - d;
    if (!s_done || !c_done || got != 18) {
      fprintf(stderr, "tlscost: handshake %d failed\n", i);
      ERR_print_errors_fp(stderr);
      return 1;
    }
    SSL_free(ss);
    double f = cpu_now();
    server += f - e;
    SSL_free(cs);
    client += cpu_now() - f;
  }
  printf(
      "{\"handshakes\": %d, \"tickets\": %d, \"client_groups\": \"%s\", "
      "\"server_us\": %.1f, \"client_us\": %.1f}\n",
      n, tickets, groups, server * 1e6 / n, client * 1e6 / n);
  return 0;
}
