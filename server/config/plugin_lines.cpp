// server/config/plugin_lines.cpp: parses conf/plugins (qpsmtpd format: $include, name:N, args).
#include "config/plugin_lines.hpp"

#include "config/text_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

namespace uvs::config {

namespace {

std::string canonical(const std::string &path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return path;
  return buf;
}

bool valid_segment_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// "queue/maildir", "earlytalker:1" -> module (without ":N"); false if the name is malformed.
bool split_plugin_name(std::string_view name, std::string &module) {
  std::string_view mod = name;
  if (size_t colon = name.find(':'); colon != std::string_view::npos) {
    std::string_view num = name.substr(colon + 1);
    if (num.empty() || num.size() > 9) return false;
    for (char c : num)
      if (c < '0' || c > '9') return false;
    mod = name.substr(0, colon);
  }
  if (mod.empty()) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = mod.find('/', start);
    std::string_view seg =
        mod.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg)
      if (!valid_segment_char(c)) return false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  module.assign(mod);
  return true;
}

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    words.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

class Parser {
 public:
  Parser(std::vector<PluginLine> &out, std::string &err) : out_(out), err_(err) {}

  bool parse_top(const std::string &path) {
    std::string data;
    if (int e = slurp(path, data); e != 0) {
      err_ = path + ": cannot open: " + std::strerror(e);
      return false;
    }
    return parse_data(path, data);
  }

 private:
  bool fail(const std::string &file, int line, const std::string &msg) {
    err_ = file + ":" + std::to_string(line) + ": " + msg;
    return false;
  }

  bool parse_data(const std::string &path, const std::string &data) {
    stack_.push_back(canonical(path));
    std::string_view rest(data);
    int lineno = 0;
    while (!rest.empty()) {
      ++lineno;
      size_t nl = rest.find('\n');
      std::string_view raw = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      if (!parse_line(path, lineno, trim(raw))) return false;
    }
    stack_.pop_back();
    return true;
  }

  bool parse_line(const std::string &path, int lineno, std::string_view line) {
    if (line.empty() || line.front() == '#') return true;  // comments are never checked further
    for (char ch : line) {
      auto c = static_cast<unsigned char>(ch);
      if (c == '\t') continue;
      if (c < 0x20 || c == 0x7F) {
        char msg[64];
        std::snprintf(msg, sizeof msg, "control character 0x%02X in line", c);
        return fail(path, lineno, msg);
      }
      if (c >= 0x80) {
        char msg[64];
        std::snprintf(msg, sizeof msg, "non-ASCII byte 0x%02X in line", c);
        return fail(path, lineno, msg);
      }
    }
    std::vector<std::string> words = split_words(line);
    if (words.front() == "$include") {
      std::string_view target = trim(line.substr(std::strlen("$include")));
      if (target.empty()) return fail(path, lineno, "$include needs a path");
      return include(path, lineno, join(dir_of(path), target));
    }
    PluginLine pl;
    pl.instance = words.front();
    if (!split_plugin_name(pl.instance, pl.module))
      return fail(path, lineno, "bad plugin name '" + pl.instance + "'");
    if (auto it = seen_.find(pl.instance); it != seen_.end())
      return fail(path, lineno,
                  "duplicate plugin instance '" + pl.instance + "' (first at " + it->second + ")");
    seen_.emplace(pl.instance, path + ":" + std::to_string(lineno));
    pl.args.assign(words.begin() + 1, words.end());
    pl.file = path;
    pl.line = lineno;
    out_.push_back(std::move(pl));
    return true;
  }

  bool include(const std::string &from, int lineno, const std::string &target) {
    struct stat st {};
    if (::stat(target.c_str(), &st) != 0)
      return fail(from, lineno, "cannot open '" + target + "': " + std::strerror(errno));
    std::vector<std::string> files;
    if (S_ISDIR(st.st_mode)) {
      if (std::find(stack_.begin(), stack_.end(), canonical(target)) != stack_.end())
        return fail(from, lineno, "include cycle through '" + target + "'");
      DIR *d = ::opendir(target.c_str());
      if (d == nullptr)
        return fail(from, lineno, "cannot open '" + target + "': " + std::strerror(errno));
      std::vector<std::string> names;
      while (dirent *ent = ::readdir(d))
        if (ent->d_name[0] != '.') names.emplace_back(ent->d_name);
      ::closedir(d);
      std::sort(names.begin(), names.end());
      for (const std::string &n : names) {
        std::string full = join(target, n);
        struct stat fst {};
        if (::stat(full.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) files.push_back(full);
      }
      // A directory counts as being on the include stack while its files are read.
      stack_.push_back(canonical(target));
    } else {
      files.push_back(target);
    }
    for (const std::string &f : files) {
      if (std::find(stack_.begin(), stack_.end(), canonical(f)) != stack_.end())
        return fail(from, lineno, "include cycle through '" + f + "'");
      std::string data;
      if (int e = slurp(f, data); e != 0)
        return fail(from, lineno, "cannot open '" + f + "': " + std::strerror(e));
      if (!parse_data(f, data)) return false;
    }
    if (S_ISDIR(st.st_mode)) stack_.pop_back();
    return true;
  }

  std::vector<PluginLine> &out_;
  std::string &err_;
  std::vector<std::string> stack_;           // canonical paths of files/dirs being read
  std::map<std::string, std::string> seen_;  // instance -> "file:line" of first use
};

}  // namespace

bool parse_plugins_file(const std::string &path, std::vector<PluginLine> &out, std::string &err) {
  out.clear();
  err.clear();
  Parser p(out, err);
  if (!p.parse_top(path)) {
    out.clear();
    return false;
  }
  return true;
}

}  // namespace uvs::config
