// smtp/header_fields.cpp: HeaderFields and the header checks (see header_fields.hpp).
#include "smtp/header_fields.hpp"

#include <strings.h>

namespace uvs::smtp {

namespace {
constexpr size_t kMaxLine = 998;  // RFC 5322 2.1.1, without the CRLF
constexpr size_t kMaxName = 200;
bool blank(char c) { return c == ' ' || c == '\t'; }
}  // namespace

bool header_name_ok(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) return false;
  for (unsigned char c : name)
    if (c < 33 || c > 126 || c == ':') return false;
  return true;
}

bool header_value_ok(std::string_view name, std::string_view v, bool allow_8bit) {
  size_t line_len = name.size() + 2;  // "name: "
  bool line_has_text = true;          // the first line may be empty (a value that folds at once)
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c == '\r') {
      // folding: CR LF WSP, and the line before it must not be blank-only after a fold
      if (i + 2 >= v.size() || v[i + 1] != '\n' || !blank(v[i + 2])) return false;
      if (!line_has_text) return false;
      ++i;  // the LF; the WSP starts the next line
      line_len = 0;
      line_has_text = false;
      continue;
    }
    if (c == '\n') return false;
    if (c >= 0x80) {
      if (!allow_8bit) return false;
    } else if (c < 0x20 ? c != '\t' : c == 0x7f) {
      return false;
    }
    if (!blank(static_cast<char>(c))) line_has_text = true;
    if (++line_len > kMaxLine) return false;
  }
  return line_has_text;  // a fold must not leave a blank-only last line
}

std::string make_field(std::string_view name, std::string_view value) {
  std::string f(name);
  f += ':';
  if (!value.empty()) {
    f += ' ';
    f.append(value);
  }
  f += "\r\n";
  return f;
}

HeaderFields HeaderFields::parse(std::string_view h, bool &sep) {
  HeaderFields out;
  sep = false;
  size_t pos = 0;
  while (pos < h.size()) {
    size_t eol = h.find("\r\n", pos);
    size_t next = eol == std::string_view::npos ? h.size() : eol + 2;
    std::string_view line = h.substr(pos, next - pos);
    if (line == "\r\n") {  // the empty line: the end of the section
      sep = true;
      break;
    }
    if (!out.fields_.empty() && blank(line[0]))
      out.fields_.back().append(line);  // a continuation line
    else
      out.fields_.emplace_back(line);
    pos = next;
  }
  return out;
}

long HeaderFields::find(std::string_view name, int i) const {
  if (i < 0) return -1;
  int seen = 0;
  for (size_t k = 0; k < fields_.size(); ++k) {
    const std::string &f = fields_[k];
    if (f.size() > name.size() && f[name.size()] == ':' &&
        strncasecmp(f.data(), name.data(), name.size()) == 0 && seen++ == i)
      return static_cast<long>(k);
  }
  return -1;
}

bool HeaderFields::insert_before(std::string_view name, int i, std::string field) {
  long k = find(name, i);
  if (k < 0) return false;
  fields_.insert(fields_.begin() + k, std::move(field));
  return true;
}

bool HeaderFields::erase(std::string_view name, int i) {
  long k = find(name, i);
  if (k < 0) return false;
  fields_.erase(fields_.begin() + k);
  return true;
}

bool HeaderFields::replace(std::string_view name, int i, std::string field) {
  long k = find(name, i);
  if (k < 0) return false;
  fields_[static_cast<size_t>(k)] = std::move(field);
  return true;
}

std::string HeaderFields::text() const {
  std::string t;
  for (const auto &f : fields_) t += f;
  return t;
}

}  // namespace uvs::smtp
