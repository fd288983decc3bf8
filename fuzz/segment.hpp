// fuzz/segment.hpp: fuzzer-chosen segmentation of a byte stream (as TCP could deliver it).
// Layout of the input: one byte n (1 + n % 8 split sizes follow), the split-size bytes, then
// the stream. Chunk sizes cycle through the split sizes; a size byte of 0 is an empty chunk
// (feeding nothing must change nothing), otherwise the chunk is 1 + (b - 1) % 64 bytes.
#pragma once
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"

namespace fuzz {

struct Segmented {
  std::vector<uint8_t> sizes;
  std::string_view stream;
};

inline Segmented take_segmentation(Bytes &b) {
  Segmented s;
  const size_t n = 1 + b.take() % 8;
  for (size_t i = 0; i < n; ++i) s.sizes.push_back(b.take());
  s.stream = b.rest();
  return s;
}

// Splits `stream` into chunks per `sizes` (see above). Never loops forever: after as many empty
// chunks in a row as there are sizes, a 0 counts as 1.
inline std::vector<std::string_view> chunks(std::string_view stream,
                                            const std::vector<uint8_t> &sizes) {
  std::vector<std::string_view> out;
  size_t pos = 0, k = 0, empties = 0;
  while (pos < stream.size()) {
    const uint8_t b = sizes[k++ % sizes.size()];
    if (b == 0 && empties < sizes.size()) {
      ++empties;
      out.emplace_back(stream.substr(pos, 0));
      continue;
    }
    empties = 0;
    const size_t len = b == 0 ? 1 : 1 + (b - 1u) % 64;
    out.push_back(stream.substr(pos, len));
    pos += out.back().size();
  }
  if (!sizes.empty() && sizes[0] == 0) out.emplace_back(stream.substr(stream.size(), 0));
  return out;
}

inline std::vector<std::string_view> one_chunk(std::string_view stream) {
  return {stream};
}

inline std::vector<std::string_view> bytewise(std::string_view stream) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < stream.size(); ++i) out.push_back(stream.substr(i, 1));
  return out;
}

}  // namespace fuzz
