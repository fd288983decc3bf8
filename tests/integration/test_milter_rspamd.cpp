// tests/integration/test_milter_rspamd.cpp: the milter plugin with a real rspamd (/usr/bin/rspamd)
// in milter mode: its proxy worker with `milter = yes` scanning by itself, started by the test
// from the packaged configuration with a temporary local configuration (ports on 127.0.0.1, DNS
// to a closed local port so nothing leaves the machine, no normal or controller worker), stopped
// by its PID. A GTUBE message is rejected; a clean one gets rspamd's X-Spamd-Result header.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "daemon_process.hpp"
#include "harness.hpp"
#include "mail_root.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

class Rspamd {
 public:
  Rspamd() {
    std::string tmpl = "/tmp/uvsmtpd-test.rspamd.XXXXXX";
    if (!mkdtemp(tmpl.data())) return;
    dir_ = tmpl;
    port_ = free_port(SOCK_STREAM);
    int dns = free_port(SOCK_DGRAM);  // nothing listens there: every lookup fails at once
    for (const char *d : {"local.d", "override.d", "db", "run", "log"})
      fs::create_directories(dir_ + "/" + d);
    spit(dir_ + "/local.d/worker-proxy.inc", "bind_socket = \"127.0.0.1:" + std::to_string(port_) +
                                                 "\";\nmilter = yes;\n"
                                                 "timeout = 60s;\ncount = 1;\nupstream \"local\" "
                                                 "{\n  default = yes;\n  self_scan = yes;\n}\n");
    spit(dir_ + "/override.d/worker-normal.inc", "enabled = false;\n");
    spit(dir_ + "/override.d/worker-controller.inc", "enabled = false;\n");
    spit(dir_ + "/override.d/worker-fuzzy.inc", "enabled = false;\n");
    spit(dir_ + "/local.d/options.inc",
         "dns {\n  nameserver = [\"127.0.0.1:" + std::to_string(dns) +
             "\"];\n  timeout = 0.3s;\n  retransmits = 0;\n}\n");
    // the client is 127.0.0.1, a "local" address to rspamd: headers are added for it all the same
    spit(dir_ + "/local.d/milter_headers.conf",
         "extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n"
         "use = [\"x-spamd-result\", \"x-rspamd-server\", \"x-rspamd-queue-id\"];\n");
    // a clean test message must not land near a soft action: only GTUBE (a forced reject) refuses
    spit(dir_ + "/override.d/actions.conf", "reject = 1000;\nadd_header = 500;\ngreylist = 400;\n");
    std::vector<std::string> argv = {"rspamd", "-f", "-c", "/etc/rspamd/rspamd.conf"};
    if (geteuid() == 0)  // rspamd refuses root workers unless told, and would switch users
      argv.insert(argv.end(), {"-i", "-u", "root", "-g", "root"});
    for (const std::string &v : {"LOCAL_CONFDIR=" + dir_, "DBDIR=" + dir_ + "/db",
                                 "RUNDIR=" + dir_ + "/run", "LOGDIR=" + dir_ + "/log"})
      argv.insert(argv.end(), {"--var", v});
    proc_.start(argv, dir_ + "/out", true);  // its own group: the main process and its workers
  }
  ~Rspamd() {
    proc_.stop();  // before its directory goes
    std::error_code ec;
    if (!dir_.empty() && !getenv("UVS_KEEP_TEST_DIRS")) fs::remove_all(dir_, ec);
  }
  Rspamd(const Rspamd &) = delete;
  Rspamd &operator=(const Rspamd &) = delete;
  // Waits for the proxy's port (rspamd compiles its rules first: it can take a while).
  bool ready(double timeout = 120) const {
    return proc_.wait_accepting([this] { return connect_loopback(port_); }, timeout, 200);
  }
  int port() const { return port_; }
  std::string log() const { return slurp(dir_ + "/out") + slurp(dir_ + "/log/rspamd.log"); }

 private:
  std::string dir_;
  int port_ = 0;
  DaemonProcess proc_;
};

std::string message(const std::string &subject, const std::string &body) {
  return "From: Sender <s@client.test>\r\n"
         "To: Alice <alice@one.test>\r\n"
         "Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
         "Message-ID: <" +
         subject.substr(0, 5) +
         ".1@client.test>\r\n"
         "Subject: " +
         subject +
         "\r\n"
         "MIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=us-ascii\r\n"
         "\r\n" +
         body;
}

}  // namespace

TEST_CASE("milter_rspamd: rspamd rejects a GTUBE message and adds its headers to a clean one") {
  Rspamd r;
  REQUIRE_MESSAGE(r.ready(), r.log());
  MailRoot root;
  Options o;
  o.plugins = "milter inet:127.0.0.1:" + std::to_string(r.port()) +
              " content_timeout=25\nverdict rcpt=OK\nqueue/maildir " + root.path + "\n";
  o.toml = "hook_timeout = 60\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply().rfind("220 ", 0) == 0);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  std::string gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
  std::string rep = send_message(c, "s@client.test", {"alice@one.test"},
                                 message("gtube test", "This is a test.\r\n" + gtube));
  CHECK_MESSAGE(rep.rfind("554 5.7.1 ", 0) == 0, std::string(rep + "\n" + s.log()));
  CHECK(root.of("alice", "one.test").empty());
  rep = send_message(c, "s@client.test", {"alice@one.test"},
                     message("clean test",
                             "Hello Alice,\r\n\r\nthe minutes of today's meeting "
                             "follow next week.\r\n\r\nRegards,\r\nSender\r\n"));
  CHECK_MESSAGE(rep.rfind("250 2.0.0 Queued as ", 0) == 0, std::string(rep + "\n" + s.log()));
  auto got = root.of("alice", "one.test");
  REQUIRE(got.size() == 1);
  CHECK_MESSAGE(got[0].find("X-Spamd-Result: default: False [") != std::string::npos, got[0]);
  CHECK(got[0].find("X-Rspamd-Server: ") != std::string::npos);
  CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
}
