// tests/unit/test_passwd_file.cpp: auth/passwd_file's table (plugins/auth/passwd_file/pf_table.c):
// the Dovecot passwd-file parser, the schemes it accepts and refuses (with file:line errors), the
// lookup and the password check. Hashes are made here through libcrypt itself (crypt_gensalt_rn
// + crypt_rn), so every one is checkable. Built as its own binary (passwd_file_tests).
#include <doctest/doctest.h>

#include <chrono>
#include <crypt.h>
#include <cstring>
#include <initializer_list>
#include <string>

#include "tmp_dir.hpp"

extern "C" {
#include "../../plugins/auth/passwd_file/pf_table.h"
}

namespace {

// A fresh hash of `password` with libcrypt's default cost for the method of `prefix`.
std::string make_hash(const char *prefix, const std::string &password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE_MESSAGE(crypt_gensalt_rn(prefix, 0, nullptr, 0, setting, sizeof setting) != nullptr,
                  prefix);
  struct crypt_data cd;
  std::memset(&cd, 0, sizeof cd);
  const char *h = crypt_rn(password.c_str(), setting, &cd, sizeof cd);
  REQUIRE(h != nullptr);
  REQUIRE(h[0] != '*');
  return h;
}

// Each string followed by "\n".
std::string lines(std::initializer_list<std::string> ls) {
  std::string out;
  for (const auto &l : ls) out += l + "\n";
  return out;
}

struct Loaded {
  pf_table t{};
  int rc = 0;
  std::string path;
  Loaded(const unit::TmpDir &d, const std::string &content, bool allow_plain = false,
         const std::string &name = "passwd") {
    path = d.write(name, content);
    rc = pf_load(&t, path.c_str(), allow_plain ? 1 : 0);
  }
  ~Loaded() { pf_free(&t); }
  Loaded(const Loaded &) = delete;
  Loaded &operator=(const Loaded &) = delete;
  std::string error() const { return t.error; }
  int check(const char *user, const char *password) const {
    const pf_entry *e = pf_find(&t, user);
    if (!e) return -2;
    return pf_verify(&t, e, password);
  }
};

}  // namespace

TEST_CASE("passwd_file: the hash methods: right password matches, wrong one does not") {
  unit::TmpDir d;
  const std::string y = make_hash("$y$", "yes-pass"), b = make_hash("$2y$", "blf-pass"),
                    b2 = make_hash("$2b$", "blf2-pass"), s6 = make_hash("$6$", "sha512-pass"),
                    s5 = make_hash("$5$", "sha256-pass"), sc = make_hash("$7$", "scrypt-pass");
  // Comments, a blank line, extra fields, a CRLF line and no newline after the last line.
  std::string file =
      lines({"# users", "", "   # an indented comment", "yes:" + y,
             "blf:" + b + ":1000:1000::/home/blf:/bin/false:extra=1", "blf2:{BLF-CRYPT}" + b2,
             "sha:" + s6 + "\r", "shab:{SHA512-CRYPT}" + s6 + "::", "shac:{sha512-crypt}" + s6,
             "s256:{SHA256-CRYPT}" + s5, "cry:{CRYPT}" + y}) +
      "scr:" + sc;
  Loaded l(d, file);
  REQUIRE_MESSAGE(l.rc == 0, l.error());
  CHECK(l.t.n == 9);
  CHECK(l.t.nplain == 0);
  CHECK(l.check("yes", "yes-pass") == 1);
  CHECK(l.check("yes", "yes-pass ") == 0);
  CHECK(l.check("yes", "") == 0);
  CHECK(l.check("blf", "blf-pass") == 1);
  CHECK(l.check("blf", "blf-pasS") == 0);
  CHECK(l.check("blf2", "blf2-pass") == 1);
  CHECK(l.check("sha", "sha512-pass") == 1);  // the CR of a CRLF line is not part of the hash
  CHECK(l.check("sha", "sha512-pas") == 0);
  CHECK(l.check("shab", "sha512-pass") == 1);
  CHECK(l.check("shac", "sha512-pass") == 1);
  CHECK(l.check("shab", "x") == 0);
  CHECK(l.check("s256", "sha256-pass") == 1);
  CHECK(l.check("cry", "yes-pass") == 1);
  CHECK(l.check("scr", "scrypt-pass") == 1);
  CHECK(l.check("scr", "scrypt-pass2") == 0);
}

TEST_CASE("passwd_file: user names: lookup is ASCII case-insensitive, unknown users are absent") {
  unit::TmpDir d;
  const std::string h = make_hash("$6$", "pw");
  Loaded l(d, "Alice@Example.COM:" + h + "\nbob:" + h + "\n");
  REQUIRE_MESSAGE(l.rc == 0, l.error());
  CHECK(pf_find(&l.t, "alice@example.com") != nullptr);
  CHECK(pf_find(&l.t, "ALICE@EXAMPLE.COM") != nullptr);
  CHECK(std::string(pf_find(&l.t, "BOB")->user) == "bob");
  CHECK(pf_find(&l.t, "carol") == nullptr);
  CHECK(pf_find(&l.t, "") == nullptr);
  CHECK(pf_find(&l.t, "alice") == nullptr);
  CHECK(l.check("alice@example.com", "pw") == 1);
}

TEST_CASE("passwd_file: {PLAIN} and {CLEARTEXT} need allow_plain") {
  unit::TmpDir d;
  const std::string h = make_hash("$y$", "x");
  SUBCASE("refused without it: file:line names the user, never the password") {
    Loaded l(d, "a:" + h + "\n# c\nplainuser:{PLAIN}Secret-Word\n");
    CHECK(l.rc == -EINVAL);
    CHECK(l.error().find(l.path + ":3: {PLAIN} (clear-text) password for user 'plainuser' "
                                  "refused") == 0);
    CHECK(l.error().find("allow_plain") != std::string::npos);
    CHECK(l.error().find("Secret-Word") == std::string::npos);
    CHECK(l.t.n == 0);  // nothing kept
  }
  SUBCASE("CLEARTEXT too") {
    Loaded l(d, "c:{CLEARTEXT}pw\n");
    CHECK(l.rc == -EINVAL);
    CHECK(l.error().find(l.path + ":1: {CLEARTEXT}") == 0);
  }
  SUBCASE("accepted with it, compared exactly") {
    Loaded l(d, "a:" + h + "\np:{PLAIN}Secret Word#1\nq:{cleartext}pw2:1:1\n", true);
    REQUIRE_MESSAGE(l.rc == 0, l.error());
    CHECK(l.t.nplain == 2);
    CHECK(l.check("p", "Secret Word#1") == 1);
    CHECK(l.check("p", "Secret Word#") == 0);
    CHECK(l.check("p", "Secret Word#12") == 0);
    CHECK(l.check("p", "secret Word#1") == 0);
    CHECK(l.check("q", "pw2") == 1);
    CHECK(l.check("a", "x") == 1);
  }
}

TEST_CASE("passwd_file: bad lines fail the load with file:line and a reason") {
  unit::TmpDir d;
  const std::string h = make_hash("$6$", "pw");
  struct Case {
    std::string line, want;
  };
  const Case cases[] = {
      {"justaname", ":2: no password field"},
      {":" + h, ":2: empty user name"},
      {"us er:" + h, ":2: the user name holds a blank or control character"},
      {"u\x01:" + h, ":2: the user name holds a blank or control character"},
      {"u:", ":2: empty password for user 'u'"},
      {"u::1000", ":2: empty password for user 'u'"},
      {"u:{PLAIN}", ":2: {PLAIN} (clear-text)"},
      {"u:{SSHA}abc", ":2: unsupported password scheme {SSHA} for user 'u'"},
      {"u:{MD5-CRYPT}$1$abc$def", ":2: unsupported password scheme {MD5-CRYPT}"},
      {"u:{SHA512-CRYPT", ":2: password scheme of user 'u' is not {NAME}"},
      {"u:{}x", ":2: password scheme of user 'u' is not {NAME}"},
      {"u:abJnggxhB/yWI", ":2: password of user 'u': not a supported crypt hash"},  // DES
      {"u:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", ":2: password of user 'u': not a supported"},
      {"u:{SHA512-CRYPT}" + make_hash("$5$", "x"),
       ":2: password of user 'u': {SHA512-CRYPT} needs"},
      {"u:{SHA256-CRYPT}" + h, ":2: password of user 'u': {SHA256-CRYPT} needs a $5$ hash"},
      {"u:{BLF-CRYPT}" + h, ":2: password of user 'u': {BLF-CRYPT} needs a bcrypt hash"},
      {"u:$6$", ":2: password of user 'u': libcrypt does not accept this hash"},
      {"u:$y$", ":2: password of user 'u': libcrypt does not accept this hash"},
      {"u:$2y$99$abcdefghijklmnopqrstuv", ":2: password of user 'u': libcrypt does not accept"},
      {"u:" + h.substr(0, h.size() - 1), ":2: password of user 'u': libcrypt does not accept"},
      {"u:" + h + "x", ":2: password of user 'u': libcrypt does not accept"},
      {"u:$6$" + h.substr(h.rfind('$') + 1), ":2: password of user 'u': libcrypt does not"},
      {"u:" + h.substr(0, h.size() - 1) + "!", ":2: password of user 'u': libcrypt does not"},
      {"u:" + make_hash("$2y$", "x").substr(0, 59), ":2: password of user 'u': libcrypt does"},
      {"u:$2y$32$" + make_hash("$2y$", "x").substr(7), ":2: password of user 'u': libcrypt"},
      {"u:" + make_hash("$y$", "x") + "A", ":2: password of user 'u': libcrypt does not"},
      {"u:" + h + " ", ":2: password of user 'u': the hash holds a blank or control character"},
      {"u:" + std::string(5000, 'x'), ":2: line longer than 4096 bytes"},
      {std::string("u:$6$ab\0cd", 10), ":2: NUL byte in the line"},
  };
  for (const Case &c : cases) {
    CAPTURE(c.line);
    Loaded l(d, "ok:" + h + "\n" + c.line + "\nlater:" + h + "\n");
    CHECK(l.rc == -EINVAL);
    CHECK_MESSAGE(l.error().find(l.path + c.want) == 0, l.error());
    CHECK(l.t.n == 0);
  }
}

TEST_CASE("passwd_file: a user defined twice (in any case) is an error naming both lines") {
  unit::TmpDir d;
  const std::string h = make_hash("$6$", "pw");
  Loaded l(d, "a:" + h + "\nBob:" + h + "\nc:" + h + "\nbob:" + h + "\n");
  CHECK(l.rc == -EINVAL);
  CHECK_MESSAGE(l.error() == l.path + ":4: user 'bob' already defined at line 2", l.error());
}

TEST_CASE("passwd_file: a missing file names the file and the reason") {
  unit::TmpDir d;
  pf_table t{};
  std::string p = d.dir + "/nope";
  CHECK(pf_load(&t, p.c_str(), 0) == -ENOENT);
  CHECK(std::string(t.error) == p + ": cannot open: No such file or directory");
  pf_free(&t);
}

TEST_CASE("passwd_file: an empty file (or only comments) loads with no users") {
  unit::TmpDir d;
  Loaded l(d, "# nobody yet\n\n");
  REQUIRE(l.rc == 0);
  CHECK(l.t.n == 0);
  CHECK(pf_find(&l.t, "a") == nullptr);
  CHECK(pf_verify(&l.t, nullptr, "x") == 0);  // the dummy check has nothing to hash: still 0
}

TEST_CASE("passwd_file: pf_equal compares whole strings") {
  CHECK(pf_equal("abc", 3, "abc", 3) == 1);
  CHECK(pf_equal("abc", 3, "abd", 3) == 0);
  CHECK(pf_equal("abc", 3, "ab", 2) == 0);
  CHECK(pf_equal("ab", 2, "abc", 3) == 0);
  CHECK(pf_equal("", 0, "", 0) == 1);
  CHECK(pf_equal("a\0b", 3, "a\0c", 3) == 0);
}

TEST_CASE("passwd_file: an unknown user costs a hash too (the dummy check)") {
  // The dummy check hashes with the table's first crypt entry: with one yescrypt user it costs
  // about what that user's check costs. Tolerance: at least a third of the real check's time
  // (a dummy that hashed nothing would take microseconds against milliseconds).
  unit::TmpDir d;
  Loaded l(d, "only:" + make_hash("$y$", "pw") + "\n");
  REQUIRE(l.rc == 0);
  const pf_entry *e = pf_find(&l.t, "only");
  auto time_of = [&](const pf_entry *which) {
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      pf_verify(&l.t, which, "guess");
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  double real = time_of(e), dummy = time_of(nullptr);
  CAPTURE(real);
  CAPTURE(dummy);
  CHECK(real > 0.001);  // yescrypt at its default cost takes milliseconds
  CHECK(dummy > real / 3);
}
