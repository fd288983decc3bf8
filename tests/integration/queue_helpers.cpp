// tests/integration/queue_helpers.cpp: the queue and delivery suites' shared helpers (see
// queue_helpers.hpp).
#include "queue_helpers.hpp"

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace itest {

TempDir::TempDir(const std::string &tag, const std::string &base) {
  std::string tmpl = base + "/uvsmtpd-test." + tag + ".XXXXXX";
  if (mkdtemp(tmpl.data())) path = tmpl;
}

TempDir::~TempDir() {
  if (path.empty() || getenv("UVS_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::string queued_as_id(const std::string &reply) {
  const std::string key = "Ok: queued as ";
  auto pos = reply.find(key);
  if (pos == std::string::npos) return "";
  std::string id = reply.substr(pos + key.size());
  size_t end = id.find_first_of(" \r\n");
  return end == std::string::npos ? id : id.substr(0, end);
}

std::string uvsmtpd_bin() {
  return build_root() + "/server/uvsmtpd";
}

RunResult queue_tool(const std::string &queue, const std::string &args) {
  return sh("'" + uvsmtpd_bin() + "' queue --queue-dir '" + queue + "' " + args + " 2>&1");
}

std::string kill_message(int n, const std::string &to, unsigned spread) {
  std::string m = "From: <kill@client.test>\r\nTo: " + to + "\r\nSubject: kill-test " +
                  std::to_string(n) + "\r\n\r\n";
  size_t size = 200 + static_cast<size_t>((static_cast<unsigned>(n) * 2654435761u) % spread);
  for (int line = 0; m.size() < size; ++line) {
    std::string l =
        (line % 9 == 0 ? "." : "") + std::to_string(n) + ":" + std::to_string(line) + " ";
    while (l.size() < 70)
      l += static_cast<char>('A' + (n + line + static_cast<int>(l.size())) % 26);
    m += l + "\r\n";
  }
  return m;
}

int kill_message_id(const std::string &rest) {
  const std::string key = "\r\nSubject: kill-test ";
  auto pos = rest.find(key);
  if (pos == std::string::npos) return -1;
  return atoi(rest.c_str() + pos + key.size());
}

void OwnServer::start(const std::string &tree, const std::string &log_path) {
  std::vector<std::string> args = {"--config",    tree + "/conf", "--listen",
                                   "127.0.0.1:0", "--plugin-dir", tree + "/plugins"};
  pid = fork();
  if (pid == 0) exec_uvsmtpd(open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), args);
  port = 0;
  failure = "no \"listening on\" line within 15 s";
  const std::string key = "listening on 127.0.0.1:";
  for (double deadline = now() + 15; now() < deadline;) {
    std::string l = slurp(log_path);
    auto pos = l.find(key);
    if (pos != std::string::npos) {
      port = atoi(l.c_str() + pos + key.size());
      failure.clear();
      return;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      failure = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exited " + std::to_string(WEXITSTATUS(status));
      return;
    }
    usleep(2000);
  }
}

void OwnServer::kill9() {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  pid = -1;
}

}  // namespace itest
