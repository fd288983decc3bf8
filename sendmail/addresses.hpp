// sendmail/addresses.hpp: RFC 5322 address lists (To:/Cc:/Bcc: values and command-line
// recipients) reduced to the addr-specs an SMTP envelope needs.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sm {

// "Ann <a@x>, b@y (Bob), team: c@z, d@z;, <@relay:e@w>" -> a@x, b@y, c@z, d@z, e@w.
// Comments and display names are dropped, quoted local parts kept with their quotes, a source
// route is removed, empty groups ("undisclosed-recipients:;") give nothing.
std::vector<std::string> parse_address_list(std::string_view s);

// addr unchanged when it has a domain, else addr@domain (cron's "root", -f "alice").
std::string qualify(const std::string &addr, const std::string &domain);

// Fit for MAIL FROM:<...>/RCPT TO:<...>: not empty, no control character, no '<' '>', a
// space only inside a quoted local part. (Keeps CR/LF in an argument off the wire.)
bool address_ok(const std::string &addr);

}  // namespace sm
