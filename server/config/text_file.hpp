// config/text_file.hpp: the small file helpers every config reader shares: read a whole file,
// trim a line, and resolve include paths relative to the including file.
#pragma once
#include <string>
#include <string_view>

namespace uvs::config {

inline constexpr std::string_view kSpace = " \t\r\n\f\v";

// Both ends trimmed like qpsmtpd's s/^\s+//; s/\s+$// (so CRLF files work).
std::string_view trim(std::string_view s);
// Reads the whole file into data; 0 or a positive errno.
int slurp(const std::string &path, std::string &data);
// "dir/of/file" for a path; "" when the path has no directory part.
std::string dir_of(const std::string &path);
// rel taken relative to dir (unless absolute).
std::string join(const std::string &dir, std::string_view rel);

}  // namespace uvs::config
