// server/smtp/line_reader.cpp: command-mode line framing, bare CR/LF, length limit, discard.
// Terminators are found with memchr (first LF, then a CR only before it), never byte by byte.
#include "smtp/line_reader.hpp"

#include <cstring>

namespace uvs::smtp {

namespace {

// The first CR or LF in in[from, end), or `end`. `lf` caches the first LF at or after some
// earlier `from` within [.., end) (npos: not searched yet), so that skipping bare CRs one by
// one (normalize) does not search for the LF again: each byte is searched at most twice.
size_t find_cr_or_lf(std::string_view in, size_t from, size_t end, size_t &lf) {
  if (lf == std::string_view::npos || lf < from) {
    const void *q = std::memchr(in.data() + from, '\n', end - from);
    lf = q ? static_cast<size_t>(static_cast<const char *>(q) - in.data()) : end;
  }
  const void *q = std::memchr(in.data() + from, '\r', lf - from);
  return q ? static_cast<size_t>(static_cast<const char *>(q) - in.data()) : lf;
}

}  // namespace

LineReader::LineReader(size_t max_len, NewlinePolicy policy) : max_len_(max_len), policy_(policy) {}

LineEvent LineReader::next(std::string_view in) {
  // The caller re-passes the unconsumed prefix after need_more; anything else (shorter input, a
  // policy switch) invalidates what was learnt about that prefix, so scan it again.
  if (scan_ > in.size() || scan_policy_ != policy_) scan_ = 0;
  scan_policy_ = policy_;

  size_t pos = 0;
  if (discarding_) {
    const size_t n = in.size();
    const bool reject = policy_ == NewlinePolicy::reject;
    size_t lf = std::string_view::npos;
    size_t i = 0;
    for (; i < n; ++i) {
      i = find_cr_or_lf(in, i, n, lf);
      if (i == n) break;
      if (in[i] == '\r') {
        // Undecided: leave the CR unconsumed so the next call sees it together with what follows.
        if (i + 1 == n) return LineEvent{LineEvent::need_more, i, {}};
        if (in[i + 1] == '\n') {
          pos = i + 2;
          break;
        }
        if (reject) return LineEvent{LineEvent::bare_cr, i + 1, {}};
      } else {
        if (reject) return LineEvent{LineEvent::bare_lf, i + 1, {}};
        pos = i + 1;
        break;
      }
    }
    if (i == n) return LineEvent{LineEvent::need_more, n, {}};
    discarding_ = false;
    scan_ = 0;
  }
  LineEvent ev = next_line(in.substr(pos));
  ev.consumed += pos;
  return ev;
}

LineEvent LineReader::next_line(std::string_view in) {
  // Longest content allowed: max_len includes the CRLF (a bare-LF line in normalize mode gets the
  // same content limit as if it had ended in CRLF).
  const size_t limit = max_len_ >= 2 ? max_len_ - 2 : 0;
  const bool reject = policy_ == NewlinePolicy::reject;
  const size_t n = in.size();
  // Invariant: in[0, scan_) is plain content (no terminator, no error) and scan_ <= limit.
  // Only in[scan_, end) can matter: content byte number limit+1 (index limit) is too many.
  const size_t end = limit < n ? limit + 1 : n;
  size_t lf = std::string_view::npos;
  for (size_t i = scan_; i < end; ++i) {
    i = find_cr_or_lf(in, i, end, lf);
    if (i == end) break;
    if (in[i] == '\r') {
      if (i + 1 == n) {  // CR as the last byte: cannot tell CRLF from bare CR yet
        scan_ = i;
        return LineEvent{LineEvent::need_more, 0, {}};
      }
      if (in[i + 1] == '\n') {
        scan_ = 0;
        return LineEvent{LineEvent::line, i + 2, std::string(in.substr(0, i))};
      }
      if (reject) {
        scan_ = 0;
        return LineEvent{LineEvent::bare_cr, i + 1, {}};
      }
      // normalize: a bare CR is line content (counted against the limit like any other byte)
    } else {
      scan_ = 0;
      if (reject) return LineEvent{LineEvent::bare_lf, i + 1, {}};
      return LineEvent{LineEvent::line, i + 1, std::string(in.substr(0, i))};
    }
  }
  if (end > limit) {  // content byte number limit+1 is there: the line is certainly too long
    scan_ = 0;
    discarding_ = true;
    return LineEvent{LineEvent::too_long, limit + 1, {}};
  }
  scan_ = n;
  return LineEvent{LineEvent::need_more, 0, {}};
}

}  // namespace uvs::smtp
