// tests/faults/faults_util.cpp: server processes, numbered messages, Maildir inventories.
#include "faults_util.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace fs = std::filesystem;
using itest::now;

namespace faults {

static std::string env_or(const char *name, const std::string &dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

std::string shim_path() {
  return env_or("FAULTS_SHIM", itest::build_root() + "/tests/faults/failshim.so");
}
std::string crash_plugin_path() {
  return env_or("FAULTS_CRASH_PLUGIN", itest::build_root() + "/tests/faults/crash.so");
}
std::string preload_prefix() {
  return env_or("FAULTS_PRELOAD_PREFIX", "");
}

Env shim_env(const std::string &call, const std::string &match, int nth, const std::string &err,
             const std::string &log) {
  std::string pre = preload_prefix();
  Env e;
  e["LD_PRELOAD"] = (pre.empty() ? "" : pre + " ") + shim_path();
  e["FAILSHIM_CALL"] = call;
  e["FAILSHIM_MATCH"] = match;
  e["FAILSHIM_NTH"] = std::to_string(nth);
  e["FAILSHIM_ERRNO"] = err;
  e["FAILSHIM_LOG"] = log;
  return e;
}

// ---- Tree --------------------------------------------------------------------------------

Tree::Tree(const std::string &before, const std::string &toml, const std::string &after) {
  itest::Options o;
  o.toml = toml;
  o.plugins = before;
  dir = itest::make_tree(o);
  spit(dir + "/conf/plugins", before + "queue/maildir " + mail() + "\n" + after);
}

Tree::~Tree() {
  if (!getenv("UVS_KEEP_TEST_DIRS")) itest::remove_tree(dir);
}

void Tree::add_crash_plugin() const {
  std::error_code ec;
  fs::create_symlink(fs::absolute(crash_plugin_path()), dir + "/plugins/crash.so", ec);
}

// ---- Proc --------------------------------------------------------------------------------

bool Proc::start(const Tree &t, const Env &env, const std::string &log_file, double timeout) {
  log_path = log_file;
  reaped = false;
  wstatus = 0;
  port = 0;
  std::vector<std::string> args = {itest::build_root() + "/server/uvsmtpd",
                                   "--config",
                                   t.dir + "/conf",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--plugin-dir",
                                   t.dir + "/plugins"};
  // The environment: ours, with `env` replacing or adding variables.
  std::vector<std::string> envs;
  for (char **e = environ; *e; ++e) {
    std::string kv = *e;
    std::string k = kv.substr(0, kv.find('='));
    if (!env.count(k)) envs.push_back(kv);
  }
  for (const auto &[k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char *> argv, envp;
  for (auto &a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto &e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid = fork();
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (pid < 0) return false;
  const std::string key = "listening on 127.0.0.1:";
  for (double deadline = now() + timeout; now() < deadline; usleep(2000)) {
    std::string l = log();
    auto pos = l.find(key);
    if (pos != std::string::npos) {
      port = atoi(l.c_str() + pos + key.size());
      return port > 0;
    }
    if (!alive()) return false;
  }
  return false;
}

bool Proc::wait(double timeout) {
  if (reaped) return true;
  if (pid <= 0) return false;
  double deadline = now() + timeout;
  do {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      reaped = true;
      wstatus = st;
      return true;
    }
    usleep(2000);
  } while (now() < deadline);
  return false;
}

bool Proc::alive() {
  return pid > 0 && !wait(0);
}

void Proc::signal(int sig) const {
  if (pid > 0 && !reaped) kill(pid, sig);
}

void Proc::kill9() {
  if (pid <= 0 || reaped) return;
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  reaped = true;
  wstatus = st;
}

std::string Proc::log() const {
  return slurp(log_path);
}

std::string Proc::why() const {
  return (reaped    ? describe_status(wstatus)
          : pid > 0 ? std::string("running, no port yet")
                    : std::string("not started")) +
         "; log " + log_path + ":\n" + log();
}

int Proc::count_log(const std::string &needle) const {
  std::string l = log();
  int n = 0;
  for (size_t pos = l.find(needle); pos != std::string::npos; pos = l.find(needle, pos + 1)) ++n;
  return n;
}

bool Proc::wait_log(const std::string &needle, double timeout, int count) const {
  double deadline = now() + timeout;
  do {
    if (count_log(needle) >= count) return true;
    usleep(5000);
  } while (now() < deadline);
  return false;
}

Proc::~Proc() {
  kill9();
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("signal ") + strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
}

// ---- messages ----------------------------------------------------------------------------

std::string make_message(const std::string &tag, int n, size_t size) {
  std::string m = "From: <faults@client.test>\r\nTo: <rcpt@one.test>\r\nSubject: " + tag + " " +
                  std::to_string(n) + " " + std::to_string(size) + "\r\nMessage-ID: <" + tag + "." +
                  std::to_string(n) + "@client.test>\r\n\r\n";
  for (int line = 0; m.size() < size; ++line) {
    std::string l =
        (line % 7 == 0 ? "." : "") + std::to_string(n) + ":" + std::to_string(line) + " ";
    while (l.size() < 72)
      l += static_cast<char>('a' + (n * 7 + line + static_cast<int>(l.size())) % 26);
    m += l + "\r\n";
  }
  return m;
}

int message_number(const std::string &rest, const std::string &tag, size_t *size) {
  const std::string key = "\r\nSubject: " + tag + " ";
  auto pos = rest.find(key);
  if (pos == std::string::npos) return -1;
  char *end = nullptr;
  long n = strtol(rest.c_str() + pos + key.size(), &end, 10);
  if (size && end) *size = static_cast<size_t>(strtoull(end, nullptr, 10));
  return static_cast<int>(n);
}

std::string transact(itest::Client &c, const std::vector<std::string> &rcpts,
                     const std::string &msg, double timeout, bool *in_data) {
  if (in_data) *in_data = false;
  std::string r = c.cmd("MAIL FROM:<faults@client.test>", timeout);
  if (r.rfind("250", 0) != 0) return r;
  for (const auto &to : rcpts) {
    r = c.cmd("RCPT TO:<" + to + ">", timeout);
    if (r.rfind("250", 0) != 0) return r;
  }
  r = c.cmd("DATA", timeout);
  if (r.rfind("354", 0) != 0) return r;
  if (in_data) *in_data = true;
  c.send(dot_stuff(msg) + ".\r\n");
  return c.reply(timeout);
}

// ---- files -------------------------------------------------------------------------------

std::vector<std::string> files_in(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    if (it->is_regular_file()) out.push_back(it->path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> all_files(const std::string &root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(fs::relative(it->path(), root).string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string maildir_of(const std::string &mail, const std::string &addr) {
  auto at = addr.rfind('@');
  std::string dom = addr.substr(at + 1);
  std::transform(dom.begin(), dom.end(), dom.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  return mail + "/" + dom + "/" + addr.substr(0, at);
}

void make_maildir(const std::string &maildir) {
  for (const char *sub : {"tmp", "new", "cur"}) fs::create_directories(maildir + "/" + sub);
}

Inventory inventory(const std::string &maildir, const std::string &tag) {
  Inventory inv;
  for (const char *sub : {"/new", "/cur"}) {
    for (const auto &f : files_in(maildir + sub)) {
      std::string stored = slurp(f), hdr, rest;
      size_t size = 0;
      int n = split_received(stored, hdr, rest) ? message_number(rest, tag, &size) : -1;
      if (n < 0 || rest != make_message(tag, n, size)) {
        inv.bad.push_back(f + " (" + std::to_string(stored.size()) + " bytes)");
        continue;
      }
      ++inv.copies[n];
    }
  }
  inv.tmp_files = files_in(maildir + "/tmp").size();
  return inv;
}

}  // namespace faults
