// fuzz/fuzz_metrics.cpp: the metrics endpoint's request parser and the sum of expositions
// (server/metrics/http_request.hpp, exposition.hpp). The input is both a request head and an
// exposition. Invariants: judge_request gives one of the statuses the endpoint sends; the
// response's Content-Length is its body's size (none for HEAD); sum() of the input, and of two
// copies, writes an exposition that sum() reads back without skipping a line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "metrics/exposition.hpp"
#include "metrics/http_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string in(reinterpret_cast<const char *>(data), size);

  uvs::metrics::HttpAnswer a = uvs::metrics::judge_request(in);
  FUZZ_CHECK(a.status == 200 || a.status == 400 || a.status == 404 || a.status == 405 ||
                 a.status == 431 || a.status == 505,
             fuzz::esc(in));
  FUZZ_CHECK(!a.head || a.status == 200, fuzz::esc(in));
  std::string r = uvs::metrics::http_response(a, [] { return std::string("m 1\n"); });
  size_t end = r.find("\r\n\r\n");
  FUZZ_CHECK(end != std::string::npos, r);
  size_t cl = r.find("\r\nContent-Length: ");
  FUZZ_CHECK(cl != std::string::npos && cl < end, r);
  size_t body = r.size() - end - 4;
  size_t declared = std::stoul(r.substr(cl + 18));
  FUZZ_CHECK(a.head ? body == 0 : body == declared, r);

  for (int copies = 1; copies <= 2; ++copies) {
    std::vector<std::string> inputs(static_cast<size_t>(copies), in);
    size_t skipped = 0;
    std::string s = uvs::metrics::sum(inputs, &skipped);
    std::vector<std::string> again{s};
    size_t skipped_again = 0;
    (void)uvs::metrics::sum(again, &skipped_again);
    FUZZ_CHECK(skipped_again == 0, fuzz::esc(in) + " -> " + fuzz::esc(s));
  }
  return 0;
}
