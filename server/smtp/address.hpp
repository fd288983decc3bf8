// smtp/address.hpp: RFC 5321 path grammar for MAIL FROM / RCPT TO and ESMTP parameters (pure).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace uvs::smtp {

struct EsmtpParam {
  std::string key;                   // upper-cased keyword
  std::optional<std::string> value;  // as written (case kept); nullopt when there is no '='
};

struct Path {
  bool null = false;        // "<>"
  std::string address;      // canonical mailbox as written, without <> and without source route:
                            // local-part "@" domain, or a bare "postmaster" (RCPT only)
  std::string local;        // local-part exactly as written (quotes kept)
  std::string domain;       // domain or address literal as written ("" for bare postmaster)
  std::string route;        // stripped source route ("@a,@b"), "" if none
  bool has_8bit = false;    // non-ASCII octets present (needs SMTPUTF8)
};

struct PathParse {
  bool ok = false;
  int code = 0;              // on failure: 501, 553 or 555
  std::string enhanced;      // on failure: e.g. "5.5.4", "5.1.3", "5.1.7"
  std::string message;       // on failure: human text, no CR/LF
  Path path;
  std::vector<EsmtpParam> params;
};

// arg: what follows the verb, e.g. "FROM:<a@b.example> SIZE=100 BODY=8BITMIME".
// "FROM:" is case-insensitive; one optional space after the colon is tolerated.
PathParse parse_mail_arg(std::string_view arg);
// arg: "TO:<u@d> NOTIFY=NEVER". "<>" is refused; "<postmaster>" (any case) accepted.
PathParse parse_rcpt_arg(std::string_view arg);

// Find a parameter by upper-case key; nullptr if absent.
const EsmtpParam *find_param(const std::vector<EsmtpParam> &params, std::string_view key);

// Limits (RFC 5321 4.5.3.1).
inline constexpr size_t kMaxLocalPart = 64;
inline constexpr size_t kMaxDomain = 255;
inline constexpr size_t kMaxPath = 256;

}  // namespace uvs::smtp
