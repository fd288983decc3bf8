// tests/integration/redis_fixture.hpp: a real redis-server for the shared-state suite, on a UNIX
// socket in its own temp dir (port 0: no TCP at all), without persistence, stopped by its PID.
#pragma once
#include <string>
#include <sys/types.h>

namespace itest {

class RedisServer {
 public:
  // Makes the temp dir and starts redis-server (check started()); tcp: it also listens on a
  // free port of 127.0.0.1, and toml() points there instead of the socket.
  explicit RedisServer(bool tcp = false);
  ~RedisServer();  // stops it and removes the dir
  RedisServer(const RedisServer &) = delete;
  RedisServer &operator=(const RedisServer &) = delete;

  static bool available();  // /usr/bin/redis-server exists
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string &socket_path() const { return sock_; }
  // The [state] table that points uvsmtpd at it.
  std::string toml(double timeout = 0.2) const;
  bool start();     // (again) on the same socket; waits until it answers PING
  void kill_now();  // SIGKILL, and reaped: the socket is left behind as a crash leaves it
  void stop();      // SIGTERM, reaped
  // redis-cli against it: its output (trailing newline dropped).
  std::string cli(const std::string &args) const;

 private:
  std::string dir_, sock_;
  int tcp_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace itest
