// session/hop_counter.hpp: counts the Received: fields of a message's header section as it
// streams in (RFC 5321 6.3 loop detection); pieces may split a line anywhere.
#pragma once
#include <cstdint>
#include <string_view>

namespace uvs {

class HopCounter {
 public:
  // Feeds the next bytes of the header section (lines end in LF; CR before it is ignored).
  void feed(std::string_view bytes);
  uint32_t count() const { return count_; }

 private:
  enum class State { line_start, name, blanks, rest };
  State state_ = State::line_start;
  uint8_t matched_ = 0;  // letters of "received" matched so far in this line
  uint32_t count_ = 0;   // saturates at UINT32_MAX
};

}  // namespace uvs
