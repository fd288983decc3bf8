// tests/faults/faults_util.hpp: shared helpers of the fault suites (see faults_util.cpp).
#pragma once
#include <map>
#include <set>
#include <string>
#include <sys/types.h>
#include <vector>

#include "harness.hpp"

namespace faults {

using Env = std::map<std::string, std::string>;

std::string shim_path();          // FAULTS_SHIM: build/tests/faults/failshim.so
std::string crash_plugin_path();  // FAULTS_CRASH_PLUGIN: build/tests/faults/crash.so
std::string preload_prefix();     // FAULTS_PRELOAD_PREFIX: the ASan runtime in ASan builds

// LD_PRELOAD=[ASan runtime] failshim.so, the FAILSHIM_* settings and FAILSHIM_LOG=log.
Env shim_env(const std::string &call, const std::string &match, int nth, const std::string &err,
             const std::string &log);

// A config tree from itest::make_tree whose conf/plugins ends in queue/maildir <dir>/mail.
// Removed when destroyed (unless UVS_KEEP_TEST_DIRS is set).
struct Tree {
  std::string dir;
  // `before`: conf/plugins lines before queue/maildir; `after`: lines after it.
  explicit Tree(const std::string &before = "verdict rcpt=OK\n", const std::string &toml = "",
                const std::string &after = "");
  ~Tree();
  Tree(const Tree &) = delete;
  Tree &operator=(const Tree &) = delete;
  std::string mail() const { return dir + "/mail"; }
  // Links build/tests/faults/crash.so into the tree's plugin dir as crash.so.
  void add_crash_plugin() const;
};

// uvsmtpd started by fork/exec on a Tree with extra environment variables.
struct Proc {
  pid_t pid = -1;
  int port = 0;
  std::string log_path;
  bool reaped = false;
  int wstatus = 0;

  // Starts the server; true once it logged "listening on 127.0.0.1:PORT".
  bool start(const Tree &t, const Env &env, const std::string &log_path, double timeout = 20);
  // True if the process ended within timeout (wstatus then holds waitpid's status).
  bool wait(double timeout);
  bool alive();
  void signal(int sig) const;
  void kill9();
  std::string log() const;
  // For failed starts: how the process ended (if it did) and its log.
  std::string why() const;
  bool wait_log(const std::string &needle, double timeout, int count = 1) const;
  int count_log(const std::string &needle) const;
  ~Proc();
};

std::string describe_status(int wstatus);

// ---- messages ----------------------------------------------------------------------------

// Message n of a test: "Subject: <tag> <n> <size>", then deterministic lines up to `size` bytes
// (some start with '.', so they are stuffed on the wire). CRLF line ends.
std::string make_message(const std::string &tag, int n, size_t size);
// Parses "<tag> <n> <size>" out of a stored message's rest (after Received:); -1 if absent.
int message_number(const std::string &rest, const std::string &tag, size_t *size = nullptr);
using itest::dot_stuff;
using itest::split_received;

// Sends MAIL/RCPT/DATA and the message on an open session (EHLO done); returns the final reply
// ("" if the connection ended or timed out). `in_data` is set once 354 was received.
std::string transact(itest::Client &c, const std::vector<std::string> &rcpts,
                     const std::string &msg, double timeout = 15, bool *in_data = nullptr);

// ---- files -------------------------------------------------------------------------------

using itest::slurp;
using itest::spit;
std::vector<std::string> files_in(const std::string &dir);    // regular files, sorted, full paths
std::vector<std::string> all_files(const std::string &root);  // relative to root, sorted
// <mail>/<domain>/<local> for an address (queue/maildir's default %d/%u pattern).
std::string maildir_of(const std::string &mail, const std::string &addr);
void make_maildir(const std::string &maildir);

// What one Maildir holds: complete copies per message number, and every file that is not one
// complete message of `tag` (partial, foreign, unparsable).
struct Inventory {
  std::map<int, int> copies;     // message number -> complete copies in new/ and cur/
  std::vector<std::string> bad;  // "path (size bytes)"
  size_t tmp_files = 0;          // files in tmp/
};
Inventory inventory(const std::string &maildir, const std::string &tag);

}  // namespace faults
