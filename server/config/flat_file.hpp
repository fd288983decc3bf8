// config/flat_file.hpp: qpsmtpd-style flat list files (one value a line, # comments, $include).
#pragma once
#include <string>
#include <vector>

namespace uvs::config {

// One value of a flat file, with where it came from: `file` is the path of the file that holds
// the line, as the reader names it (the top-level path as given, an included file as its
// include directive names it, joined to the including file's directory); `line` is 1-based.
struct FlatLine {
  std::string text;
  std::string file;
  int line = 0;
};

// Reads `path`: lines trimmed, blank lines and lines starting with '#' dropped, "$include <p>"
// spliced (relative to the file's directory). Returns the number of lines, or a negative
// errno (-ENOENT when the file does not exist, -ELOOP on an include cycle).
int read_flat_file(const std::string &path, std::vector<std::string> &lines);

// The same, each value with its file and line number (for "file:line: ..." errors).
int read_flat_file_at(const std::string &path, std::vector<FlatLine> &out);

}  // namespace uvs::config
