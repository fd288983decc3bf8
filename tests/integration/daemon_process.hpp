// tests/integration/daemon_process.hpp: an outside daemon that a test runs in the foreground
// (rspamd, OpenDKIM): started with its output in a file, waited for until it accepts
// connections, and stopped when destroyed (SIGTERM, up to 5 s to exit, then SIGKILL).
#pragma once

#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace itest {

class DaemonProcess {
 public:
  DaemonProcess() = default;
  ~DaemonProcess() { stop(); }
  DaemonProcess(const DaemonProcess &) = delete;
  DaemonProcess &operator=(const DaemonProcess &) = delete;

  // Runs argv (argv[0] a path or a name in PATH) with stdout and stderr to out_path (truncated).
  // own_group: in a process group of its own, which stop() signals as a whole (a daemon that
  // forks workers).
  void start(const std::vector<std::string> &argv, const std::string &out_path,
             bool own_group = false);
  // Tries connect() every poll_ms until it returns a socket (closed again): true. false once
  // the daemon has exited (or never started), or after timeout seconds.
  bool wait_accepting(const std::function<int()> &connect, double timeout, int poll_ms) const;
  // SIGTERM, up to 5 s to exit, then SIGKILL, and reaped; nothing when not running.
  void stop();

 private:
  pid_t pid_ = -1;
  bool own_group_ = false;
};

}  // namespace itest
