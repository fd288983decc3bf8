// tests/unit/test_header_fields.cpp: the header edits of ABI 1.3 at their core: parsing a header
// section into fields (folded lines kept, the separator noticed), edits by the i-th occurrence
// of a name, and the checks that keep a plugin from injecting fields (RFC 5322 2.2, 3.2.2).
#include <doctest/doctest.h>

#include <string>

#include "smtp/header_fields.hpp"

using uvs::smtp::HeaderFields;
using uvs::smtp::header_name_ok;
using uvs::smtp::header_value_ok;
using uvs::smtp::make_field;

TEST_CASE("header_fields: parse keeps folded fields whole and finds the separator") {
  bool sep = false;
  std::string h = "A: 1\r\nB: two\r\n\tlines\r\na: 3\r\n\r\n";
  HeaderFields f = HeaderFields::parse(h, sep);
  CHECK(sep);
  CHECK(f.size() == 3);
  CHECK(f.text() + "\r\n" == h);
  HeaderFields g = HeaderFields::parse("A: 1\r\nB: 2\r\n", sep);  // no empty line: no body
  CHECK(!sep);
  CHECK(g.text() == "A: 1\r\nB: 2\r\n");
  HeaderFields e = HeaderFields::parse("\r\n", sep);
  CHECK(sep);
  CHECK(e.size() == 0);
}

TEST_CASE("header_fields: edits by the i-th occurrence, names case-insensitive") {
  bool sep = false;
  HeaderFields f = HeaderFields::parse("A: 1\r\nB: two\r\n\tlines\r\na: 3\r\nAB: x\r\n\r\n", sep);
  CHECK(f.erase("a", 1));  // the second A (written "a")
  CHECK(f.text() == "A: 1\r\nB: two\r\n\tlines\r\nAB: x\r\n");
  CHECK(!f.erase("A", 1));  // "AB" is another name
  CHECK(f.replace("b", 0, make_field("B", "one")));
  CHECK(f.insert_before("AB", 0, make_field("C", "")));
  f.add_top(make_field("Top", "t"));
  f.add_bottom(make_field("Bottom", "b"));
  CHECK(f.text() == "Top: t\r\nA: 1\r\nB: one\r\nC:\r\nAB: x\r\nBottom: b\r\n");
  CHECK(!f.replace("Nope", 0, "x"));
  CHECK(!f.insert_before("A", -1, "x"));
}

TEST_CASE("header_fields: names and values that would break the header are refused") {
  CHECK(header_name_ok("X-Test"));
  CHECK(!header_name_ok(""));
  CHECK(!header_name_ok("Bad Name"));
  CHECK(!header_name_ok("A:B"));
  CHECK(!header_name_ok("X\x7f"));
  CHECK(!header_name_ok(std::string(201, 'x')));
  CHECK(header_value_ok("X", "", false));
  CHECK(header_value_ok("X", "plain\ttext", false));
  CHECK(header_value_ok("X", "one\r\n two\r\n\tthree", false));
  CHECK(!header_value_ok("X", "a\r\nBcc: victim@example.com", false));  // injection
  CHECK(!header_value_ok("X", "a\nb", false));
  CHECK(!header_value_ok("X", "a\rb", false));
  CHECK(!header_value_ok("X", "a\r\n", false));        // a final CRLF: the server adds it
  CHECK(!header_value_ok("X", "a\r\n \r\n b", false));  // a blank-only folded line
  CHECK(!header_value_ok("X", "a\r\n ", false));
  CHECK(!header_value_ok("X", std::string("a\0b", 3), false));
  CHECK(!header_value_ok("X", "caf\xc3\xa9", false));
  CHECK(header_value_ok("X", "caf\xc3\xa9", true));  // SMTPUTF8
  CHECK(header_value_ok("X", std::string(995, 'v'), false));  // "X: " + 995 = 998
  CHECK(!header_value_ok("X", std::string(996, 'v'), false));
  CHECK(header_value_ok("X", "a\r\n " + std::string(997, 'v'), false));
  CHECK(!header_value_ok("X", "a\r\n " + std::string(998, 'v'), false));
}
