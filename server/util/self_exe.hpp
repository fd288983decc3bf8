// util/self_exe.hpp: is the running executable a given file? (Tells a binary run from the meson
// build tree from an installed copy of it; shared by uvsmtpd and uvsmtpd-sendmail.)
#pragma once
#include <string>

namespace uvs {

// True when /proc/self/exe and path resolve (realpath) to the same file. False when either
// cannot be resolved (no /proc, the file was replaced while running, path missing).
bool self_exe_is(const std::string &path);

}  // namespace uvs
