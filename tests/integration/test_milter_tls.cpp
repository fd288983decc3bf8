// tests/integration/test_milter_tls.cpp: the milter plugin's TLS macros: after STARTTLS the HELO
// event carries {tls_version}, {cipher} and {cipher_bits} as the client negotiated them (the
// scripted milter of fake_milter.hpp, the TLS fixture's test PKI).
#include <doctest/doctest.h>
#include <string>
#include <vector>

#include "fake_milter.hpp"
#include "tls_fixture.hpp"

using namespace itest;
using namespace itest::tls;

namespace {
std::string value_of(const std::vector<std::pair<std::string, std::string>> &m,
                     const std::string &k) {
  for (const auto &kv : m)
    if (kv.first == k) return kv.second;
  return "<none>";
}
}  // namespace

TEST_CASE("milter_tls: after STARTTLS the HELO macros carry the TLS version, cipher and bits") {
  const Certs &c = pki();
  FakeMilter m;
  REQUIRE(m.port() > 0);
  Options o = tls_opts(tls_toml({Listener{}}, c.leaf.cert, c.leaf.key),
                       "milter " + m.spec() + "\nverdict rcpt=OK queue=OK\n");
  Server s(o);
  std::vector<int> ports = start_ports(s, 1);
  TlsClient t(ports[0]);
  REQUIRE_MESSAGE(t.starttls(), t.error());
  REQUIRE(m.wait_for('H'));
  CHECK(m.macros('H').empty());  // the plain EHLO: no TLS, no macros
  CHECK(t.cmd("EHLO client.example").rfind("250", 0) == 0);
  REQUIRE(m.wait_for('H', 5, 2));
  auto hm = m.macros('H');
  CHECK(value_of(hm, "{tls_version}") == t.protocol());
  CHECK(value_of(hm, "{cipher}") == t.cipher());
  CHECK(value_of(hm, "{cipher_bits}") == std::to_string(t.cipher_bits()));
  CHECK(value_of(hm, "{cert_subject}") == "<none>");  // no client certificate
  CHECK(t.cmd("QUIT").rfind("221", 0) == 0);
}
