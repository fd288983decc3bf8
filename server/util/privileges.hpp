// util/privileges.hpp: dropping root after the listeners are bound (user, group, supplementary
// groups; then a check that root cannot be regained).
#pragma once
#include <functional>
#include <string>

namespace uvs {

// Does nothing and returns true when user is empty. When running as root: switch to user (and
// group, default the user's primary group). When not root: user must be the current user.
// false with err on failure.
bool drop_privileges(const std::string &user, const std::string &group, std::string &err);

// Runs fn with the effective user and group of `user` (and `group`; no supplementary groups, as
// drop_privileges() leaves them) when running as root with user set, then switches back to root;
// otherwise just runs fn. For files the server opens before it drops root but keeps using
// afterwards (the log file), so they are created and checked with the run-as user's rights.
// false with err if a switch fails (fn's result otherwise).
bool as_user(const std::string &user, const std::string &group, const std::function<bool()> &fn,
             std::string &err);

}  // namespace uvs
