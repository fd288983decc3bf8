// tests/integration/daemon_process.cpp: see daemon_process.hpp.
#include "daemon_process.hpp"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "harness.hpp"

namespace itest {

void DaemonProcess::start(const std::vector<std::string> &argv, const std::string &out_path,
                          bool own_group) {
  own_group_ = own_group;
  pid_ = fork();
  if (pid_ == 0) {
    if (own_group) setpgid(0, 0);
    exec_program(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), argv);
  }
}

bool DaemonProcess::wait_accepting(const std::function<int()> &connect, double timeout,
                                   int poll_ms) const {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (std::chrono::steady_clock::now() < end) {
    if (pid_ <= 0 || waitpid(pid_, nullptr, WNOHANG) != 0) return false;  // it exited
    int fd = connect();
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  return false;
}

void DaemonProcess::stop() {
  if (pid_ <= 0) return;
  pid_t target = own_group_ ? -pid_ : pid_;  // the group: the main process and its workers
  kill(target, SIGTERM);
  for (int i = 0; i < 100 && waitpid(pid_, nullptr, WNOHANG) == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(target, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace itest
