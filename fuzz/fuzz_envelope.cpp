// fuzz/fuzz_envelope.cpp: the outbound queue's envelope parser and xtext (server/queue).
// The whole input is one envelope file's text.
// Invariants: parse() either fails with an error that starts "line N: " (N within the input's
// lines) or names the whole file's problem, or succeeds with an id that valid_id() accepts and
// at least one recipient; what it accepted serializes to a text that parses again to the same
// serialization (a fixed point); every xtext value round-trips; xtext_encode never emits a space,
// '=', a control or a byte above '~'.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "queue/queue_entry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace uvs::queue;
  std::string_view in(reinterpret_cast<const char *>(data), size);

  std::string enc = xtext_encode(in), dec;
  for (char c : enc)
    FUZZ_CHECK(c > ' ' && c <= '~' && c != '=', "xtext_encode emitted " + fuzz::esc(enc));
  FUZZ_CHECK(xtext_decode(enc, dec) && dec == in, "xtext round trip of " + fuzz::esc(in));

  Envelope e;
  std::string err;
  if (!parse(in, e, err)) {
    FUZZ_CHECK(!err.empty(), "parse failed without an error for " + fuzz::esc(in));
    if (err.rfind("line ", 0) == 0) {
      size_t lines = 1;
      for (char c : in) lines += c == '\n';
      unsigned long n = std::stoul(err.substr(5));
      FUZZ_CHECK(n >= 1 && n <= lines, "error line out of range: " + err);
    }
    return 0;
  }
  FUZZ_CHECK(valid_id(e.id), "accepted a bad id: " + fuzz::esc(e.id));
  FUZZ_CHECK(!e.rcpts.empty(), "accepted an envelope without recipients");
  std::string once = serialize(e);
  Envelope again;
  FUZZ_CHECK(parse(once, again, err), "its own serialization does not parse: " + err);
  FUZZ_CHECK(serialize(again) == once, "serialize is not a fixed point: " + fuzz::esc(once));
  return 0;
}
