// tests/unit/test_auth.cpp: the pure parts of SMTP AUTH: strict base64 and the PLAIN message
// (smtp/sasl), the per-IP failure window (session/auth_lockout), and the auth settings
// ([[listen]] auth keys and the [auth] table, with their file:line errors).
#include <doctest/doctest.h>

#include <string>

#include "config/settings.hpp"
#include "session/auth_lockout.hpp"
#include "smtp/sasl.hpp"
#include "tmp_dir.hpp"

using namespace uvs;
using std::string_literals::operator""s;

namespace {
std::string load_err(const std::string &toml, config::Settings *out = nullptr) {
  unit::TmpDir t;
  std::string p = t.write("uvsmtpd.toml", toml);
  config::Settings s;
  std::string err;
  bool ok = config::load_settings(p, s, err, false);
  if (out) *out = s;
  if (ok) return "";
  CHECK_MESSAGE(err.rfind(p + ":", 0) == 0, err);
  return err.substr(p.size());
}
}  // namespace

TEST_CASE("sasl: base64 round trip and strictness (RFC 4648)") {
  std::string out;
  for (std::string s : {""s, "a"s, "ab"s, "abc"s, "abcd"s, "\0alice\0s3cret"s, "\xff\xfe\x00"s}) {
    CAPTURE(s);
    CHECK(smtp::base64_decode(smtp::base64_encode(s), out));
    CHECK(out == s);
  }
  CHECK(smtp::base64_encode("Username:") == "VXNlcm5hbWU6");
  CHECK(smtp::base64_encode("Password:") == "UGFzc3dvcmQ6");
  for (const char *bad : {"a", "abc", "ab=c", "a===", "=abc", "YW Jj", "YWJj\r", "YW*j",
                          "YQ==YQ==", "YR==", "YWI=" /* 'ab' is YWI=: valid, see below */}) {
    CAPTURE(bad);
    if (std::string(bad) == "YWI=") {
      CHECK(smtp::base64_decode(bad, out));
      CHECK(out == "ab");
      continue;
    }
    CHECK_FALSE(smtp::base64_decode(bad, out));
    CHECK(out.empty());
  }
}

TEST_CASE("sasl: the PLAIN message (RFC 4616)") {
  smtp::PlainMessage m;
  REQUIRE(smtp::parse_plain("\0alice\0s3cret"s, m));
  CHECK(m.authzid.empty());
  CHECK(m.authcid == "alice");
  CHECK(m.passwd == "s3cret");
  REQUIRE(smtp::parse_plain("boss\0alice\0pw"s, m));
  CHECK(m.authzid == "boss");
  for (std::string bad : {""s, "alice"s, "\0alice"s, "\0alice\0"s, "\0\0pw"s, "a\0b\0c\0d"s}) {
    CAPTURE(bad);
    CHECK_FALSE(smtp::parse_plain(bad, m));
    CHECK(m.passwd.empty());
  }
  CHECK(smtp::valid_sasl_user("alice@example.test"));
  CHECK(smtp::valid_sasl_user("j\xc3\xbcrgen"));
  CHECK_FALSE(smtp::valid_sasl_user(""));
  CHECK_FALSE(smtp::valid_sasl_user("a\r\nb"));
  CHECK_FALSE(smtp::valid_sasl_user(std::string(256, 'a')));
  std::string secret = "hunter2";
  smtp::wipe(secret);
  CHECK(secret.empty());
}

TEST_CASE("auth lockout: failures per IP in a sliding window") {
  AuthLockout l;
  CHECK_FALSE(l.locked("192.0.2.1", 0, 3, 1000));
  l.record_failure("192.0.2.1", 0, 1000);
  l.record_failure("192.0.2.1", 100, 1000);
  CHECK_FALSE(l.locked("192.0.2.1", 200, 3, 1000));
  l.record_failure("192.0.2.1", 200, 1000);
  CHECK(l.locked("192.0.2.1", 300, 3, 1000));
  CHECK_FALSE(l.locked("192.0.2.2", 300, 3, 1000));   // per IP
  CHECK_FALSE(l.locked("192.0.2.1", 300, 0, 1000));   // 0: no lockout
  CHECK_FALSE(l.locked("192.0.2.1", 1000, 3, 1000));  // the first failure left the window
  CHECK_FALSE(l.locked("192.0.2.1", 1300, 3, 1000));
  CHECK(l.tracked() == 0);  // all expired: forgotten
}

TEST_CASE("settings: listener auth keys and the [auth] table") {
  config::Settings s;
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\n", &s) == "");
  CHECK(s.listen[0].auth == "optional");
  CHECK_FALSE(s.listen[0].auth_plaintext);
  CHECK(s.listen[0].auth_relay);
  CHECK(s.auth_max_failures == 3);
  CHECK(s.auth_failure_delay == 1.0);
  CHECK(s.auth_lockout_failures == 10);
  CHECK(s.auth_lockout_window == 600);
  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\nauth = \"required\"\n"
                 "auth_plaintext = true\nauth_relay = false\ntls = \"none\"\n"
                 "[auth]\nmax_failures = 5\nfailure_delay = 0\nlockout_failures = 0\n"
                 "lockout_window = 60.5\n",
                 &s) == "");
  CHECK(s.listen[0].auth == "required");
  CHECK(s.listen[0].auth_plaintext);
  CHECK_FALSE(s.listen[0].auth_relay);
  CHECK(s.auth_max_failures == 5);
  CHECK(s.auth_failure_delay == 0);
  CHECK(s.auth_lockout_failures == 0);
  CHECK(s.auth_lockout_window == 60.5);

  CHECK(load_err("[[listen]]\naddress = \"127.0.0.1:25\"\nauth = \"maybe\"\n") ==
        ":3: 'listen.auth' must be one of required, optional, off (got 'maybe')");
  std::string e = load_err("[[listen]]\naddress = \"127.0.0.1:25\"\nauth_plaintext = 1\n");
  CHECK(e == ":3: 'listen.auth_plaintext' must be true or false");
  e = load_err("[[listen]]\naddress = \"127.0.0.1:25\"\ntls = \"none\"\nauth = \"required\"\n");
  CHECK_MESSAGE(e.rfind(":4: 'listen.auth' is \"required\" but 'tls' is \"none\"", 0) == 0, e);
  e = load_err("[[listen]]\naddress = \"127.0.0.1:25\"\nauth = \"required\"\n");
  CHECK_MESSAGE(
      e.rfind(":3: 'listen.auth' is \"required\" but 'tls.certificate' is not set", 0) == 0, e);
  CHECK(load_err("\n[auth]\nfailure_delay = 61\n") ==
        ":3: 'auth.failure_delay' must be a number of seconds from 0 to 60");
  CHECK(load_err("[auth]\nmax_failures = -1\n") == ":2: 'auth.max_failures' must not be negative");
  CHECK(load_err("[auth]\nlockout_window = 0\n") ==
        ":2: 'auth.lockout_window' must be a number > 0 and <= 1e9 (seconds)");
  CHECK(load_err("[auth]\nbogus = 1\n") == ":2: unknown key 'auth.bogus'");
}
