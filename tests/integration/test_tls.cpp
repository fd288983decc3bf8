// tests/integration/test_tls.cpp: TLS end to end through the real binary: STARTTLS (RFC 3207)
// advertisement, grammar and session reset, the pipelined-command injection class
// (CVE-2011-0411), require_tls, implicit TLS (RFC 8314), hostile bytes at the TLS layer and the
// handshake timeout, SNI, close_notify after QUIT and while a plugin call is pending,
// certificate reload (SIGHUP, file watch, under load), real clients (smtplib, swaks, openssl
// s_client). The first cases check the test PKI and the TLS client helper against
// `openssl s_server`, independent of uvsmtpd.
// Cases are named "tls: ..." (the load case "tls-load: ..."): run them with -tc='tls*'.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"
#include "tls_fixture.hpp"

using namespace itest;
using namespace itest::tls;
namespace fs = std::filesystem;

namespace {

// As the harness's send_message, with one recipient, stopping at a refused RCPT.
std::string send_msg(SmtpClient &c, const std::string &from, const std::string &to,
                     const std::string &body) {
  std::string r = c.cmd("MAIL FROM:<" + from + ">");
  if (r.rfind("250", 0) != 0) return r;
  r = c.cmd("RCPT TO:<" + to + ">");
  if (r.rfind("250", 0) != 0) return r;
  r = c.cmd("DATA");
  if (r.rfind("354", 0) != 0) return r;
  c.send(body + ".\r\n");
  return c.reply(10);
}

const std::string kBody = "Subject: tls test\r\n\r\nhello over TLS\r\n";

// The banner and "EHLO client.example" in plain text, replies unread.
void greet_plain(TlsClient &t) {
  t.reply();
  t.cmd("EHLO client.example");
}

// Banner, EHLO and STARTTLS in plain text, up to the 220 (REQUIREd); the rest is the caller's.
void up_to_starttls_220(TlsClient &t) {
  greet_plain(t);
  REQUIRE(t.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS");
}

std::vector<std::string> delivered(const std::string &root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file() && it->path().parent_path().filename() == "new")
      out.push_back(it->path().string());
  return out;
}

// The first Received: field of a stored message, unfolded.
std::string received_of(const std::string &stored) {
  std::string hdr, rest;
  if (!split_received(stored, hdr, rest)) return "";
  size_t at = hdr.find("Received: ");
  std::string r = hdr.substr(at);
  std::string out;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i] == '\r' && i + 2 < r.size() && r[i + 1] == '\n' &&
        (r[i + 2] == ' ' || r[i + 2] == '\t')) {
      out += ' ';
      i += 2;
      while (i + 1 < r.size() && (r[i + 1] == ' ' || r[i + 1] == '\t')) ++i;
      continue;
    }
    out += r[i];
  }
  return out;
}

// After the hostile cases: the server is alive and a new client still gets through STARTTLS.
void still_serves(Server &s, int starttls_port) {
  REQUIRE(s.running());
  TlsClient c(starttls_port);
  CHECK_MESSAGE(c.starttls(verified()), c.error());
  CHECK(c.cmd("EHLO again.example").rfind("250-", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
}

}  // namespace

// ---- the test PKI and the client helper, without uvsmtpd ----------------------------------

TEST_CASE("tls: test PKI is made once per process and verifies as intended") {
  const Certs &c = pki();
  CHECK(&certs() == &c);  // cached
  auto verify = [](const std::string &ca, const std::string &cert, const std::string &more = "") {
    return sh("openssl verify " + more + " -CAfile '" + ca + "' '" + cert + "'");
  };
  for (const std::string &leaf : {c.leaf.cert, c.leaf_b.cert, c.rsa.cert, c.client.cert}) {
    RunResult r = verify(c.ca, leaf);
    CHECK_MESSAGE(r.status == 0, leaf << ": " << r.output);
  }
  CHECK(verify(c.ca2, c.mx2.cert).status == 0);
  CHECK(verify(c.ca, c.mx2.cert).status != 0);  // another CA
  sleep(1);                                     // notAfter = notBefore: surely past now
  RunResult exp = verify(c.ca, c.expired.cert);
  CHECK_MESSAGE(exp.status != 0, exp.output);
  CHECK(exp.output.find("expired") != std::string::npos);
  // the mismatched pair: the certificate's public key is not the key's
  RunResult a = sh("openssl x509 -noout -pubkey -in '" + c.mismatch.cert + "'");
  RunResult b = sh("openssl pkey -pubout -in '" + c.mismatch.key + "'");
  CHECK(a.status == 0);
  CHECK(b.status == 0);
  CHECK(a.output != b.output);
  RunResult a2 = sh("openssl pkey -pubout -in '" + c.leaf.key + "'");
  CHECK(a.output == a2.output);  // and the right pair matches
  CHECK(sh("openssl x509 -noout -text -in '" + c.rsa.cert + "'").output.find("2048 bit") !=
        std::string::npos);
  CHECK(sh("openssl x509 -noout -text -in '" + c.leaf.cert + "'").output.find("prime256v1") !=
        std::string::npos);
  CHECK(cert_fingerprint(c.leaf.cert).size() == 64);
  CHECK(cert_fingerprint(c.leaf.cert) != cert_fingerprint(c.leaf_b.cert));
}

TEST_CASE("tls: client helper against openssl s_server") {
  const Certs &c = pki();
  // -www: answers "GET /" with a status page. s_server serves one connection at a time, so the
  // client then goes away.
  auto get_page = [](TlsClient &t) {
    t.send("GET / HTTP/1.0\r\n\r\n");
    std::string page = t.read_until("</HTML>");
    t.abort_now();
    return page;
  };
  SUBCASE("handshake, verification, protocol, cipher, peer certificate") {
    SServer srv({"-cert", c.leaf.cert, "-key", c.leaf.key, "-www"});
    REQUIRE_MESSAGE(srv.started(), srv.output());
    TlsClient t(srv.port());
    REQUIRE(t.connected());
    REQUIRE_MESSAGE(t.handshake(verified("TLS_AES_256_GCM_SHA384")), t.error());
    CHECK(t.protocol() == "TLSv1.3");
    CHECK(t.cipher() == "TLS_AES_256_GCM_SHA384");
    CHECK(t.cipher_bits() == 256);
    CHECK(t.verify_result() == X509_V_OK);
    CHECK(t.peer_cn() == "localhost");
    CHECK(t.peer_org() == "leaf A");
    CHECK(t.peer_dns() == std::vector<std::string>{"localhost"});
    CHECK(t.peer_fingerprint() == cert_fingerprint(c.leaf.cert));
    std::string page = get_page(t);
    CHECK(page.find("HTTP/1.0 200 ok") == 0);
    CHECK(page.find("New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384") != std::string::npos);
    // by IP address, against the IP subjectAltName
    TlsClient ip(srv.port());
    TlsOptions o = verified();
    o.verify_name = "127.0.0.1";
    CHECK_MESSAGE(ip.handshake(o), ip.error());
    CHECK(get_page(ip).find("HTTP/1.0 200 ok") == 0);
    // after the page s_server shuts TLS down: the helper sees the close_notify
    TlsClient cn(srv.port());
    REQUIRE_MESSAGE(cn.handshake(verified()), cn.error());
    cn.send("GET / HTTP/1.0\r\n\r\n");
    CHECK(cn.closed(5));
    CHECK(cn.drained.find("</HTML>") != std::string::npos);
    CHECK_MESSAGE(cn.close_notify, cn.error());
  }
  SUBCASE("failures: wrong CA, wrong name, TLS 1.1 only, expired certificate") {
    SServer srv({"-cert", c.leaf.cert, "-key", c.leaf.key, "-www"});
    REQUIRE_MESSAGE(srv.started(), srv.output());
    {
      TlsClient t(srv.port());
      TlsOptions o = verified();
      o.cafile = c.ca2;
      CHECK_FALSE(t.handshake(o));
      CHECK(t.error().find("certificate verify failed") != std::string::npos);
    }
    {
      TlsClient t(srv.port());
      TlsOptions o = verified();
      o.verify_name = "mx2.test";
      CHECK_FALSE(t.handshake(o));
    }
    {
      TlsClient t(srv.port());
      TlsOptions o;
      o.max_version = TLS1_1_VERSION;
      double t0 = now();
      CHECK_FALSE(t.handshake(o));
      CHECK(now() - t0 < 4);  // refused, not timed out
      MESSAGE("TLS 1.1 client: " << t.error());
    }
    SServer old({"-cert", c.expired.cert, "-key", c.expired.key, "-www"});
    REQUIRE(old.started());
    TlsClient t(old.port());
    CHECK_FALSE(t.handshake(verified()));
    CHECK(t.error().find("expired") != std::string::npos);
  }
  SUBCASE("TLS 1.2 and an RSA certificate") {
    SServer srv({"-cert", c.rsa.cert, "-key", c.rsa.key, "-www"});
    REQUIRE_MESSAGE(srv.started(), srv.output());
    TlsClient t(srv.port());
    TlsOptions o = verified();
    o.max_version = TLS1_2_VERSION;
    REQUIRE_MESSAGE(t.handshake(o), t.error());
    CHECK(t.protocol() == "TLSv1.2");
    CHECK(t.cipher().find("ECDHE-RSA-") == 0);
    CHECK(t.peer_org() == "rsa");
  }
  SUBCASE("SNI picks the second certificate") {
    SServer srv({"-cert", c.leaf.cert, "-key", c.leaf.key, "-servername", "mx2.test", "-cert2",
                 c.mx2.cert, "-key2", c.mx2.key, "-www"});
    REQUIRE_MESSAGE(srv.started(), srv.output());
    TlsClient with(srv.port());
    TlsOptions o;
    o.sni = "mx2.test";
    o.cafile = c.ca2;
    o.verify_name = "mx2.test";
    REQUIRE_MESSAGE(with.handshake(o), with.error());
    CHECK(with.peer_cn() == "mx2.test");
    CHECK(with.peer_dns() == std::vector<std::string>{"mx2.test"});
    CHECK(get_page(with).find("HTTP/1.0 200 ok") == 0);
    TlsClient without(srv.port());
    REQUIRE_MESSAGE(without.handshake(verified()), without.error());
    CHECK(without.peer_cn() == "localhost");
  }
  SUBCASE("client certificate, required by the server") {
    SServer srv(
        {"-cert", c.leaf.cert, "-key", c.leaf.key, "-Verify", "1", "-CAfile", c.ca, "-www"});
    REQUIRE_MESSAGE(srv.started(), srv.output());
    TlsClient with(srv.port());
    TlsOptions o = verified();
    o.cert = c.client.cert;
    o.key = c.client.key;
    REQUIRE_MESSAGE(with.handshake(o), with.error());
    CHECK(get_page(with).find("HTTP/1.0 200 ok") == 0);
    TlsClient without(srv.port());
    // TLS 1.3: the client learns of the refusal only when it reads
    bool ok = without.handshake(verified());
    if (ok) CHECK(get_page(without).find("HTTP/1.0 200 ok") == std::string::npos);
  }
  SUBCASE("ClientHello bytes and a silent server time out") {
    std::string hello = client_hello();
    REQUIRE(hello.size() > 50);
    CHECK(hello[0] == 0x16);  // handshake record
    CHECK(hello[1] == 0x03);
    // a listener that never answers: the handshake gives up at the timeout
    SServer srv({"-cert", c.leaf.cert, "-key", c.leaf.key, "-www"});
    REQUIRE(srv.started());
    TlsClient busy(srv.port());  // s_server serves one connection at a time: keep it busy
    busy.send_raw(hello.substr(0, 10));
    TlsClient t(srv.port());
    TlsOptions o;
    o.timeout = 1;
    double t0 = now();
    CHECK_FALSE(t.handshake(o));
    double took = now() - t0;
    CHECK(took >= 0.9);
    CHECK(took < 3);
    CHECK(t.error() == "handshake timed out");
  }
}

namespace {
// A one-connection STARTTLS server in a thread (blocking OpenSSL, receive timeouts): banner,
// EHLO, STARTTLS, handshake, then EHLO and QUIT under TLS answered with 221 and a close_notify.
// Only for checking the helper's STARTTLS path; `transcript` is what it received.
struct FakeStarttls {
  int lfd = -1, port = 0;
  std::thread th;
  std::string transcript;
  FakeStarttls(const Pair &pair) {
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    listen(lfd, 1);
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &len);
    port = ntohs(a.sin_port);
    th = std::thread([this, pair] { serve(pair); });
  }
  ~FakeStarttls() {
    if (th.joinable()) th.join();
    close(lfd);
  }
  static std::string line_of(int fd) {  // one plain line, byte by byte (nothing read beyond it)
    std::string l;
    char ch;
    while (recv(fd, &ch, 1, 0) == 1) {
      l += ch;
      if (ch == '\n') break;
    }
    return l;
  }
  void serve(const Pair &pair) {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) return;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto put = [fd](const std::string &s) { ::send(fd, s.data(), s.size(), MSG_NOSIGNAL); };
    put("220 fake ESMTP\r\n");
    transcript += line_of(fd);
    put("250-fake\r\n250 STARTTLS\r\n");
    transcript += line_of(fd);
    put("220 2.0.0 Ready to start TLS\r\n");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx, pair.cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx, pair.key.c_str(), SSL_FILETYPE_PEM);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      std::string in;
      char buf[512];
      int n;
      while (in.find("QUIT\r\n") == std::string::npos && (n = SSL_read(ssl, buf, sizeof buf)) > 0) {
        in.append(buf, static_cast<size_t>(n));
        if (in.find("EHLO") != std::string::npos && in.find("250 ok") == std::string::npos) {
          SSL_write(ssl, "250-fake\r\n250 PIPELINING\r\n", 26);
          in += "[250 ok]";
        }
      }
      transcript += in;
      SSL_write(ssl, "221 bye\r\n", 9);
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
  }
};
}  // namespace

TEST_CASE("tls: client helper STARTTLS exchange against an in-process STARTTLS server") {
  const Certs &c = pki();
  FakeStarttls f(c.leaf);
  TlsClient t(f.port);
  REQUIRE_MESSAGE(t.starttls(verified()), t.error());
  CHECK(t.banner == "220 fake ESMTP");
  CHECK(t.ehlo_plain == "250-fake\n250 STARTTLS");
  CHECK(t.starttls_reply == "220 2.0.0 Ready to start TLS");
  CHECK(t.tls());
  CHECK(t.protocol() == "TLSv1.3");
  CHECK(t.cmd("EHLO again.example") == "250-fake\n250 PIPELINING");
  CHECK(t.cmd("QUIT") == "221 bye");
  CHECK(t.closed(3));
  CHECK(t.close_notify);
  CHECK(t.last_crlf_ok);
  t.abort_now();
  f.th.join();
  CHECK(f.transcript.find("EHLO client.example\r\nSTARTTLS\r\nEHLO again.example\r\n") == 0);
}

TEST_CASE("tls: harness: [[listen]] tables from the TOML, every port in table order") {
  Options o;
  o.toml =
      "[[listen]]\naddress = \"127.0.0.1:0\"\n[[listen]]\naddress = \"127.0.0.1:0\"\nsync_check = "
      "false\n";
  o.cli_listen = false;
  Server s(o);
  auto ports = start_ports(s, 2);
  CHECK(ports[0] != ports[1]);
  CHECK(s.port() == ports[0]);
  for (int p : ports) {
    Client c(p);
    CHECK(c.reply() == "220 mx.test.invalid ESMTP uvsmtpd");
  }
  // the second table has sync_check off: a pipelined EHLO + NOOP is answered, not refused
  Client c(ports[1]);
  c.reply();
  c.send("EHLO a.example\r\nNOOP\r\n");
  CHECK(c.reply().rfind("250-", 0) == 0);
  CHECK(c.reply() == "250 2.0.0 OK");
}

// ---- uvsmtpd: STARTTLS ----------------------------------------------------------------------

TEST_CASE("tls: EHLO advertises STARTTLS with a certificate, not without, not after TLS") {
  const Certs &c = pki();
  SUBCASE("with a certificate") {
    Server s(tls_opts(tls_toml({{}}, c.leaf.cert, c.leaf.key)));
    int port = start_ports(s, 1)[0];
    TlsClient t(port);
    REQUIRE_MESSAGE(t.starttls(verified()), t.error());
    CHECK(t.banner == "220 mx.test.invalid ESMTP uvsmtpd");
    CHECK(has_line(t.ehlo_plain, "STARTTLS"));
    CHECK(t.starttls_reply == "220 2.0.0 Ready to start TLS");
    CHECK(t.protocol() == "TLSv1.3");
    std::string ehlo = t.cmd("EHLO client.example");
    CHECK(ehlo.rfind("250-mx.test.invalid Hello [127.0.0.1]", 0) == 0);
    CHECK_FALSE(has_line(ehlo, "STARTTLS"));
    CHECK(has_line(ehlo, "PIPELINING"));
    CHECK(t.last_crlf_ok);
  }
  SUBCASE("a listener with tls = \"none\" does not offer it") {
    Server s(tls_opts(tls_toml({{"none"}}, c.leaf.cert, c.leaf.key)));
    int port = start_ports(s, 1)[0];
    Client p(port);
    p.reply();
    CHECK_FALSE(has_line(p.cmd("EHLO client.example"), "STARTTLS"));
    std::string r = p.cmd("STARTTLS");
    CHECK_MESSAGE(r.rfind("5", 0) == 0, r);
    CHECK(p.cmd("NOOP") == "250 2.0.0 OK");
  }
  SUBCASE("without [tls] certificate") {
    Server s;  // the harness's plain configuration
    REQUIRE(s.started());
    Client p(s.port());
    p.reply();
    CHECK_FALSE(has_line(p.cmd("EHLO client.example"), "STARTTLS"));
    std::string r = p.cmd("STARTTLS");
    CHECK_MESSAGE(r.rfind("5", 0) == 0, r);  // not offered: refused, never 220
    CHECK(p.cmd("NOOP") == "250 2.0.0 OK");  // and the session goes on
  }
}

TEST_CASE("tls: STARTTLS grammar: a parameter is 501 5.5.4, STARTTLS under TLS is 503 5.5.1") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{}}, c.leaf.cert, c.leaf.key)));
  int port = start_ports(s, 1)[0];
  TlsClient t(port);
  greet_plain(t);
  std::string r = t.cmd("STARTTLS foo");
  CHECK_MESSAGE(r.rfind("501 5.5.4", 0) == 0, r);
  CHECK(t.cmd("NOOP") == "250 2.0.0 OK");  // still plain, still talking
  REQUIRE(t.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS");
  REQUIRE_MESSAGE(t.handshake(verified()), t.error());
  t.cmd("EHLO client.example");
  r = t.cmd("STARTTLS");
  CHECK_MESSAGE(r.rfind("503 5.5.1", 0) == 0, r);
  CHECK(t.cmd("NOOP") == "250 2.0.0 OK");
}

TEST_CASE("tls: the handshake resets the session: EHLO again, the transaction is forgotten") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{}}, c.leaf.cert, c.leaf.key)));
  int port = start_ports(s, 1)[0];
  TlsClient t(port);
  greet_plain(t);
  REQUIRE(t.cmd("MAIL FROM:<before@client.example>").rfind("250", 0) == 0);
  REQUIRE(t.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS");
  REQUIRE_MESSAGE(t.handshake(verified()), t.error());
  // RFC 3207 4.2: the server discards what it knew from the client, HELO/EHLO included
  std::string r = t.cmd("MAIL FROM:<after@client.example>");
  CHECK_MESSAGE(r.rfind("503", 0) == 0, r);
  CHECK(t.cmd("EHLO client.example").rfind("250-", 0) == 0);
  r = t.cmd("RCPT TO:<u@example.test>");  // the MAIL FROM before STARTTLS is gone
  CHECK(r == "503 5.5.1 Use MAIL before RCPT");
  CHECK(send_msg(t, "after@client.example", "u@example.test", kBody).rfind("250 2.0.0", 0) == 0);
  CHECK(s.wait_log("from=<after@client.example>"));
  // the MAIL before STARTTLS was accepted (and logged) but never led to a message
  CHECK(s.count_log("from=<before@client.example>") == 1);
  CHECK(s.count_log("accepted message-id=") == 1);
}

TEST_CASE("tls: STARTTLS injection: plaintext pipelined after STARTTLS is never executed") {
  // RFC 3207 5 / CVE-2011-0411: bytes that follow STARTTLS in the plaintext buffer must not be
  // run as commands once TLS is up. With sync_check off the server discards them (and logs it);
  // with sync_check on (the default) it may instead refuse the group as an RFC 2920
  // synchronisation violation (554 5.5.0, close). Either way nothing is executed.
  const Certs &c = pki();
  Server s(tls_opts(
      tls_toml({{"starttls", false, false}, {"starttls", false, true}}, c.leaf.cert, c.leaf.key)));
  auto ports = start_ports(s, 2);
  const int nosync = ports[0], sync = ports[1];
  // Sends STARTTLS + `extra` in one write; true if the server went on to TLS (then `t` is in TLS
  // and the extra bytes were discarded), false if it refused the group and closed.
  auto inject = [&](TlsClient &t, const std::string &extra, bool closing_allowed) {
    greet_plain(t);
    t.send_raw("STARTTLS\r\n" + extra);
    std::string r = t.reply();
    if (closing_allowed && r == "554 5.5.0 Error: SMTP protocol synchronization") {
      CHECK(t.closed(3));
      return false;
    }
    REQUIRE(r == "220 2.0.0 Ready to start TLS");
    REQUIRE_MESSAGE(t.handshake(verified()), t.error());
    return true;
  };
  SUBCASE("STARTTLS\\r\\nRSET\\r\\n in one packet: the RSET is discarded (and logged)") {
    TlsClient t(nosync);
    inject(t, "RSET\r\n", false);
    // the first reply under TLS answers our EHLO, not the injected RSET
    std::string r = t.cmd("EHLO client.example");
    CHECK_MESSAGE(r.rfind("250-mx.test.invalid Hello", 0) == 0, r);
    CHECK(t.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(log_line_with(s, {"STARTTLS", "discard"}));
  }
  SUBCASE("STARTTLS with MAIL FROM pipelined: no transaction exists after the handshake") {
    for (int port : {nosync, sync}) {
      CAPTURE(port == sync);
      TlsClient t(port);
      if (!inject(t, "MAIL FROM:<injected@evil.example>\r\n", port == sync)) continue;
      std::string r = t.cmd("EHLO client.example");
      CHECK_MESSAGE(r.rfind("250-mx.test.invalid Hello", 0) == 0, r);
      CHECK(t.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");
    }
    CHECK(s.count_log("from=<injected@evil.example>") == 0);
  }
  SUBCASE("default listener (sync_check on): STARTTLS\\r\\nRSET\\r\\n is refused or discarded") {
    TlsClient t(sync);
    if (inject(t, "RSET\r\n", true)) {
      std::string r = t.cmd("EHLO client.example");
      CHECK_MESSAGE(r.rfind("250-mx.test.invalid Hello", 0) == 0, r);
    }
  }
  SUBCASE(
      "a command after the 220, before the ClientHello: handshake fails, nothing answered in "
      "plain") {
    for (int port : {nosync, sync}) {
      TlsClient t(port);
      up_to_starttls_220(t);
      t.send_raw("RSET\r\n" + client_hello());
      CHECK(t.closed(5));
      CHECK_MESSAGE(t.drained.find("250") == std::string::npos, t.drained);
      CHECK((t.drained.empty() || t.drained[0] == 0x15));  // nothing, or a TLS alert record
    }
  }
  still_serves(s, nosync);
  still_serves(s, sync);
}

TEST_CASE(
    "tls: require_tls: 530 before STARTTLS; after it the message is queued, Received says ESMTPS") {
  const Certs &c = pki();
  TempDir mail;
  Server s(tls_opts(tls_toml({{"starttls", true}, {"starttls", false}}, c.leaf.cert, c.leaf.key),
                    "verdict rcpt=OK\nqueue/maildir " + mail.path + "\n"));
  auto ports = start_ports(s, 2);
  {
    TlsClient t(ports[0]);
    t.reply();
    std::string ehlo = t.cmd("EHLO client.example");
    CHECK(has_line(ehlo, "STARTTLS"));
    CHECK(t.cmd("MAIL FROM:<a@client.example>") == "530 5.7.0 Must issue a STARTTLS command first");
    CHECK(t.cmd("NOOP") == "250 2.0.0 OK");
    REQUIRE(t.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS");
    REQUIRE_MESSAGE(t.handshake(verified("TLS_AES_256_GCM_SHA384")), t.error());
    t.cmd("EHLO client.example");
    std::string r = send_msg(t, "a@client.example", "u@example.test", kBody);
    CHECK_MESSAGE(r.rfind("250 2.0.0", 0) == 0, r);
    CHECK(t.cmd("QUIT").rfind("221", 0) == 0);
  }
  auto files = delivered(mail.path);
  REQUIRE_MESSAGE(files.size() == 1, s.log());
  std::string rcv = received_of(slurp(files[0]));
  CHECK_MESSAGE(rcv.find(" with ESMTPS id ") != std::string::npos, rcv);
  CHECK_MESSAGE(rcv.find("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)") !=
                    std::string::npos,
                rcv);
  CHECK(slurp(files[0]).find("hello over TLS\r\n") != std::string::npos);
  // the other listener does not require TLS: plain mail is taken, and says ESMTP
  Client p(ports[1]);
  p.reply();
  p.cmd("EHLO client.example");
  CHECK(send_message(p, "b@client.example", {"u@example.test"}, kBody).rfind("250 2.0.0", 0) == 0);
  files = delivered(mail.path);
  REQUIRE(files.size() == 2);
  for (const auto &f : files) {
    std::string m = slurp(f);
    if (m.find("Return-Path: <b@client.example>") == std::string::npos) continue;
    std::string r2 = received_of(m);
    CHECK_MESSAGE(r2.find(" with ESMTP id ") != std::string::npos, r2);
    CHECK(r2.find("(using ") == std::string::npos);
  }
}

TEST_CASE("tls: implicit TLS listener: banner inside TLS, no STARTTLS, mail is ESMTPS") {
  const Certs &c = pki();
  TempDir mail;
  Server s(tls_opts(tls_toml({{"implicit"}}, c.leaf.cert, c.leaf.key),
                    "verdict rcpt=OK\nqueue/maildir " + mail.path + "\n"));
  int port = start_ports(s, 1)[0];
  TlsClient t(port);
  REQUIRE_MESSAGE(t.handshake(verified("TLS_AES_256_GCM_SHA384")), t.error());
  CHECK(t.reply() == "220 mx.test.invalid ESMTP uvsmtpd");
  std::string ehlo = t.cmd("EHLO client.example");
  CHECK(ehlo.rfind("250-mx.test.invalid Hello [127.0.0.1]", 0) == 0);
  CHECK_FALSE(has_line(ehlo, "STARTTLS"));
  std::string r = t.cmd("STARTTLS");
  CHECK_MESSAGE(r.rfind("503 5.5.1", 0) == 0, r);
  CHECK(send_msg(t, "a@client.example", "u@example.test", kBody).rfind("250 2.0.0", 0) == 0);
  auto files = delivered(mail.path);
  REQUIRE(files.size() == 1);
  std::string rcv = received_of(slurp(files[0]));
  CHECK_MESSAGE(rcv.find(" with ESMTPS id ") != std::string::npos, rcv);
  CHECK(rcv.find("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)") !=
        std::string::npos);
}

TEST_CASE(
    "tls: hostile TLS input: plaintext to implicit, TLS to plain, garbage, aborts, timeout, TLS "
    "1.1") {
  const Certs &c = pki();
  Server s(tls_opts(
      tls_toml({{"starttls"}, {"implicit"}, {"none"}}, c.leaf.cert, c.leaf.key, "", "", 1)));
  auto ports = start_ports(s, 3);
  const int starttls = ports[0], implicit = ports[1], plain = ports[2];
  // tls_handshake = 1: the server closes within about a second of the wait starting
  auto closed_by_handshake_timeout = [](TlsClient &t) {
    double t0 = now();
    CHECK(t.closed(5));
    double took = now() - t0;
    CHECK(took >= 0.8);
    CHECK(took <= 3.5);
  };
  SUBCASE("plaintext EHLO to the implicit port: closed, never answered in plain") {
    TlsClient t(implicit);
    t.send_raw("EHLO x\r\n");
    CHECK(t.closed(5));
    CHECK(t.drained.find("250") == std::string::npos);
    CHECK(t.drained.find("220") == std::string::npos);
  }
  SUBCASE("a ClientHello to a plain listener: an error reply or a close") {
    for (int p : {starttls, plain}) {
      TlsClient t(p);
      CHECK(t.reply().rfind("220 ", 0) == 0);
      t.send_raw(client_hello());
      std::string r = t.reply(3);
      if (!r.empty()) CHECK_MESSAGE(r[0] == '5', r);  // 500/550 and maybe a close; never 2xx
      t.closed(3);
      CHECK(t.drained.find("250") == std::string::npos);
      CHECK(s.running());
    }
  }
  SUBCASE("garbage instead of a ClientHello after STARTTLS") {
    TlsClient t(starttls);
    up_to_starttls_220(t);
    std::string junk = "\x16\x03\x01\x00\x40";
    for (int i = 0; i < 64; ++i) junk += static_cast<char>((i * 37 + 11) & 0xff);
    t.send_raw(junk + "EHLO x\r\n");
    double t0 = now();
    CHECK(t.closed(5));
    CHECK(now() - t0 < 4);
    CHECK(t.drained.find("250") == std::string::npos);
  }
  SUBCASE("garbage to the implicit port") {
    TlsClient t(implicit);
    t.send_raw(std::string(300, '\xff'));
    CHECK(t.closed(5));
  }
  SUBCASE("the client closes in the middle of the handshake") {
    std::string hello = client_hello();
    for (bool reset : {false, true}) {
      TlsClient t(starttls);
      up_to_starttls_220(t);
      t.send_raw(hello.substr(0, hello.size() / 2));
      if (reset)
        t.abort_now();
      else
        t.shutdown_write();
      if (!reset) CHECK(t.closed(5));
      TlsClient i(implicit);
      i.send_raw(hello.substr(0, 20));
      i.abort_now();
    }
    CHECK(s.running());
  }
  SUBCASE("handshake timeout: tls_handshake = 1 closes a silent client after the 220") {
    TlsClient t(starttls);
    up_to_starttls_220(t);
    closed_by_handshake_timeout(t);
    CHECK(t.drained.find("250") == std::string::npos);
  }
  SUBCASE("handshake timeout on the implicit port") {
    TlsClient t(implicit);
    closed_by_handshake_timeout(t);
  }
  SUBCASE("a client that speaks at most TLS 1.1 is refused") {
    TlsOptions o;
    o.max_version = TLS1_1_VERSION;
    TlsClient t(starttls);
    CHECK_FALSE(t.starttls(o));
    CHECK(t.starttls_reply == "220 2.0.0 Ready to start TLS");  // it failed at the handshake
    TlsClient i(implicit);
    double t0 = now();
    CHECK_FALSE(i.handshake(o));
    CHECK(now() - t0 < 3);  // refused at once, not by the timeout
  }
  still_serves(s, starttls);
  TlsClient i(implicit);
  CHECK_MESSAGE(i.handshake(verified()), i.error());
  CHECK(i.reply().rfind("220 ", 0) == 0);
}

TEST_CASE(
    "tls: a bad record after an implicit-TLS handshake, while connect hooks run: the "
    "disconnect hook runs") {
  // earlytalker keeps reading on during its connect hook; the record fails there. The
  // pre-connection and connect hooks have run, so the disconnect hook must run too.
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{"implicit"}}, c.leaf.cert, c.leaf.key),
                    "earlytalker wait 2\nverdict trace=1\n"));
  int port = start_ports(s, 1)[0];
  TlsClient t(port);
  REQUIRE_MESSAGE(t.handshake(verified()), t.error());
  REQUIRE(log_line_with(s, {"trace verdict pre-connection"}));
  t.send_raw(std::string("\x17\x03\x03\x00\x20", 5) + std::string(32, 'A'));
  CHECK(t.closed(5));
  CHECK_MESSAGE(log_line_with(s, {"TLS error with 127.0.0.1"}), s.log());
  CHECK_MESSAGE(log_line_with(s, {"trace verdict disconnect"}), s.log());
}

TEST_CASE(
    "tls: an implicit-TLS handshake that times out, fails or meets EOF runs no disconnect "
    "hook (no connect hook ran either)") {
  const Certs &c = pki();
  Server s(
      tls_opts(tls_toml({{"implicit"}}, c.leaf.cert, c.leaf.key, "", "", 1), "verdict trace=1\n"));
  int port = start_ports(s, 1)[0];
  {
    TlsClient t(port);  // silent: the 1 s handshake deadline
    CHECK(t.closed(5));
  }
  {
    TlsClient t(port);  // half a ClientHello, then EOF
    std::string hello = client_hello();
    t.send_raw(hello.substr(0, hello.size() / 2));
    t.shutdown_write();
    CHECK(t.closed(5));
  }
  {
    TlsClient t(port);  // garbage: the handshake fails
    t.send_raw(std::string(300, '\xff'));
    CHECK(t.closed(5));
  }
  {
    TlsClient t(port);  // a complete session: its hooks pair up
    REQUIRE_MESSAGE(t.handshake(verified()), t.error());
    CHECK(t.reply().rfind("220 ", 0) == 0);
    CHECK(t.cmd("QUIT").rfind("221 ", 0) == 0);
  }
  REQUIRE(log_line_with(s, {"trace verdict disconnect"}));
  std::string log = s.log();
  size_t pre = 0, disc = 0;
  for (size_t p = log.find("trace verdict pre-connection"); p != std::string::npos;
       p = log.find("trace verdict pre-connection", p + 1))
    ++pre;
  for (size_t p = log.find("trace verdict disconnect"); p != std::string::npos;
       p = log.find("trace verdict disconnect", p + 1))
    ++disc;
  CHECK_MESSAGE(pre == 1, log);
  CHECK_MESSAGE(disc == 1, log);
}

TEST_CASE(
    "tls: RFC 2920 check under TLS: a KeyUpdate while a hook runs is not input; a "
    "pipelined command still is") {
  // The check peeks at the kernel; under TLS a record there may carry nothing for the session
  // (a TLS 1.3 KeyUpdate). Only decrypted bytes count.
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{"starttls"}}, c.leaf.cert, c.leaf.key),
                    "verdict ehlo=DECLINED ehlo.async=timer ehlo.delay=500 noop=DECLINED "
                    "noop.async=timer noop.delay=500\n"));
  int port = start_ports(s, 1)[0];
  TlsOptions o = verified();
  o.min_version = TLS1_3_VERSION;
  TlsClient t(port);
  REQUIRE_MESSAGE(t.starttls(o), t.error());
  t.line("EHLO client.example");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  REQUIRE(t.key_update(true));  // the server must answer with its own
  std::string r = t.reply(5);
  CHECK_MESSAGE(r.rfind("250-mx.test.invalid Hello", 0) == 0, r);
  CHECK(t.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(t.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  // A real violation under TLS: NOOP ends its group, RSET comes while its hook runs.
  t.line("NOOP");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  t.line("RSET");
  CHECK(t.reply(5) == "554 5.5.0 Error: SMTP protocol synchronization");
  CHECK(t.closed(5));
  CHECK(s.running());
}

TEST_CASE("tls: an expired certificate is served but logged as an error at startup") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{}}, c.expired.cert, c.expired.key)));
  start_ports(s, 1);
  CHECK(s.wait_log("tls: " + c.expired.cert + ": certificate expired on ", 5));
  Server ok(tls_opts(tls_toml({{}}, c.leaf.cert, c.leaf.key)));
  start_ports(ok, 1);
  CHECK(ok.count_log("certificate expire") == 0);
}

TEST_CASE("tls: SNI chooses the certificate; no SNI or an unknown name gets the default") {
  const Certs &c = pki();
  for (bool with_names : {true, false}) {
    CAPTURE(with_names);
    std::string sni = "[[tls.sni]]\ncertificate = \"" + c.mx2.cert + "\"\nkey = \"" + c.mx2.key +
                      "\"\n" + (with_names ? "names = [\"mx2.test\"]\n" : "");
    Server s(tls_opts(tls_toml({{"starttls"}, {"implicit"}}, c.leaf.cert, c.leaf.key, "", sni)));
    auto ports = start_ports(s, 2);
    for (int port : ports) {
      bool implicit = port == ports[1];
      CAPTURE(implicit);
      auto go = [&](TlsClient &t, const TlsOptions &o) {
        return implicit ? t.handshake(o) : t.starttls(o);
      };
      TlsClient a(port);
      TlsOptions o;
      o.sni = "mx2.test";
      o.cafile = c.ca2;
      o.verify_name = "mx2.test";
      REQUIRE_MESSAGE(go(a, o), a.error());
      CHECK(a.peer_cn() == "mx2.test");
      CHECK(a.peer_dns() == std::vector<std::string>{"mx2.test"});
      CHECK(a.peer_fingerprint() == cert_fingerprint(c.mx2.cert));
      TlsClient b(port);
      REQUIRE_MESSAGE(go(b, verified()), b.error());
      CHECK(b.peer_cn() == "localhost");
      CHECK(b.peer_fingerprint() == cert_fingerprint(c.leaf.cert));
      TlsClient u(port);
      TlsOptions ou = verified();
      ou.sni = "unknown.test";
      REQUIRE_MESSAGE(go(u, ou), u.error());
      CHECK(u.peer_fingerprint() == cert_fingerprint(c.leaf.cert));
    }
  }
}

TEST_CASE("tls: QUIT over TLS: 221, then close_notify") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{"starttls"}, {"implicit"}}, c.leaf.cert, c.leaf.key)));
  auto ports = start_ports(s, 2);
  for (bool implicit : {false, true}) {
    CAPTURE(implicit);
    TlsClient t(ports[implicit ? 1 : 0]);
    REQUIRE_MESSAGE(implicit ? t.handshake(verified()) : t.starttls(verified()), t.error());
    if (implicit) t.reply();
    t.cmd("EHLO client.example");
    CHECK(t.cmd("QUIT") == "221 2.0.0 mx.test.invalid Service closing transmission channel");
    CHECK(t.closed(3));
    CHECK_MESSAGE(t.close_notify, t.error());  // SSL_read returned 0 with SSL_ERROR_ZERO_RETURN
  }
}

// ---- certificate reload -------------------------------------------------------------------

namespace {
// The fingerprint a new STARTTLS client sees ("" with the error in `err`).
std::string seen_by_new_client(int port, std::string *err = nullptr) {
  TlsClient t(port);
  if (!t.starttls(verified())) {
    if (err) *err = t.error();
    return "";
  }
  t.cmd("QUIT");
  return t.peer_fingerprint();
}

bool wait_fingerprint(int port, const std::string &want, double timeout) {
  double deadline = now() + timeout;
  do {
    if (seen_by_new_client(port) == want) return true;
    usleep(50000);
  } while (now() < deadline);
  return false;
}

// A pair installed as server.pem / server.key in a temp dir, where the tests replace it.
struct InstalledPair {
  TempDir keys;
  std::string dir = keys.path, cert = dir + "/server.pem", key = dir + "/server.key";
  explicit InstalledPair(const Pair &first) { install_pair(first, dir); }
};

// The reload tests' start: the server on c.leaf installed in a temp dir (`tls_extra` in [tls]:
// the watch setting) and a session `old` that did STARTTLS before anything changes.
struct ReloadRig {
  const Certs &c = pki();
  InstalledPair pair{c.leaf};
  Server s;
  int port;
  const std::string fa = cert_fingerprint(c.leaf.cert), fb = cert_fingerprint(c.leaf_b.cert);
  TlsClient old;
  explicit ReloadRig(const std::string &tls_extra)
      : s(tls_opts(tls_toml({{}}, pair.cert, pair.key, tls_extra))),
        port(start_ports(s, 1)[0]),
        old(port) {
    REQUIRE_MESSAGE(old.starttls(verified()), old.error());
    CHECK(old.peer_fingerprint() == fa);
  }
};
}  // namespace

TEST_CASE(
    "tls: reload on SIGHUP: new handshakes get the new pair, open sessions go on, a broken pair is "
    "refused") {
  ReloadRig r("watch = false\n");
  r.old.cmd("EHLO client.example");

  install_pair(r.c.leaf_b, r.pair.dir);
  usleep(300000);
  CHECK(seen_by_new_client(r.port) == r.fa);  // watch = false: nothing changes without SIGHUP
  int reloads = r.s.count_log("reloaded");
  r.s.signal(SIGHUP);
  CHECK(r.s.wait_log("reloaded", 5, reloads + 1));
  CHECK(wait_fingerprint(r.port, r.fb, 5));
  // the session from before the reload keeps its TLS and takes a message
  CHECK(r.old.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(send_msg(r.old, "old@client.example", "u@example.test", kBody).rfind("250 2.0.0", 0) == 0);

  // a certificate with another key: refused, the running pair stays, the error is logged
  install_pair(r.c.mismatch, r.pair.dir);
  r.s.signal(SIGHUP);
  CHECK(r.s.wait_log("key does not match certificate", 5));
  std::string err;
  CHECK_MESSAGE(seen_by_new_client(r.port, &err) == r.fb, err);
  CHECK(r.s.running());
  // and a good pair later is taken again
  install_pair(r.c.leaf, r.pair.dir);
  r.s.signal(SIGHUP);
  CHECK(wait_fingerprint(r.port, r.fa, 5));
}

TEST_CASE("tls: reload when the files change (watch = true), without SIGHUP") {
  ReloadRig r("watch = true\n");
  install_pair(r.c.leaf_b, r.pair.dir);  // by rename, as certbot / an admin's mv
  CHECK(wait_fingerprint(r.port, r.fb, 5));
  CHECK(r.old.cmd("EHLO client.example").rfind("250-", 0) == 0);
  CHECK(r.old.cmd("NOOP") == "250 2.0.0 OK");
  // rewritten in place (truncate + write) is seen too
  spit(r.pair.cert, slurp(r.c.leaf.cert));
  spit(r.pair.key, slurp(r.c.leaf.key));
  CHECK(wait_fingerprint(r.port, r.fa, 5));
  // a broken pair through the watch: logged, the running pair stays
  install_pair(r.c.mismatch, r.pair.dir);
  CHECK(r.s.wait_log("key does not match certificate", 5));
  std::string err;
  CHECK_MESSAGE(seen_by_new_client(r.port, &err) == r.fa, err);
}

TEST_CASE(
    "tls-load: certificates rotated every 100 ms under 50 looping STARTTLS clients: no failed "
    "handshake") {
  const Certs &c = pki();
  InstalledPair pair(c.leaf);
  // 50 clients reconnecting in a loop from one IP: the per-IP limit (50) would refuse a new
  // connection whose predecessor the server has not finished closing yet.
  Server s(tls_opts("max_connections_per_ip = 0\n" +
                    tls_toml({{}}, pair.cert, pair.key, "watch = true\n")));
  int port = start_ports(s, 1)[0];
  const double run_for = 3;
  std::atomic<bool> stop{false};
  std::atomic<int> handshakes{0}, failed{0}, messages{0}, bad_replies{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> clients;
  const TlsOptions opts = verified();  // made here: no doctest assertion runs in the threads
  for (int i = 0; i < 50; ++i)
    clients.emplace_back([&, i] {
      while (!stop) {
        TlsClient t(port);
        if (!t.starttls(opts)) {
          ++failed;
          std::lock_guard<std::mutex> g(mu);
          if (first_error.empty()) first_error = "client " + std::to_string(i) + ": " + t.error();
          continue;
        }
        ++handshakes;
        t.cmd("EHLO load.example");
        std::string r = send_msg(t, "load@client.example", "u@example.test", kBody);
        if (r.rfind("250 2.0.0", 0) == 0)
          ++messages;
        else
          ++bad_replies;
        t.cmd("QUIT");
      }
    });
  double end = now() + run_for;
  int rotations = 0;
  while (now() < end) {
    install_pair(rotations % 2 ? c.leaf : c.leaf_b, pair.dir);
    if (rotations % 5 == 4) s.signal(SIGHUP);  // and the SIGHUP path now and then
    ++rotations;
    usleep(100000);
  }
  stop = true;
  for (auto &t : clients) t.join();
  MESSAGE("rotations=" << rotations << " handshakes=" << handshakes << " messages=" << messages);
  CHECK_MESSAGE(failed.load() == 0, first_error);
  CHECK(handshakes.load() > 50);
  CHECK(bad_replies.load() == 0);
  CHECK(messages.load() == handshakes.load());
  CHECK(s.running());
}

// ---- real clients ----------------------------------------------------------------------------

TEST_CASE("tls: real clients: Python smtplib starttls() and SMTP_SSL") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{"starttls", true}, {"implicit"}}, c.leaf.cert, c.leaf.key)));
  auto ports = start_ports(s, 2);
  std::string script = source_root() + "/tests/integration/clients/tls_send.py";
  for (auto [mode, port] :
       {std::pair<const char *, int>{"starttls", ports[0]}, {"ssl", ports[1]}}) {
    std::string which = mode;
    CAPTURE(which);
    RunResult r = sh("python3 '" + script + "' --port " + std::to_string(port) + " --mode " + mode +
                     " --cafile '" + c.ca + "'");
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("tls TLSv1.3 ") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("data 250 2.0.0") != std::string::npos, r.output);
  }
  CHECK(s.wait_log(": accepted message-id=", 5, 2));
}

TEST_CASE("tls: real clients: swaks --tls and --tls-on-connect") {
  const Certs &c = pki();
  if (sh("command -v swaks").status != 0) {
    MESSAGE("swaks is not installed: skipped (apt-get install swaks)");
    return;
  }
  if (sh("swaks --support").output.find("=== TLS supported") == std::string::npos) {
    MESSAGE(
        "swaks cannot do TLS (Net::SSLeay missing): skipped (apt-get install libnet-ssleay-perl)");
    return;
  }
  Server s(tls_opts(tls_toml({{"starttls", true}, {"implicit"}}, c.leaf.cert, c.leaf.key)));
  auto ports = start_ports(s, 2);
  for (auto [flag, port] :
       {std::pair<const char *, int>{"--tls", ports[0]}, {"--tls-on-connect", ports[1]}}) {
    std::string which = flag;
    CAPTURE(which);
    RunResult r = sh("swaks --server 127.0.0.1 --port " + std::to_string(port) + " " + flag +
                     " --ehlo client.test --from a@client.test --to u@example.test --timeout 10");
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("TLS started with cipher TLSv1.3") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("<~  250 2.0.0") != std::string::npos, r.output);
  }
}

TEST_CASE("tls: real clients: openssl s_client -starttls smtp and implicit") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{"starttls"}, {"implicit"}}, c.leaf.cert, c.leaf.key)));
  auto ports = start_ports(s, 2);
  for (bool implicit : {false, true}) {
    CAPTURE(implicit);
    std::string cmd =
        // one command at a time: EHLO and NOOP end their pipelining group (RFC 2920)
        "(printf 'EHLO client.test\\n'; sleep 0.3; printf 'NOOP\\n'; sleep 0.3; printf 'QUIT\\n') "
        "| "
        "timeout 10 openssl s_client -connect "
        "127.0.0.1:" +
        std::to_string(ports[implicit ? 1 : 0]) + (implicit ? "" : " -starttls smtp") +
        " -CAfile '" + c.ca + "' -verify_hostname localhost -verify_return_error -crlf -ign_eof";
    RunResult r = sh(cmd);
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("Verify return code: 0 (ok)") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("TLSv1.3") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("250 2.0.0 OK") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("221 2.0.0") != std::string::npos, r.output);
  }
}

TEST_CASE("tls: a close_notify while a plugin call is pending cancels the call at once") {
  // The TLS filter reads while the call waits: a close_notify (the TCP connection still open)
  // is the client going away, as a FIN is on a plain connection.
  const Certs &c = pki();
  Server s(tls_opts("hook_timeout = 10\n" + tls_toml({{"starttls"}}, c.leaf.cert, c.leaf.key),
                    "async_probe\n"));
  int port = start_ports(s, 1)[0];
  TlsClient t(port);
  REQUIRE_MESSAGE(t.starttls(verified()), t.error());
  CHECK(t.cmd("EHLO tls.example").rfind("250", 0) == 0);
  CHECK(t.cmd("MAIL FROM:<a@example.org>").rfind("250", 0) == 0);
  t.line("RCPT TO:<late@example.org>");
  REQUIRE(s.wait_log("async_probe: rcpt late on_cancel=0"));
  double t0 = now();
  REQUIRE(t.send_close_notify());
  REQUIRE(s.wait_log("async_probe: cancel rcpt pending_call=(null)", 3));
  CHECK(now() - t0 < 0.8);  // not the 10 s hook timeout, nor the plugin's own 1.5 s
  REQUIRE(s.wait_log("async_probe: disconnect\n", 3));
  CHECK(s.wait_log("lost connection while the rcpt hook of async_probe was pending"));
  REQUIRE(s.wait_log("async_probe: rcpt late complete=" + std::to_string(-ECANCELED), 4));
}
