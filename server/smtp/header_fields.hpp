// smtp/header_fields.hpp: a message's header section as a list of fields, for plugins' edits
// (ABI 1.3 header_add/insert/delete/replace): parsing, the checks on names and values (RFC 5322
// 2.2 and 3.2.2: no CR/LF except folding CRLF + WSP, 998-byte lines), and the edits by the i-th
// occurrence of a name. Pure: no I/O.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace uvs::smtp {

// The edits a plugin can make (header_add top/bottom, header_insert, header_delete, header_replace).
enum class HeaderOp { add_top, add_bottom, insert_before, erase, replace };

// A field name: 1 to 200 printable ASCII characters, no colon (RFC 5322 ftext).
bool header_name_ok(std::string_view name);
// A field value as a plugin hands it (without the name, colon and final CRLF): printable ASCII,
// SP and HTAB; bytes >= 0x80 only if allow_8bit (RFC 6532, SMTPUTF8); CR only as CRLF followed
// by SP or HTAB (folding) and then at least one non-blank on that line; no line longer than 998
// bytes (the first counted with "name: ").
bool header_value_ok(std::string_view name, std::string_view value, bool allow_8bit);
// "Name: value\r\n" ("Name:\r\n" for an empty value).
std::string make_field(std::string_view name, std::string_view value);

class HeaderFields {
 public:
  // section: the header section as stored (CRLF lines), with or without its empty last line.
  // sep is set when it had that empty line (the separator before the body).
  static HeaderFields parse(std::string_view section, bool &sep);

  void add_top(std::string field) { fields_.insert(fields_.begin(), std::move(field)); }
  void add_bottom(std::string field) { fields_.push_back(std::move(field)); }
  // By the i-th (0-based) field named `name` (case-insensitive); false if there is none.
  bool insert_before(std::string_view name, int i, std::string field);
  bool erase(std::string_view name, int i);
  bool replace(std::string_view name, int i, std::string field);
  // The fields, each ending in CRLF (no separator).
  std::string text() const;
  size_t size() const { return fields_.size(); }

 private:
  long find(std::string_view name, int i) const;  // index in fields_, or -1
  std::vector<std::string> fields_;               // raw, folded lines kept, each ends in CRLF
};

}  // namespace uvs::smtp
