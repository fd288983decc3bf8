// tests/integration/test_tls_abi.cpp: the plugin ABI's TLS view through the real binary: the
// tls_probe test plugin logs tls_active() and tls_info() at ehlo and mail, on a plain session,
// after STARTTLS with SNI and a client certificate, and on an implicit-TLS session without
// either. Built only when plugin.h has uvs_tls_info (tests/plugins/meson.build: have_tls_info).
#include <doctest/doctest.h>

#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"
#include "tls_fixture.hpp"

using namespace itest;
using namespace itest::tls;

TEST_CASE("tls: plugin tls_info() sees protocol, cipher, bits, SNI and the client certificate") {
  const Certs &c = pki();
  Server s(tls_opts(tls_toml({{"starttls"}, {"implicit"}}, c.leaf.cert, c.leaf.key,
                             "client_certificates = \"request\"\nclient_ca = \"" + c.ca + "\"\n"),
                    "tls_probe\nverdict rcpt=OK queue=OK\n"));
  auto ports = start_ports(s, 2);
  const std::string suite = "TLS_AES_256_GCM_SHA384";
  SUBCASE("plain session: not in TLS, -ENOENT") {
    TlsClient t(ports[0]);
    t.reply();
    t.cmd("EHLO plain.example");
    CHECK(log_line_with(s,
                        {"ehlo active=0 rc=-2 protocol=[] cipher=[] bits=0 sni=[] client_cert=0"}));
    CHECK(log_line_with(s, {"ehlo small_size_rc=", "small_untouched=1"}));
  }
  SUBCASE("STARTTLS with SNI and a client certificate signed by client_ca") {
    TlsClient t(ports[0]);
    TlsOptions o = verified(suite);
    o.sni = "localhost";
    o.cert = c.client.cert;
    o.key = c.client.key;
    REQUIRE_MESSAGE(t.starttls(o), t.error());
    t.cmd("EHLO tls.example");
    CHECK(t.cmd("MAIL FROM:<a@client.example>").rfind("250", 0) == 0);
    const std::string fp = cert_fingerprint(c.client.cert);
    for (const char *hook : {"ehlo", "mail"}) {
      CAPTURE(hook);
      CHECK(log_line_with(
          s,
          {std::string(hook) + " active=1 rc=0 protocol=[TLSv1.3] cipher=[TLS_AES_256_GCM_SHA384] "
                               "bits=256 sni=[localhost] client_cert=1 verified=1 subject=[",
           "client.test", "fp=[" + fp + "]"}));
    }
    CHECK(log_line_with(s, {"mail small_size_rc=", "small_untouched=1"}));
  }
  SUBCASE("STARTTLS with a client certificate from another CA: presented, not verified") {
    TlsClient t(ports[0]);
    TlsOptions o = verified(suite);
    o.cert = c.mx2.cert;  // a server certificate of ca2: client_ca does not vouch for it
    o.key = c.mx2.key;
    REQUIRE_MESSAGE(t.starttls(o), t.error());  // "request" never refuses the handshake
    t.cmd("EHLO tls.example");
    CHECK(log_line_with(s, {"ehlo active=1 rc=0 protocol=[TLSv1.3]", "client_cert=1 verified=0"}));
  }
  SUBCASE("implicit TLS without SNI or client certificate") {
    TlsClient t(ports[1]);
    REQUIRE_MESSAGE(t.handshake(verified(suite)), t.error());
    t.reply();
    t.cmd("EHLO implicit.example");
    CHECK(log_line_with(
        s, {"ehlo active=1 rc=0 protocol=[TLSv1.3] cipher=[TLS_AES_256_GCM_SHA384] bits=256 "
            "sni=[] client_cert=0 verified=0 subject=[] fp=[]"}));
  }
}
