// tests/unit/test_cidr.cpp: unit tests for util/cidr (parse_cidr, cidr_contains, CidrList).
#include <doctest/doctest.h>

#include "util/cidr.hpp"

using uvs::Cidr;
using uvs::cidr_contains;
using uvs::CidrList;
using uvs::parse_cidr;

namespace {

bool in(const char *cidr, const char *ip) {
  Cidr c;
  REQUIRE_MESSAGE(parse_cidr(cidr, c), cidr);
  return cidr_contains(c, ip);
}

}  // namespace

TEST_CASE("cidr: parse IPv4 with and without prefix") {
  Cidr c;
  REQUIRE(parse_cidr("192.0.2.0/24", c));
  CHECK_FALSE(c.v6);
  CHECK(c.prefix == 24);
  CHECK(c.addr[0] == 192);
  CHECK(c.addr[1] == 0);
  CHECK(c.addr[2] == 2);
  CHECK(c.addr[3] == 0);

  REQUIRE(parse_cidr("10.1.2.3", c));
  CHECK_FALSE(c.v6);
  CHECK(c.prefix == 32);

  REQUIRE(parse_cidr("0.0.0.0/0", c));
  CHECK(c.prefix == 0);
  REQUIRE(parse_cidr("10.0.0.1/32", c));
  CHECK(c.prefix == 32);
}

TEST_CASE("cidr: parse IPv6 with and without prefix") {
  Cidr c;
  REQUIRE(parse_cidr("2001:db8::/32", c));
  CHECK(c.v6);
  CHECK(c.prefix == 32);
  CHECK(c.addr[0] == 0x20);
  CHECK(c.addr[1] == 0x01);
  CHECK(c.addr[2] == 0x0d);
  CHECK(c.addr[3] == 0xb8);

  REQUIRE(parse_cidr("::1", c));
  CHECK(c.v6);
  CHECK(c.prefix == 128);
  CHECK(c.addr[15] == 1);

  REQUIRE(parse_cidr("::/0", c));
  CHECK(c.prefix == 0);
  REQUIRE(parse_cidr("::ffff:192.0.2.0/120", c));
  CHECK(c.v6);
  CHECK(c.prefix == 120);
}

TEST_CASE("cidr: syntax errors are rejected and leave out untouched") {
  const char *bad[] = {"",
                       "/24",
                       "192.0.2.0/",
                       "192.0.2.0/33",
                       "192.0.2.0/-1",
                       "192.0.2.0/+8",
                       "192.0.2.0/ 8",
                       " 192.0.2.0",
                       "192.0.2.0 ",
                       "192.0.2",
                       "192.0.2.256",
                       "192.0.2.0/8/8",
                       "::1/129",
                       "2001:db8::/1000",
                       "2001:db8:::1",
                       "host.example",
                       "1.2.3.4/0x8",
                       "fe80::1%eth0"};
  for (const char *b : bad) {
    Cidr c;
    c.prefix = 77;
    CHECK_MESSAGE(!parse_cidr(b, c), b);
    CHECK(c.prefix == 77);
  }
}

TEST_CASE("cidr: IPv4 matching") {
  CHECK(in("192.0.2.0/24", "192.0.2.0"));
  CHECK(in("192.0.2.0/24", "192.0.2.255"));
  CHECK_FALSE(in("192.0.2.0/24", "192.0.3.0"));
  CHECK_FALSE(in("192.0.2.0/24", "192.0.1.255"));
  CHECK(in("10.1.2.3", "10.1.2.3"));
  CHECK_FALSE(in("10.1.2.3", "10.1.2.4"));
  // non-byte-aligned prefixes
  CHECK(in("10.0.0.0/9", "10.127.255.255"));
  CHECK_FALSE(in("10.0.0.0/9", "10.128.0.0"));
  CHECK(in("172.16.0.0/12", "172.31.1.1"));
  CHECK_FALSE(in("172.16.0.0/12", "172.32.0.0"));
  CHECK(in("192.0.2.128/25", "192.0.2.200"));
  CHECK_FALSE(in("192.0.2.128/25", "192.0.2.127"));
}

TEST_CASE("cidr: edge prefixes /0 /1 /31 /32 and host bits") {
  CHECK(in("0.0.0.0/0", "255.255.255.255"));
  CHECK(in("0.0.0.0/0", "0.0.0.0"));
  CHECK(in("128.0.0.0/1", "200.1.1.1"));
  CHECK_FALSE(in("128.0.0.0/1", "127.255.255.255"));
  CHECK(in("192.0.2.4/31", "192.0.2.5"));
  CHECK_FALSE(in("192.0.2.4/31", "192.0.2.6"));
  CHECK(in("192.0.2.4/32", "192.0.2.4"));
  CHECK_FALSE(in("192.0.2.4/32", "192.0.2.5"));
  // host bits beyond the prefix are ignored
  CHECK(in("192.0.2.77/24", "192.0.2.1"));
  CHECK(in("1.2.3.4/0", "9.9.9.9"));
  CHECK(in("2001:db8::1234/32", "2001:db8:ffff::1"));
}

TEST_CASE("cidr: IPv6 matching") {
  CHECK(in("2001:db8::/32", "2001:db8::1"));
  CHECK(in("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(in("2001:db8::/32", "2001:db9::1"));
  CHECK(in("::1", "::1"));
  CHECK(in("::1", "0:0:0:0:0:0:0:1"));
  CHECK_FALSE(in("::1", "::2"));
  CHECK(in("::/0", "2001:db8::1"));
  CHECK(in("fe80::/10", "febf::1"));
  CHECK_FALSE(in("fe80::/10", "fec0::1"));
  CHECK(in("2001:db8::/127", "2001:db8::1"));
  CHECK_FALSE(in("2001:db8::/127", "2001:db8::2"));
  CHECK(in("2001:db8::/128", "2001:db8::"));
  // zone ids do not take part in matching
  CHECK(in("fe80::/10", "fe80::1%eth0"));
}

TEST_CASE("cidr: IPv4 and IPv6 do not mix, except IPv4-mapped addresses") {
  CHECK_FALSE(in("2001:db8::/32", "192.0.2.1"));
  CHECK_FALSE(in("0.0.0.0/0", "2001:db8::1"));
  CHECK_FALSE(in("0.0.0.0/0", "::1"));
  // IPv4-mapped IPv6 address against IPv4 entries
  CHECK(in("192.0.2.0/24", "::ffff:192.0.2.1"));
  CHECK(in("192.0.2.0/24", "::FFFF:c000:0201"));
  CHECK_FALSE(in("192.0.2.0/24", "::ffff:192.0.3.1"));
  CHECK(in("127.0.0.1", "::ffff:127.0.0.1"));
  CHECK(in("0.0.0.0/0", "::ffff:1.2.3.4"));
  // IPv4-compatible / NAT64 forms are not IPv4-mapped
  CHECK_FALSE(in("192.0.2.0/24", "::192.0.2.1"));
  CHECK_FALSE(in("192.0.2.0/24", "64:ff9b::192.0.2.1"));
  // an IPv4-mapped IPv6 entry matches plain IPv4 addresses too
  CHECK(in("::ffff:192.0.2.0/120", "192.0.2.9"));
  CHECK_FALSE(in("::ffff:192.0.2.0/120", "192.0.3.9"));
  CHECK(in("::ffff:0:0/96", "8.8.8.8"));
  // ...so ::/0 covers IPv4 as well (an IPv4 peer is ::ffff:a.b.c.d on a dual-stack socket)
  CHECK(in("::/0", "192.0.2.1"));
}

TEST_CASE("cidr: non-addresses never match") {
  CHECK_FALSE(in("0.0.0.0/0", ""));
  CHECK_FALSE(in("0.0.0.0/0", "localhost"));
  CHECK_FALSE(in("0.0.0.0/0", "1.2.3"));
  CHECK_FALSE(in("::/0", "[::1]"));
  CHECK_FALSE(in("::/0", "::1 "));
}

TEST_CASE("cidr: CidrList") {
  CidrList l;
  CHECK(l.empty());
  CHECK_FALSE(l.contains("127.0.0.1"));
  CHECK(l.add("127.0.0.0/8"));
  CHECK(l.add("2001:db8::/32"));
  CHECK_FALSE(l.add("not-a-cidr"));
  CHECK_FALSE(l.add("10.0.0.0/40"));
  CHECK_FALSE(l.empty());
  CHECK(l.contains("127.1.2.3"));
  CHECK(l.contains("::ffff:127.0.0.1"));
  CHECK(l.contains("2001:db8::25"));
  CHECK_FALSE(l.contains("10.0.0.1"));
  CHECK_FALSE(l.contains("::1"));
  CHECK_FALSE(l.contains("garbage"));
}
