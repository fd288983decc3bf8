// smtp/sasl.hpp: the pure parts of SMTP AUTH (RFC 4954): strict base64 (RFC 4648 4), the PLAIN
// message (RFC 4616: authzid NUL authcid NUL passwd), and wiping secrets from strings.
#pragma once
#include <string>
#include <string_view>

namespace uvs::smtp {

// Decodes strict base64 (the RFC 4648 alphabet, length a multiple of 4, '=' only as padding at
// the end, no whitespace). False on any other input (out is then wiped and empty).
bool base64_decode(std::string_view in, std::string &out);
std::string base64_encode(std::string_view in);

struct PlainMessage {
  std::string authzid;  // "" when the client gave none
  std::string authcid;  // the user
  std::string passwd;
};
// Splits a decoded PLAIN message. False if it does not have exactly two NULs, or the user or
// password is empty (out is then wiped).
bool parse_plain(std::string_view msg, PlainMessage &out);

// True if s can stand as an SASL user name in replies, logs and the Received: comment: 1 to 255
// bytes, no control characters (C0, DEL).
bool valid_sasl_user(std::string_view s);

// Overwrites the string's bytes with zeros (explicit_bzero: not optimized away), then clears it.
void wipe(std::string &s);
void wipe(PlainMessage &m);

}  // namespace uvs::smtp
