// tests/integration/postfix_fixture.cpp: the real-Postfix fixture (see postfix_fixture.hpp).
#include "postfix_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "harness.hpp"

namespace itest {

namespace fs = std::filesystem;

namespace {

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// The first reply line of a server at ip:port ("" if none within the time).
std::string greeting(const std::string &ip, int port, double timeout) {
  int fd = connect_ipv4(ip, port);
  if (fd < 0) return "";
  timeval tv{static_cast<time_t>(timeout), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[512];
  while (got.find('\n') == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::write(fd, "QUIT\r\n", 6);
  close(fd);
  return got.substr(0, got.find('\r'));
}

}  // namespace

std::string postfix_binary() {
  RunResult r = sh("command -v postfix");
  if (r.status == 0) {
    std::string p = r.output.substr(0, r.output.find('\n'));
    if (!p.empty()) return p;
  }
  return access("/usr/sbin/postfix", X_OK) == 0 ? "/usr/sbin/postfix" : "";
}

Postfix::Postfix(PostfixOptions opt) : opt_(std::move(opt)) {
  char tmpl[] = "/tmp/uvsmtpd-test.postfix-XXXXXX";
  if (!mkdtemp(tmpl)) {
    error_ = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  dir_ = tmpl;
  // The postfix user's daemons and the mailbox owner walk into it (chroot is off).
  chmod(dir_.c_str(), 0755);
}

Postfix::~Postfix() {
  stop();
  if (!dir_.empty() && !getenv("UVS_KEEP_TEST_DIRS")) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool Postfix::write_config() {
  // getpwnam's result is overwritten by the next call: keep the ids.
  const struct passwd *pw = getpwnam("postfix");
  uid_t pf_uid = pw ? pw->pw_uid : 0;
  gid_t pf_gid = pw ? pw->pw_gid : 0;
  pw = getpwnam("nobody");
  uid_t nb_uid = pw ? pw->pw_uid : 0;
  gid_t nb_gid = pw ? pw->pw_gid : 0;
  if (pf_uid == 0 || nb_uid == 0) {
    error_ = "no 'postfix' or 'nobody' user (scripts/lib.sh installs the postfix package)";
    return false;
  }
  for (const char *sub : {"/etc", "/queue", "/data", "/vmail"}) mkdir((dir_ + sub).c_str(), 0755);
  if (chown((dir_ + "/data").c_str(), pf_uid, pf_gid) != 0 ||
      chown((dir_ + "/vmail").c_str(), nb_uid, nb_gid) != 0) {
    error_ = std::string("chown: ") + std::strerror(errno);
    return false;
  }
  std::string boxes;
  for (const std::string &u : opt_.users) boxes += u + "@" + opt_.domain + " " + u + "/\n";
  spit(config_dir() + "/vmailbox", boxes);
  std::string uid = std::to_string(nb_uid), gid = std::to_string(nb_gid);
  // inet_interfaces must name an address of an interface (127.0.0.1 is; 127.0.0.3 is not,
  // although the loopback routes all of 127/8), so smtpd's address is given in master.cf.
  // Only the virtual mailbox domain is accepted; every other transport is error(8): nothing
  // leaves this instance.
  std::string main_cf =
      "# written by tests/integration/postfix_fixture.cpp\n"
      "compatibility_level = 3.6\n"
      "queue_directory = " +
      dir_ +
      "/queue\n"
      "data_directory = " +
      dir_ +
      "/data\n"
      "mail_owner = postfix\n"
      "setgid_group = postdrop\n"
      "myhostname = mx." +
      opt_.domain +
      "\n"
      "mydomain = " +
      opt_.domain +
      "\n"
      "mydestination =\n"
      "inet_interfaces = 127.0.0.1\n"
      "inet_protocols = ipv4\n"
      "mynetworks = 127.0.0.0/8\n"
      "smtpd_peername_lookup = no\n"
      "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
      "virtual_mailbox_domains = " +
      opt_.domain +
      "\n"
      "virtual_mailbox_base = " +
      dir_ +
      "/vmail\n"
      "virtual_mailbox_maps = texthash:" +
      config_dir() +
      "/vmailbox\n"
      "virtual_uid_maps = static:" +
      uid +
      "\n"
      "virtual_gid_maps = static:" +
      gid +
      "\n"
      "virtual_minimum_uid = 100\n"
      "default_transport = error:this test instance delivers nothing elsewhere\n"
      "relay_transport = error:this test instance delivers nothing elsewhere\n"
      "local_transport = error:this test instance has no local domain\n"
      "alias_maps =\n"
      "alias_database =\n"
      "biff = no\n"
      "smtpd_tls_received_header = yes\n"
      "smtpd_tls_loglevel = 1\n"
      "syslog_name = postfix-uvstest\n"
      "maillog_file_prefixes = " +
      dir_ +
      "\n"
      "maillog_file = " +
      dir_ + "/maillog\n";
  if (!opt_.tls_cert.empty())
    main_cf += "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = " + opt_.tls_cert +
               "\nsmtpd_tls_key_file = " + opt_.tls_key + "\n";
  spit(config_dir() + "/main.cf", main_cf);
  std::string master_cf = opt_.ip + ":" + std::to_string(port_) + " inet n - n - - smtpd\n" +
                          "cleanup   unix  n - n -   0 cleanup\n"
                          "qmgr      unix  n - n 300 1 qmgr\n"
                          "rewrite   unix  - - n -   - trivial-rewrite\n"
                          "bounce    unix  - - n -   0 bounce\n"
                          "defer     unix  - - n -   0 bounce\n"
                          "trace     unix  - - n -   0 bounce\n"
                          "verify    unix  - - n -   1 verify\n"
                          "flush     unix  n - n 1000? 0 flush\n"
                          "proxymap  unix  - - n -   - proxymap\n"
                          "virtual   unix  - n n -   - virtual\n"
                          "error     unix  - - n -   - error\n"
                          "retry     unix  - - n -   - error\n"
                          "discard   unix  - - n -   - discard\n"
                          "anvil     unix  - - n -   1 anvil\n"
                          "scache    unix  - - n -   1 scache\n"
                          "showq     unix  n - n -   - showq\n"
                          "tlsmgr    unix  - - n 1000? 1 tlsmgr\n"
                          "postlog   unix-dgram n - n - 1 postlogd\n";
  spit(config_dir() + "/master.cf", master_cf);
  return true;
}

pid_t Postfix::master_pid() const {
  std::string s = slurp(dir_ + "/queue/pid/master.pid");
  long pid = std::strtol(s.c_str(), nullptr, 10);
  return pid > 0 ? static_cast<pid_t>(pid) : -1;
}

std::string Postfix::maillog() const {
  return slurp(dir_ + "/maillog");
}

bool Postfix::start(double timeout) {
  if (dir_.empty()) return false;
  if (started_) return true;
  if (geteuid() != 0) {
    error_ = "not root: postfix(1) start needs root";
    return false;
  }
  std::string bin = postfix_binary();
  if (bin.empty()) {
    error_ = "postfix is not installed (scripts/lib.sh installs the postfix package)";
    return false;
  }
  port_ = free_port(SOCK_STREAM);
  if (!write_config()) return false;
  // Its own fatal errors before maillog_file is read go to syslog only when stderr is not a
  // terminal: script(1) gives it one so that they are in the output.
  RunResult r = sh("script -qec \"'" + bin + "' -c '" + config_dir() + "' start\" /dev/null 2>&1");
  started_ = true;  // whatever happened, stop() checks for a master
  if (r.status != 0) {
    error_ = "postfix start failed (" + std::to_string(r.status) + "): " + r.output + maillog();
    return false;
  }
  double deadline = now() + timeout;
  while (now() < deadline) {
    std::string g = greeting(opt_.ip, port_, 2);
    if (g.rfind("220 ", 0) == 0) return true;
    sleep_ms(50);
  }
  error_ = "no 220 greeting from Postfix on " + opt_.ip + ":" + std::to_string(port_) +
           " in time: " + maillog();
  return false;
}

bool Postfix::stop(double timeout) {
  if (!started_) return true;
  started_ = false;
  pid_t pid = master_pid();
  std::string pf = "'" + postfix_binary() + "' -c '" + config_dir() + "' ";
  sh(pf + "stop >/dev/null 2>&1");
  auto gone = [&](double secs) {
    double deadline = now() + secs;
    while (now() < deadline) {
      if (pid <= 0 || kill(pid, 0) != 0) return true;
      // Not our child (postfix daemonizes): a zombie master counts as gone.
      std::string st = slurp("/proc/" + std::to_string(pid) + "/stat");
      size_t p = st.rfind(')');
      if (p != std::string::npos && p + 2 < st.size() && st[p + 2] == 'Z') return true;
      sleep_ms(50);
    }
    return false;
  };
  if (gone(timeout)) return true;
  sh(pf + "abort >/dev/null 2>&1");
  if (gone(5)) return false;
  if (pid > 0) kill(pid, SIGKILL);
  gone(5);
  return false;
}

std::vector<std::string> Postfix::mailbox(const std::string &user) const {
  std::vector<std::string> out;
  std::error_code ec;
  std::vector<fs::path> files;
  for (auto it = fs::directory_iterator(dir_ + "/vmail/" + user + "/new", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    files.push_back(it->path());
  std::sort(files.begin(), files.end());
  for (const fs::path &f : files) out.push_back(slurp(f.string()));
  return out;
}

bool Postfix::wait_mailbox(const std::string &user, size_t n, double timeout) const {
  double deadline = now() + timeout;
  while (now() < deadline) {
    if (mailbox(user).size() >= n) return true;
    sleep_ms(50);
  }
  return mailbox(user).size() >= n;
}

}  // namespace itest
