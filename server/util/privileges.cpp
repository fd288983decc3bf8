// util/privileges.cpp: drop_privileges (setgroups, setgid, setuid, then verify) and as_user (a
// temporary switch of the effective ids).
#include "util/privileges.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <vector>

namespace uvs {

namespace {

// The ids of user, and of group (default: the user's primary group).
bool lookup_ids(const std::string &user, const std::string &group, uid_t &uid, gid_t &gid,
                std::string &err) {
  passwd *pw = getpwnam(user.c_str());
  if (!pw) {
    err = "user '" + user + "' does not exist";
    return false;
  }
  uid = pw->pw_uid;
  gid = pw->pw_gid;
  if (!group.empty()) {
    struct group *gr = getgrnam(group.c_str());
    if (!gr) {
      err = "group '" + group + "' does not exist";
      return false;
    }
    gid = gr->gr_gid;
  }
  return true;
}

}  // namespace

bool drop_privileges(const std::string &user, const std::string &group, std::string &err) {
  if (user.empty()) return true;
  uid_t uid;
  gid_t gid;
  if (!lookup_ids(user, group, uid, gid, err)) return false;
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

bool as_user(const std::string &user, const std::string &group, const std::function<bool()> &fn,
             std::string &err) {
  if (user.empty() || geteuid() != 0) return fn();
  uid_t uid;
  gid_t gid;
  if (!lookup_ids(user, group, uid, gid, err)) return false;
  std::vector<gid_t> saved(static_cast<size_t>(std::max(getgroups(0, nullptr), 0)));
  if (getgroups(static_cast<int>(saved.size()), saved.data()) < 0) saved.clear();
  // The same groups drop_privileges() leaves the process with.
  if (setgroups(1, &gid) != 0 || setegid(gid) != 0 || seteuid(uid) != 0) {
    err = std::string("cannot switch to user '") + user + "': " + strerror(errno);
    if (seteuid(0) != 0 || setegid(0) != 0 || setgroups(saved.size(), saved.data()) != 0) abort();
    return false;
  }
  bool ok = fn();
  // Back to root; a failure here would leave the process half-switched.
  if (seteuid(0) != 0 || setegid(getgid()) != 0 || setgroups(saved.size(), saved.data()) != 0)
    abort();
  return ok;
}

}  // namespace uvs
