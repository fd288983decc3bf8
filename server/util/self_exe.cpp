// util/self_exe.cpp: compares the running executable with a path (see self_exe.hpp).
#include "util/self_exe.hpp"

#include <climits>
#include <cstdlib>

namespace uvs {

bool self_exe_is(const std::string &path) {
  char self[PATH_MAX], other[PATH_MAX];
  if (!realpath("/proc/self/exe", self)) return false;
  if (!realpath(path.c_str(), other)) return false;
  return std::string(self) == other;
}

}  // namespace uvs
