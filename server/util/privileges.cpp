// util/privileges.cpp: drop_privileges (setgroups, setgid, setuid, then verify).
#include "util/privileges.hpp"

#include <cerrno>
#include <cstring>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace uvs {

bool drop_privileges(const std::string &user, const std::string &group, std::string &err) {
  if (user.empty()) return true;
  passwd *pw = getpwnam(user.c_str());
  if (!pw) {
    err = "user '" + user + "' does not exist";
    return false;
  }
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  if (!group.empty()) {
    struct group *gr = getgrnam(group.c_str());
    if (!gr) {
      err = "group '" + group + "' does not exist";
      return false;
    }
    gid = gr->gr_gid;
  }
  if (geteuid() != 0) {
    if (geteuid() == uid) return true;
    err = "user = '" + user + "' needs uvsmtpd to start as root";
    return false;
  }
  if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
    err = std::string("cannot drop privileges to '") + user + "': " + strerror(errno);
    return false;
  }
  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    err = "privileges could be regained after dropping them; refusing to run";
    return false;
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // no core files with message data
  return true;
}

}  // namespace uvs
