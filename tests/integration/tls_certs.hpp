// tests/integration/tls_certs.hpp: the test PKI, made once per test process with the openssl
// command line into a temp dir (removed at exit): two CAs, server leaves, a client certificate
// and broken pairs for the failure cases. Paths only; nothing here speaks TLS.
#pragma once
#include <string>

namespace itest::tls {

struct Pair {
  std::string cert;  // PEM certificate (leaf only; the CA is not in the file)
  std::string key;   // PEM private key (PKCS#8)
};

struct Certs {
  std::string dir;      // where everything lives
  std::string ca;       // "uvsmtpd test CA" (ECDSA P-256): signs leaf, leaf_b, rsa, client, expired
  std::string ca2;      // "uvsmtpd test CA 2": signs mx2 (the SNI pair)
  std::string ca_both;  // ca + ca2 in one bundle
  Pair leaf;            // ECDSA P-256, CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (O=leaf A)
  Pair leaf_b;          // the same names, another key (O=leaf B): the reload tests rotate A <-> B
  Pair rsa;             // RSA-2048, CN=localhost, same SAN (O=rsa)
  Pair mx2;             // ECDSA P-256, CN=mx2.test, SAN DNS:mx2.test (signed by ca2)
  Pair client;          // CN=client.test, extendedKeyUsage clientAuth (signed by ca)
  Pair expired;         // CN=localhost, notAfter = notBefore (expired as soon as it is made)
  Pair mismatch;        // leaf's certificate with leaf_b's key: must be refused
  std::string error;    // non-empty if making them failed (the openssl output)
  bool ok() const { return error.empty(); }
};

// Made on the first call (about a second of openssl runs), then cached for the process.
const Certs &certs();

// SHA-256 of a PEM certificate's DER, lower-case hex without colons ("" if unreadable).
std::string cert_fingerprint(const std::string &pem_path);

// Copies a pair to <dir>/<name>.pem and <dir>/<name>.key by writing a temp file and renaming it
// over the target (what an ACME client or an admin's `mv` does).
void install_pair(const Pair &p, const std::string &dir, const std::string &name = "server");

}  // namespace itest::tls
