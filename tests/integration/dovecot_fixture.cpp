// tests/integration/dovecot_fixture.cpp: the real-Dovecot fixture and the silent UNIX socket (see
// dovecot_fixture.hpp).
#include "dovecot_fixture.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "harness.hpp"

namespace itest {

namespace {

std::string shell_quote(const std::string &s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// 0: connected; else the errno of connect().
int try_connect(const std::string &path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  int rc = connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

std::string dovecot_binary() {
  RunResult r = sh("command -v dovecot");
  if (r.status == 0) {
    std::string p = r.output.substr(0, r.output.find('\n'));
    if (!p.empty()) return p;
  }
  for (const char *p : {"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

Dovecot::Dovecot(const std::vector<DovecotUser> &users, const std::string &extra) {
  char tmpl[] = "/tmp/uvsmtpd-test.dovecot-XXXXXX";  // the prefix remove_tree() accepts
  if (!mkdtemp(tmpl)) {
    error_ = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  dir_ = tmpl;
  chmod(dir_.c_str(), 0755);
  std::string entries;
  for (const DovecotUser &u : users) {
    std::string pw = "{PLAIN}" + u.password;
    if (u.hashed) {
      RunResult r = sh("openssl passwd -6 " + shell_quote(u.password));
      std::string hash = r.output.substr(0, r.output.find('\n'));
      if (r.status != 0 || hash.rfind("$6$", 0) != 0) {
        error_ = "openssl passwd -6 failed: " + r.output;
        return;
      }
      pw = "{SHA512-CRYPT}" + hash;
    }
    entries += u.name + ":" + pw + "::::::\n";
  }
  spit(dir_ + "/users", entries);
  const struct passwd *pwent = getpwuid(geteuid());
  const struct group *grent = getgrgid(getegid());
  std::string user = pwent ? pwent->pw_name : "root";
  std::string grp = grent ? grent->gr_name : "root";
  // Only the auth service runs (protocols is empty). Every path is in the temp dir; the
  // internal and login users are whoever runs the test (root in CI, anyone elsewhere), and the
  // services that would chroot or change user do neither.
  std::string conf =
      "# written by tests/integration/dovecot_fixture.cpp\n"
      "base_dir = " +
      dir_ +
      "/run\n"
      "state_dir = " +
      dir_ +
      "/state\n"
      "log_path = " +
      dir_ +
      "/dovecot.log\n"
      "instance_name = uvs-test-" +
      dir_.substr(dir_.rfind('-') + 1) +
      "\n"
      "protocols =\n"
      "ssl = no\n"
      "auth_mechanisms = plain login\n"
      "auth_failure_delay = 0\n"
      "default_internal_user = " +
      user +
      "\n"
      "default_internal_group = " +
      grp +
      "\n"
      "default_login_user = " +
      user +
      "\n"
      "passdb {\n  driver = passwd-file\n  args = " +
      dir_ +
      "/users\n}\n"
      "userdb {\n  driver = passwd-file\n  args = " +
      dir_ +
      "/users\n}\n"
      "service anvil {\n  chroot =\n}\n"
      "service auth-worker {\n  user = " +
      user +
      "\n}\n"
      "service auth {\n  unix_listener " +
      socket_path() + " {\n    mode = 0600\n    user = " + user + "\n  }\n}\n" + extra;
  spit(dir_ + "/dovecot.conf", conf);
  mkdir((dir_ + "/run").c_str(), 0755);
  mkdir((dir_ + "/state").c_str(), 0755);
}

Dovecot::~Dovecot() {
  stop();
  if (!dir_.empty() && !getenv("UVS_KEEP_TEST_DIRS")) remove_tree(dir_);
}

std::string Dovecot::log() const {
  return slurp(dir_ + "/dovecot.log") + slurp(dir_ + "/master.out");
}

bool Dovecot::start(double timeout) {
  if (dir_.empty() || !error_.empty()) {
    if (error_.empty()) error_ = "no temp dir";
    return false;
  }
  if (pid_ > 0) return true;
  std::string bin = dovecot_binary();
  if (bin.empty()) {
    error_ = "dovecot is not installed (scripts/lib.sh installs dovecot-core)";
    return false;
  }
  unlink(socket_path().c_str());
  int out = open((dir_ + "/master.out").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    error_ = std::string("master.out: ") + std::strerror(errno);
    return false;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    setpgid(0, 0);
    exec_program(out, {bin, "-c", dir_ + "/dovecot.conf", "-F"});
  }
  close(out);
  if (pid < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  pid_ = pid;
  double deadline = now() + timeout;
  while (now() < deadline) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "dovecot exited at start: " + log();
      return false;
    }
    if (try_connect(socket_path()) == 0) return true;
    sleep_ms(20);
  }
  error_ = "no auth socket within the time: " + log();
  stop();
  return false;
}

bool Dovecot::stop(double timeout) {
  if (pid_ <= 0) return true;
  // The whole process group, as a service manager stops it: the master alone would leave the
  // auth process serving the connections it already has.
  kill(-pid_, SIGTERM);
  kill(pid_, SIGTERM);
  double deadline = now() + timeout;
  bool reaped = false;
  while (now() < deadline) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      reaped = true;
      break;
    }
    sleep_ms(20);
  }
  if (!reaped) {
    kill(-pid_, SIGKILL);  // the master and its children (its own process group)
    kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
  }
  kill(-pid_, SIGKILL);  // whatever of the group is left
  pid_ = -1;
  // The auth process may outlive the master by a moment: wait until nobody answers.
  while (now() < deadline + 5) {
    if (try_connect(socket_path()) != 0) return reaped;
    sleep_ms(20);
  }
  return false;
}

const char *const kDovecotHandshake =
    "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t1\n"
    "COOKIE\t0123456789abcdef0123456789abcdef\nDONE\n";

struct FakeAuthServer::State {
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<int> accepted{0};
  std::string path, handshake, answer;
};

namespace {

void write_all(int fd, const std::string &s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

FakeAuthServer::FakeAuthServer(const std::string &path, const std::string &handshake,
                               const std::string &answer)
    : st_(new State) {
  st_->path = path;
  st_->handshake = handshake;
  st_->answer = answer;
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0 ||
      listen(fd, 64) != 0) {
    if (fd >= 0) close(fd);
    return;
  }
  fd_ = fd;
  st_->thread = std::thread([this, fd] {
    struct Conn {
      int fd;
      std::string in;
    };
    std::vector<Conn> conns;
    while (!st_->stop) {
      std::vector<pollfd> pfds{{fd, POLLIN, 0}};
      for (const Conn &c : conns) pfds.push_back({c.fd, POLLIN, 0});
      if (poll(pfds.data(), pfds.size(), 50) <= 0) continue;
      if (pfds[0].revents & POLLIN) {
        int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          conns.push_back({c, ""});
          st_->accepted++;
          write_all(c, st_->handshake);
        }
      }
      for (size_t i = 1; i < pfds.size(); i++) {
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto it = std::find_if(conns.begin(), conns.end(),
                               [&](const Conn &c) { return c.fd == pfds[i].fd; });
        char buf[4096];
        ssize_t n = read(it->fd, buf, sizeof buf);
        if (n <= 0) {
          close(it->fd);
          conns.erase(it);
          continue;
        }
        it->in.append(buf, static_cast<size_t>(n));
        if (st_->answer == "{close}" && it->in.find("AUTH\t") != std::string::npos) {
          close(it->fd);
          conns.erase(it);
          continue;
        }
        for (size_t nl; (nl = it->in.find('\n')) != std::string::npos; it->in.erase(0, nl + 1)) {
          std::string line = it->in.substr(0, nl);
          if (st_->answer.empty() || line.rfind("AUTH\t", 0) != 0) continue;
          std::string id = line.substr(5, line.find('\t', 5) - 5);
          std::string a = st_->answer;
          for (size_t p; (p = a.find("{id}")) != std::string::npos;) a.replace(p, 4, id);
          write_all(it->fd, a);
        }
      }
    }
    for (const Conn &c : conns) close(c.fd);
  });
}

FakeAuthServer::~FakeAuthServer() {
  st_->stop = true;
  if (st_->thread.joinable()) st_->thread.join();
  if (fd_ >= 0) close(fd_);
  unlink(st_->path.c_str());
  delete st_;
}

int FakeAuthServer::accepted() const {
  return st_->accepted;
}

}  // namespace itest
