// util/self_exe.cpp: the running executable's path (see self_exe.hpp).
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

std::string self_exe_dir() {
  char self[PATH_MAX];
  if (!realpath("/proc/self/exe", self)) return "";
  std::string s(self);
  size_t slash = s.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : s.substr(0, slash);
}

}  // namespace uvs
