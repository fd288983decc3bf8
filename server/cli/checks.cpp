// cli/checks.cpp: the startup checks of checks.hpp.
#include "cli/checks.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include "tls/context.hpp"
#include "util/privileges.hpp"
#include "uvsmtpd/plugin.h"

namespace uvs::cli {

namespace {

std::string quoted(const std::string &s) {
  return "\"" + s + "\"";
}

std::string account(uid_t uid) {
  passwd *pw = getpwuid(uid);
  std::string name = pw ? std::string("user ") + pw->pw_name + " " : std::string("");
  return name + "(uid " + std::to_string(uid) + ")";
}

// The first port that needs no privilege (net.ipv4.ip_unprivileged_port_start, default 1024).
unsigned unprivileged_port_start() {
  std::ifstream f("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  unsigned v = 1024;
  if (!(f >> v)) v = 1024;
  return v;
}

// CAP_NET_BIND_SERVICE (bit 10) in this process's effective set (/proc/self/status CapEff).
bool can_bind_low_ports() {
  if (geteuid() == 0) return true;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("CapEff:", 0) == 0) {
      unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
      return (caps >> 10) & 1;
    }
  return false;
}

}  // namespace

std::string where_key(const std::string &config_dir, const std::string &key) {
  std::string path = config_dir + "/uvsmtpd.toml";
  try {
    toml::table t = toml::parse_file(path);
    toml::node_view<toml::node> n = t.at_path(key);
    if (n) return path + ":" + std::to_string(n.node()->source().begin.line) + ": ";
  } catch (const std::exception &) {
  }
  return path + ": ";
}

bool check_accounts(const config::Settings &s, const std::string &config_dir, std::string &err) {
  if (!s.user.empty() && getpwnam(s.user.c_str()) == nullptr) {
    err = where_key(config_dir, "user") + "user " + quoted(s.user) +
          " does not exist: create it (useradd --system " + s.user + ") or set user = \"\"";
    return false;
  }
  if (!s.group.empty() && getgrnam(s.group.c_str()) == nullptr) {
    err = where_key(config_dir, "group") + "group " + quoted(s.group) +
          " does not exist: create it (groupadd --system " + s.group +
          ") or set group = \"\" (the user's own group)";
    return false;
  }
  if (!s.group.empty() && s.user.empty()) {
    err = where_key(config_dir, "group") + "group " + quoted(s.group) +
          " is set without user: set user as well, or remove group";
    return false;
  }
  return true;
}

bool check_bind_privilege(const config::Settings &s, const std::string &config_dir,
                          bool listen_from_cmdline, std::string &err) {
  unsigned first_free = unprivileged_port_start();
  if (can_bind_low_ports()) return true;
  for (const auto &l : s.listen) {
    if (l.port == 0 || l.port >= first_free) continue;
    bool v6 = l.host.find(':') != std::string::npos;
    std::string shown = (v6 ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port);
    err = (listen_from_cmdline ? std::string("--listen: ") : where_key(config_dir, "listen")) +
          "cannot listen on " + shown + ": ports below " + std::to_string(first_free) +
          " need root or CAP_NET_BIND_SERVICE (running as " + account(geteuid()) + ")";
    return false;
  }
  return true;
}

bool check_spool(const config::Settings &s, const std::string &config_dir, std::string &err) {
  const std::string &dir = s.spool_dir;
  auto at = [&] { return where_key(config_dir, "spool_dir") + "spool_dir " + quoted(dir); };
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT)
      err = at() + " does not exist: create it, writable by " + account(geteuid()) +
            " (e.g. install -d -m 0750 -o <user> " + dir + ")";
    else
      err = at() + ": " + strerror(e) + " (as " + account(geteuid()) + ")";
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    err = at() + " is not a directory";
    return false;
  }
  if (faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    int e = errno;
    err = at() + " is not writable by " + account(geteuid()) + ": " + strerror(e) +
          " (make that user its owner, or give it write permission)";
    return false;
  }
  return true;
}

bool check_queue(const Generation &g, std::vector<std::string> &warnings, std::string &err) {
  if (!g.plugins || !g.plugins->table.by_hook[UVS_HOOK_QUEUE].empty()) return true;
  std::string plugins = g.config_dir + "/plugins";
  std::string what = plugins + ": no plugin registers the queue hook, so every message gets " +
                     "451 4.3.0 after DATA: add a queue plugin (queue/maildir, queue/smtp-forward)";
  if (g.settings.require_queue_plugin) {
    err = what + " (an error because of " + where_key(g.config_dir, "require_queue_plugin") +
          "require_queue_plugin = true)";
    return false;
  }
  warnings.push_back(what + ", or set require_queue_plugin = true to make this an error");
  return true;
}

void check_auth(const Generation &g, std::vector<std::string> &warnings) {
  if (!g.plugins || !g.plugins->table.by_hook[UVS_HOOK_AUTH].empty()) return;
  for (const auto &l : g.settings.listen)
    if (l.auth == "required")
      warnings.push_back(g.config_dir + "/uvsmtpd.toml: the listener " + l.host + ":" +
                         std::to_string(l.port) + " has auth = \"required\" but no plugin in " +
                         g.config_dir + "/plugins registers the auth hook, so every MAIL there " +
                         "gets 530 5.7.0: add an auth plugin (auth/passwd_file, auth/dovecot)");
}

bool check_tls(const config::Settings &s, std::string &err) {
  if (!s.tls.enabled()) return true;
  return tls::TlsContext::load(s.tls, err) != nullptr;
}

bool become_run_as_user(const config::Settings &s, const std::string &config_dir,
                        std::vector<std::string> &warnings, std::string &err) {
  if (s.user.empty()) return true;
  passwd *pw = getpwnam(s.user.c_str());
  if (geteuid() != 0 && pw && pw->pw_uid != geteuid()) {
    warnings.push_back(where_key(config_dir, "user") + "not running as root: checked as " +
                       account(geteuid()) + ", not as user " + quoted(s.user) +
                       " (run the check as root to check what the server will see)");
    return true;
  }
  if (!drop_privileges(s.user, s.group, err)) {
    err = where_key(config_dir, "user") + err;
    return false;
  }
  return true;
}

}  // namespace uvs::cli
