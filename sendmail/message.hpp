// sendmail/message.hpp: the message as read from standard input: where it ends, line ends made
// CRLF, its header fields (for -t and Bcc removal) and SMTP dot-stuffing.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sm {

// Reads fd to EOF, or, with dot_ends, up to a line that is exactly "." (that line and anything
// after it are not part of the message). false with err on a read error.
bool read_message(int fd, bool dot_ends, std::string &out, std::string &err);

// Every line end (LF, CRLF, a CR alone) becomes CRLF; a last line without one gets one.
std::string to_crlf(std::string_view in);

struct HeaderField {
  std::string name;           // lower case
  std::string value;          // unfolded (the CRLFs of continuation lines removed)
  size_t begin = 0, end = 0;  // byte range in the message, the final CRLF included
};
// The header fields at the top of a CRLF message, up to the empty line (or the first line that
// is neither a field nor a continuation).
std::vector<HeaderField> header_fields(const std::string &msg);

// Removes every field named name (lower case) from the header; returns how many.
int remove_fields(std::string &msg, const std::string &name);

// RFC 5321 section 4.5.2: a '.' starting a line is doubled (the final "." is not added).
std::string dot_stuff(std::string_view crlf_msg);

}  // namespace sm
