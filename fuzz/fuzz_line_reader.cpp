// fuzz/fuzz_line_reader.cpp: command-mode framing (server/smtp/line_reader.hpp) and, optionally,
// the switch into DATA mode and back, driven the way the session drives them.
// Input: a flags byte (bit 0: policy reject/normalize; bit 1: a "DATA" line switches to a
// DataReader until done, as after a 354; bits 2-3: line limit 512 / 64 / 2 + b % 32 / b, with b
// the next byte, so limits 0 and 1 are covered too), then the segmentation (segment.hpp), then the
// client's byte stream.
// Invariants: the sequence of events (line texts, too_long, bare CR/LF, the DATA events and the
// stored messages) and the bytes consumed are the same whether the stream arrives in one chunk,
// in the fuzzer's chunks or byte by byte. A line is never longer than the limit, never contains
// LF, under reject never CR, and the stream bytes it consumed end with the text and its
// terminator (CRLF, or a bare LF under normalize). A bare CR/LF event points at a real bare CR/LF.
// DATA ends only at CR LF . CR LF (the first CR LF may be the one that ended the DATA line).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "segment.hpp"
#include "smtp/data_reader.hpp"
#include "smtp/line_reader.hpp"

namespace {

using uvs::smtp::DataEvent;
using uvs::smtp::DataReader;
using uvs::smtp::LineEvent;
using uvs::smtp::LineReader;
using uvs::smtp::NewlinePolicy;

struct Ev {
  int type;          // LineEvent::Type, or 10 + DataEvent::Type
  size_t end;        // absolute offset after the consumed bytes
  std::string text;  // line text, or the stored message for DATA done
  bool operator==(const Ev &o) const { return type == o.type && end == o.end && text == o.text; }
};

struct Run {
  std::vector<Ev> evs;
  size_t consumed = 0;
  bool operator==(const Run &o) const { return evs == o.evs && consumed == o.consumed; }
};

std::string show(const Run &r) {
  static const char *line_names[] = {"need_more", "line", "too_long", "bare_cr", "bare_lf"};
  static const char *data_names[] = {"d.need_more", "d.headers_end", "d.done", "d.bare_cr",
                                     "d.bare_lf"};
  std::string s;
  for (const Ev &e : r.evs) {
    s += " ";
    s += e.type >= 10 ? data_names[e.type - 10] : line_names[e.type];
    s += "@" + std::to_string(e.end);
    if (!e.text.empty()) s += "\"" + fuzz::esc(e.text, 60) + "\"";
  }
  return s + " consumed=" + std::to_string(r.consumed);
}

bool is_data_cmd(std::string_view t) {
  return t.size() == 4 && (t[0] | 0x20) == 'd' && (t[1] | 0x20) == 'a' && (t[2] | 0x20) == 't' &&
         (t[3] | 0x20) == 'a';
}

struct Params {
  NewlinePolicy policy;
  bool data_mode;
  size_t max_len;
};

Run drive(std::string_view stream, const std::vector<std::string_view> &chunks, const Params &p) {
  const bool reject = p.policy == NewlinePolicy::reject;
  const size_t limit = p.max_len >= 2 ? p.max_len - 2 : 0;
  Run r;
  LineReader lines(p.max_len, p.policy);
  std::optional<DataReader> data;
  std::string message;
  std::string buf;     // received, not yet consumed (the session's in_)
  size_t base = 0;     // absolute offset of buf[0]
  size_t data_start = 0;
  bool closed = false;
  for (std::string_view chunk : chunks) {
    buf.append(chunk);
    size_t off = 0;
    while (!closed) {
      const std::string_view view = std::string_view(buf).substr(off);
      if (!data) {
        LineEvent ev = lines.next(view);
        FUZZ_CHECK(ev.consumed <= view.size(), "line reader consumed more than given");
        off += ev.consumed;
        if (ev.type == LineEvent::need_more) {
          if (ev.consumed > 0) continue;  // the session calls again after progress
          break;
        }
        const size_t end = base + off;
        switch (ev.type) {
          case LineEvent::line: {
            FUZZ_CHECK(ev.text.size() <= limit, "line longer than the limit");
            FUZZ_CHECK(ev.text.find('\n') == std::string::npos, "LF in a line");
            FUZZ_CHECK(!reject || ev.text.find('\r') == std::string::npos,
                       "CR in a line under reject");
            const std::string crlf = ev.text + "\r\n";
            const std::string lf = ev.text + "\n";
            const std::string_view got = stream.substr(0, end);
            const bool ends_crlf = got.size() >= crlf.size() &&
                                   got.substr(got.size() - crlf.size()) == crlf;
            // A bare-LF line (normalize): the byte before the LF is not a CR.
            const bool ends_lf = !reject && got.size() >= lf.size() &&
                                 got.substr(got.size() - lf.size()) == lf &&
                                 (got.size() < 2 || got[got.size() - 2] != '\r');
            FUZZ_CHECK(ends_crlf || ends_lf, "line text is not what the stream ends with");
            break;
          }
          case LineEvent::bare_cr:
            FUZZ_CHECK(reject && end >= 1 && stream[end - 1] == '\r' && end < stream.size() &&
                           stream[end] != '\n',
                       "bare_cr not at a bare CR");
            closed = true;
            break;
          case LineEvent::bare_lf:
            FUZZ_CHECK(reject && end >= 1 && stream[end - 1] == '\n' &&
                           (end == 1 || stream[end - 2] != '\r'),
                       "bare_lf not at a bare LF");
            closed = true;
            break;
          default:
            break;
        }
        r.evs.push_back({ev.type, end, ev.type == LineEvent::line ? ev.text : std::string()});
        if (ev.type == LineEvent::line && p.data_mode && is_data_cmd(ev.text)) {
          data.emplace(0, p.policy);
          message.clear();
          data_start = end;
        }
      } else {
        const DataEvent ev = data->feed(view, message);
        FUZZ_CHECK(ev.consumed <= view.size(), "data reader consumed more than given");
        off += ev.consumed;
        if (ev.type == DataEvent::need_more) break;
        const size_t end = base + off;
        std::string text;
        if (ev.type == DataEvent::done) {
          FUZZ_CHECK(end >= 3 && stream.substr(end - 3, 3) == ".\r\n", "done not after .CRLF");
          if (end - 3 > data_start) {
            FUZZ_CHECK(end >= 5 && stream.substr(end - 5, 2) == "\r\n",
                       "done not after CR LF . CR LF");
          } else {  // the dot opened the data: the line before it was the DATA command
            FUZZ_CHECK(end - 3 == data_start, "done before the data started");
          }
          for (size_t i = 0; i < message.size(); ++i) {
            if (message[i] == '\n') FUZZ_CHECK(i > 0 && message[i - 1] == '\r', "bare LF stored");
            if (reject && message[i] == '\r')
              FUZZ_CHECK(i + 1 < message.size() && message[i + 1] == '\n', "bare CR stored");
          }
          text = message;
          data.reset();
        } else if (ev.type == DataEvent::bare_cr || ev.type == DataEvent::bare_lf) {
          FUZZ_CHECK(reject, "bare CR/LF error under normalize");
          closed = true;
        }
        r.evs.push_back({10 + ev.type, end, text});
      }
    }
    buf.erase(0, off);
    base += off;
    if (closed) break;
  }
  r.consumed = base;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Bytes b(data, size);
  const uint8_t flags = b.take();
  Params p;
  p.policy = (flags & 1) ? NewlinePolicy::normalize : NewlinePolicy::reject;
  p.data_mode = (flags & 2) != 0;
  switch ((flags >> 2) & 3) {
    case 0:
      p.max_len = 512;
      break;
    case 1:
      p.max_len = 64;
      break;
    case 2:
      p.max_len = 2 + b.take() % 32;
      break;
    default:
      p.max_len = b.take();
      break;
  }
  const fuzz::Segmented seg = fuzz::take_segmentation(b);
  const std::string_view in = seg.stream;
  const std::string ctx = std::string(p.policy == NewlinePolicy::reject ? "reject" : "normalize") +
                          (p.data_mode ? " data" : "") + " max_len=" + std::to_string(p.max_len) +
                          " stream=\"" + fuzz::esc(in, 400) + "\"";

  const Run whole = drive(in, fuzz::one_chunk(in), p);
  const Run split = drive(in, fuzz::chunks(in, seg.sizes), p);
  FUZZ_CHECK(split == whole, ctx + "\n  whole:" + show(whole) + "\n  split:" + show(split));
  if (in.size() <= 8192) {
    const Run bytes = drive(in, fuzz::bytewise(in), p);
    FUZZ_CHECK(bytes == whole, ctx + "\n  whole:" + show(whole) + "\n  bytes:" + show(bytes));
  }
  return 0;
}
