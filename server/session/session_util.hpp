// session/session_util.hpp: small pure helpers of the session: ids, dates, header lookup.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace uvs {

// 12 hex digits, unique within the process, unpredictable across restarts.
std::string make_session_id(uint64_t serial);
// A queue id, unique within the process: the time in microseconds (10 base-31 digits) and a
// per-process counter (4 digits), e.g. "0K8X3M2QDF0B7N".
std::string make_queue_id();
// "Sun, 29 Nov 2026 00:48:40 +0000" in local time (RFC 5322 3.3).
std::string rfc5322_date();
// The i-th header field `name` (case-insensitive) in a header section with CRLF lines:
// unfolded, leading blanks trimmed. False if absent.
bool find_header(std::string_view headers, std::string_view name, int index, std::string &out);

}  // namespace uvs
