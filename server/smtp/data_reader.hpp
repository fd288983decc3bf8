// smtp/data_reader.hpp: DATA-mode byte state machine: dot-unstuffing, the one true end of data
// (CR LF . CR LF), bare CR/LF policy, header/body boundary, size limit. Survives any segmentation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include "smtp/line_reader.hpp"

namespace uvs::smtp {

struct DataEvent {
  enum Type {
    need_more,    // all input consumed, no end yet
    headers_end,  // the empty line ending the header section was just consumed (reported once)
    done,         // CR LF . CR LF consumed; consumed counts through the final LF
    bare_cr,      // (reject policy) a CR not followed by LF; consumed through the offending byte
    bare_lf,      // (reject policy) an LF not preceded by CR
  } type = need_more;
  size_t consumed = 0;
};

class DataReader {
 public:
  // max_size: bytes of stored content beyond which content is counted but no longer stored.
  DataReader(uint64_t max_size, NewlinePolicy policy);
  // Parses `in` from the start, appends the message content as stored (dot-unstuffed, every line
  // ending in CRLF; in normalize mode a bare LF is stored as CRLF) to `out`. Returns after a
  // headers_end, done or error event, or when all input is consumed.
  // Only the exact sequence CR LF . CR LF ends the data, where the first CR LF may be the one that
  // ended the DATA command (the reader starts at the beginning of a line).
  DataEvent feed(std::string_view in, std::string &out);
  uint64_t size() const { return size_; }  // content bytes seen (stored or not)
  bool too_big() const { return size_ > max_size_; }
  bool headers_seen() const { return headers_done_; }

 private:
  void emit(std::string &out, const char *p, size_t n);  // count n bytes, store up to the limit
  uint64_t max_size_;  // 0 from the constructor is stored as UINT64_MAX (no limit)
  NewlinePolicy policy_;
  uint64_t size_ = 0;
  bool headers_done_ = false;
  int state_ = 0;               // implementation-defined state of the byte machine
  bool line_empty_ = true;      // the pending CR (state CR) was the first byte of its line
  bool after_bare_lf_ = false;  // the pending "." line began after a bare LF (never ends data)
};

}  // namespace uvs::smtp
