// config/flat_file.hpp: qpsmtpd-style flat list files (one value a line, # comments, $include).
#pragma once
#include <string>
#include <vector>

namespace uvs::config {

// Reads `path`: lines trimmed, blank lines and lines starting with '#' dropped, "$include <p>"
// spliced (relative to the file's directory). Returns the number of lines, or a negative
// errno (-ENOENT when the file does not exist, -ELOOP on an include cycle).
int read_flat_file(const std::string &path, std::vector<std::string> &lines);

}  // namespace uvs::config
