// util/self_exe.hpp: where the running executable is. Tells a binary run from the meson build
// tree from an installed copy of it (shared by uvsmtpd and uvsmtpd-sendmail), and gives an
// installed copy its own directory, for paths relative to it (a relocated install tree).
#pragma once
#include <string>

namespace uvs {

// True when /proc/self/exe and path resolve (realpath) to the same file. False when either
// cannot be resolved (no /proc, the file was replaced while running, path missing).
bool self_exe_is(const std::string &path);

// The directory of the running executable, symlinks resolved (realpath of /proc/self/exe);
// "" when it cannot be resolved.
std::string self_exe_dir();

}  // namespace uvs
