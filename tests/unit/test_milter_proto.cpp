// tests/unit/test_milter_proto.cpp: the milter plugin's protocol parts (plugins/milter/mt_proto.c):
// packets built and split, the negotiation reply with its macro lists, SMFIR_REPLYCODE texts.
#include <doctest/doctest.h>
#include <string>

#include "../../plugins/milter/mt_proto.h"

namespace {
std::string pkt(char cmd, const std::string &data) {
  uint32_t n = static_cast<uint32_t>(data.size() + 1);
  std::string s = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 8), static_cast<char>(n), cmd};
  return s + data;
}
std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
}  // namespace

TEST_CASE("milter_proto: a command packet has its length, command and fields") {
  mt_buf b = {};
  size_t start = 0;
  REQUIRE(mt_pkt_begin(&b, 'C', &start) == 0);
  REQUIRE(mt_pkt_str(&b, "[127.0.0.1]") == 0);
  REQUIRE(mt_pkt_bytes(&b, "4", 1) == 0);
  REQUIRE(mt_pkt_u16(&b, 25) == 0);
  REQUIRE(mt_pkt_str(&b, "127.0.0.1") == 0);
  REQUIRE(mt_pkt_end(&b, start) == 0);
  std::string want = pkt('C', std::string("[127.0.0.1]\0"
                                          "4\0\x19"
                                          "127.0.0.1\0",
                                          25));
  CHECK(std::string(b.data, b.len) == want);
  mt_buf_free(&b);
}

TEST_CASE("milter_proto: replies are split off the stream, partial ones wait, bad lengths fail") {
  std::string two = pkt('c', "") + pkt('y', std::string("550 5.7.1 no\0", 13));
  mt_packet p;
  long used = mt_packet_split(two.data(), two.size(), &p);
  REQUIRE(used == 5);
  CHECK(p.cmd == 'c');
  CHECK(p.len == 0);
  used = mt_packet_split(two.data() + 5, two.size() - 5, &p);
  REQUIRE(used == 18);
  CHECK(p.cmd == 'y');
  CHECK(mt_packet_split(two.data() + 5, 10, &p) == 0);  // not all there yet
  CHECK(mt_packet_split(two.data(), 3, &p) == 0);
  std::string zero(4, '\0');
  CHECK(mt_packet_split(zero.data(), zero.size(), &p) == -1);
  std::string huge = u32(MT_MAX_PACKET + 1) + "c";
  CHECK(mt_packet_split(huge.data(), huge.size(), &p) == -1);
}

TEST_CASE("milter_proto: the negotiation reply and its macro lists") {
  std::string data = u32(6) + u32(SMFIF_ADDHDRS | SMFIF_CHGBODY) + u32(SMFIP_NOHELO) +
                     u32(SMFIM_ENVFROM) + std::string("{auth_authen} i\0", 16) + u32(99) +
                     std::string("x\0", 2);
  mt_packet p{'O', data.data(), data.size()};
  mt_optneg o;
  const char *err = nullptr;
  REQUIRE(mt_optneg_parse(&p, &o, &err) == 0);
  CHECK(o.version == 6);
  CHECK(o.actions == (SMFIF_ADDHDRS | SMFIF_CHGBODY));
  CHECK(o.protocol == SMFIP_NOHELO);
  REQUIRE(o.symlist[SMFIM_ENVFROM] != nullptr);
  CHECK(std::string(o.symlist[SMFIM_ENVFROM]) == "{auth_authen} i");
  CHECK(o.symlist[SMFIM_CONNECT] == nullptr);
  CHECK(mt_symlist_has(o.symlist[SMFIM_ENVFROM], "{auth_authen}"));
  CHECK(mt_symlist_has(o.symlist[SMFIM_ENVFROM], "i"));
  CHECK(!mt_symlist_has(o.symlist[SMFIM_ENVFROM], "{auth_type}"));
  CHECK(mt_symlist_has("auth_type j", "{auth_type}"));
  mt_optneg_free(&o);
  std::string shortd = u32(6) + u32(0);
  mt_packet s{'O', shortd.data(), shortd.size()};
  CHECK(mt_optneg_parse(&s, &o, &err) == -1);
  std::string badlist = u32(6) + u32(0) + u32(0) + u32(1) + "no nul";
  mt_packet b{'O', badlist.data(), badlist.size()};
  CHECK(mt_optneg_parse(&b, &o, &err) == -1);
}

TEST_CASE("milter_proto: SMFIR_REPLYCODE texts, one line or several") {
  mt_reply r;
  const char *err = nullptr;
  std::string one("451 4.7.1 Please try again 100%% later\0", 39);
  REQUIRE(mt_reply_parse(one.data(), one.size(), &r, &err) == 0);
  CHECK(r.code == 451);
  CHECK(std::string(r.enhanced) == "4.7.1");
  REQUIRE(r.nlines == 1);
  CHECK(std::string(r.lines[0]) == "Please try again 100% later");
  mt_reply_free(&r);
  std::string multi = "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last";
  REQUIRE(mt_reply_parse(multi.data(), multi.size(), &r, &err) == 0);
  REQUIRE(r.nlines == 3);
  CHECK(std::string(r.lines[1]) == "second");
  mt_reply_free(&r);
  std::string noenh = "554 Go away";
  REQUIRE(mt_reply_parse(noenh.data(), noenh.size(), &r, &err) == 0);
  CHECK(std::string(r.enhanced).empty());
  CHECK(std::string(r.lines[0]) == "Go away");
  mt_reply_free(&r);
  for (std::string bad :
       {"250 2.0.0 fine", "55 short", "550-5.7.1 a\r\n451 4.7.1 b", "550 5.7.1 a\r\n550 5.7.1 b",
        "550-5.7.1 last is a continuation", "550 4.7.1 class differs", "abc", ""})
    CHECK_MESSAGE(mt_reply_parse(bad.data(), bad.size(), &r, &err) == -1, bad);
}
