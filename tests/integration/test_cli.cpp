// tests/integration/test_cli.cpp: the command line and the startup checks through the real
// binary: --check-config and a real start both refuse (exit 1, file:line and what to do) a
// missing config dir or uvsmtpd.toml, unknown accounts, a bad spool dir, a missing queue plugin
// (when required), unknown plugins, busy or privileged ports, [tls] certificates that do not
// load; plugins load only as `user`;
// SIGHUP keeps the listeners; --print-config / --print-defaults / --list-plugins.
#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <pwd.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "harness.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

std::string bin() {
  return build_root() + "/server/uvsmtpd";
}

Options opts(const std::string &plugins, const std::string &toml = "") {
  Options o;
  o.plugins = plugins;
  o.toml = toml;
  return o;
}

// A plugin set that accepts mail (a queue plugin included).
const std::string kQueued = "verdict:1 rcpt=OK queue=OK\n";

// The config and plugin arguments of a tree.
std::vector<std::string> tree_args(const std::string &dir) {
  return {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins"};
}

RunResult check(const std::string &dir, std::vector<std::string> more = {}) {
  std::vector<std::string> a = tree_args(dir);
  a.insert(a.begin(), "--check-config");
  a.insert(a.end(), more.begin(), more.end());
  return run_uvsmtpd(a);
}

// A real start expected to fail (a start that works runs until the timeout: status -1).
RunResult start(const std::string &dir,
                std::vector<std::string> more = {"--listen", "127.0.0.1:0"}) {
  std::vector<std::string> a = tree_args(dir);
  a.insert(a.end(), more.begin(), more.end());
  return run_uvsmtpd(a, 5);
}

// Both --check-config and a real start exit 1 with every needle in their output.
void both_refuse(const std::string &dir, const std::vector<std::string> &needles) {
  RunResult c = check(dir);
  CHECK_MESSAGE(c.status == 1, c.output);
  RunResult s = start(dir);
  CHECK_MESSAGE(s.status == 1, s.output);
  for (const auto &n : needles) {
    CHECK_MESSAGE(has(c.output, n), "--check-config output lacks '" << n << "':\n" << c.output);
    CHECK_MESSAGE(has(s.output, n), "start output lacks '" << n << "':\n" << s.output);
  }
}

std::string shell_quote(const std::string &s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool have_setpriv() {
  return sh("command -v setpriv").status == 0;
}

// uvsmtpd run as nobody (from root, through setpriv), to completion within `timeout` seconds.
RunResult as_nobody(const std::vector<std::string> &args, int timeout = 5) {
  std::string cmd = "timeout -s KILL " + std::to_string(timeout) +
                    " setpriv --reuid=nobody --regid=nogroup --clear-groups " + shell_quote(bin());
  for (const auto &a : args) cmd += " " + shell_quote(a);
  return sh(cmd);
}

// Lets another user (nobody) read the tree made by make_tree (mkdtemp makes it 0700).
void open_tree(const std::string &dir) {
  chmod(dir.c_str(), 0755);
  chmod((dir + "/conf").c_str(), 0755);
}

// A free TCP port on 127.0.0.1 (bound, then released).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// The server as a child process with the exact arguments given (no --listen added), output
// in <dir>/log.
class Proc {
 public:
  Proc(const std::string &dir, const std::vector<std::string> &args) : log_(dir + "/log") {
    pid_ = fork();
    if (pid_ == 0) exec_uvsmtpd(open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), args);
  }
  ~Proc() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::string log() const { return slurp(log_); }
  bool wait_log(const std::string &needle, double timeout = 10) const {
    double deadline = now() + timeout;
    do {
      if (has(log(), needle)) return true;
      usleep(10000);
    } while (now() < deadline);
    return false;
  }
  void signal(int sig) const { kill(pid_, sig); }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

// The keys of a uvsmtpd.toml as "section.key" ("key" at the top), from `key = ...` lines.
std::set<std::string> toml_keys(const std::string &text) {
  std::set<std::string> keys;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ' ') continue;
    if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    size_t eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    keys.insert((section.empty() ? "" : section + ".") + line.substr(0, eq));
  }
  return keys;
}

int s_count(const std::string &hay, const std::string &needle) {
  int n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("cli: a configuration directory that does not exist") {
  std::string dir = make_tree(opts(kQueued));
  std::vector<std::string> base = {"--config", dir + "/nope", "--plugin-dir", dir + "/plugins"};
  for (bool check_only : {true, false}) {
    std::vector<std::string> a = base;
    a.push_back(check_only ? "--check-config" : "--listen");
    if (!check_only) a.push_back("127.0.0.1:0");
    RunResult r = run_uvsmtpd(a, 5);
    CHECK_MESSAGE(r.status == 1, r.output);
    CHECK_MESSAGE(has(r.output, "configuration directory " + dir + "/nope does not exist"),
                  r.output);
    CHECK_MESSAGE(has(r.output, "give --config the directory that holds uvsmtpd.toml"), r.output);
  }
  remove_tree(dir);
}

TEST_CASE("cli: a configuration directory without uvsmtpd.toml") {
  std::string dir = make_tree(opts(kQueued));
  fs::remove(dir + "/conf/uvsmtpd.toml");
  both_refuse(dir, {dir + "/conf/uvsmtpd.toml: does not exist: create it"});
  remove_tree(dir);
}

TEST_CASE("cli: a user or group that does not exist") {
  std::string dir = make_tree(opts(kQueued, "user = \"nosuch-uvs\"\n"));
  both_refuse(dir, {dir + "/conf/uvsmtpd.toml:3: user \"nosuch-uvs\" does not exist"});
  remove_tree(dir);
  dir = make_tree(opts(kQueued, "user = \"nobody\"\ngroup = \"nosuch-uvs\"\n"));
  both_refuse(dir, {dir + "/conf/uvsmtpd.toml:4: group \"nosuch-uvs\" does not exist"});
  remove_tree(dir);
}

TEST_CASE("cli: TLS listeners without [tls] certificate stop --check-config and a start") {
  std::string dir =
      make_tree(opts(kQueued, "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n"));
  both_refuse(dir, {dir + "/conf/uvsmtpd.toml:5: 'listen.tls' is \"implicit\" but "
                          "'tls.certificate' is not set"});
  remove_tree(dir);
  dir = make_tree(opts(kQueued, "[tls]\ncertificate = \"c.pem\"\n"));
  both_refuse(dir, {dir + "/conf/uvsmtpd.toml:4: 'tls.certificate' is set but 'tls.key' is not"});
  remove_tree(dir);
}

TEST_CASE("cli: --check-config loads the [tls] certificates; a bad one is named") {
  // Certificates made here with the openssl command-line tool: a self-signed ECDSA pair and a
  // key that belongs to no certificate.
  char tmpl[] = "/tmp/uvs_cli_tls_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string certs = tmpl;
  RunResult made = sh("cd " + shell_quote(certs) +
                      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
                      " -keyout good.key -out good.pem -days 30 -subj /CN=mx.test 2>&1"
                      " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
                      " -out other.key 2>&1");
  REQUIRE_MESSAGE(made.status == 0, made.output);
  auto tls_toml = [&](const std::string &cert, const std::string &key) {
    return "[tls]\ncertificate = \"" + certs + "/" + cert + "\"\nkey = \"" + certs + "/" + key +
           "\"\nwatch = false\n";
  };
  SUBCASE("a matching pair passes") {
    std::string dir = make_tree(opts(kQueued, tls_toml("good.pem", "good.key")));
    RunResult c = check(dir);
    CHECK_MESSAGE(c.status == 0, c.output);
    CHECK_MESSAGE(has(c.output, "configuration OK"), c.output);
    remove_tree(dir);
  }
  SUBCASE("a key that does not match its certificate: the key file is named") {
    std::string dir = make_tree(opts(kQueued, tls_toml("good.pem", "other.key")));
    both_refuse(dir, {"tls: " + certs + "/other.key: key does not match certificate " + certs +
                      "/good.pem"});
    remove_tree(dir);
  }
  SUBCASE("a certificate file that does not exist: the file is named") {
    std::string dir = make_tree(opts(kQueued, tls_toml("missing.pem", "good.key")));
    RunResult c = check(dir);
    CHECK_MESSAGE(c.status == 1, c.output);
    CHECK_MESSAGE(has(c.output, "tls: " + certs + "/missing.pem: "), c.output);
    CHECK_FALSE(has(c.output, "configuration OK"));
    remove_tree(dir);
  }
  fs::remove_all(certs);
}

TEST_CASE("cli: a spool directory that is missing or not writable") {
  SUBCASE("missing") {
    std::string dir = make_tree(opts(kQueued));
    fs::remove_all(dir + "/spool");
    both_refuse(dir,
                {dir + "/conf/uvsmtpd.toml:2: spool_dir \"" + dir + "/spool\" does not exist"});
    remove_tree(dir);
  }
  SUBCASE("read-only, not root") {
    std::string dir = make_tree(opts(kQueued));
    chmod((dir + "/spool").c_str(), 0555);
    std::string needle =
        "spool_dir \"" + dir + "/spool\" is not writable by user nobody (uid 65534)";
    if (geteuid() != 0) {
      both_refuse(dir, {"spool_dir \"" + dir + "/spool\" is not writable by", "Permission denied"});
    } else if (!have_setpriv()) {
      MESSAGE("setpriv not found: the non-root read-only spool case is skipped");
    } else {
      open_tree(dir);
      RunResult c = as_nobody(
          {"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
      CHECK_MESSAGE(c.status == 1, c.output);
      CHECK_MESSAGE(has(c.output, needle), c.output);
      RunResult s = as_nobody(
          {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--listen", "127.0.0.1:0"});
      CHECK_MESSAGE(s.status == 1, s.output);
      CHECK_MESSAGE(has(s.output, needle), s.output);
    }
    remove_tree(dir);
  }
  SUBCASE("root with user set: checked as that user") {
    if (geteuid() != 0) {
      MESSAGE("not root: the run-as-user spool case is skipped");
      return;
    }
    std::string dir = make_tree(opts(kQueued, "user = \"nobody\"\n"));
    open_tree(dir);  // the spool stays root's 0755: root could write, nobody cannot
    both_refuse(dir, {dir + "/conf/uvsmtpd.toml:2: spool_dir \"" + dir +
                      "/spool\" is not writable by user nobody (uid 65534)"});
    remove_tree(dir);
  }
}

TEST_CASE("cli: no queue plugin: a warning by default, an error with require_queue_plugin") {
  const std::string warning = "no plugin registers the queue hook, so every message gets 451 4.3.0";
  std::string dir = make_tree(opts("verdict:1 rcpt=OK\n"));
  RunResult c = check(dir);
  CHECK_MESSAGE(c.status == 0, c.output);
  CHECK(has(c.output, "warning: " + dir + "/conf/plugins: " + warning));
  CHECK(has(c.output, "require_queue_plugin = true"));
  remove_tree(dir);
  {
    Server s(opts("verdict:1 rcpt=OK\n"));
    REQUIRE(s.started());
    CHECK(s.wait_log(" started (pid"));
    CHECK(has(s.log(), "warning " + s.conf_dir() + "/plugins: " + warning));
  }
  {
    Server s(opts(kQueued));  // a queue plugin: no warning
    REQUIRE(s.started());
    CHECK(s.wait_log(" started (pid"));
    CHECK_FALSE(has(s.log(), "queue hook"));
  }
  dir = make_tree(opts("verdict:1 rcpt=OK\n", "require_queue_plugin = true\n"));
  both_refuse(dir, {dir + "/conf/plugins: " + warning,
                    dir + "/conf/uvsmtpd.toml:3: require_queue_plugin = true"});
  remove_tree(dir);
  dir = make_tree(opts(kQueued, "require_queue_plugin = true\n"));
  CHECK(check(dir).status == 0);
  remove_tree(dir);
}

TEST_CASE(
    "cli: SIGHUP with a changed listen keeps the old listeners and says a restart is needed") {
  int p1 = free_port(), p2 = free_port();
  std::string dir =
      make_tree(opts(kQueued, "listen = [\"127.0.0.1:" + std::to_string(p1) + "\"]\n"));
  Proc srv(dir, tree_args(dir));
  REQUIRE_MESSAGE(srv.wait_log(" started (pid"), srv.log());
  std::string toml = slurp(dir + "/conf/uvsmtpd.toml");
  std::string from = "127.0.0.1:" + std::to_string(p1), to = "127.0.0.1:" + std::to_string(p2);
  toml.replace(toml.find(from), from.size(), to);
  spit(dir + "/conf/uvsmtpd.toml", toml);
  srv.signal(SIGHUP);
  CHECK_MESSAGE(srv.wait_log("configuration and plugins reloaded"), srv.log());
  CHECK(has(srv.log(), "SIGHUP: 'listen' changed (now " + to +
                           "); a listen change needs a restart: "
                           "still listening on " +
                           from));
  Client old(p1);
  REQUIRE(old.connected());
  CHECK(old.code() == 220);
  Client fresh(p2);
  CHECK_FALSE(fresh.connected());
  // A second SIGHUP still compares with what is bound.
  srv.signal(SIGHUP);
  double deadline = now() + 5;
  while (now() < deadline && s_count(srv.log(), "a listen change needs a restart") < 2)
    usleep(10000);
  CHECK(s_count(srv.log(), "a listen change needs a restart") == 2);
  remove_tree(dir);
}

TEST_CASE("cli: an unknown plugin names file:line and lists the plugins there are") {
  std::string dir = make_tree(opts(kQueued + "no_such_module\n"));
  both_refuse(dir, {dir + "/conf/plugins:2: plugin 'no_such_module': cannot find " + dir +
                        "/plugins/no_such_module.so: No such file or directory; available: ",
                    "count_unrecognized_commands", "dnsbl, earlytalker",
                    "queue/maildir, queue/outbound, queue/smtp-forward", ", verdict"});
  remove_tree(dir);
}

TEST_CASE("cli: a port in use and a privileged port name the address and the remedy") {
  SUBCASE("in use, from --listen and from the file") {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 1) == 0);
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    std::string addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    std::string dir = make_tree(opts(kQueued, "listen = [\"" + addr + "\"]\n"));
    RunResult r = start(dir, {"--listen", addr});
    CHECK_MESSAGE(r.status == 1, r.output);
    CHECK_MESSAGE(has(r.output, "--listen: cannot listen on " + addr +
                                    ": address already in use "
                                    "(another process listens there"),
                  r.output);
    r = start(dir, {});
    CHECK_MESSAGE(r.status == 1, r.output);
    CHECK_MESSAGE(has(r.output, dir + "/conf/uvsmtpd.toml:3: cannot listen on " + addr +
                                    ": address already in use"),
                  r.output);
    close(fd);
    remove_tree(dir);
  }
  SUBCASE("permission denied below 1024") {
    std::string first = slurp("/proc/sys/net/ipv4/ip_unprivileged_port_start");
    if (!first.empty() && std::stoi(first) <= 25) {
      MESSAGE("ip_unprivileged_port_start <= 25: any user may bind port 25; skipped");
      return;
    }
    std::string dir = make_tree(opts(kQueued, "listen = [\"127.0.0.1:25\"]\n"));
    std::vector<std::string> c = {"--check-config", "--config", dir + "/conf", "--plugin-dir",
                                  dir + "/plugins"};
    std::vector<std::string> s = {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins"};
    RunResult rc, rs;
    if (geteuid() != 0) {
      rc = run_uvsmtpd(c);
      rs = run_uvsmtpd(s, 5);
    } else if (!have_setpriv()) {
      MESSAGE("root and no setpriv: the EACCES case is skipped");
      remove_tree(dir);
      return;
    } else {
      open_tree(dir);
      chmod((dir + "/spool").c_str(), 0777);
      rc = as_nobody(c);
      rs = as_nobody(s);
    }
    CHECK_MESSAGE(rc.status == 1, rc.output);
    CHECK_MESSAGE(
        has(rc.output, dir + "/conf/uvsmtpd.toml:3: cannot listen on 127.0.0.1:25: ports below"),
        rc.output);
    CHECK_MESSAGE(has(rc.output, "need root or CAP_NET_BIND_SERVICE"), rc.output);
    CHECK_MESSAGE(rs.status == 1, rs.output);
    CHECK_MESSAGE(
        has(rs.output, dir +
                           "/conf/uvsmtpd.toml:3: cannot listen on 127.0.0.1:25: permission denied "
                           "(ports below 1024 need root or CAP_NET_BIND_SERVICE)"),
        rs.output);
    remove_tree(dir);
  }
}

TEST_CASE("cli: with user set, root drops before any plugin init, in --check-config and at start") {
  if (geteuid() != 0) {
    MESSAGE("not root: the privilege-drop case is skipped");
    return;
  }
  // The control: as root without user, not_root's init fails.
  std::string dir = make_tree(opts(kQueued + "not_root\n"));
  RunResult r = check(dir);
  CHECK_MESSAGE(r.status == 1, r.output);
  CHECK_MESSAGE(
      has(r.output,
          "plugins:2: plugin 'not_root' failed to initialise: not_root: init ran as root"),
      r.output);
  remove_tree(dir);

  dir = make_tree(opts(kQueued + "not_root\n", "user = \"nobody\"\n"));
  open_tree(dir);
  chown((dir + "/spool").c_str(), 65534, 65534);
  r = check(dir);
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK_MESSAGE(has(r.output, "not_root: init as euid 65534"), r.output);
  CHECK(has(r.output, "configuration OK"));
  Proc srv(dir, {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--listen",
                 "127.0.0.1:0"});
  CHECK_MESSAGE(srv.wait_log(" started (pid"), srv.log());
  CHECK(has(srv.log(), "not_root: init as euid 65534"));
  remove_tree(dir);
}

TEST_CASE("cli: --print-config prints every key; its output is a valid uvsmtpd.toml") {
  std::string dir =
      make_tree(opts(kQueued,
                     "max_errors = 7\ngreeting = \"say \\\"hi\\\"\"\n"
                     "[timeouts]\ncommand = 12.5\ntls_handshake = 7.5\n"
                     "[tls]\nmin_protocol = \"TLSv1.3\"\nsession_tickets = false\n"
                     "[[listen]]\naddress = \"[::1]:2600\"\nsync_check = false\ntls = \"none\"\n"));
  RunResult p = run_uvsmtpd({"--print-config", "--config", dir + "/conf"});
  REQUIRE_MESSAGE(p.status == 0, p.output);
  CHECK(has(p.output, "max_errors = 7\n"));
  CHECK(has(p.output, "greeting = \"say \\\"hi\\\"\"\n"));
  CHECK(has(p.output, "\n[timeouts]\ncommand = 12.5\n"));
  CHECK(has(p.output, "\ntls_handshake = 7.5\n"));
  CHECK(has(p.output, "\n[tls]\ncertificate = \"\"\n"));
  CHECK(has(p.output, "\nmin_protocol = \"TLSv1.3\"\n"));
  CHECK(has(p.output, "\nsession_tickets = false\n"));
  CHECK(has(p.output, "\nsni = []\n"));
  CHECK(has(p.output, "\n[auth]\nmax_failures = 3\nfailure_delay = 1\nlockout_failures = 10\n"
                      "lockout_window = 600\n"));
  CHECK(has(p.output,
            "listen = [{ address = \"[::1]:2600\", sync_check = false, tls = \"none\", "
            "require_tls = false, auth = \"optional\", auth_plaintext = false, auth_relay = true }]\n"));
  CHECK(has(p.output, "\n[delivery]\nenabled = true\n"));
  CHECK(has(p.output, "\nretry_min = 300\nretry_max = 14400\n"));
  CHECK(has(p.output, "\nroute = []\n"));
  CHECK(has(p.output, "spool_dir = \"" + dir + "/spool\"\n"));
  CHECK(has(p.output, "max_recipients = 1000\n"));  // a default
  // Every key of the shipped conf/uvsmtpd.toml, in its section.
  std::set<std::string> shipped = toml_keys(slurp(source_root() + "/conf/uvsmtpd.toml"));
  std::set<std::string> printed = toml_keys(p.output);
  REQUIRE(shipped.size() > 20);
  for (const auto &k : shipped) CHECK_MESSAGE(printed.count(k), "--print-config lacks " << k);
  // Fed back as uvsmtpd.toml it is accepted and prints the same.
  std::string again = make_tree(opts(kQueued));
  spit(again + "/conf/uvsmtpd.toml", p.output);
  RunResult c = check(again);
  CHECK_MESSAGE(c.status == 0, c.output);
  RunResult p2 = run_uvsmtpd({"--print-config", "--config", again + "/conf"});
  CHECK(p2.output.substr(p2.output.find('\n')) == p.output.substr(p.output.find('\n')));
  // Command-line options are applied.
  RunResult o = run_uvsmtpd({"--print-config", "--config", dir + "/conf", "--listen", "127.0.0.1:7",
                             "--no-sync-check", "--plugin-dir", "/x"});
  CHECK(has(o.output,
            "listen = [{ address = \"127.0.0.1:7\", sync_check = false, tls = \"starttls\", "
            "require_tls = false, auth = \"optional\", auth_plaintext = false, auth_relay = true }]\n"));
  CHECK(has(o.output, "plugin_dir = \"/x\"\n"));
  // --print-defaults: the built-in defaults, also a valid file.
  RunResult d = run_uvsmtpd({"--print-defaults"});
  REQUIRE(d.status == 0);
  CHECK(has(d.output,
            "listen = [{ address = \"127.0.0.1:2525\", sync_check = true, tls = \"starttls\", "
            "require_tls = false, auth = \"optional\", auth_plaintext = false, auth_relay = true }]\n"));
  CHECK(has(d.output, "spool_dir = \"var/spool\"\n"));
  CHECK(has(d.output, "require_queue_plugin = false\n"));
  for (const auto &k : shipped)
    CHECK_MESSAGE(toml_keys(d.output).count(k), "--print-defaults lacks " << k);
  std::string def = d.output;
  def.replace(def.find("spool_dir = \"var/spool\""), 23, "spool_dir = \"" + again + "/spool\"");
  spit(again + "/conf/uvsmtpd.toml", def);
  c = check(again);
  CHECK_MESSAGE(c.status == 0, c.output);
  remove_tree(dir);
  remove_tree(again);
}

TEST_CASE(
    "cli: --list-plugins names every module with its version and ABI, and the hooks of "
    "conf/plugins") {
  std::string dir =
      make_tree(opts("verdict:1 rcpt=OK queue=OK\nverdict:2 helo=DENY\nearlytalker\n"));
  RunResult r = run_uvsmtpd(
      {"--list-plugins", "--config", dir + "/conf", "--plugin-dir", build_root() + "/plugins"});
  // build/plugins has no verdict: the configuration does not load, the list still comes
  CHECK(r.status == 1);
  CHECK(has(r.output, "(hooks not shown)"));
  std::vector<std::string> shipped;
  for (auto &e : fs::recursive_directory_iterator(build_root() + "/plugins")) {
    std::string p = e.path().string();
    if (e.path().extension() != ".so" || has(p, ".so.p")) continue;
    std::string rel = fs::relative(e.path(), build_root() + "/plugins").string();
    shipped.push_back(rel.substr(0, rel.size() - 3));
  }
  REQUIRE(shipped.size() >= 8);
  for (const auto &m : shipped)
    CHECK_MESSAGE(has(r.output, "\n" + m + " "), "--list-plugins lacks " << m << ":\n" << r.output);
  CHECK(has(r.output, "\nqueue/maildir "));
  r = run_uvsmtpd({"--list-plugins", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
  CHECK_MESSAGE(r.status == 0, r.output);
  std::string out = r.output;
  size_t v = out.find("\nverdict ");
  REQUIRE(v != std::string::npos);
  std::string line = out.substr(v + 1, out.find('\n', v + 1) - v - 1);
  CHECK_MESSAGE(has(line, " verdict "), line);
  CHECK_MESSAGE(has(line, "verdict:1: rcpt,queue; verdict:2: helo"), line);
  size_t e = out.find("\nearlytalker ");
  REQUIRE(e != std::string::npos);
  CHECK(has(out.substr(e, out.find('\n', e + 1) - e), "earlytalker: "));
  CHECK(has(out, "not in conf/plugins"));
  CHECK(has(out, "\nbad_nosym "));
  CHECK(has(out, "no uvs_plugin_v1 symbol"));
  remove_tree(dir);
}
