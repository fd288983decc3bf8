// tests/integration/postfix_fixture.hpp: a real Postfix (Debian's postfix package) as the
// destination of the delivery engine's tests: its own config, queue and data directories in a
// temp dir, smtpd with STARTTLS on a chosen loopback address and port, one virtual mailbox
// domain delivered into maildirs in the temp dir, the mail log in a file there. Started with
// `postfix -c DIR start` and stopped with `postfix -c DIR stop` (abort, then SIGKILL to the
// master, as fallbacks); the system instance is never touched. Needs root (postfix(1) does).
#pragma once
#include <string>
#include <sys/types.h>
#include <vector>

namespace itest {

struct PostfixOptions {
  std::string ip = "127.0.0.3";    // smtpd's address (inet_interfaces)
  std::string domain = "pf.test";  // the virtual mailbox domain
  std::vector<std::string> users;  // its mailboxes (local parts); others: 550 5.1.1
  std::string tls_cert, tls_key;   // PEM paths: STARTTLS offered (security level may)
};

class Postfix {
 public:
  // Writes main.cf and master.cf into a fresh temp dir. Nothing runs yet.
  explicit Postfix(PostfixOptions opt);
  ~Postfix();  // stops it and removes the dir (UVS_KEEP_TEST_DIRS keeps it)
  Postfix(const Postfix &) = delete;
  Postfix &operator=(const Postfix &) = delete;

  // `postfix -c DIR start` with smtpd on a free port, then waits for its 220 greeting.
  // False with error() set: not root, no postfix, it did not start, or no greeting in time.
  bool start(double timeout = 20);
  // `postfix -c DIR stop`, waits for the master to exit; abort and SIGKILL if it does not.
  bool stop(double timeout = 15);

  int port() const { return port_; }
  pid_t master_pid() const;  // from the queue's pid/master.pid; -1 if none
  const std::string &error() const { return error_; }
  const std::string &dir() const { return dir_; }
  std::string config_dir() const { return dir_ + "/etc"; }
  std::string maillog() const;  // the mail log (maillog_file)
  // The messages delivered to a user's maildir (new/), as stored (LF line ends).
  std::vector<std::string> mailbox(const std::string &user) const;
  // Waits until the user's maildir has n messages; false on timeout.
  bool wait_mailbox(const std::string &user, size_t n, double timeout = 15) const;

 private:
  bool write_config();
  PostfixOptions opt_;
  std::string dir_;
  std::string error_;
  int port_ = 0;
  bool started_ = false;
};

// The postfix binary (PATH, then /usr/sbin); "" if there is none.
std::string postfix_binary();

}  // namespace itest
