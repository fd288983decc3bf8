// server/smtp/data_reader.cpp: DATA byte state machine (end of data, unstuffing, bare CR/LF).
// Hot path: runs of whole ordinary lines are found with memchr and stored with one append; the
// byte-wise state machine handles only line starts that matter (".", empty, bare LF) and lines
// with a bare CR or LF.
#include "smtp/data_reader.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace uvs::smtp {

namespace {

// Values of DataReader::state_. Nothing is ever buffered: a pending "." or CR lives in the state.
enum State : int {
  kBol = 0,  // start of a line that followed a real CRLF (or the DATA command): may be the end
  kBolLf,    // start of a line that followed a bare LF (normalize only): can never be the end
  kMid,      // inside a line
  kCr,       // a CR was seen (not yet stored); line_empty_ says if it began the line
  kDot,      // a "." began the line (not yet stored); after_bare_lf_ says which kind of line
  kDotCr,    // "." CR began the line (neither stored yet)
  kDone,     // CR LF . CR LF consumed
  kErrCr,    // bare CR reported (reject)
  kErrLf,    // bare LF reported (reject)
};

constexpr size_t kNoPos = std::numeric_limits<size_t>::max();

}  // namespace

DataReader::DataReader(uint64_t max_size, NewlinePolicy policy)
    : max_size_(max_size == 0 ? std::numeric_limits<uint64_t>::max() : max_size), policy_(policy) {}

void DataReader::emit(std::string &out, const char *p, size_t n) {
  if (size_ < max_size_) {
    const uint64_t room = max_size_ - size_;
    out.append(p, n < room ? n : static_cast<size_t>(room));
  }
  size_ += n;
}

DataEvent DataReader::feed(std::string_view in, std::string &out) {
  switch (state_) {
    case kDone:
      return DataEvent{DataEvent::done, 0};
    case kErrCr:
      return DataEvent{DataEvent::bare_cr, 0};
    case kErrLf:
      return DataEvent{DataEvent::bare_lf, 0};
    default:
      break;
  }
  const bool reject = policy_ == NewlinePolicy::reject;
  // What this call stores is about the size of the input (at most the room left under the
  // limit): reserve it once instead of growing `out` run by run.
  if (size_ < max_size_) {
    const uint64_t room = max_size_ - size_;
    const size_t want = in.size() < room ? in.size() : static_cast<size_t>(room);
    if (want > out.capacity() - out.size()) out.reserve(out.size() + want);
  }
  const char *const p = in.data();
  const size_t n = in.size();
  size_t i = 0;
  // Index in `in` of the pending CR, if it arrived in this chunk (a bare CR error consumes
  // through it; if it came in an earlier chunk it is already consumed).
  size_t cr_at = kNoPos;
  auto bare_cr = [&]() {
    state_ = kErrCr;
    return DataEvent{DataEvent::bare_cr, cr_at == kNoPos ? 0 : cr_at + 1};
  };
  auto bare_lf = [&](size_t at) {
    state_ = kErrLf;
    return DataEvent{DataEvent::bare_lf, at + 1};
  };

  // First CR and first LF at or after a position, found with memchr and remembered: i only
  // grows, so each byte of `in` is searched at most once per character, whatever the input.
  size_t next_cr = kNoPos, next_lf = kNoPos;  // kNoPos: not searched yet
  auto find = [&](char ch, size_t &cache, size_t from) {
    if (cache == kNoPos || cache < from) {
      const void *q = std::memchr(p + from, ch, n - from);
      cache = q ? static_cast<size_t>(static_cast<const char *>(q) - p) : n;
    }
    return cache;
  };

  while (i < n) {
    const char c = p[i];
    switch (state_) {
      case kBol:
      case kBolLf:
        if (c == '.') {
          after_bare_lf_ = state_ == kBolLf;
          state_ = kDot;
          ++i;
        } else if (c == '\r') {
          line_empty_ = true;
          cr_at = i;
          state_ = kCr;
          ++i;
        } else if (c == '\n') {  // an empty line ended by a bare LF
          if (reject) return bare_lf(i);
          emit(out, "\r\n", 2);
          ++i;
          state_ = kBolLf;
          if (!headers_done_) {
            headers_done_ = true;
            return DataEvent{DataEvent::headers_end, i};
          }
        } else {
          state_ = kMid;  // reprocess c as line content
        }
        break;

      case kMid: {
        // Fast path: the rest of this line, and the whole lines after it, are stored verbatim
        // as long as each ends in CR LF with no other CR or LF inside, and each following line
        // starts with neither "." nor LF (nor CR while the header section is open: an empty
        // line may end it). They need no decision, so they go out with a single append.
        size_t j = i;
        bool at_bol = false;  // j is the start of a line that followed a real CR LF
        for (;;) {
          if (at_bol) {
            if (j == n) break;
            const char b = p[j];
            if (b == '.' || b == '\n' || (b == '\r' && !headers_done_)) break;
          }
          const size_t lf = find('\n', next_lf, j);
          if (lf == n || lf == j || find('\r', next_cr, j) != lf - 1) break;
          j = lf + 1;
          at_bol = true;
        }
        if (j > i) {
          emit(out, p + i, j - i);
          i = j;
        }
        if (at_bol) {  // the state machine decides about the next line start
          state_ = kBol;
          break;
        }
        // This line holds a bare CR or LF, or does not end in this chunk: store up to its first
        // CR or LF and decide about that byte.
        j = std::min(find('\r', next_cr, i), find('\n', next_lf, i));
        emit(out, p + i, j - i);
        i = j;
        if (i == n) break;
        if (p[i] == '\r') {
          line_empty_ = false;
          cr_at = i;
          state_ = kCr;
          ++i;
        } else {  // bare LF ends a non-empty line
          if (reject) return bare_lf(i);
          emit(out, "\r\n", 2);
          ++i;
          state_ = kBolLf;
        }
        break;
      }

      case kCr:
        if (c == '\n') {
          emit(out, "\r\n", 2);
          ++i;
          state_ = kBol;
          if (line_empty_ && !headers_done_) {
            headers_done_ = true;
            return DataEvent{DataEvent::headers_end, i};
          }
        } else {  // bare CR: data in normalize mode
          if (reject) return bare_cr();
          emit(out, "\r", 1);
          state_ = kMid;  // reprocess c
        }
        break;

      case kDot:
        if (c == '\r') {
          cr_at = i;
          state_ = kDotCr;
          ++i;
        } else if (c == '\n') {  // "." ended by a bare LF: never the end, stored verbatim
          if (reject) return bare_lf(i);
          emit(out, ".\r\n", 3);
          ++i;
          state_ = kBolLf;
        } else {
          state_ = kMid;  // dot-unstuffing: drop the leading dot, reprocess c as content
        }
        break;

      case kDotCr:
        if (c == '\n') {
          ++i;
          if (!after_bare_lf_) {  // CR LF . CR LF
            state_ = kDone;
            return DataEvent{DataEvent::done, i};
          }
          emit(out, ".\r\n", 3);  // LF . CR LF: not the end, stored verbatim
          state_ = kBol;
        } else {  // "." then a bare CR: an ordinary dot-stuffed line whose content starts with CR
          if (reject) return bare_cr();
          emit(out, "\r", 1);
          state_ = kMid;  // reprocess c
        }
        break;

      default:  // unreachable (terminal states return at the top); fail closed, never "done"
        state_ = kErrCr;
        return DataEvent{DataEvent::bare_cr, 0};
    }
  }
  return DataEvent{DataEvent::need_more, n};
}

}  // namespace uvs::smtp
