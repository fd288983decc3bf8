// tests/integration/redis_fixture.cpp: RedisServer (see redis_fixture.hpp).
#include "redis_fixture.hpp"

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.hpp"

namespace itest {

namespace {
bool answers(const std::string &path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  bool ok = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
  if (ok) {
    ok = write(fd, "PING\r\n", 6) == 6;
    char buf[16] = {};
    ok = ok && read(fd, buf, sizeof buf - 1) > 0 && std::string(buf).rfind("+PONG", 0) == 0;
  }
  close(fd);
  return ok;
}
}  // namespace

bool RedisServer::available() {
  return access("/usr/bin/redis-server", X_OK) == 0;
}

RedisServer::RedisServer(bool tcp) {
  if (tcp) tcp_port_ = free_port(SOCK_STREAM);
  char tmpl[] = "/tmp/uvs-redis-XXXXXX";
  if (!mkdtemp(tmpl)) return;
  dir_ = tmpl;
  sock_ = dir_ + "/redis.sock";
  start();
}

RedisServer::~RedisServer() {
  stop();
  if (!dir_.empty()) sh("rm -rf '" + dir_ + "'");
}

std::string RedisServer::toml(double timeout) const {
  std::string where = tcp_port_ ? "127.0.0.1:" + std::to_string(tcp_port_) : "unix:" + sock_;
  return "[state]\nredis = \"" + where + "\"\ntimeout = " + std::to_string(timeout) + "\n";
}

bool RedisServer::start() {
  if (pid_ > 0 || dir_.empty()) return false;
  unlink(sock_.c_str());
  pid_t pid = fork();
  if (pid == 0) {
    int out = open((dir_ + "/redis.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    exec_program(out, {"/usr/bin/redis-server", "--port", std::to_string(tcp_port_), "--bind",
                       "127.0.0.1", "--unixsocket", sock_, "--unixsocketperm", "700", "--save", "",
                       "--appendonly", "no", "--daemonize", "no", "--dir", dir_});
  }
  if (pid < 0) return false;
  pid_ = pid;
  double end = now() + 10;
  while (now() < end) {
    if (answers(sock_)) return true;
    usleep(20000);
  }
  stop();
  return false;
}

void RedisServer::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string RedisServer::cli(const std::string &args) const {
  RunResult r = sh("redis-cli -s '" + sock_ + "' " + args);
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace itest
