// smtp/line_reader.hpp: command-mode framing: CRLF lines, length limit, bare CR/LF detection (pure).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace uvs::smtp {

enum class NewlinePolicy {
  reject,     // a bare CR or bare LF is a protocol error (reported, caller replies 550 5.5.2 and closes)
  normalize,  // a bare LF ends a line like CRLF (Postfix "normalize"); a bare CR is kept as data
};

struct LineEvent {
  enum Type { need_more, line, too_long, bare_cr, bare_lf } type = need_more;
  size_t consumed = 0;  // bytes of the input to drop (may be > 0 with need_more while discarding)
  std::string text;     // for `line`: the line without its terminator (a member named `line`
                        // would clash with the enumerator LineEvent::line)
};

class LineReader {
 public:
  // max_len: the longest accepted line including CRLF.
  LineReader(size_t max_len, NewlinePolicy policy);
  // in: bytes not yet consumed. Returns the next event; the caller drops ev.consumed bytes and
  // calls again until need_more. After too_long (reported once, when the limit is passed),
  // the reader discards through the next line end, then reads normally again.
  LineEvent next(std::string_view in);
  void set_policy(NewlinePolicy p) { policy_ = p; }
  void set_max_len(size_t max_len) { max_len_ = max_len; }  // e.g. for SASL continuation lines

 private:
  LineEvent next_line(std::string_view in);  // at the start of a line, not discarding
  size_t max_len_;
  NewlinePolicy policy_;
  bool discarding_ = false;
  // Bytes at the front of the (same, re-passed) input already known to be plain line content,
  // so a re-scan after need_more costs only the new bytes. Reset on any consuming event.
  size_t scan_ = 0;
  NewlinePolicy scan_policy_ = NewlinePolicy::reject;  // the policy scan_ was computed under
};

}  // namespace uvs::smtp
