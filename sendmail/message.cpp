// sendmail/message.cpp: reading, line-end conversion, header fields and dot-stuffing.
#include "message.hpp"

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace sm {

bool read_message(int fd, bool dot_ends, std::string &out, std::string &err) {
  out.clear();
  size_t line_start = 0;  // start of the first line not yet checked for "."
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = std::string("cannot read the message from standard input: ") + strerror(errno);
      return false;
    }
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    if (dot_ends) {
      for (;;) {
        size_t nl = out.find('\n', line_start);
        std::string_view line;
        if (nl == std::string::npos) {
          if (n != 0) break;  // wait for the rest of the line
          line = std::string_view(out).substr(line_start);
        } else {
          line = std::string_view(out).substr(line_start, nl - line_start);
        }
        if (line == "." || line == ".\r") {
          out.resize(line_start);
          return true;
        }
        if (nl == std::string::npos) break;
        line_start = nl + 1;
      }
    }
    if (n == 0) return true;
  }
}

std::string to_crlf(std::string_view in) {
  std::string out;
  out.reserve(in.size() + in.size() / 32 + 2);
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\r') {
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0))
    out += "\r\n";
  return out;
}

namespace {

// If line starts a header field, the length of its name and where its colon is: "Name:" or the
// obsolete "Name :" with blanks before the colon (RFC 5322 4.5); false otherwise.
bool field_name(std::string_view line, size_t &name_len, size_t &colon) {
  size_t i = 0;
  while (i < line.size() && line[i] > ' ' && line[i] < 0x7f && line[i] != ':') ++i;
  size_t j = i;
  while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
  if (i == 0 || j >= line.size() || line[j] != ':') return false;
  name_len = i;
  colon = j;
  return true;
}

}  // namespace

std::vector<HeaderField> header_fields(const std::string &msg) {
  std::vector<HeaderField> out;
  size_t pos = 0;
  while (pos < msg.size()) {
    size_t eol = msg.find("\r\n", pos);
    if (eol == std::string::npos) break;
    std::string_view line(msg.data() + pos, eol - pos);
    if (line.empty()) break;  // end of the header
    if ((line[0] == ' ' || line[0] == '\t') && !out.empty()) {
      out.back().value += line;
      out.back().end = eol + 2;
    } else if (size_t n, colon; field_name(line, n, colon)) {
      HeaderField f;
      for (size_t i = 0; i < n; ++i)
        f.name += static_cast<char>(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
      f.value = std::string(line.substr(colon + 1));
      f.begin = pos;
      f.end = eol + 2;
      out.push_back(std::move(f));
    } else {
      break;  // not a header line: the rest is body
    }
    pos = eol + 2;
  }
  return out;
}

int remove_fields(std::string &msg, const std::string &name) {
  auto fields = header_fields(msg);
  int removed = 0;
  for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
    if (it->name != name) continue;
    msg.erase(it->begin, it->end - it->begin);
    ++removed;
  }
  return removed;
}

std::string dot_stuff(std::string_view m) {
  std::string out;
  out.reserve(m.size() + m.size() / 64 + 2);
  bool bol = true;
  for (char c : m) {
    if (bol && c == '.') out += '.';
    out += c;
    bol = c == '\n';
  }
  return out;
}

}  // namespace sm
