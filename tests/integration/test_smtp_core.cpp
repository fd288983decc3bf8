// tests/integration/test_smtp_core.cpp: the engine without policy plugins: greeting, EHLO,
// grammar and sequencing replies, pipelining order and synchronisation, limits, timeouts,
// connection limits and graceful shutdown.
#include <csignal>
#include <doctest/doctest.h>

#include "harness.hpp"

using namespace itest;

TEST_CASE("smtp_core: greeting and EHLO capabilities") {
  Server s;
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply() == "220 mx.test.invalid ESMTP uvsmtpd");
  std::string ehlo = c.cmd("EHLO client.example");
  CHECK(ehlo.find("250-mx.test.invalid Hi Unknown [127.0.0.1]") == 0);
  for (const char *cap : {"PIPELINING", "SIZE 26214400", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"})
    CHECK(ehlo.find(cap) != std::string::npos);
  CHECK(c.cmd("QUIT") == "221 2.0.0 mx.test.invalid closing connection. Have a wonderful day.");
  CHECK(c.closed());
}
