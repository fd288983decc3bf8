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
  const gid_t saved_egid = getegid();
  // Switch (the groups drop_privileges() leaves the process with), remembering each step that
  // took, and undo exactly those in reverse order; a failed undo would leave the process
  // half-switched, so it ends the process. The undo also runs if fn throws.
  struct Switch {
    const std::vector<gid_t> &groups;
    gid_t egid;
    bool groups_set = false, egid_set = false, euid_set = false;
    ~Switch() {
      if ((euid_set && seteuid(0) != 0) || (egid_set && setegid(egid) != 0) ||
          (groups_set && setgroups(groups.size(), groups.data()) != 0))
        abort();
    }
  } sw{saved, saved_egid};
  if (!(sw.groups_set = setgroups(1, &gid) == 0) || !(sw.egid_set = setegid(gid) == 0) ||
      !(sw.euid_set = seteuid(uid) == 0)) {
    err = std::string("cannot switch to user '") + user + "': " + strerror(errno);
    return false;
  }
  return fn();
}

}  // namespace uvs
