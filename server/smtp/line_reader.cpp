// server/smtp/line_reader.cpp: command-mode line framing, bare CR/LF, length limit, discard.
#include "smtp/line_reader.hpp"

namespace uvs::smtp {

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
    size_t i = 0;
    for (; i < n; ++i) {
      const char c = in[i];
      if (c == '\r') {
        // Undecided: leave the CR unconsumed so the next call sees it together with what follows.
        if (i + 1 == n) return LineEvent{LineEvent::need_more, i, {}};
        if (in[i + 1] == '\n') {
          pos = i + 2;
          break;
        }
        if (reject) return LineEvent{LineEvent::bare_cr, i + 1, {}};
      } else if (c == '\n') {
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
  for (size_t i = scan_; i < n; ++i) {
    const char c = in[i];
    if (c == '\r') {
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
      // normalize: a bare CR is line content, checked against the limit below
    } else if (c == '\n') {
      scan_ = 0;
      if (reject) return LineEvent{LineEvent::bare_lf, i + 1, {}};
      return LineEvent{LineEvent::line, i + 1, std::string(in.substr(0, i))};
    }
    if (i >= limit) {  // content byte number i+1 > limit: the line is certainly too long
      scan_ = 0;
      discarding_ = true;
      return LineEvent{LineEvent::too_long, i + 1, {}};
    }
  }
  scan_ = n;
  return LineEvent{LineEvent::need_more, 0, {}};
}

}  // namespace uvs::smtp
