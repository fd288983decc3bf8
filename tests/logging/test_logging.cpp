// tests/logging/test_logging.cpp: [log] with the real binary: stderr (default), a file and its
// reopen on SIGHUP (logrotate), syslog through syslogshim.so, JSON lines that parse with their
// fields, and the accepted-message and session-end lines.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <vector>

#include "harness.hpp"
#include "json_check.hpp"

extern char **environ;

namespace fs = std::filesystem;
using itest::Client;
using itest::now;
using itest::slurp;
using itest::spit;

namespace {

std::vector<std::string> lines_of(const std::string &text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

int count(const std::string &hay, const std::string &needle) {
  int n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// The line of `text` that contains `needle` ("" if none).
std::string line_with(const std::string &text, const std::string &needle) {
  for (const auto &l : lines_of(text))
    if (l.find(needle) != std::string::npos) return l;
  return "";
}

std::string env_or(const char *name, const std::string &dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

std::string shim_preload() {
  std::string pre = env_or("LOGGING_PRELOAD_PREFIX", "");
  std::string shim = env_or("SYSLOG_SHIM", itest::build_root() + "/tests/logging/syslogshim.so");
  return (pre.empty() ? "" : pre + " ") + shim;
}

// uvsmtpd on a harness tree whose [log] gets `log_keys` ("@DIR@" = the tree), started by
// fork/exec with extra environment; stdout and stderr go to <dir>/stderr. The port is read from
// the "listening on" line in <dir>/<port_from>.
struct LogServer {
  std::string dir;
  pid_t pid = -1;
  int port = 0;

  LogServer(std::string log_keys, const std::string &port_from,
            const std::vector<std::string> &env = {}) {
    dir = itest::make_tree({.log_level = "info"});
    auto expand = [this](std::string t) {
      for (size_t p; (p = t.find("@DIR@")) != std::string::npos;) t.replace(p, 5, dir);
      return t;
    };
    log_keys = expand(log_keys);
    std::vector<std::string> full_env;
    for (const auto &e : env) full_env.push_back(expand(e));
    std::string toml = slurp(conf());
    const std::string anchor = "[log]\nlevel = \"info\"\n";
    size_t at = toml.find(anchor);
    REQUIRE_MESSAGE(at != std::string::npos, toml);
    toml.insert(at + anchor.size(), log_keys + "\n");
    spit(conf(), toml);
    spit(dir + "/conf/plugins", "verdict rcpt=OK\nqueue/maildir " + dir + "/mail\n");
    start(port_from, full_env);
  }

  std::string conf() const { return dir + "/conf/uvsmtpd.toml"; }
  std::string path(const std::string &rel) const { return dir + "/" + rel; }
  std::string read(const std::string &rel) const { return slurp(path(rel)); }

  void start(const std::string &port_from, const std::vector<std::string> &env) {
    std::vector<std::string> args = {itest::build_root() + "/server/uvsmtpd",
                                     "--config",
                                     dir + "/conf",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--plugin-dir",
                                     dir + "/plugins"};
    std::vector<std::string> envs;
    for (char **e = environ; *e; ++e) envs.push_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char *> argv, envp;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto &e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string err_path = path("stderr");
    pid = fork();
    if (pid == 0) {
      int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    const std::string key = "listening on 127.0.0.1:";
    for (double deadline = now() + 20; now() < deadline; usleep(5000)) {
      std::string l = read(port_from);
      size_t p = l.find(key);
      if (p != std::string::npos) {
        port = atoi(l.c_str() + p + key.size());
        return;
      }
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;
        return;
      }
    }
  }

  bool wait_for(const std::string &rel, const std::string &needle, int n = 1,
                double timeout = 5) const {
    for (double deadline = now() + timeout; now() < deadline; usleep(5000))
      if (count(read(rel), needle) >= n) return true;
    return false;
  }

  ~LogServer() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (!getenv("UVS_KEEP_TEST_DIRS")) itest::remove_tree(dir);
  }
};

// One session: EHLO, MAIL, two good recipients and one bad, a message with a Message-ID,
// QUIT. Returns the queue id from "250 2.0.0 Queued as <id>" ("" on failure).
std::string one_session(int port, const std::string &from, const std::string &message_id,
                        const std::string &mail_params = "") {
  Client c(port);
  if (c.code() != 220) return "";
  if (c.cmd("EHLO client.test").rfind("250", 0) != 0) return "";
  if (c.cmd("MAIL FROM:<" + from + ">" + mail_params).rfind("250", 0) != 0) return "";
  c.cmd("RCPT TO:<a@example.org>");
  c.cmd("RCPT TO:<bad>");  // 501: an attempted RCPT that failed
  c.cmd("RCPT TO:<b@example.org>");
  if (c.cmd("DATA").rfind("354", 0) != 0) return "";
  c.send("Message-ID: " + message_id + "\r\nSubject: log test\r\n\r\nbody\r\n.\r\n");
  std::string r = c.reply(10);
  const std::string q = "250 2.0.0 Queued as ";
  if (r.rfind(q, 0) != 0) return "";
  c.cmd("QUIT");
  c.closed(3);
  return r.substr(q.size());
}

}  // namespace

TEST_CASE("logging: stderr (the default) gets the accepted-message and session-end lines") {
  itest::Server s({.log_level = "info"});
  REQUIRE(s.started());
  spit(s.conf_dir() + "/plugins", "verdict rcpt=OK\nqueue/maildir " + s.dir() + "/mail\n");
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  std::string qid = one_session(s.port(), "sender@example.org", "<m1@client.test>");
  REQUIRE(!qid.empty());
  REQUIRE(s.wait_log("disconnect from unknown[127.0.0.1] ehlo=1 mail=1"));
  std::string log = s.log();
  std::string acc = line_with(log, qid + ": accepted ");
  CHECK_MESSAGE(acc.find(" info [") != std::string::npos, acc);
  CHECK_MESSAGE(acc.find(qid + ": accepted message-id=<m1@client.test> size=") != std::string::npos,
                acc);
  CHECK_MESSAGE(acc.find(" from=<sender@example.org> nrcpt=2 rcpt=<a@example.org>,<b@example.org> "
                         "client=unknown[127.0.0.1] queue=queue/maildir: 250 2.0.0 Queued as " +
                         qid) != std::string::npos,
                acc);
  std::string end = line_with(log, "disconnect from ");
  CHECK_MESSAGE(end.find("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=2/3 data=1 quit=1 "
                         "commands=6/7 messages=1 duration=") != std::string::npos,
                end);
  // Both lines carry the session id of the connection.
  std::string connect = line_with(log, "connect from 127.0.0.1:");
  size_t b = connect.find('['), e = connect.find(']');
  REQUIRE(b != std::string::npos);
  std::string sid = connect.substr(b, e - b + 1);
  CHECK(acc.find(sid) != std::string::npos);
  CHECK(end.find(sid) != std::string::npos);
}

TEST_CASE("logging: file destination; after a rename, SIGHUP starts a new file at the path") {
  LogServer s("destination = \"file\"\nfile = \"@DIR@/uvsmtpd.log\"", "uvsmtpd.log");
  REQUIRE(s.port > 0);
  CHECK(s.read("stderr").find("listening on") == std::string::npos);  // not on stderr
  std::string q1 = one_session(s.port, "one@example.org", "<one@client.test>");
  REQUIRE(!q1.empty());
  REQUIRE(s.wait_for("uvsmtpd.log", "disconnect from ", 1));
  CHECK(s.read("uvsmtpd.log").find(q1 + ": accepted message-id=<one@client.test>") !=
        std::string::npos);

  fs::rename(s.path("uvsmtpd.log"), s.path("uvsmtpd.log.1"));
  kill(s.pid, SIGHUP);
  REQUIRE(s.wait_for("uvsmtpd.log", "SIGHUP: configuration and plugins reloaded"));
  std::string q2 = one_session(s.port, "two@example.org", "<two@client.test>");
  REQUIRE(!q2.empty());
  REQUIRE(s.wait_for("uvsmtpd.log", "disconnect from ", 1));
  std::string fresh = s.read("uvsmtpd.log"), old = s.read("uvsmtpd.log.1");
  CHECK(fresh.find(q2 + ": accepted message-id=<two@client.test>") != std::string::npos);
  CHECK(fresh.find(q1) == std::string::npos);
  CHECK(old.find(q1 + ": accepted") != std::string::npos);
  CHECK(old.find(q2) == std::string::npos);
  CHECK(old.find("SIGHUP") == std::string::npos);
  CHECK(count(old, "disconnect from ") == 1);
  for (const auto &l : lines_of(fresh + old)) CHECK_MESSAGE(l.rfind("20", 0) == 0, l);  // stamped
  CHECK(s.read("stderr").empty());
}

TEST_CASE("logging: a log file that cannot be reopened on SIGHUP keeps the old one") {
  LogServer s("destination = \"file\"\nfile = \"@DIR@/uvsmtpd.log\"", "uvsmtpd.log");
  REQUIRE(s.port > 0);
  fs::rename(s.path("uvsmtpd.log"), s.path("old.log"));
  fs::create_directory(s.path("uvsmtpd.log"));  // the path cannot be opened as a file now
  kill(s.pid, SIGHUP);
  REQUIRE(s.wait_for("old.log", "SIGHUP: configuration and plugins reloaded"));
  CHECK(s.read("old.log").find("SIGHUP: cannot open log file " + s.path("uvsmtpd.log") +
                               ": Is a directory; still writing to the previous file") !=
        std::string::npos);
}

TEST_CASE("logging: startup errors of [log] name the file and line or the log file") {
  std::string dir = itest::make_tree({.log_level = "info"});
  std::string conf = dir + "/conf/uvsmtpd.toml";
  std::string toml = slurp(conf);
  std::string base = toml;
  const std::string anchor = "[log]\nlevel = \"info\"\n";
  size_t at = toml.find(anchor);
  REQUIRE(at != std::string::npos);
  int line =
      1 + static_cast<int>(std::count(toml.begin(), toml.begin() + static_cast<long>(at), '\n')) +
      2;
  toml.insert(at + anchor.size(), "destination = \"file\"\n");
  spit(conf, toml);
  auto r = itest::run_uvsmtpd({"--config", dir + "/conf", "--check-config"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find(conf + ":" + std::to_string(line) +
                              ": 'log.destination' is \"file\" but 'log.file' is not set") !=
                    std::string::npos,
                r.output);

  toml = base;
  toml.insert(at + anchor.size(),
              "destination = \"file\"\nfile = \"" + dir + "/missing/dir/u.log\"\n");
  spit(conf, toml);
  r = itest::run_uvsmtpd(
      {"--config", dir + "/conf", "--listen", "127.0.0.1:0", "--plugin-dir", dir + "/plugins"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("uvsmtpd: " + conf + ":") != std::string::npos, r.output);
  CHECK_MESSAGE(r.output.find(": cannot open log file " + dir +
                              "/missing/dir/u.log: No such file or directory: the file (or, "
                              "while it does not exist, its directory) must be writable by "
                              "uvsmtpd; or change [log] file") !=
                    std::string::npos,
                r.output);

  toml = base;
  toml.insert(at + anchor.size(), "destination = \"syslog\"\nsyslog_facility = \"kern\"\n");
  spit(conf, toml);
  r = itest::run_uvsmtpd({"--config", dir + "/conf", "--check-config"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find(conf + ":" + std::to_string(line + 1) +
                              ": 'log.syslog_facility' must be one of") != std::string::npos,
                r.output);
  itest::remove_tree(dir);
}

TEST_CASE("logging: JSON lines parse; ids, client and message facts are fields") {
  LogServer s("format = \"json\"", "stderr");
  REQUIRE(s.port > 0);
  // A quoted local part with a quote and a backslash, a UTF-8 domain (SMTPUTF8), and a
  // Message-ID with a control byte and a byte that is not UTF-8.
  std::string from =
      "\"a\\\"b\\\\c\"@b\xc3\xbc"
      "cher.example";
  std::string mid = std::string("<x\"\x01\xff@client.test>");
  std::string qid = one_session(s.port, from, mid, " SMTPUTF8");
  REQUIRE(!qid.empty());
  REQUIRE(s.wait_for("stderr", "\"event\":\"disconnect\""));
  std::string sid;
  bool saw_accepted = false, saw_end = false, saw_connect = false, saw_plugin = false;
  int txn_lines = 0;
  for (const auto &line : lines_of(s.read("stderr"))) {
    auto v = jsoncheck::parse(line);
    REQUIRE_MESSAGE(v, line);
    CHECK_FALSE_MESSAGE(v->duplicate_key, line);
    CHECK(v->has("ts"));
    CHECK(v->has("level"));
    CHECK(v->has("msg"));
    if (v->str("msg").rfind("connect from 127.0.0.1:", 0) == 0) {
      sid = v->str("session");
      saw_connect = true;
      CHECK(v->str("event") == "connect");
      CHECK(v->str("client_ip") == "127.0.0.1");
      CHECK(v->num("client_port") > 0);
      CHECK(v->str("local_ip") == "127.0.0.1");
      CHECK(v->num("local_port") == s.port);
    }
    // The core's transaction lines and plugin lines: the session and the queue id are fields
    // of their own (text lines show "[session queue-id]").
    if (v->str("msg").rfind(qid + ": to=<", 0) == 0) {
      ++txn_lines;
      CHECK(v->str("session") == sid);
      CHECK(v->str("queue_id") == qid);
    }
    if (v->str("source") == "queue/maildir" && v->str("msg").rfind("delivered ", 0) == 0) {
      saw_plugin = true;
      CHECK(v->str("session") == sid);
      CHECK(v->str("queue_id") == qid);
    }
    if (v->str("event") == "accepted") {
      saw_accepted = true;
      CHECK(v->str("level") == "info");
      CHECK(v->str("session") == sid);
      CHECK(v->str("queue_id") == qid);
      CHECK(v->str("message_id") == "<x\"\x01\\xff@client.test>");
      CHECK(v->num("size") > 40);
      CHECK(v->str("from") ==
            "\"a\\\"b\\\\c\"@b\xc3\xbc"
            "cher.example");
      CHECK(v->num("nrcpt") == 2);
      const auto *rc = v->get("rcpts");
      REQUIRE(rc);
      REQUIRE(rc->a.size() == 2);
      CHECK(rc->a[0].s == "a@example.org");
      CHECK(rc->a[1].s == "b@example.org");
      CHECK(v->str("plugin") == "queue/maildir");
      CHECK(v->str("reply") == "250 2.0.0 Queued as " + qid);
      CHECK(v->str("client_ip") == "127.0.0.1");
      CHECK(v->get("client_host")->type == jsoncheck::Value::null);
      CHECK(v->str("msg").rfind(qid + ": accepted message-id=", 0) == 0);
    }
    if (v->str("event") == "disconnect") {
      saw_end = true;
      CHECK(v->str("session") == sid);
      CHECK(v->str("client_ip") == "127.0.0.1");
      CHECK(v->num("messages") == 1);
      CHECK(v->num("commands_ok") == 6);
      CHECK(v->num("commands_total") == 7);
      CHECK(v->num("duration") >= 0);
      CHECK(v->num("duration") < 30);
      const auto *cmds = v->get("commands");
      REQUIRE(cmds);
      CHECK(cmds->get("rcpt")->num("ok") == 2);
      CHECK(cmds->get("rcpt")->num("total") == 3);
      CHECK(cmds->get("data")->num("ok") == 1);
      CHECK(cmds->get("quit")->num("total") == 1);
    }
  }
  CHECK(!sid.empty());
  CHECK(saw_connect);
  CHECK(saw_plugin);
  CHECK(txn_lines == 2);
  CHECK(saw_accepted);
  CHECK(saw_end);
}

TEST_CASE("logging: syslog destination: openlog with LOG_PID, the facility, mapped levels") {
  LogServer s("destination = \"syslog\"\nsyslog_facility = \"local3\"", "syslog",
              {"LD_PRELOAD=" + shim_preload(), "SYSLOGSHIM_FILE=@DIR@/syslog"});
  REQUIRE(s.port > 0);
  std::string qid = one_session(s.port, "sys@example.org", "<sys@client.test>");
  REQUIRE(!qid.empty());
  REQUIRE(s.wait_for("syslog", "disconnect from "));
  std::string log = s.read("syslog");
  std::string fac = " facility=" + std::to_string(LOG_LOCAL3) + " ";
  CHECK_MESSAGE(log.rfind("openlog ident=uvsmtpd option=" + std::to_string(LOG_PID | LOG_NDELAY) +
                              " facility=" + std::to_string(LOG_LOCAL3) + "\n",
                          0) == 0,
                log);
  // Levels become priorities; the text has no time stamp (syslog adds its own).
  CHECK_MESSAGE(log.find("syslog pri=" + std::to_string(LOG_NOTICE) + fac +
                         "msg=notice listening on 127.0.0.1:") != std::string::npos,
                log);
  std::string acc = line_with(log, qid + ": accepted ");
  CHECK_MESSAGE(acc.rfind("syslog pri=" + std::to_string(LOG_INFO) + fac + "msg=info [", 0) == 0,
                acc);
  CHECK(acc.find(qid + ": accepted message-id=<sys@client.test> size=") != std::string::npos);
  std::string end = line_with(log, "disconnect from ");
  CHECK_MESSAGE(end.rfind("syslog pri=" + std::to_string(LOG_INFO) + fac + "msg=info [", 0) == 0,
                end);
  CHECK(end.find("rcpt=2/3") != std::string::npos);
  CHECK(s.read("stderr").empty());
  kill(s.pid, SIGTERM);
  CHECK(s.wait_for("syslog", "all sessions closed; exiting"));
}

TEST_CASE("logging: syslog facility defaults to mail; JSON goes to syslog as one object") {
  LogServer s("destination = \"syslog\"\nformat = \"json\"", "syslog",
              {"LD_PRELOAD=" + shim_preload(), "SYSLOGSHIM_FILE=@DIR@/syslog"});
  REQUIRE(s.port > 0);
  std::string log = s.read("syslog");
  CHECK_MESSAGE(log.rfind("openlog ident=uvsmtpd option=" + std::to_string(LOG_PID | LOG_NDELAY) +
                              " facility=" + std::to_string(LOG_MAIL) + "\n",
                          0) == 0,
                log);
  std::string l = line_with(log, "listening on");
  std::string prefix = "syslog pri=" + std::to_string(LOG_NOTICE) +
                       " facility=" + std::to_string(LOG_MAIL) + " msg=";
  REQUIRE_MESSAGE(l.rfind(prefix, 0) == 0, l);
  auto v = jsoncheck::parse(l.substr(prefix.size()));
  REQUIRE_MESSAGE(v, l);
  CHECK(v->str("level") == "notice");
}

TEST_CASE("logging: SIGHUP applies a new level and format; a new destination waits for a restart") {
  LogServer s("", "stderr");
  REQUIRE(s.port > 0);
  std::string toml = slurp(s.conf());
  const std::string anchor = "[log]\nlevel = \"info\"\n";
  size_t at = toml.find(anchor);
  REQUIRE(at != std::string::npos);
  toml.replace(at, anchor.size(),
               "[log]\nlevel = \"notice\"\nformat = \"json\"\ndestination = \"file\"\nfile = \"" +
                   s.path("other.log") + "\"\n");
  spit(s.conf(), toml);
  kill(s.pid, SIGHUP);
  REQUIRE(s.wait_for("stderr", "SIGHUP: configuration and plugins reloaded"));
  std::string warn = line_with(s.read("stderr"), "change only on restart");
  auto v = jsoncheck::parse(warn);
  REQUIRE_MESSAGE(v, warn);
  CHECK(v->str("level") == "warning");
  CHECK(v->str("msg") ==
        "SIGHUP: [log] destination, file and syslog_facility change only on "
        "restart; still logging as before");
  auto done = jsoncheck::parse(line_with(s.read("stderr"), "SIGHUP: configuration and plugins"));
  CHECK(done);
  CHECK_FALSE(fs::exists(s.path("other.log")));
  // level notice now: a session's info lines are gone.
  Client c(s.port);
  CHECK(c.code() == 220);
  c.cmd("QUIT");
  CHECK(c.closed(3));
  usleep(200000);
  CHECK(s.read("stderr").find("connect from 127.0.0.1") == std::string::npos);
}

TEST_CASE("logging: the log file is never opened through a symbolic link; --check-config tries it") {
  std::string dir = itest::make_tree({.log_level = "info"});
  std::string conf = dir + "/conf/uvsmtpd.toml";
  std::string base = slurp(conf);
  const std::string anchor = "[log]\nlevel = \"info\"\n";
  size_t at = base.find(anchor);
  REQUIRE(at != std::string::npos);
  auto with_log = [&](const std::string &extra) {
    std::string toml = base;
    toml.insert(at + anchor.size(), extra);
    spit(conf, toml);
  };
  std::vector<std::string> start = {"--config", dir + "/conf", "--listen", "127.0.0.1:0",
                                    "--plugin-dir", dir + "/plugins"};
  std::vector<std::string> check = {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins",
                                    "--check-config"};

  SUBCASE("a symbolic link at the path: start and --check-config refuse, the target is untouched") {
    spit(dir + "/target", "precious\n");
    REQUIRE(symlink((dir + "/target").c_str(), (dir + "/u.log").c_str()) == 0);
    with_log("destination = \"file\"\nfile = \"" + dir + "/u.log\"\n");
    for (const auto &args : {start, check}) {
      auto r = itest::run_uvsmtpd(args);
      CHECK(r.status == 1);
      CHECK_MESSAGE(r.output.find("cannot open log file " + dir + "/u.log: it is a symbolic link") !=
                        std::string::npos,
                    r.output);
    }
    CHECK(slurp(dir + "/target") == "precious\n");
  }
  SUBCASE("a directory that does not exist: --check-config says so") {
    with_log("destination = \"file\"\nfile = \"" + dir + "/missing/u.log\"\n");
    auto r = itest::run_uvsmtpd(check);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("cannot open log file " + dir +
                                "/missing/u.log: No such file or directory") != std::string::npos,
                  r.output);
  }
  SUBCASE("as root with user set: the file is created as that user, so a reopen as it works") {
    if (geteuid() != 0) {
      MESSAGE("not root: skipped");
      return;
    }
    fs::create_directories(dir + "/logs");
    REQUIRE(chown((dir + "/logs").c_str(), 65534, 65534) == 0);  // nobody:nogroup
    for (const char *p : {"", "/spool"}) chmod((dir + p).c_str(), 0755);
    REQUIRE(chown((dir + "/spool").c_str(), 65534, 65534) == 0);
    base.insert(0, "user = \"nobody\"\n");
    at = base.find(anchor);
    with_log("destination = \"file\"\nfile = \"" + dir + "/logs/u.log\"\n");
    // --check-config checks the directory as nobody and creates nothing.
    auto r = itest::run_uvsmtpd(check);
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_FALSE(fs::exists(dir + "/logs/u.log"));
    // A start creates it as nobody (run for a moment, then stopped).
    itest::run_uvsmtpd(start, 1.5);
    struct stat st;
    REQUIRE(stat((dir + "/logs/u.log").c_str(), &st) == 0);
    CHECK(st.st_uid == 65534u);
    CHECK(slurp(dir + "/logs/u.log").find("started") != std::string::npos);
    // Owned by root from an older start: the check names the file and what to do.
    REQUIRE(chown((dir + "/logs/u.log").c_str(), 0, 0) == 0);
    chmod((dir + "/logs/u.log").c_str(), 0640);
    r = itest::run_uvsmtpd(check);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("u.log: Permission denied: the file (or, while it does not exist, "
                                "its directory) must be writable by user nobody") !=
                      std::string::npos,
                  r.output);
  }
  itest::remove_tree(dir);
}
