// tests/integration/mail_root.hpp: a fresh Maildir root for queue/maildir in the milter tests,
// removed at the end (UVS_KEEP_TEST_DIRS keeps it), and the messages delivered into it.
#pragma once

#include <string>
#include <vector>

namespace itest {

struct MailRoot {
  std::string path;  // /tmp/uvsmtpd-test.milter.XXXXXX; empty if it could not be made
  MailRoot();
  ~MailRoot();
  MailRoot(const MailRoot &) = delete;
  MailRoot &operator=(const MailRoot &) = delete;
  // The messages delivered to user@domain (<path>/<domain>/<user>/new).
  std::vector<std::string> of(const std::string &user, const std::string &domain) const;
};

}  // namespace itest
