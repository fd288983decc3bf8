// server/config/flat_file.cpp: reads qpsmtpd-style flat list files (trim, # comments, $include).
#include "config/flat_file.hpp"

#include "config/text_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string_view>
#include <utility>

namespace uvs::config {

namespace {

// Expands an include target: a file, or every regular non-dot file of a directory in sorted
// order. 0 or a positive errno.
int expand_include(const std::string &target, std::vector<std::string> &files) {
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) {
    files.push_back(target);
    return 0;
  }
  DIR *d = ::opendir(target.c_str());
  if (d == nullptr) return errno;
  std::vector<std::string> names;
  while (dirent *ent = ::readdir(d)) {
    if (ent->d_name[0] == '.') continue;
    names.emplace_back(ent->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string &n : names) {
    std::string full = join(target, n);
    struct stat fst {};
    if (::stat(full.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) files.push_back(full);
  }
  return 0;
}

std::string canonical(const std::string &path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return path;
  return buf;
}

// 0 or a positive errno.
int read_one(const std::string &path, std::vector<FlatLine> &lines,
             std::vector<std::string> &stack) {
  std::string canon = canonical(path);
  if (std::find(stack.begin(), stack.end(), canon) != stack.end()) return ELOOP;
  std::string data;
  if (int e = slurp(path, data); e != 0) return e;
  stack.push_back(canon);
  std::string_view rest(data);
  int lineno = 0;
  while (!rest.empty()) {
    ++lineno;
    size_t nl = rest.find('\n');
    std::string_view raw = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    constexpr std::string_view kInclude = "$include";
    if (line.substr(0, kInclude.size()) == kInclude &&
        (line.size() == kInclude.size() || line[kInclude.size()] == ' ' ||
         line[kInclude.size()] == '\t')) {
      std::string_view target = trim(line.substr(kInclude.size()));
      if (target.empty()) {
        stack.pop_back();
        return EINVAL;
      }
      std::vector<std::string> files;
      int e = expand_include(join(dir_of(path), target), files);
      for (size_t i = 0; e == 0 && i < files.size(); ++i) e = read_one(files[i], lines, stack);
      if (e != 0) {
        stack.pop_back();
        return e;
      }
      continue;
    }
    lines.push_back(FlatLine{std::string(line), path, lineno});
  }
  stack.pop_back();
  return 0;
}

}  // namespace

int read_flat_file_at(const std::string &path, std::vector<FlatLine> &out) {
  out.clear();
  std::vector<std::string> stack;
  if (int e = read_one(path, out, stack); e != 0) {
    out.clear();
    return -e;
  }
  return static_cast<int>(out.size());
}

int read_flat_file(const std::string &path, std::vector<std::string> &lines) {
  lines.clear();
  std::vector<FlatLine> at;
  int rc = read_flat_file_at(path, at);
  if (rc < 0) return rc;
  lines.reserve(at.size());
  for (FlatLine &l : at) lines.push_back(std::move(l.text));
  return rc;
}

}  // namespace uvs::config
