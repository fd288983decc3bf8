// tests/integration/tls_certs.cpp: runs the openssl command line once per process to make the
// test PKI (see tls_certs.hpp), and reads certificate fingerprints with libcrypto.
#include "tls_certs.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "harness.hpp"

namespace fs = std::filesystem;

namespace itest::tls {

namespace {

// A config of our own: no dependence on the system's openssl.cnf sections.
const char *kConfig =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = unused\n"
    "[ca_ext]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server_ext]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[mx2_ext]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:mx2.test\n"
    "[client_ext]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectAltName = DNS:client.test\n";

std::string q(const std::string &s) {
  return "'" + s + "'";
}

struct Maker {
  std::string dir, cnf, log;
  bool ok = true;

  void run(const std::string &cmd) {
    if (!ok) return;
    RunResult r = sh("cd " + q(dir) + " && " + cmd);
    if (r.status != 0) {
      ok = false;
      log += "$ " + cmd + "\n" + r.output;
    }
  }
  void ec_key(const std::string &name) {
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + name + ".key");
  }
  void ca(const std::string &name, const std::string &cn) {
    ec_key(name);
    run("openssl req -x509 -new -key " + name + ".key -subj " + q("/CN=" + cn) +
        " -days 3650 -sha256 -config " + q(cnf) + " -extensions ca_ext -out " + name + ".pem");
  }
  // A leaf for `key` (already made) signed by `ca`.
  void leaf(const std::string &name, const std::string &key, const std::string &subj,
            const std::string &ca, const std::string &ext, int days) {
    run("openssl req -new -key " + key + ".key -subj " + q(subj) + " -config " + q(cnf) + " -out " +
        name + ".csr");
    run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
        ".key -CAcreateserial -days " + std::to_string(days) + " -sha256 -extfile " + q(cnf) +
        " -extensions " + ext + " -out " + name + ".pem");
  }
};

Certs *made = nullptr;

void cleanup() {
  if (made && !getenv("UVS_KEEP_TEST_DIRS")) remove_tree(made->dir);
}

Certs make() {
  Certs c;
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  if (!mkdtemp(tmpl)) {
    c.error = "mkdtemp failed";
    return c;
  }
  c.dir = tmpl;
  Maker m{c.dir, c.dir + "/openssl.cnf", "", true};
  spit(m.cnf, kConfig);
  m.ca("ca", "uvsmtpd test CA");
  m.ca("ca2", "uvsmtpd test CA 2");
  // Each leaf: its own key (P-256, RSA 2048 for "rsa"), then a certificate from `ca`.
  const struct {
    const char *name, *subject, *ca, *ext;
    int days;
  } leaves[] = {
      {"leaf", "/O=leaf A/CN=localhost", "ca", "server_ext", 825},
      {"leaf_b", "/O=leaf B/CN=localhost", "ca", "server_ext", 825},
      {"rsa", "/O=rsa/CN=localhost", "ca", "server_ext", 825},
      {"mx2", "/CN=mx2.test", "ca2", "mx2_ext", 825},
      {"client", "/CN=client.test", "ca", "client_ext", 825},
      {"expired", "/O=expired/CN=localhost", "ca", "server_ext", 0},
  };
  for (const auto &l : leaves) {
    if (std::string(l.name) == "rsa")
      m.run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key");
    else
      m.ec_key(l.name);
    m.leaf(l.name, l.name, l.subject, l.ca, l.ext, l.days);
  }
  if (!m.ok) {
    c.error = m.log;
    return c;
  }
  auto p = [&](const std::string &n) {
    return Pair{c.dir + "/" + n + ".pem", c.dir + "/" + n + ".key"};
  };
  c.ca = c.dir + "/ca.pem";
  c.ca2 = c.dir + "/ca2.pem";
  c.ca_both = c.dir + "/ca_both.pem";
  spit(c.ca_both, slurp(c.ca) + slurp(c.ca2));
  c.leaf = p("leaf");
  c.leaf_b = p("leaf_b");
  c.rsa = p("rsa");
  c.mx2 = p("mx2");
  c.client = p("client");
  c.expired = p("expired");
  c.mismatch = Pair{c.leaf.cert, c.leaf_b.key};
  return c;
}

}  // namespace

const Certs &certs() {
  if (!made) {
    made = new Certs(make());
    atexit(cleanup);
  }
  return *made;
}

std::string cert_fingerprint(const std::string &pem_path) {
  FILE *f = fopen(pem_path.c_str(), "r");
  if (!f) return "";
  X509 *x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (!x) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  std::string out;
  if (X509_digest(x, EVP_sha256(), md, &n) == 1) {
    static const char *hex = "0123456789abcdef";
    for (unsigned i = 0; i < n; ++i) {
      out += hex[md[i] >> 4];
      out += hex[md[i] & 15];
    }
  }
  X509_free(x);
  return out;
}

void install_pair(const Pair &p, const std::string &dir, const std::string &name) {
  fs::create_directories(dir);
  std::string tmp_cert = dir + "/." + name + ".pem.tmp", tmp_key = dir + "/." + name + ".key.tmp";
  spit(tmp_cert, slurp(p.cert));
  spit(tmp_key, slurp(p.key));
  fs::rename(tmp_cert, dir + "/" + name + ".pem");
  fs::rename(tmp_key, dir + "/" + name + ".key");
}

}  // namespace itest::tls
