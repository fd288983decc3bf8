// tests/unit/test_hop_counter.cpp: HopCounter counts Received: fields however the header
// section is split, and only field names, never continuation lines or other fields.
#include <doctest/doctest.h>

#include <string>

#include "session/hop_counter.hpp"

using uvs::HopCounter;

namespace {
uint32_t count_in_pieces(const std::string &h, size_t piece) {
  HopCounter c;
  for (size_t i = 0; i < h.size(); i += piece) c.feed(std::string_view(h).substr(i, piece));
  return c.count();
}
}  // namespace

TEST_CASE("hop_counter: Received fields, any case, any segmentation") {
  std::string h =
      "Received: from a\r\n\tby b\r\n"
      "RECEIVED: from c\r\n"
      "received :from d\r\n"
      "Received\t: from e\r\n"
      "X-Received: not a hop\r\n"
      " Received: a continuation line\r\n"
      "Receivedx: other field\r\n"
      "Receive: other field\r\n"
      "Subject: Received: in a value\r\n"
      "Received:\r\n";
  for (size_t piece : {1, 2, 3, 7, 100, 10000}) CHECK(count_in_pieces(h, piece) == 5);
}

TEST_CASE("hop_counter: bare LF line ends and an empty input") {
  CHECK(count_in_pieces("Received: a\nReceived: b\n", 1) == 2);
  CHECK(count_in_pieces("", 1) == 0);
  CHECK(count_in_pieces("Received", 1) == 0);
}

TEST_CASE("hop_counter: many hops") {
  std::string h;
  for (int i = 0; i < 5000; ++i) h += "Received: from h" + std::to_string(i) + "\r\n";
  CHECK(count_in_pieces(h, 4096) == 5000);
}
