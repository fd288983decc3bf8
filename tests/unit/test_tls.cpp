// tests/unit/test_tls.cpp: unit tests for tls/: TlsContext loading (policy, key check, SNI
// names), TlsStream against an OpenSSL client in memory (TLS 1.3 and 1.2, old protocols and
// ciphers refused, details, data both ways, close_notify, garbage), session tickets across a
// key rotation, and TlsStore reload and file watching. Certificates come from test_certs.hpp
// (made at test time with the openssl command-line tool).
#include <doctest/doctest.h>

#include "test_certs.hpp"
#include "tmp_dir.hpp"

#include <uv.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "config/tls_settings.hpp"
#include "tls/context.hpp"
#include "tls/store.hpp"
#include "tls/stream.hpp"
#include "tls/ticket_keys.hpp"

namespace fs = std::filesystem;
using uvs::config::TlsSettings;
using uvs::tls::TlsContext;
using uvs::tls::TlsStore;
using uvs::tls::TlsStream;
using Status = TlsStream::Status;

namespace {

using unit::certs;

TlsSettings base() {
  TlsSettings s;
  s.certificate = certs().p("mx.pem");
  s.key = certs().p("mx.key");
  s.watch = false;
  return s;
}

std::shared_ptr<TlsContext> load_ok(const TlsSettings &s) {
  std::string err;
  auto c = TlsContext::load(s, err);
  INFO(err);
  REQUIRE(c);
  return c;
}

std::string cn_of(X509 *x) {
  if (!x) return "";
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof buf);
  return n > 0 ? std::string(buf, n) : "";
}

struct ClientOpts {
  int min = 0, max = 0;
  std::string sni = "";
  std::string cert = "", key = "";
  std::string ciphers = "", suites = "";
  bool verify = true;
  SSL_SESSION *session = nullptr;
  SSL_CTX *shared_ctx = nullptr;  // reuse this client context (not freed)
};

// An OpenSSL client over memory BIOs that verifies the server against the test CA.
struct Client {
  SSL_CTX *ctx = nullptr;
  SSL *ssl = nullptr;
  std::string plain;
  bool got_close = false;
  int last_error = 0;

  bool own_ctx = true;
  explicit Client(const ClientOpts &o) {
    if (o.shared_ctx) {
      own_ctx = false;
      ctx = o.shared_ctx;
      ssl = SSL_new(ctx);
      setup(o);
      return;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx);
    if (o.min || o.max) {
      SSL_CTX_set_security_level(ctx, 0);  // let the client offer what the server must refuse
      SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    }
    if (o.min) SSL_CTX_set_min_proto_version(ctx, o.min);
    if (o.max) SSL_CTX_set_max_proto_version(ctx, o.max);
    if (!o.ciphers.empty()) REQUIRE(SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) == 1);
    if (!o.suites.empty()) REQUIRE(SSL_CTX_set_ciphersuites(ctx, o.suites.c_str()) == 1);
    REQUIRE(SSL_CTX_load_verify_locations(ctx, certs().p("ca.pem").c_str(), nullptr) == 1);
    if (o.verify) SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!o.cert.empty()) {
      REQUIRE(SSL_CTX_use_certificate_file(ctx, o.cert.c_str(), SSL_FILETYPE_PEM) == 1);
      REQUIRE(SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    ssl = SSL_new(ctx);
    setup(o);
  }
  void setup(const ClientOpts &o) {
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(ssl, r, w);
    SSL_set_connect_state(ssl);
    if (!o.sni.empty()) SSL_set_tlsext_host_name(ssl, o.sni.c_str());
    if (o.session) SSL_set_session(ssl, o.session);
  }
  ~Client() {
    // A client SSL freed without its close_notify marks its session not resumable.
    if (done()) SSL_shutdown(ssl);
    SSL_free(ssl);
    if (own_ctx) SSL_CTX_free(ctx);
  }
  bool done() const { return SSL_is_init_finished(ssl); }
  std::string out() {
    std::string s;
    char buf[4096];
    int n;
    while ((n = BIO_read(SSL_get_wbio(ssl), buf, sizeof buf)) > 0) s.append(buf, n);
    return s;
  }
  void in(const std::string &s) {
    if (!s.empty()) BIO_write(SSL_get_rbio(ssl), s.data(), static_cast<int>(s.size()));
  }
  // Handshake, or read what has arrived.
  void step() {
    if (!done()) {
      int r = SSL_do_handshake(ssl);
      if (r != 1) last_error = SSL_get_error(ssl, r);
      if (r == 1 || last_error == SSL_ERROR_WANT_READ) return;
      ERR_clear_error();
      return;
    }
    char buf[4096];
    for (;;) {
      size_t got = 0;
      int r = SSL_read_ex(ssl, buf, sizeof buf, &got);
      if (r == 1) {
        plain.append(buf, got);
        continue;
      }
      int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN) got_close = true;
      ERR_clear_error();
      break;
    }
  }
  void write(const std::string &s) {
    size_t w = 0;
    REQUIRE(SSL_write_ex(ssl, s.data(), s.size(), &w) == 1);
  }
  std::string peer_cn() const { return cn_of(SSL_get0_peer_certificate(ssl)); }
};

struct Run {
  bool handshake_reported = false;
  bool error = false;
  bool closed = false;
  std::string server_plain;
};

// Moves bytes both ways until neither side has anything to send.
Run pump(TlsStream &s, Client &c, Run run = {}) {
  for (int i = 0; i < 50; ++i) {
    c.step();
    std::string to_server = c.out();
    std::string wire;
    if (!to_server.empty()) {
      Status st = s.feed(to_server.data(), to_server.size(), run.server_plain, wire);
      if (st == Status::handshake_done) run.handshake_reported = true;
      if (st == Status::error) run.error = true;
      if (st == Status::closed) run.closed = true;
    }
    if (to_server.empty() && wire.empty()) break;
    c.in(wire);
  }
  c.step();
  return run;
}

bool one_line(const std::string &s) {
  return !s.empty() && s.find('\n') == std::string::npos && s.find('\r') == std::string::npos;
}

std::string fingerprint_cli(const std::string &pem) {
  std::string cmd = "openssl x509 -in '" + pem + "' -noout -fingerprint -sha256";
  FILE *f = ::popen(cmd.c_str(), "r");
  REQUIRE(f);
  char buf[512] = {0};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  ::pclose(f);
  std::string line(buf, n);
  std::string out;
  for (char ch : line.substr(line.find('=') + 1))
    if (std::isxdigit(static_cast<unsigned char>(ch))) out += static_cast<char>(std::tolower(ch));
  return out;
}

}  // namespace

TEST_CASE("tls: TLS 1.3 handshake, details, data both ways and close_notify") {
  auto ctx = load_ok(base());
  TlsStream s(ctx);
  Client c({.sni = "mx.test"});
  Run r = pump(s, c);
  REQUIRE(s.handshake_done());
  CHECK(r.handshake_reported);
  CHECK(c.done());
  CHECK(c.peer_cn() == "mx.test");
  const auto &d = s.details();
  CHECK(d.protocol == "TLSv1.3");
  CHECK(d.cipher.rfind("TLS_", 0) == 0);
  CHECK((d.bits == 128 || d.bits == 256));
  CHECK(d.sni == "mx.test");
  CHECK_FALSE(d.client_cert_presented);
  CHECK_FALSE(d.resumed);

  c.write("EHLO client.test\r\n");
  r = pump(s, c);
  CHECK(r.server_plain == "EHLO client.test\r\n");
  std::string wire;
  REQUIRE(s.encrypt("250 mx.test\r\n", wire) == 0);
  c.in(wire);
  c.step();
  CHECK(c.plain == "250 mx.test\r\n");

  // Large transfers both ways (the memory buffers are replaced once drained).
  const std::string big(200000, 'x');
  c.write(big);
  r = pump(s, c);
  CHECK(r.server_plain == big);
  wire.clear();
  REQUIRE(s.encrypt(big, wire) == 0);
  CHECK(wire.size() > big.size());
  c.plain.clear();
  c.in(wire);
  c.step();
  CHECK(c.plain == big);
  c.write("NOOP\r\n");
  r = pump(s, c);
  CHECK(r.server_plain == "NOOP\r\n");
  CHECK(s.buffer_capacity() < 16384);  // not the 200 kB the transfers needed

  // Our close_notify reaches the client; theirs gives `closed`.
  wire.clear();
  s.close_notify(wire);
  CHECK_FALSE(wire.empty());
  c.in(wire);
  c.step();
  CHECK(c.got_close);
  CHECK(s.encrypt("more", wire) == -ENOTCONN);
  SSL_shutdown(c.ssl);
  std::string bye = c.out(), plain, out;
  CHECK(s.feed(bye.data(), bye.size(), plain, out) == Status::closed);
}

TEST_CASE("tls: TLS 1.2 handshake with the intermediate cipher list") {
  auto ctx = load_ok(base());
  TlsStream s(ctx);
  Client c({.max = TLS1_2_VERSION});
  Run r = pump(s, c);
  REQUIRE(s.handshake_done());
  CHECK(r.handshake_reported);
  CHECK(s.details().protocol == "TLSv1.2");
  CHECK(s.details().cipher.rfind("ECDHE-ECDSA-", 0) == 0);
  CHECK(s.details().sni == "");
  c.write("QUIT\r\n");
  r = pump(s, c);
  CHECK(r.server_plain == "QUIT\r\n");
}

TEST_CASE("tls: a TLS 1.2 client's renegotiation is refused") {
  auto ctx = load_ok(base());
  TlsStream s(ctx);
  Client c({.max = TLS1_2_VERSION});
  pump(s, c);
  REQUIRE(s.handshake_done());
  REQUIRE(SSL_renegotiate(c.ssl) == 1);
  SSL_do_handshake(c.ssl);  // sends a new ClientHello
  std::string hello = c.out(), plain, wire;
  REQUIRE_FALSE(hello.empty());
  Status st = s.feed(hello.data(), hello.size(), plain, wire);
  CHECK(st == Status::ok);  // refused with a warning alert; the session goes on
  CHECK_FALSE(wire.empty());
  CHECK(wire[0] == 21);  // an alert record, not a ServerHello (22)
  CHECK(plain.empty());
}

TEST_CASE("tls: old protocols and ciphers are refused with a one-line reason") {
  auto ctx = load_ok(base());
  SUBCASE("TLS 1.1") {
    TlsStream s(ctx);
    Client c({.min = TLS1_1_VERSION, .max = TLS1_1_VERSION});
    Run r = pump(s, c);
    CHECK(r.error);
    CHECK_FALSE(s.handshake_done());
    CHECK(one_line(s.error_reason()));
    CHECK(s.error_reason().find("unsupported protocol") != std::string::npos);
    std::string plain, wire;
    CHECK(s.feed("x", 1, plain, wire) == Status::error);  // stays failed
  }
  SUBCASE("TLS 1.2 against min_protocol TLSv1.3") {
    TlsSettings st = base();
    st.min_protocol = "TLSv1.3";
    auto ctx13 = load_ok(st);
    TlsStream s(ctx13);
    Client c({.max = TLS1_2_VERSION});
    CHECK(pump(s, c).error);
    CHECK(s.error_reason().find("unsupported protocol") != std::string::npos);
  }
  SUBCASE("no shared cipher") {
    TlsStream s(ctx);
    Client c({.max = TLS1_2_VERSION, .ciphers = "AES128-SHA:@SECLEVEL=0"});
    CHECK(pump(s, c).error);
    CHECK(s.error_reason() == "no shared cipher");
  }
  SUBCASE("plain text instead of a ClientHello") {
    TlsStream s(ctx);
    std::string plain, wire;
    const std::string junk = "EHLO client.test\r\nMAIL FROM:<a@b>\r\n";
    CHECK(s.feed(junk.data(), junk.size(), plain, wire) == Status::error);
    CHECK(one_line(s.error_reason()));
    CHECK(plain.empty());
    CHECK(s.error_reason() == "wrong version number");
  }
}

TEST_CASE("tls: records that follow the client's Finished in the same input are decrypted") {
  auto ctx = load_ok(base());
  TlsStream s(ctx);
  Client c({});
  // Flight 1: ClientHello -> server flight.
  c.step();
  std::string hello = c.out(), plain, wire;
  REQUIRE(s.feed(hello.data(), hello.size(), plain, wire) == Status::ok);
  c.in(wire);
  c.step();  // client Finished
  REQUIRE(c.done());
  c.write("MAIL FROM:<a@example.org>\r\n");  // pipelined with the Finished
  std::string both = c.out();
  wire.clear();
  CHECK(s.feed(both.data(), both.size(), plain, wire) == Status::handshake_done);
  CHECK(plain == "MAIL FROM:<a@example.org>\r\n");
}

TEST_CASE("tls: data followed by the peer's close_notify in one input") {
  auto ctx = load_ok(base());
  TlsStream s(ctx);
  Client c({});
  pump(s, c);
  REQUIRE(s.handshake_done());
  c.write("QUIT\r\n");
  SSL_shutdown(c.ssl);
  std::string in = c.out(), plain, wire;
  CHECK(s.feed(in.data(), in.size(), plain, wire) == Status::closed);
  CHECK(plain == "QUIT\r\n");
  CHECK(s.peer_closed());
  CHECK(s.feed("x", 1, plain, wire) == Status::closed);
  // Our answer to it.
  wire.clear();
  s.close_notify(wire);
  CHECK_FALSE(wire.empty());
}

TEST_CASE("tls: client certificates are requested and reported, never required") {
  TlsSettings st = base();
  st.client_certificates = "request";
  st.client_ca = certs().p("ca.pem");
  auto ctx = load_ok(st);
  SUBCASE("signed by client_ca") {
    TlsStream s(ctx);
    Client c({.cert = certs().p("client.pem"), .key = certs().p("client.key")});
    pump(s, c);
    REQUIRE(s.handshake_done());
    CHECK(s.details().client_cert_presented);
    CHECK(s.details().client_cert_verified);
    CHECK(s.details().client_subject == "CN=client.test");
    CHECK(s.details().client_fingerprint_sha256.size() == 64);
    CHECK(s.details().client_fingerprint_sha256 == fingerprint_cli(certs().p("client.pem")));
  }
  SUBCASE("self-signed: accepted, not verified") {
    TlsStream s(ctx);
    Client c({.max = TLS1_2_VERSION, .cert = certs().p("self.pem"), .key = certs().p("self.key")});
    pump(s, c);
    REQUIRE(s.handshake_done());
    CHECK(s.details().client_cert_presented);
    CHECK_FALSE(s.details().client_cert_verified);
    CHECK(s.details().client_subject == "CN=stranger");
  }
  SUBCASE("none") {
    TlsStream s(ctx);
    Client c({});
    pump(s, c);
    REQUIRE(s.handshake_done());
    CHECK_FALSE(s.details().client_cert_presented);
    CHECK(s.details().client_fingerprint_sha256.empty());
  }
}

TEST_CASE("tls: SNI picks the pair whose names match") {
  TlsSettings st = base();
  st.sni.push_back({certs().p("other.pem"), certs().p("other.key"), {}});
  auto ctx = load_ok(st);
  auto names = ctx->names();
  REQUIRE(names.size() == 2);
  CHECK(names[0] == std::vector<std::string>{"mx.test", "mail.test"});
  CHECK(names[1] == std::vector<std::string>{"other.test", "*.wild.test"});
  auto served = [&](const std::string &sni) {
    TlsStream s(ctx);
    Client c({.sni = sni, .verify = false});
    pump(s, c);
    REQUIRE(s.handshake_done());
    return c.peer_cn();
  };
  CHECK(served("other.test") == "other.test");
  CHECK(served("OTHER.test") == "other.test");
  CHECK(served("a.wild.test") == "other.test");
  CHECK(served("a.b.wild.test") == "mx.test");  // a wildcard covers one label
  CHECK(served("wild.test") == "mx.test");
  CHECK(served("mail.test") == "mx.test");
  CHECK(served("unknown.test") == "mx.test");  // unknown names get the default pair
  CHECK(served("") == "mx.test");

  SUBCASE("explicit names replace the certificate's") {
    TlsSettings st2 = base();
    st2.sni.push_back({certs().p("other.pem"), certs().p("other.key"), {"smtp.example.org"}});
    auto ctx2 = load_ok(st2);
    CHECK(ctx2->ctx_for_name("smtp.example.org") != ctx2->ssl_ctx());
    CHECK(ctx2->ctx_for_name("other.test") == ctx2->ssl_ctx());
  }
}

TEST_CASE("tls: load errors name the file and the reason") {
  std::string err;
  SUBCASE("key does not match") {
    TlsSettings st = base();
    st.key = certs().p("other.key");
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err == "tls: " + st.key + ": key does not match certificate " + st.certificate);
  }
  SUBCASE("key of the same type that does not match (OpenSSL checks it while loading)") {
    TlsSettings st = base();
    st.key = certs().p("mx2.key");  // ECDSA P-256 like mx.pem, another key
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err == "tls: " + st.key + ": key does not match certificate " + st.certificate);
  }
  SUBCASE("missing file") {
    TlsSettings st = base();
    st.certificate = certs().p("nope.pem");
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err == "tls: " + st.certificate + ": No such file or directory");
  }
  SUBCASE("not PEM") {
    TlsSettings st = base();
    st.certificate = certs().p("mx.ext");
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err.rfind("tls: " + st.certificate + ": ", 0) == 0);
    CHECK(one_line(err));
  }
  SUBCASE("SNI pair with a mismatched key") {
    TlsSettings st = base();
    st.sni.push_back({certs().p("other.pem"), certs().p("mx.key"), {}});
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err.find("key does not match certificate " + certs().p("other.pem")) !=
          std::string::npos);
  }
  SUBCASE("policy values") {
    TlsSettings st = base();
    st.min_protocol = "TLSv1.1";
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err.find("min_protocol") != std::string::npos);
    st = base();
    st.ciphers = "NOPE-CIPHER";
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err.find("ciphers") != std::string::npos);
    st = base();
    st.client_certificates = "require";
    CHECK_FALSE(TlsContext::load(st, err));
    CHECK(err.find("client_certificates") != std::string::npos);
  }
}

TEST_CASE("tls: session tickets resume across a rotation of the ticket key") {
  auto ctx = load_ok(base());
  Client holder({});  // one client context for every connection, as a real client has
  auto first_session = [&]() {
    TlsStream s(ctx);
    Client c({.shared_ctx = holder.ctx});
    pump(s, c);
    REQUIRE(s.handshake_done());
    CHECK_FALSE(s.details().resumed);
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    REQUIRE(sess);
    REQUIRE(SSL_SESSION_has_ticket(sess));
    return sess;
  };
  auto resumes = [&](SSL_SESSION *sess) {
    TlsStream s(ctx);
    Client c({.session = sess, .shared_ctx = holder.ctx});
    pump(s, c);
    REQUIRE(s.handshake_done());
    CHECK(s.details().resumed == (SSL_session_reused(c.ssl) == 1));
    return s.details().resumed;
  };
  SUBCASE("explicit rotation") {
    SSL_SESSION *sess = first_session();
    CHECK(resumes(sess));
    ctx->ticket_keys()->rotate();  // the ticket's key is now the previous one
    CHECK(resumes(sess));
    ctx->ticket_keys()->rotate();  // and now gone
    CHECK_FALSE(resumes(sess));
    SSL_SESSION_free(sess);
  }
  SUBCASE("explicit rotation, TLS 1.2 (RFC 5077 tickets)") {
    SSL_CTX_set_max_proto_version(holder.ctx, TLS1_2_VERSION);
    SSL_SESSION *sess = first_session();
    CHECK(SSL_SESSION_get_protocol_version(sess) == TLS1_2_VERSION);
    CHECK(resumes(sess));
    ctx->ticket_keys()->rotate();
    CHECK(resumes(sess));
    ctx->ticket_keys()->rotate();
    CHECK_FALSE(resumes(sess));
    SSL_SESSION_free(sess);
  }
  SUBCASE("rotation by age") {
    time_t now = 1000000;
    ctx->ticket_keys()->set_clock([&] { return now; });
    SSL_SESSION *sess = first_session();
    now += 3600;  // lifetime over: a new key encrypts, the old one still decrypts
    CHECK(resumes(sess));
    now += 3600 * 2;
    CHECK_FALSE(resumes(sess));
    SSL_SESSION_free(sess);
  }
  SUBCASE("tickets off") {
    TlsSettings st = base();
    st.session_tickets = false;
    ctx = load_ok(st);
    TlsStream s(ctx);
    Client c({.shared_ctx = holder.ctx});
    pump(s, c);
    REQUIRE(s.handshake_done());
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    REQUIRE(sess);
    CHECK_FALSE(SSL_SESSION_has_ticket(sess));
    SSL_SESSION_free(sess);
  }
}

TEST_CASE("tls: expiries() gives each pair's certificate file and notAfter") {
  TlsSettings st = base();
  std::string err;
  auto ctx = TlsContext::load(st, err);
  REQUIRE_MESSAGE(ctx, err);
  auto e = ctx->expiries();
  REQUIRE(e.size() == 1);
  CHECK(e[0].first == st.certificate);
  const time_t now = time(nullptr);  // the test certificates are made for 30 days
  CHECK(e[0].second > now + 29 * 86400);
  CHECK(e[0].second < now + 31 * 86400);
}

TEST_CASE("tls: the store keeps the old context when a reload fails") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    TlsStore store(&loop);
    CHECK(store.current() == nullptr);
    REQUIRE(store.reload(base()));
    auto first = store.current();
    REQUIRE(first);
    TlsSettings bad = base();
    bad.key = certs().p("other.key");
    CHECK_FALSE(store.reload(bad));
    CHECK(store.current() == first);
    CHECK(store.last_error().find("key does not match") != std::string::npos);
    TlsSettings next = base();
    next.certificate = certs().p("mx2.pem");
    next.key = certs().p("mx2.key");
    REQUIRE(store.reload(next));
    CHECK(store.current() != first);
    CHECK(store.current()->ticket_keys() == first->ticket_keys());  // tickets survive reloads
    TlsSettings off;
    CHECK(store.reload(off));
    CHECK(store.current() == nullptr);
    store.stop();
  }
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("tls: the watcher reloads after a file is replaced by rename") {
  unit::TmpDir live;
  fs::copy_file(certs().p("mx.pem"), live.dir + "/cert.pem");
  fs::copy_file(certs().p("mx.key"), live.dir + "/key.pem");
  TlsSettings st;
  st.certificate = live.dir + "/cert.pem";
  st.key = live.dir + "/key.pem";
  st.watch = true;

  uv_loop_t loop;
  uv_loop_init(&loop);
  auto serial_of = [](const std::shared_ptr<const TlsContext> &c) {
    X509 *x = SSL_CTX_get0_certificate(c->ssl_ctx());
    return ASN1_INTEGER_get(X509_get0_serialNumber(x));
  };
  {
    TlsStore store(&loop);
    store.set_watch_timing(50, 200);
    REQUIRE(store.reload(st));
    REQUIRE(serial_of(store.current()) == 10);
    uint64_t before = store.reloads();

    // Wait (on the loop) until pred() or the deadline.
    auto wait_for = [&](auto pred, double seconds) {
      auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
      while (!pred() && std::chrono::steady_clock::now() < end)
        uv_run(&loop, UV_RUN_NOWAIT), uv_sleep(10);
      return pred();
    };
    // Let the watcher take its first stat, then replace both files the way acme tools do:
    // write a temporary file next to it and rename it over the old one.
    wait_for([] { return false; }, 0.2);
    fs::copy_file(certs().p("mx2.key"), live.dir + "/key.pem.tmp");
    fs::rename(live.dir + "/key.pem.tmp", live.dir + "/key.pem");
    fs::copy_file(certs().p("mx2.pem"), live.dir + "/cert.pem.tmp");
    fs::rename(live.dir + "/cert.pem.tmp", live.dir + "/cert.pem");
    CHECK(wait_for([&] { return store.reloads() > before; }, 5.0));
    CHECK(serial_of(store.current()) == 11);
    CHECK(store.reloads() == before + 1);  // debounced: both renames, one reload

    // A broken replacement keeps the working pair.
    auto good = store.current();
    before = store.reloads();
    live.write("cert.pem.tmp", "not a certificate\n");
    fs::rename(live.dir + "/cert.pem.tmp", live.dir + "/cert.pem");
    wait_for([&] { return !store.last_error().empty(); }, 5.0);
    CHECK(store.last_error().find(st.certificate) != std::string::npos);
    CHECK(store.current() == good);
    // Fixed again: reloads.
    fs::copy_file(certs().p("mx.pem"), live.dir + "/cert.pem.tmp");
    fs::copy_file(certs().p("mx.key"), live.dir + "/key.pem.tmp");
    fs::rename(live.dir + "/key.pem.tmp", live.dir + "/key.pem");
    fs::rename(live.dir + "/cert.pem.tmp", live.dir + "/cert.pem");
    CHECK(wait_for([&] { return store.reloads() > before; }, 5.0));
    CHECK(serial_of(store.current()) == 10);
    store.stop();
  }
  // stop() let go of every handle: the loop has nothing left to run.
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("tls: the watcher follows a symbolic link that is replaced (certbot's live/ links)") {
  unit::TmpDir live;
  live.mkdir("archive");
  for (const char *f : {"mx.pem", "mx.key", "mx2.pem", "mx2.key"})
    fs::copy_file(certs().p(f), live.dir + "/archive/" + f);
  fs::create_symlink("archive/mx.pem", live.dir + "/cert.pem");
  fs::create_symlink("archive/mx.key", live.dir + "/key.pem");
  TlsSettings st;
  st.certificate = live.dir + "/cert.pem";
  st.key = live.dir + "/key.pem";

  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    TlsStore store(&loop);
    store.set_watch_timing(50, 200);
    REQUIRE(store.reload(st));
    auto first = store.current();
    auto wait_for = [&](auto pred, double seconds) {
      auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
      while (!pred() && std::chrono::steady_clock::now() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(10);
      }
      return pred();
    };
    wait_for([] { return false; }, 0.2);
    for (const char *f : {"key", "cert"}) {
      std::string link = live.dir + "/" + f + ".pem";
      fs::create_symlink(std::string("archive/mx2.") + (f[0] == 'k' ? "key" : "pem"),
                         link + ".new");
      fs::rename(link + ".new", link);
    }
    CHECK(wait_for([&] { return store.current() != first; }, 5.0));
    X509 *x = SSL_CTX_get0_certificate(store.current()->ssl_ctx());
    CHECK(ASN1_INTEGER_get(X509_get0_serialNumber(x)) == 11);
    CHECK(store.last_error().empty());
    store.stop();
  }
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}
