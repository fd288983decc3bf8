// tests/integration/mail_root.cpp: see mail_root.hpp.
#include "mail_root.hpp"

#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "harness.hpp"

namespace fs = std::filesystem;

namespace itest {

MailRoot::MailRoot() {
  std::string tmpl = "/tmp/uvsmtpd-test.milter.XXXXXX";
  if (mkdtemp(tmpl.data())) path = tmpl;
}

MailRoot::~MailRoot() {
  std::error_code ec;
  if (!path.empty() && !getenv("UVS_KEEP_TEST_DIRS")) fs::remove_all(path, ec);
}

std::vector<std::string> MailRoot::of(const std::string &user, const std::string &domain) const {
  std::vector<std::string> r;
  std::error_code ec;
  for (auto it = fs::directory_iterator(path + "/" + domain + "/" + user + "/new", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    r.push_back(slurp(it->path().string()));
  return r;
}

}  // namespace itest
