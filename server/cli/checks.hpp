// cli/checks.hpp: startup checks that both --check-config and a real start run, each error
// naming the file (and line where there is one) and what to do: run-as user and group,
// privileged ports, the spool directory, a queue plugin, the [tls] certificates.
#pragma once
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "plugin_host/host.hpp"

namespace uvs::cli {

// "<config_dir>/uvsmtpd.toml:<line>: " for a key set in the file ("a.b" for a key in [a]),
// "<config_dir>/uvsmtpd.toml: " when the key is not in the file (its default applies).
std::string where_key(const std::string &config_dir, const std::string &key);

// `user` and `group` name accounts that exist.
bool check_accounts(const config::Settings &s, const std::string &config_dir, std::string &err);

// Every listener below the first unprivileged port can be bound by this process (root or
// CAP_NET_BIND_SERVICE); --check-config only (a start simply binds). listen_from_cmdline: the
// addresses came from --listen.
bool check_bind_privilege(const config::Settings &s, const std::string &config_dir,
                          bool listen_from_cmdline, std::string &err);

// spool_dir is a directory this process (already running as the run-as user) may create files in.
bool check_spool(const config::Settings &s, const std::string &config_dir, std::string &err);

// Some plugin registers the queue hook. Without one: an error when require_queue_plugin is set,
// else a warning appended to warnings.
bool check_queue(const Generation &g, std::vector<std::string> &warnings, std::string &err);

// A listener with auth = "required" while no plugin registers the auth hook accepts no mail
// (every MAIL gets 530 5.7.0): a warning per such listener appended to warnings.
void check_auth(const Generation &g, std::vector<std::string> &warnings);

// The [tls] certificates and keys load (tls::TlsContext::load, as a start does before it drops
// root); --check-config only (a start loads them itself). No certificate set: nothing to check.
// The error is the loader's one line naming the file ("tls: <file>: <reason>").
bool check_tls(const config::Settings &s, std::string &err);

// For --check-config and --list-plugins: become the run-as user as a real start does before it
// loads plugins (root with `user` set: drop_privileges). Not root and `user` is someone else:
// a warning (checked as the invoking user instead).
bool become_run_as_user(const config::Settings &s, const std::string &config_dir,
                        std::vector<std::string> &warnings, std::string &err);

}  // namespace uvs::cli
