// tests/integration/queue_helpers.hpp: what the queue and delivery suites (outbound_queue,
// delivery, delivery_engine) share: a temp dir, the id of a queued message, the `uvsmtpd queue`
// tool, the kill -9 test's messages and a uvsmtpd of their own that can be killed and restarted.
#pragma once
#include <string>
#include <sys/types.h>

#include "harness.hpp"

namespace itest {

// A fresh <base>/uvsmtpd-test.<tag>.XXXXXX dir, removed at the end (UVS_KEEP_TEST_DIRS keeps it).
struct TempDir {
  std::string path;
  explicit TempDir(const std::string &tag, const std::string &base = "/tmp");
  ~TempDir();
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
};

// The id of "250 2.0.0 Ok: queued as <id>" (queue/outbound); "" if the reply has none.
std::string queued_as_id(const std::string &reply);

std::string uvsmtpd_bin();  // the built uvsmtpd
// `uvsmtpd queue --queue-dir QUEUE ARGS`, stderr with stdout.
RunResult queue_tool(const std::string &queue, const std::string &args);

// Message number n of a kill test: deterministic, 200 B up to 200 + spread bytes, CRLF lines,
// every ninth starting with a dot; `to` is its To: header's value.
std::string kill_message(int n, const std::string &to, unsigned spread);
// The n of a kill message (the message as stored, from its header on); -1 if not one.
int kill_message_id(const std::string &rest);

// uvsmtpd on a make_tree() tree, started and killed (SIGKILL) by the test itself.
struct OwnServer {
  pid_t pid = -1;
  int port = 0;
  std::string failure;  // why the last start gave no port: "exited 1", "killed by signal 6", ...
  // Starts uvsmtpd on the tree; the log goes to log_path. port 0 on failure.
  void start(const std::string &tree, const std::string &log_path);
  void kill9();
  ~OwnServer() { kill9(); }
};

}  // namespace itest
