// tests/unit/test_certs.hpp: test certificates made at test time with the openssl command-line
// tool, once per test run, in a throw-away directory: a test CA and leaves signed by it (see
// Certs), for the TLS engine's tests and for sessions that need a real tls::TlsContext.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "tmp_dir.hpp"

namespace unit {

// Runs `cmd` in `dir` (output discarded); the test stops if it fails.
inline void sh(const std::string &dir, const std::string &cmd) {
  std::string full = "cd '" + dir + "' && " + cmd + " >/dev/null 2>&1";
  INFO(cmd);
  REQUIRE(std::system(full.c_str()) == 0);
}

// A test CA; an ECDSA P-256 leaf for mx.test/mail.test; an RSA-2048 leaf for other.test and
// *.wild.test; a second ECDSA leaf for mx.test (a renewal); a client certificate from the CA
// and a self-signed one. p("mx.pem"), p("mx.key"), ... are their paths.
struct Certs {
  TmpDir tmp;
  std::string dir;
  Certs() : dir(tmp.dir) {
    tmp.write("req.cnf",
              "[req]\ndistinguished_name = dn\n[dn]\n[v3_ca]\n"
              "basicConstraints = critical,CA:TRUE\n"
              "keyUsage = critical,keyCertSign,cRLSign\n"
              "subjectKeyIdentifier = hash\n");
    tmp.write("mx.ext",
              "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"
              "subjectAltName = DNS:mx.test,DNS:mail.test\n");
    tmp.write("other.ext",
              "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"
              "subjectAltName = DNS:other.test,DNS:*.wild.test\n");
    tmp.write("client.ext", "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n");
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    sh(dir, "openssl req -x509 -new " + ec +
                " -keyout ca.key -out ca.pem -days 30 -subj /CN=uvs-test-ca -config req.cnf"
                " -extensions v3_ca");
    auto leaf = [&](const std::string &name, const std::string &keyopt, const std::string &cn,
                    const std::string &ext, int serial) {
      sh(dir, "openssl req -new " + keyopt + " -keyout " + name + ".key -out " + name +
                  ".csr -subj /CN=" + cn + " -config req.cnf");
      sh(dir, "openssl x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -set_serial " +
                  std::to_string(serial) + " -days 30 -out " + name + ".pem -extfile " + ext);
    };
    leaf("mx", ec, "mx.test", "mx.ext", 10);
    leaf("mx2", ec, "mx.test", "mx.ext", 11);
    leaf("other", "-newkey rsa:2048 -nodes", "other.test", "other.ext", 12);
    leaf("client", ec, "client.test", "client.ext", 13);
    sh(dir, "openssl req -x509 -new " + ec +
                " -keyout self.key -out self.pem -days 30 -subj /CN=stranger -config req.cnf");
  }
  std::string p(const std::string &f) const { return dir + "/" + f; }
};

// The certificates of this test run (made on first use).
inline const Certs &certs() {
  static Certs c;
  return c;
}

}  // namespace unit
