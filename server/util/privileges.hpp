// util/privileges.hpp: dropping root after the listeners are bound (user, group, supplementary
// groups; then a check that root cannot be regained).
#pragma once
#include <string>

namespace uvs {

// Does nothing and returns true when user is empty. When running as root: switch to user (and
// group, default the user's primary group). When not root: user must be the current user.
// false with err on failure.
bool drop_privileges(const std::string &user, const std::string &group, std::string &err);

}  // namespace uvs
