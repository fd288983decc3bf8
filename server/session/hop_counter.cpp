// session/hop_counter.cpp: the byte machine of HopCounter (see hop_counter.hpp).
#include "session/hop_counter.hpp"

#include <cstdint>

namespace uvs {

namespace {
constexpr char kName[] = "received";
constexpr uint8_t kNameLen = sizeof kName - 1;

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
}  // namespace

void HopCounter::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n') {
      state_ = State::line_start;
      continue;
    }
    switch (state_) {
      case State::line_start:
        // a continuation line (starting with a blank) never starts a field
        matched_ = 0;
        state_ = State::rest;
        if (lower(c) == kName[0]) {
          matched_ = 1;
          state_ = State::name;
        }
        break;
      case State::name:
        if (matched_ < kNameLen && lower(c) == kName[matched_]) {
          ++matched_;
        } else if (matched_ == kNameLen && (c == ' ' || c == '\t')) {
          state_ = State::blanks;  // RFC 5322 4.5.1 (obsolete): blanks before the colon
        } else if (matched_ == kNameLen && c == ':') {
          if (count_ != UINT32_MAX) ++count_;
          state_ = State::rest;
        } else {
          state_ = State::rest;
        }
        break;
      case State::blanks:
        if (c == ':' && count_ != UINT32_MAX) ++count_;
        if (c != ' ' && c != '\t') state_ = State::rest;
        break;
      case State::rest:
        break;
    }
  }
}

}  // namespace uvs
