// fuzz/fuzz_data_reader.cpp: the DATA byte machine (server/smtp/data_reader.hpp): end of data,
// dot-unstuffing, bare CR/LF policy, header/body boundary, size limit.
// Input: a flags byte (bit 0: policy reject/normalize; bits 1-2: size limit none / 1+b / 1+16*b /
// none, with b the next byte), then the segmentation (segment.hpp), then the DATA stream.
// The stream is fed the way the session feeds it (each chunk until need_more; nothing after done
// or an error) three ways: in one chunk, in the fuzzer's chunks and one byte at a time. The three
// runs (events and their absolute offsets, stored output, size, too_big, headers_seen) must be
// identical, and equal to an independent line-based model of the protocol. Also: done only right
// after CR LF . CR LF (the first CR LF may be the one that ended DATA, i.e. the stream start);
// under reject the stored output has no bare CR or LF; under normalize no bare LF.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "segment.hpp"
#include "smtp/data_reader.hpp"

namespace {

using uvs::smtp::DataEvent;
using uvs::smtp::DataReader;
using uvs::smtp::NewlinePolicy;

struct Ev {
  DataEvent::Type type;
  size_t end;  // absolute offset just after the bytes the event consumed
  bool operator==(const Ev &o) const { return type == o.type && end == o.end; }
};

struct Run {
  std::vector<Ev> evs;
  std::string out;
  uint64_t size = 0;
  bool too_big = false;
  bool headers_seen = false;
  size_t consumed = 0;  // total bytes consumed
  bool operator==(const Run &o) const {
    return evs == o.evs && out == o.out && size == o.size && too_big == o.too_big &&
           headers_seen == o.headers_seen && consumed == o.consumed;
  }
};

const char *name(DataEvent::Type t) {
  static const char *names[] = {"need_more", "headers_end", "done", "bare_cr", "bare_lf"};
  return names[t];
}

std::string show(const Run &r) {
  std::string s = "events:";
  for (const Ev &e : r.evs) s += std::string(" ") + name(e.type) + "@" + std::to_string(e.end);
  s += " consumed=" + std::to_string(r.consumed) + " size=" + std::to_string(r.size) +
       " too_big=" + std::to_string(r.too_big) + " headers=" + std::to_string(r.headers_seen) +
       " out=\"" + fuzz::esc(r.out) + "\"";
  return s;
}

bool terminal(DataEvent::Type t) {
  return t == DataEvent::done || t == DataEvent::bare_cr || t == DataEvent::bare_lf;
}

Run drive(const std::vector<std::string_view> &chunks, uint64_t max_size, NewlinePolicy policy) {
  Run r;
  DataReader dr(max_size, policy);
  size_t base = 0;  // absolute offset of the current chunk
  bool stopped = false;
  for (std::string_view chunk : chunks) {
    size_t off = 0;
    for (;;) {
      const DataEvent ev = dr.feed(chunk.substr(off), r.out);
      FUZZ_CHECK(ev.consumed <= chunk.size() - off, "consumed more than given");
      off += ev.consumed;
      if (ev.type == DataEvent::need_more) {
        FUZZ_CHECK(off == chunk.size(), "need_more without consuming everything");
        break;
      }
      r.evs.push_back({ev.type, base + off});
      if (terminal(ev.type)) {
        stopped = true;
        break;
      }
    }
    r.consumed = base + off;
    base += chunk.size();
    if (stopped) break;
  }
  if (stopped) {  // a finished reader stays finished and consumes nothing
    std::string more;
    const DataEvent again = dr.feed("x\r\n.\r\n", more);
    FUZZ_CHECK(again.type == r.evs.back().type && again.consumed == 0 && more.empty(),
               "reader not stuck in its terminal state");
  }
  r.size = dr.size();
  r.too_big = dr.too_big();
  r.headers_seen = dr.headers_seen();
  return r;
}

// Independent model: the stream as lines. A line ends at LF; it is a CRLF line if the byte before
// the LF is CR (that CR is not content), else a bare-LF line. A CR not followed by LF is content
// (normalize) or an error (reject). A line "." that ends in CRLF and follows a CRLF line (or
// starts the stream) ends the data; any other "." line is stored as "."; a line starting with
// "." otherwise loses that dot. Every stored line ends in CRLF. An unfinished last line is stored
// as far as it is known: without a trailing CR (not yet decided) and without a leading dot.
Run model(std::string_view in, uint64_t max_size, NewlinePolicy policy) {
  const bool reject = policy == NewlinePolicy::reject;
  Run r;
  std::string content;
  auto unstuff_partial = [](std::string_view s) {
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    if (!s.empty() && s.front() == '.') s.remove_prefix(1);
    return std::string(s);
  };
  size_t pos = 0;
  bool prev_crlf = true;
  bool stopped = false;
  while (pos < in.size()) {
    const size_t nl = in.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? in.size() : nl;  // line bytes [pos, end)
    if (reject) {
      // A CR followed by something other than LF, within this line (a CR at end-1 is the CR of
      // CRLF when nl exists; a CR as the very last stream byte is undecided).
      const size_t last = nl == std::string_view::npos ? in.size() - 1 : end - 1;
      size_t bad_cr = std::string_view::npos;
      for (size_t j = pos; j < last && j < end; ++j)
        if (in[j] == '\r') {
          bad_cr = j;
          break;
        }
      if (bad_cr != std::string_view::npos) {
        content += unstuff_partial(in.substr(pos, bad_cr - pos));
        r.evs.push_back({DataEvent::bare_cr, bad_cr + 1});
        r.consumed = bad_cr + 1;
        stopped = true;
        break;
      }
      if (nl != std::string_view::npos && (nl == pos || in[nl - 1] != '\r')) {
        content += unstuff_partial(in.substr(pos, nl - pos));
        r.evs.push_back({DataEvent::bare_lf, nl + 1});
        r.consumed = nl + 1;
        stopped = true;
        break;
      }
    }
    if (nl == std::string_view::npos) {
      content += unstuff_partial(in.substr(pos));
      pos = in.size();
      break;
    }
    const bool crlf = nl > pos && in[nl - 1] == '\r';
    const std::string_view text = in.substr(pos, nl - pos - (crlf ? 1 : 0));
    if (text == "." && crlf && prev_crlf) {
      r.evs.push_back({DataEvent::done, nl + 1});
      r.consumed = nl + 1;
      stopped = true;
      break;
    }
    if (text == ".")
      content += ".";
    else if (!text.empty() && text.front() == '.')
      content += text.substr(1);
    else
      content += text;
    content += "\r\n";
    if (text.empty() && !r.headers_seen) {
      r.headers_seen = true;
      r.evs.push_back({DataEvent::headers_end, nl + 1});
    }
    prev_crlf = crlf;
    pos = nl + 1;
  }
  if (!stopped) r.consumed = in.size();
  const uint64_t limit = max_size == 0 ? UINT64_MAX : max_size;
  r.size = content.size();
  r.too_big = r.size > limit;
  r.out = content.substr(0, static_cast<size_t>(std::min<uint64_t>(limit, content.size())));
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Bytes b(data, size);
  const uint8_t flags = b.take();
  const NewlinePolicy policy = (flags & 1) ? NewlinePolicy::normalize : NewlinePolicy::reject;
  uint64_t max_size = 0;
  switch ((flags >> 1) & 3) {
    case 1:
      max_size = 1 + b.take();
      break;
    case 2:
      max_size = 1 + 16u * b.take();
      break;
    default:
      break;
  }
  const fuzz::Segmented seg = fuzz::take_segmentation(b);
  const std::string_view in = seg.stream;
  const std::string ctx = std::string(policy == NewlinePolicy::reject ? "reject" : "normalize") +
                          " max_size=" + std::to_string(max_size) + " stream=\"" +
                          fuzz::esc(in, 400) + "\"";

  const Run whole = drive(fuzz::one_chunk(in), max_size, policy);
  const Run split = drive(fuzz::chunks(in, seg.sizes), max_size, policy);
  FUZZ_CHECK(split == whole, ctx + "\n  whole: " + show(whole) + "\n  split: " + show(split));
  if (in.size() <= 8192) {
    const Run bytes = drive(fuzz::bytewise(in), max_size, policy);
    FUZZ_CHECK(bytes == whole, ctx + "\n  whole: " + show(whole) + "\n  bytes: " + show(bytes));
  }
  const Run ref = model(in, max_size, policy);
  FUZZ_CHECK(ref == whole, ctx + "\n  reader: " + show(whole) + "\n  model:  " + show(ref));

  // Direct checks, independent of the model.
  for (const Ev &e : whole.evs) {
    if (e.type == DataEvent::done) {
      const std::string_view before = in.substr(0, e.end);
      FUZZ_CHECK(before.size() == 3 ? before == ".\r\n"
                                    : before.size() >= 5 &&
                                          before.substr(before.size() - 5) == "\r\n.\r\n",
                 "done not right after CR LF . CR LF: " + ctx);
    }
  }
  const std::string &out = whole.out;
  const bool truncated = whole.too_big;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n') FUZZ_CHECK(i > 0 && out[i - 1] == '\r', "bare LF stored: " + ctx);
    if (out[i] == '\r' && policy == NewlinePolicy::reject)
      FUZZ_CHECK((i + 1 < out.size() && out[i + 1] == '\n') || (truncated && i + 1 == out.size()),
                 "bare CR stored under reject: " + ctx);
  }
  return 0;
}
