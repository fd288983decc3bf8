// smtp/command.hpp: splitting one SMTP command line into verb and argument (pure).
#pragma once
#include <string>
#include <string_view>

namespace uvs::smtp {

struct CommandLine {
  std::string verb;  // lower-cased; "" for an empty line or a line that does not start with a verb
  std::string arg;   // the rest after the run of spaces following the verb, trailing blanks kept
  bool valid_verb = false;  // verb matches [A-Za-z0-9_]{1,12} (qpsmtpd's ^\w{1,12}$)
};

// line: the command line without its CRLF.
CommandLine split_command(std::string_view line);

// True if s is well-formed UTF-8 with no C0 controls except TAB (and no DEL).
bool valid_command_text(std::string_view s);

}  // namespace uvs::smtp
