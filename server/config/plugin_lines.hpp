// config/plugin_lines.hpp: the conf/plugins file in qpsmtpd's format ($include, name:N, args).
#pragma once
#include <string>
#include <vector>

namespace uvs::config {

struct PluginLine {
  std::string instance;           // as written: "earlytalker:1", "queue/maildir"
  std::string module;             // instance with ":N" stripped: "earlytalker", "queue/maildir"
  std::vector<std::string> args;  // whitespace-split words after the name (inline '#' is an arg)
  std::string file;               // the file the line came from (after $include)
  int line = 0;                   // 1-based line number in that file
};

// Parses `path`. Blank lines and lines whose first non-blank char is '#' are skipped; words are
// split on spaces and tabs. "$include <path>" splices a file (relative paths: against the
// directory of the including file) or every non-dot file of a directory in sorted order;
// include cycles are errors. Module names: [A-Za-z0-9_.-] segments joined by '/', no "..",
// optional ":<digits>" suffix. Control characters (other than TAB) and non-ASCII bytes are errors.
// Duplicate instance names are errors. On error returns false, err = "<file>:<line>: <message>".
bool parse_plugins_file(const std::string &path, std::vector<PluginLine> &out, std::string &err);

}  // namespace uvs::config
