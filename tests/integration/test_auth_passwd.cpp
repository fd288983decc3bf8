// tests/integration/test_auth_passwd.cpp: the auth/passwd_file plugin through the real binary:
// SMTP AUTH (RFC 4954) over STARTTLS against a Dovecot passwd-file with yescrypt, bcrypt and
// SHA512-CRYPT users (hashes made here through libcrypt), wrong passwords and unknown users, the
// file's startup errors (file:line), {PLAIN} with and without allow_plain, SIGHUP reloads, the
// loop staying responsive while 20 clients hash at once, and real clients (msmtp, smtplib).
// Cases are named "auth_passwd: ...": run them with -tc='auth_passwd*'.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <crypt.h>
#include <csignal>
#include <cstring>
#include <initializer_list>
#include <filesystem>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "harness.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"
#include "tls_fixture.hpp"

using namespace itest;
using namespace itest::tls;
namespace fs = std::filesystem;

namespace {

// A fresh libcrypt hash of `password`; count 0 = libcrypt's default cost for the method.
std::string make_hash(const char *prefix, const std::string &password, unsigned long count = 0) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE_MESSAGE(crypt_gensalt_rn(prefix, count, nullptr, 0, setting, sizeof setting) != nullptr,
                  prefix);
  struct crypt_data cd;
  std::memset(&cd, 0, sizeof cd);
  const char *h = crypt_rn(password.c_str(), setting, &cd, sizeof cd);
  REQUIRE(h != nullptr);
  REQUIRE(h[0] != '*');
  return h;
}

// Seconds one check of `password` against `hash` takes here (the best of three).
double hash_seconds(const std::string &hash) {
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    struct crypt_data cd;
    std::memset(&cd, 0, sizeof cd);
    double t0 = now();
    crypt_rn("guess", hash.c_str(), &cd, sizeof cd);
    best = std::min(best, now() - t0);
  }
  return best;
}

std::string b64(const std::string &in) {
  static const char *k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v =
        (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

// Each string followed by "\n".
std::string lines(std::initializer_list<std::string> ls) {
  std::string out;
  for (const auto &l : ls) out += l + "\n";
  return out;
}

std::string plain_ir(const std::string &user, const std::string &pass,
                     const std::string &authzid = "") {
  return b64(authzid + std::string(1, '\0') + user + std::string(1, '\0') + pass);
}

// The users every case has: one per hash method and spelling.
struct Users {
  std::string yes = make_hash("$y$", "yes-Secret1");
  std::string blf = make_hash("$2y$", "blf-Secret2");
  std::string sha = make_hash("$6$", "sha-Secret3");
  std::string file() const {
    return lines({"# users of the auth/passwd_file tests", "yesuser:" + yes + "::::::",
                  "blfuser:" + blf + ":1000:1000::/home/blfuser::", "shauser:" + sha,
                  "shaprefixed:{SHA512-CRYPT}" + sha});
  }
};
const char *const kPasswords[] = {"yes-Secret1", "blf-Secret2", "sha-Secret3"};

// uvsmtpd.toml: one STARTTLS listener with the test certificate (AUTH is offered under TLS);
// failures answered at once and no per-IP lockout, so the wrong-password cases run quickly.
std::string auth_toml() {
  const Certs &c = pki();
  return tls_toml({{"starttls"}}, c.leaf.cert, c.leaf.key) +
         "[auth]\nfailure_delay = 0\nlockout_failures = 0\n";
}

// A temp dir holding the Users as <dir>/passwd.
struct UsersFile {
  TempDir tmp;
  Users u;
  std::string path = tmp.path + "/passwd";
  UsersFile() { spit(path, u.file()); }
};

Options auth_opts(const std::string &passwd_path, const std::string &more_args = "",
                  const std::string &after = "verdict rcpt=OK queue=OK\n",
                  const std::string &top_level = "") {
  std::string line = "auth/passwd_file " + passwd_path;
  if (!more_args.empty()) line += " " + more_args;
  return tls_opts(top_level + auth_toml(), line + "\n" + after);
}

// A client through STARTTLS and EHLO under TLS (REQUIREd to advertise AUTH PLAIN).
struct AuthClient {
  TlsClient c;
  explicit AuthClient(int port) : c(port) {
    REQUIRE_MESSAGE(c.starttls(verified()), c.error());
    std::string ehlo = c.cmd("EHLO client.example");
    REQUIRE_MESSAGE(has_line(ehlo, "AUTH"), ehlo);
  }
  std::string plain(const std::string &user, const std::string &pass, double timeout = 15) {
    return c.cmd("AUTH PLAIN " + plain_ir(user, pass), timeout);
  }
};

std::string code3(const std::string &reply) {
  return reply.substr(0, 3);
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

// slowuser (password slow-Secret6) in a passwd file of its own, with a yescrypt hash (count 7)
// costly enough to measure; one_hash: how long one check of it takes on this machine.
struct SlowUser {
  TempDir tmp;
  std::string hash = make_hash("$y$", "slow-Secret6", 7);
  double one_hash = hash_seconds(hash);
  std::string path = tmp.path + "/passwd";
  SlowUser() { spit(path, "slowuser:" + hash + "\n"); }
};

}  // namespace

TEST_CASE("auth_passwd: yescrypt, bcrypt $2y$ and SHA512-CRYPT users: right 235, wrong 535") {
  UsersFile f;
  auto &[tmp, u, path] = f;
  Server s(auth_opts(path));
  int port = start_ports(s, 1)[0];
  std::string cpus = std::to_string(std::thread::hardware_concurrency());
  CHECK(s.wait_log("auth/passwd_file: 4 user(s) from " + path + " (0 with a clear-text " +
                   "password), at most " + cpus + " check(s) at once"));
  struct Case {
    const char *user;
    const char *pass;
  };
  for (const Case &k : {Case{"yesuser", kPasswords[0]}, Case{"blfuser", kPasswords[1]},
                        Case{"shauser", kPasswords[2]}, Case{"shaprefixed", kPasswords[2]},
                        Case{"SHAUSER", kPasswords[2]}}) {
    CAPTURE(k.user);
    {
      AuthClient a(port);
      CHECK(a.plain(k.user, k.pass) == "235 2.7.0 Authentication successful");
      CHECK(code3(a.c.cmd("MAIL FROM:<a@client.example>")) == "250");
    }
    {
      AuthClient a(port);
      CHECK(a.plain(k.user, std::string(k.pass) + "x") ==
            "535 5.7.8 Authentication credentials invalid");
    }
  }
  CHECK(s.count_log("auth/passwd_file: pass, user '") == 5);
  CHECK(s.count_log("auth/passwd_file: fail, wrong password for user '") == 5);
  CHECK(s.count_log("fail, wrong password for user 'blfuser'") == 1);
  // The passwords never reach the log (the server runs at debug level), in clear or in base64.
  std::string log = s.log();
  for (const char *p : kPasswords) {
    CHECK(log.find(p) == std::string::npos);
    CHECK(log.find(b64(p)) == std::string::npos);
  }
  CHECK(log.find(plain_ir("yesuser", kPasswords[0])) == std::string::npos);
}

TEST_CASE("auth_passwd: AUTH LOGIN checks the same way") {
  UsersFile f;
  auto &[tmp, u, path] = f;
  Server s(auth_opts(path));
  int port = start_ports(s, 1)[0];
  AuthClient a(port);
  CHECK(a.c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6");
  CHECK(a.c.cmd(b64("blfuser")) == "334 UGFzc3dvcmQ6");
  CHECK(a.c.cmd(b64(kPasswords[1]), 15) == "235 2.7.0 Authentication successful");
  CHECK(s.wait_log("auth/passwd_file: pass, user 'blfuser'"));
}

TEST_CASE("auth_passwd: an unknown user is DECLINED (a hash runs all the same): 535") {
  UsersFile f;
  auto &[tmp, u, path] = f;
  Server s(auth_opts(path));
  int port = start_ports(s, 1)[0];
  AuthClient a(port);
  CHECK(a.plain("nobody", kPasswords[0]) == "535 5.7.8 Authentication credentials invalid");
  CHECK(s.wait_log("auth/passwd_file: skip, unknown user 'nobody'"));
  CHECK(s.wait_log("auth -> DECLINED"));  // the core's debug line for the verdict
  CHECK(s.count_log("auth -> DENY") == 0);
}

TEST_CASE("auth_passwd: an authorization identity other than the user is DECLINED: 535") {
  UsersFile f;
  auto &[tmp, u, path] = f;
  Server s(auth_opts(path));
  int port = start_ports(s, 1)[0];
  AuthClient a(port);
  CHECK(a.c.cmd("AUTH PLAIN " + plain_ir("shauser", kPasswords[2], "yesuser"), 15) ==
        "535 5.7.8 Authentication credentials invalid");
  CHECK(s.wait_log("skip, an authorization identity other than the user is not supported"));
  AuthClient b(port);  // the same identity as the user is no authzid at all
  CHECK(b.c.cmd("AUTH PLAIN " + plain_ir("shauser", kPasswords[2], "shauser"), 15) ==
        "235 2.7.0 Authentication successful");
}

TEST_CASE("auth_passwd: {PLAIN} is refused at startup without allow_plain, accepted with it") {
  TempDir tmp;
  Users u;
  std::string path = tmp.path + "/passwd";
  spit(path, u.file() + "# clear text below\nclear:{PLAIN}Clear Text 4\n");
  {
    Server s(auth_opts(path));
    CHECK_FALSE(s.started());
    CHECK(s.wait_exit() == 1);
    CHECK_MESSAGE(s.log().find(path + ":7: {PLAIN} (clear-text) password for user 'clear' "
                                      "refused: give the plugin the allow_plain argument") !=
                      std::string::npos,
                  s.log());
    CHECK(s.log().find("Clear Text 4") == std::string::npos);
  }
  Server s(auth_opts(path, "allow_plain"));
  int port = start_ports(s, 1)[0];
  CHECK(s.wait_log("5 user(s) from " + path + " (1 with a clear-text password)"));
  AuthClient a(port);
  CHECK(a.plain("clear", "Clear Text 4") == "235 2.7.0 Authentication successful");
  AuthClient b(port);
  CHECK(b.plain("clear", "Clear Text") == "535 5.7.8 Authentication credentials invalid");
}

TEST_CASE("auth_passwd: bad lines and bad arguments stop the start with file:line") {
  TempDir tmp;
  Users u;
  std::string path = tmp.path + "/passwd";
  struct Case {
    std::string content, args, want;
  };
  const Case cases[] = {
      {u.file() + "broken-line-without-password\n", "", path + ":6: no password field"},
      {u.file() + "md5:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/\n", "",
       path + ":6: password of user 'md5': not a supported crypt hash"},
      {u.file() + "x:{SSHA}abc\n", "", path + ":6: unsupported password scheme {SSHA}"},
      {"shauser:" + u.sha + "\nShaUser:" + u.sha + "\n", "",
       path + ":2: user 'ShaUser' already defined at line 1"},
      {u.file(), "allow_plain extra", "usage: auth/passwd_file <absolute path"},
      {u.file(), "nonsense", "usage: auth/passwd_file <absolute path"},
      {u.file(), "max_parallel=0", "[max_parallel=N] (N from 1 to 1024)"},
      {u.file(), "max_parallel=1025", "[max_parallel=N] (N from 1 to 1024)"},
      {u.file(), "max_parallel=2x", "[max_parallel=N] (N from 1 to 1024)"},
      {u.file(), "allow_plain allow_plain", "usage: auth/passwd_file <absolute path"},
  };
  for (const Case &k : cases) {
    CAPTURE(k.want);
    spit(path, k.content);
    Server s(auth_opts(path, k.args));
    CHECK_FALSE(s.started());
    CHECK(s.wait_exit() == 1);
    CHECK_MESSAGE(s.log().find(k.want) != std::string::npos, s.log());
    CHECK(s.log().find("plugin 'auth/passwd_file' failed to initialise") != std::string::npos);
  }
  {
    Server s(auth_opts(tmp.path + "/missing"));
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find(tmp.path + "/missing: cannot open: No such file or directory") !=
          std::string::npos);
  }
  {
    Server s(auth_opts("relative/passwd"));
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find("the passwd-file path must be absolute: 'relative/passwd'") !=
          std::string::npos);
  }
}

TEST_CASE("auth_passwd: SIGHUP reloads the file: a new user works, a removed one fails") {
  UsersFile f;
  auto &[tmp, u, path] = f;
  Server s(auth_opts(path));
  int port = start_ports(s, 1)[0];
  {
    AuthClient a(port);
    CHECK(a.plain("shauser", kPasswords[2]) == "235 2.7.0 Authentication successful");
  }
  // shauser goes, newuser comes.
  std::string newhash = make_hash("$y$", "new-Secret5");
  spit(path, "yesuser:" + u.yes + "\nnewuser:{CRYPT}" + newhash + "\n");
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  CHECK(s.wait_log("2 user(s) from " + path));
  {
    AuthClient a(port);
    CHECK(a.plain("newuser", "new-Secret5") == "235 2.7.0 Authentication successful");
  }
  {
    AuthClient a(port);
    CHECK(a.plain("shauser", kPasswords[2]) == "535 5.7.8 Authentication credentials invalid");
  }
  CHECK(s.wait_log("skip, unknown user 'shauser'"));
  // A broken file at reload: the reload fails and the users loaded before still work.
  spit(path, "newuser:{CRYPT}" + newhash + "\nbad line\n");
  s.signal(SIGHUP);
  CHECK(s.wait_log("SIGHUP: reload failed, keeping the running configuration"));
  CHECK(s.log().find(path + ":2: no password field") != std::string::npos);
  {
    AuthClient a(port);
    CHECK(a.plain("yesuser", kPasswords[0]) == "235 2.7.0 Authentication successful");
  }
}

TEST_CASE("auth_passwd: 20 clients hashing yescrypt at once do not block the loop") {
  // The hash runs on the thread pool. A costlier yescrypt (count 7, about twice the default)
  // makes each check take long enough to see: if the checks ran on the loop, a NOOP sent
  // meanwhile would wait for the hashes queued before it. Tolerance: the median NOOP round trip
  // during the logins stays under a quarter of one hash's time here, and NOOPs are answered
  // while logins are still outstanding.
  SlowUser su;
  MESSAGE("one yescrypt check (count 7): " << su.one_hash << " s");
  Server s(auth_opts(su.path));
  int port = start_ports(s, 1)[0];
  constexpr int kClients = 20;
  std::vector<std::unique_ptr<AuthClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<AuthClient>(port));
  // The probe is replaced every 60 NOOPs: the server closes a session after 100 commands
  // without a transaction.
  auto probe = std::make_unique<AuthClient>(port);
  int probe_cmds = 0;
  bool probe_ok = true;
  std::atomic<int> done{0}, ok{0};
  std::vector<std::thread> threads;
  double t0 = now();
  for (auto &c : clients) {
    threads.emplace_back([&, cp = c.get()] {
      if (cp->plain("slowuser", "slow-Secret6", 60) == "235 2.7.0 Authentication successful") ++ok;
      ++done;
    });
  }
  std::vector<double> rtts;
  while (probe_ok && done.load() < kClients && now() - t0 < 60) {
    if (++probe_cmds % 60 == 0) probe = std::make_unique<AuthClient>(port);
    double a = now();
    std::string r = probe->c.cmd("NOOP", 10);
    if (done.load() < kClients) rtts.push_back(now() - a);
    probe_ok = code3(r) == "250";
    usleep(20000);
  }
  for (auto &t : threads) t.join();
  CHECK(probe_ok);
  double total = now() - t0;
  CHECK(ok.load() == kClients);
  MESSAGE("20 logins took " << total << " s; " << rtts.size() << " NOOPs meanwhile");
  REQUIRE(rtts.size() >= 5);
  std::sort(rtts.begin(), rtts.end());
  double median = rtts[rtts.size() / 2];
  MESSAGE("NOOP round trip: median " << median << " s, max " << rtts.back() << " s");
  CHECK(median < su.one_hash / 4);
  CHECK(probe->c.cmd("EHLO again.example").rfind("250-", 0) == 0);
}

TEST_CASE("auth_passwd: max_parallel=1 runs one check at a time; the others wait their turn") {
  // Four clients log in at once with a costly hash. With one slot the checks run one after the
  // other: the last answer comes after about four hashes (tolerance: at least 2.5 hashes' time),
  // and every login still succeeds, in FIFO order of arrival. A session that leaves while its
  // check waits does not stop the others.
  SlowUser su;
  Server s(auth_opts(su.path, "max_parallel=1 allow_plain"));
  int port = start_ports(s, 1)[0];
  CHECK(s.wait_log("at most 1 check(s) at once"));
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<AuthClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<AuthClient>(port));
  auto leaver = std::make_unique<AuthClient>(port);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  double t0 = now();
  for (auto &c : clients) {
    threads.emplace_back([&, cp = c.get()] {
      if (cp->plain("slowuser", "slow-Secret6", 60) == "235 2.7.0 Authentication successful") ++ok;
    });
    usleep(20000);
  }
  leaver->c.line("AUTH PLAIN " + plain_ir("slowuser", "slow-Secret6"));
  leaver.reset();  // gone while its check waits for a slot
  for (auto &t : threads) t.join();
  double total = now() - t0;
  MESSAGE("one hash " << su.one_hash << " s; " << kClients << " logins with one slot: " << total
                      << " s");
  CHECK(ok.load() == kClients);
  CHECK(total > 2.5 * su.one_hash);
  AuthClient after(port);
  CHECK(after.plain("slowuser", "slow-Secret6") == "235 2.7.0 Authentication successful");
}

TEST_CASE("auth_passwd: a check whose session stopped waiting is dropped without hashing") {
  // One slot, eight logins at once and hook_timeout = three hashes' time (as measured here; the
  // server may hash up to twice as slow or fast on a busy machine): the first ones answer, the
  // rest get the core's 451 at the timeout. Those still queued then leave the queue at once
  // (pending_on_cancel), without running their hash, before the check that was running at the
  // timeout finishes.
  SlowUser su;
  Server s(auth_opts(su.path, "max_parallel=1", "verdict rcpt=OK queue=OK\n",
                     "hook_timeout = " + std::to_string(3 * su.one_hash) + "\n"));
  int port = start_ports(s, 1)[0];
  constexpr int kClients = 8;
  std::vector<std::unique_ptr<AuthClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<AuthClient>(port));
  std::vector<std::string> codes(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back(
        [&, i] { codes[i] = code3(clients[i]->plain("slowuser", "slow-Secret6", 60)); });
  for (auto &t : threads) t.join();
  int ok = 0, timed_out = 0;
  for (const auto &c : codes) {
    ok += c == "235";
    timed_out += c == "451";
  }
  CAPTURE(su.one_hash);
  CHECK(ok >= 1);
  CHECK(timed_out >= 2);
  CHECK(ok + timed_out == kClients);
  const std::string skip = "stopped waiting before its check started";
  CHECK(s.wait_log("skip, the session of user 'slowuser' " + skip));
  // The check running at a timeout still finishes (and logs) after the first dropped one. The
  // sessions time out a few ms apart, so a check may start between two of their timeouts and
  // still be running: wait until every session is accounted for, as hashed or dropped.
  double deadline = now() + 10;
  std::string log;
  do {
    log = s.log();
    if (s.count_log("pass, user 'slowuser'") + s.count_log(skip) == kClients) break;
    usleep(20000);
  } while (now() < deadline);
  CHECK(log.rfind("pass, user 'slowuser'") > log.find(skip));
  // Hashes run: the answered ones and the one running at the timeout, not the dropped ones.
  int dropped = s.count_log(skip);
  CHECK(dropped >= 1);
  CHECK(s.count_log("pass, user 'slowuser'") + dropped == kClients);
  AuthClient after(port);  // the slot is free again
  CHECK(after.plain("slowuser", "slow-Secret6") == "235 2.7.0 Authentication successful");
}

TEST_CASE("auth_passwd: msmtp sends through STARTTLS with AUTH PLAIN into queue/maildir") {
  if (sh("command -v msmtp").status != 0) {
    MESSAGE("msmtp is not installed: skipped (apt-get install msmtp)");
    return;
  }
  const Certs &c = pki();
  UsersFile f;
  auto &[tmp, u, path] = f;
  std::string root = tmp.path + "/mail";
  Server s(auth_opts(path, "", "rcpt_ok\nqueue/maildir " + root + "\n"));
  int port = start_ports(s, 1)[0];
  std::string rc = tmp.path + "/msmtprc";
  spit(rc,
       lines({"defaults", "logfile " + tmp.path + "/msmtp.log", "account test", "host 127.0.0.1",
              "port " + std::to_string(port), "domain client.example", "from sender@client.example",
              "tls on", "tls_starttls on", "tls_trust_file " + c.ca, "auth plain", "user yesuser",
              std::string("password ") + kPasswords[0], "timeout 20"}));
  chmod(rc.c_str(), 0600);  // msmtp refuses a password in a file others can read
  std::string msg = tmp.path + "/msg";
  spit(msg,
       "From: sender@client.example\nTo: alice@mx.test.invalid\nSubject: msmtp over "
       "STARTTLS with AUTH\n\nsent by msmtp\n");
  RunResult r = sh("msmtp -C '" + rc + "' -a test alice@mx.test.invalid < '" + msg + "' 2>&1");
  CHECK_MESSAGE(r.status == 0, r.output << "\n" << slurp(tmp.path + "/msmtp.log") << s.log());
  REQUIRE(s.wait_log(": accepted message-id=", 10));
  CHECK(s.wait_log("auth/passwd_file: pass, user 'yesuser'"));
  std::vector<std::string> files;
  double deadline = now() + 10;
  while ((files = delivered(root)).empty() && now() < deadline) usleep(20000);
  REQUIRE(files.size() == 1);
  std::string stored = slurp(files[0]);
  CHECK(stored.find("sent by msmtp") != std::string::npos);
  CHECK(stored.find("Subject: msmtp over STARTTLS with AUTH") != std::string::npos);
  CHECK(slurp(tmp.path + "/msmtp.log").find("exitcode=EX_OK") != std::string::npos);
}

TEST_CASE("auth_passwd: Python smtplib starttls() and login()") {
  const Certs &c = pki();
  UsersFile f;
  auto &[tmp, u, path] = f;
  std::string root = tmp.path + "/mail";
  Server s(auth_opts(path, "", "rcpt_ok\nqueue/maildir " + root + "\n"));
  int port = start_ports(s, 1)[0];
  std::string script = source_root() + "/tests/integration/clients/passwd_login.py";
  auto run = [&](const std::string &user, const std::string &pass) {
    return sh("python3 '" + script + "' --port " + std::to_string(port) + " --cafile '" + c.ca +
              "' --user '" + user + "' --password '" + pass + "' --to bob@mx.test.invalid");
  };
  RunResult ok = run("blfuser", kPasswords[1]);
  CHECK_MESSAGE(ok.status == 0, ok.output << s.log());
  CHECK_MESSAGE(ok.output.find("login 235") != std::string::npos, ok.output);
  CHECK_MESSAGE(ok.output.find("data 250 2.0.0") != std::string::npos, ok.output);
  RunResult bad = run("blfuser", "not-the-password");
  CHECK(bad.status != 0);
  CHECK_MESSAGE(bad.output.find("login 535") != std::string::npos, bad.output);
  double deadline = now() + 10;
  while (delivered(root).empty() && now() < deadline) usleep(20000);
  CHECK(delivered(root).size() == 1);
}
