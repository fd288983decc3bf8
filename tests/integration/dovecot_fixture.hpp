// tests/integration/dovecot_fixture.hpp: a real Dovecot (only its auth service) for the
// auth/dovecot tests: a minimal dovecot.conf in a temp dir, `dovecot -c <conf> -F` as a child
// process, its auth-client socket, stop and restart by PID. Works as root and as an ordinary user.
#pragma once
#include <string>
#include <sys/types.h>
#include <vector>

namespace itest {

struct DovecotUser {
  std::string name;
  std::string password;
  bool hashed = true;  // {SHA512-CRYPT} made with `openssl passwd -6`; false: {PLAIN}
};

class Dovecot {
 public:
  // Writes the users file and dovecot.conf into a fresh temp dir (`extra` is appended to the
  // config). Nothing runs yet.
  explicit Dovecot(const std::vector<DovecotUser> &users, const std::string &extra = "");
  ~Dovecot();  // stops it and removes the dir (UVS_KEEP_TEST_DIRS keeps it)
  Dovecot(const Dovecot &) = delete;
  Dovecot &operator=(const Dovecot &) = delete;

  // Starts the master in the foreground as a child and waits until the auth socket accepts a
  // connection. False with error() set: no dovecot binary, it exited, or no socket in time.
  bool start(double timeout = 15);
  // SIGTERM to the master (SIGKILL after timeout), reaps it, then waits until the socket refuses
  // connections. False if it did not go.
  bool stop(double timeout = 10);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const std::string &error() const { return error_; }
  const std::string &dir() const { return dir_; }
  std::string socket_path() const { return dir_ + "/auth-client"; }
  std::string log() const;  // dovecot.log and the master's stdout/stderr

 private:
  std::string dir_;
  std::string error_;
  pid_t pid_ = -1;
};

// The dovecot binary (PATH, then /usr/sbin, /usr/local/sbin); "" if there is none.
std::string dovecot_binary();

// A fake Dovecot auth socket on its own thread, until destroyed: accepts connections, sends
// `handshake` to each (nothing if ""), and answers each "AUTH\t<id>\t..." line with `answer`, its
// "{id}" replaced by the request's id (no answer if ""; "{close}": close the connection instead).
// So "" and "" is a socket that accepts and never answers.
class FakeAuthServer {
 public:
  explicit FakeAuthServer(const std::string &path, const std::string &handshake = "",
                          const std::string &answer = "");
  ~FakeAuthServer();
  FakeAuthServer(const FakeAuthServer &) = delete;
  FakeAuthServer &operator=(const FakeAuthServer &) = delete;
  bool ok() const { return fd_ >= 0; }
  int accepted() const;  // connections accepted so far

 private:
  struct State;
  State *st_;
  int fd_ = -1;
};

// What Dovecot 2.3 sends when a client connects.
extern const char *const kDovecotHandshake;

}  // namespace itest
