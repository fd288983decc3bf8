// tests/unit/test_plugin_common.cpp: the plugins' shared C library (plugins/common): addresses,
// literals, networks and lists (ipnet), the small helpers (plugin_util), the state plugins'
// argument and init helpers (state_util), and the literal rules of mailbox/local_domains that now
// parse through ipnet. Built as its own binary (plugin_common_tests): the library must not need the
// server.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

extern "C" {
#include "../../plugins/common/ipnet.h"
#include "../../plugins/common/local_domains.h"
#include "../../plugins/common/mailbox.h"
#include "../../plugins/common/plugin_util.h"
#include "../../plugins/common/state_util.h"
}

namespace {

ipnet_addr addr(const char *text) {
  ipnet_addr a;
  REQUIRE_MESSAGE(ipnet_addr_parse(text, &a) == 0, text);
  return a;
}

// "family:bytes/len" of a parsed network, e.g. "4:10.0.0.0/8", for compact table checks.
std::string net_text(const char *text) {
  ipnet n;
  if (ipnet_parse(text, std::strlen(text), &n) != 0) return "error";
  char buf[64];
  if (n.net.family == 4) {
    std::snprintf(buf, sizeof buf, "4:%u.%u.%u.%u/%d", n.net.b[0], n.net.b[1], n.net.b[2],
                  n.net.b[3], n.len);
    for (int i = 4; i < 16; ++i)
      if (n.net.b[i]) return "unused bytes set";
    return buf;
  }
  std::string out = "6:";
  for (int i = 0; i < 16; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", n.net.b[i]);
    out += buf;
  }
  return out + "/" + std::to_string(n.len);
}

bool same(const ipnet_addr &a, const char *ip) {
  ipnet_addr b = addr(ip);
  return ipnet_addr_equal(&a, &b) == 1;
}

bool contains(const char *net, const char *ip) {
  ipnet n;
  REQUIRE(ipnet_parse(net, std::strlen(net), &n) == 0);
  ipnet_addr a = addr(ip);
  return ipnet_contains(&n, &a) == 1;
}

}  // namespace

TEST_CASE("ipnet_addr_parse: IPv4, IPv6, IPv4-mapped folded to IPv4, garbage refused") {
  ipnet_addr a = addr("192.0.2.1");
  CHECK(a.family == 4);
  CHECK(a.b[0] == 192);
  CHECK(a.b[3] == 1);
  for (int i = 4; i < 16; ++i) CHECK(a.b[i] == 0);
  a = addr("2001:db8::1");
  CHECK(a.family == 6);
  CHECK(a.b[0] == 0x20);
  CHECK(a.b[15] == 1);
  a = addr("::ffff:192.0.2.1");
  CHECK(a.family == 4);
  CHECK(same(a, "192.0.2.1"));
  ipnet_addr bad;
  for (const char *s : {"", "1.2.3", "1.2.3.4 ", " 1.2.3.4", "256.1.1.1", "mx.example.org",
                        "1.2.3.4/32", "[1.2.3.4]", "2001:db8::1::2"})
    CHECK_MESSAGE(ipnet_addr_parse(s, &bad) == -1, s);
  CHECK(ipnet_addr_parse(nullptr, &bad) == -1);
}

TEST_CASE("ipnet_literal_parse: [a.b.c.d] and [IPv6:...]; a mapped IPv6 literal stays IPv6") {
  ipnet_addr a;
  REQUIRE(ipnet_literal_parse("[192.0.2.1]", &a) == 0);
  CHECK(a.family == 4);
  CHECK(same(a, "192.0.2.1"));
  REQUIRE(ipnet_literal_parse("[IPv6:2001:db8::1]", &a) == 0);
  CHECK(same(a, "2001:db8::1"));
  REQUIRE(ipnet_literal_parse("[ipv6:::1]", &a) == 0);  // the tag in any case
  CHECK(a.family == 6);
  REQUIRE(ipnet_literal_parse("[IPv6:::ffff:127.0.0.1]", &a) == 0);
  CHECK(a.family == 6);
  for (const char *s : {"192.0.2.1", "[192.0.2.1", "[]", "[2001:db8::1]", "[IPv6:192.0.2.1]",
                        "[IPv6:]", "[ 192.0.2.1]", "[mx.example.org]"})
    CHECK_MESSAGE(ipnet_literal_parse(s, &a) == -1, s);
  CHECK(ipnet_literal_parse(nullptr, &a) == -1);
}

TEST_CASE("ipnet_addr_equal and ipnet_addr_hash: one address, any spelling") {
  ipnet_addr x = addr("2001:db8::1"), y = addr("2001:0DB8:0:0:0:0:0:1");
  CHECK(ipnet_addr_equal(&x, &y) == 1);
  CHECK(ipnet_addr_hash(&x) == ipnet_addr_hash(&y));
  ipnet_addr v4 = addr("10.0.0.1"), mapped = addr("::ffff:10.0.0.1");
  CHECK(ipnet_addr_equal(&v4, &mapped) == 1);
  CHECK(ipnet_addr_hash(&v4) == ipnet_addr_hash(&mapped));
  ipnet_addr other = addr("10.0.0.2"), v6 = addr("::a00:1");  // ::10.0.0.1: not the IPv4 one
  CHECK(ipnet_addr_equal(&v4, &other) == 0);
  CHECK(ipnet_addr_equal(&v4, &v6) == 0);
  CHECK(ipnet_addr_hash(&v4) != ipnet_addr_hash(&v6));
}

TEST_CASE("ipnet_reverse: the DNS query prefix, RFC 5782") {
  char out[80];
  ipnet_addr a = addr("192.0.2.99");
  CHECK(ipnet_reverse(&a, out, sizeof out) == 10);
  CHECK(std::string(out) == "99.2.0.192");
  a = addr("2001:db8:1:2:3:4:567:89ab");  // the example of RFC 5782 2.4
  CHECK(ipnet_reverse(&a, out, sizeof out) == 63);
  CHECK(std::string(out) == "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2");
  CHECK(ipnet_reverse(&a, out, 63) == -1);
  CHECK(ipnet_reverse(&a, out, 64) == 63);
  a = addr("255.255.255.255");
  CHECK(ipnet_reverse(&a, out, 15) == -1);
  CHECK(ipnet_reverse(&a, out, 16) == 15);
}

TEST_CASE("ipnet_parse: CIDR, bare addresses, qpsmtpd's prefix form, mapped networks") {
  const std::map<std::string, std::string> cases = {
      {"192.0.2.0/24", "4:192.0.2.0/24"},
      {"192.0.2.77/24", "4:192.0.2.0/24"},  // host bits cleared
      {"192.0.2.77", "4:192.0.2.77/32"},
      {"0.0.0.0/0", "4:0.0.0.0/0"},
      {"10.1.2.3/9", "4:10.0.0.0/9"},
      {"2001:db8::/32", "6:20010db8000000000000000000000000/32"},
      {"2001:db8::ff/120", "6:20010db8000000000000000000000000/120"},
      {"::1", "6:00000000000000000000000000000001/128"},
      {"10.", "4:10.0.0.0/8"},
      {"192.168.", "4:192.168.0.0/16"},
      {"172.16.33.", "4:172.16.33.0/24"},
      {"::ffff:10.0.0.0/104", "4:10.0.0.0/8"},
      {"::ffff:192.0.2.1", "4:192.0.2.1/32"},
      {"::ffff:0:0/96", "4:0.0.0.0/0"},
      {"::ffff:0:0/95", "6:00000000000000000000fffe00000000/95"},
      {"1.2.3.4.", "error"},
      {"10..", "error"},
      {".10.", "error"},
      {"256.", "error"},
      {"0001.", "error"},
      {".", "error"},
      {"10.0.0.0/33", "error"},
      {"::/129", "error"},
      {"10.0.0.0/0008", "error"},
      {"10.0.0.0/", "error"},
      {"10.0.0.0/8x", "error"},
      {"10.0.0.0/-1", "error"},
      {"10.0.0.0/8.", "error"},
      {"10.0.0.0 /8", "error"},
      {"10.1", "error"},
      {"mx.example.org", "error"},
      {"", "error"},
  };
  for (const auto &[text, want] : cases) CHECK_MESSAGE(net_text(text.c_str()) == want, text);
}

TEST_CASE("ipnet_parse reads only len bytes, at most 63") {
  ipnet n;
  const char *list = "10.0.0.0/8,192.0.2.1";
  REQUIRE(ipnet_parse(list, 10, &n) == 0);
  CHECK(n.len == 8);
  CHECK(ipnet_parse(list, 0, &n) == -1);
  CHECK(ipnet_parse(nullptr, 3, &n) == -1);
  std::string longest = "0000:0000:0000:0000:0000:ffff:192.168.100.200/128";  // 49 bytes
  CHECK(ipnet_parse(longest.c_str(), longest.size(), &n) == 0);
  std::string too_long(64, '1');
  CHECK(ipnet_parse(too_long.c_str(), too_long.size(), &n) == -1);
}

TEST_CASE("ipnet_contains: same family only; mapped peers match IPv4 networks") {
  CHECK(contains("10.0.0.0/8", "10.255.1.2"));
  CHECK_FALSE(contains("10.0.0.0/8", "11.0.0.1"));
  CHECK(contains("10.", "::ffff:10.9.9.9"));
  CHECK(contains("192.0.2.1", "192.0.2.1"));
  CHECK_FALSE(contains("192.0.2.1", "192.0.2.2"));
  CHECK(contains("0.0.0.0/0", "203.0.113.5"));
  CHECK_FALSE(contains("0.0.0.0/0", "2001:db8::1"));
  CHECK_FALSE(contains("::/0", "203.0.113.5"));
  CHECK(contains("::/0", "2001:db8::1"));
  CHECK(contains("2001:db8::/32", "2001:db8:ffff::1"));
  CHECK_FALSE(contains("2001:db8::/33", "2001:db8:8000::1"));
  CHECK(contains("::ffff:10.0.0.0/104", "10.1.2.3"));
}

TEST_CASE("ipnet_list: add, first match, free") {
  ipnet_list l{};
  for (const char *s : {"10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"}) {
    ipnet n;
    REQUIRE(ipnet_parse(s, std::strlen(s), &n) == 0);
    REQUIRE(ipnet_list_add(&l, &n) == 0);
  }
  for (int i = 0; i < 20; ++i) {  // past the first growth
    ipnet n;
    REQUIRE(ipnet_parse("192.0.2.1", 9, &n) == 0);
    REQUIRE(ipnet_list_add(&l, &n) == 0);
  }
  CHECK(l.count == 23);
  ipnet_addr a = addr("10.1.2.3"), b = addr("2001:db8::5"), c = addr("192.0.2.1"),
             d = addr("172.16.0.1");
  CHECK(ipnet_list_find(&l, &a) == 0);
  CHECK(ipnet_list_find(&l, &b) == 2);
  CHECK(ipnet_list_find(&l, &c) == 3);
  CHECK(ipnet_list_find(&l, &d) == -1);
  ipnet_list_free(&l);
  CHECK(l.items == nullptr);
  CHECK(l.count == 0);
  CHECK(ipnet_list_find(&l, &a) == -1);
}

TEST_CASE("mb_literal_is_ip and ld_match compare literals as addresses") {
  CHECK(mb_literal_is_ip("[127.0.0.1]", "127.0.0.1") == 1);
  CHECK(mb_literal_is_ip("[127.0.0.1]", "::ffff:127.0.0.1") == 1);  // dual-stack peer
  CHECK(mb_literal_is_ip("[IPv6:::1]", "::1") == 1);
  CHECK(mb_literal_is_ip("[IPv6:0:0:0:0:0:0:0:1]", "::1") == 1);
  CHECK(mb_literal_is_ip("[IPv6:::ffff:127.0.0.1]", "127.0.0.1") == 0);
  CHECK(mb_literal_is_ip("[127.0.0.2]", "127.0.0.1") == 0);
  CHECK(mb_literal_is_ip("[127.0.0.1]", "localhost") == 0);
  char entry[] = "[ipv6:0:0::1]";
  char *hosts[] = {entry};
  ld_set s{};
  s.hosts = hosts;
  s.count = 1;
  CHECK(ld_match(&s, "[IPv6:::1]", "mx.example.org", nullptr) == std::string(entry));
  CHECK(ld_match(&s, "[IPv6:::2]", "mx.example.org", nullptr) == nullptr);
  CHECK(ld_match(&s, "[192.0.2.1]", "mx.example.org", "192.0.2.1") ==
        std::string("own address literal"));
}

TEST_CASE("pu_truthy: Perl truth of a note") {
  CHECK(pu_truthy(nullptr) == 0);
  CHECK(pu_truthy("") == 0);
  CHECK(pu_truthy("0") == 0);
  CHECK(pu_truthy("1") == 1);
  CHECK(pu_truthy("00") == 1);
  CHECK(pu_truthy("no") == 1);
}

TEST_CASE("pu_parse_seconds: digits with one optional dot, at most 32 bytes") {
  CHECK(pu_parse_seconds("5") == 5.0);
  CHECK(pu_parse_seconds("0.5") == 0.5);
  CHECK(pu_parse_seconds(".25") == 0.25);
  CHECK(pu_parse_seconds("1.") == 1.0);
  CHECK(pu_parse_seconds("0") == 0.0);
  CHECK(pu_parse_seconds(std::string(32, '1').c_str()) > 0);
  for (const char *s :
       {"", ".", "1..2", "1.2.3", "-1", "+1", " 1", "1 ", "1e3", "0x10", "inf", "nan", "1s"})
    CHECK_MESSAGE(pu_parse_seconds(s) == -1, s);
  CHECK(pu_parse_seconds(std::string(33, '1').c_str()) == -1);
  CHECK(pu_parse_seconds(nullptr) == -1);
}

TEST_CASE("pu_reject_type_parse and pu_reject_type_name") {
  const std::map<std::string, pu_reject_type> names = {
      {"perm", PU_RT_PERM},
      {"hard", PU_RT_PERM},
      {"PERM", PU_RT_PERM},
      {"temp", PU_RT_TEMP},
      {"Soft", PU_RT_TEMP},
      {"disconnect", PU_RT_DISCONNECT},
      {"temp_disconnect", PU_RT_TEMP_DISCONNECT},
  };
  for (const auto &[text, want] : names) {
    pu_reject_type t = PU_RT_TEMP_DISCONNECT;
    if (want == PU_RT_TEMP_DISCONNECT) t = PU_RT_PERM;
    CHECK_MESSAGE(pu_reject_type_parse(text.c_str(), &t) == 0, text);
    CHECK(t == want);
  }
  pu_reject_type t = PU_RT_DISCONNECT;
  for (const char *s : {"", "permanent", "temp-disconnect", "deny"}) {
    CHECK_MESSAGE(pu_reject_type_parse(s, &t) == -1, s);
    CHECK(t == PU_RT_DISCONNECT);
  }
  CHECK(std::string(pu_reject_type_name(PU_RT_PERM)) == "perm");
  CHECK(std::string(pu_reject_type_name(PU_RT_TEMP)) == "temp");
  CHECK(std::string(pu_reject_type_name(PU_RT_DISCONNECT)) == "disconnect");
  CHECK(std::string(pu_reject_type_name(PU_RT_TEMP_DISCONNECT)) == "temp_disconnect");
}

namespace {

// A stand-in for the server's side of pu_immune_reason: one session's flags and notes.
struct FakeSession {
  int immune = 0, relay = 0;
  std::map<std::string, std::string> conn, txn;
};
FakeSession *g_session;

int fake_is_immune(const uvs_call *) {
  return g_session->immune;
}
int fake_relay_client(const uvs_call *) {
  return g_session->relay;
}
const char *fake_note_get(const uvs_call *, int scope, const char *key) {
  auto &notes = scope == UVS_NOTE_CONNECTION ? g_session->conn : g_session->txn;
  auto it = notes.find(key);
  return it == notes.end() ? nullptr : it->second.c_str();
}

}  // namespace

TEST_CASE("pu_immune_reason: why qpsmtpd's is_immune holds, in its order") {
  uvs_api api{};
  api.is_immune = fake_is_immune;
  api.relay_client = fake_relay_client;
  api.note_get = fake_note_get;
  FakeSession s;
  g_session = &s;
  const uvs_call *call = nullptr;
  s.relay = 1;
  s.conn["whitelisthost"] = "1";
  CHECK(pu_immune_reason(&api, call) == nullptr);  // the server says not immune: that wins
  s.immune = 1;
  CHECK(std::string(pu_immune_reason(&api, call)) == "relay client");
  s.relay = 0;
  CHECK(std::string(pu_immune_reason(&api, call)) == "whitelisted host");
  s.conn["whitelisthost"] = "0";
  s.txn["whitelistsender"] = "yes";
  CHECK(std::string(pu_immune_reason(&api, call)) == "whitelisted sender");
  s.txn["whitelistsender"] = "";
  CHECK(std::string(pu_immune_reason(&api, call)) == "immune");
  g_session = nullptr;
}

TEST_CASE("pu_now_ms: monotonic milliseconds") {
  uint64_t a = pu_now_ms();
  uint64_t b = pu_now_ms();
  CHECK(a > 0);
  CHECK(b >= a);
  CHECK(b - a < 1000);
}

namespace {

// A server for the state helpers: an argument count and the last error message.
int g_argc = 0;
std::string g_error;
int g_parse_calls = 0;

int fake_argc(const uvs_plugin *) {
  return g_argc;
}
int fake_set_errorf(uvs_plugin *, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_error = buf;
  return 0;
}
int parse_ok(void *state, uvs_plugin *) {
  ++g_parse_calls;
  static_cast<int *>(state)[1] = 7;
  return 0;
}
int parse_bad(void *, uvs_plugin *) {
  ++g_parse_calls;
  return -EINVAL;
}

uvs_api state_api() {
  uvs_api api{};
  api.plugin_argc = fake_argc;
  api.set_errorf = fake_set_errorf;
  return api;
}

}  // namespace

TEST_CASE("su_args_even: key value pairs, or the odd-count error with the plugin's example") {
  uvs_api api = state_api();
  g_error.clear();
  g_argc = 4;
  CHECK(su_args_even(&api, nullptr, "delay 300") == 0);
  CHECK(g_error.empty());
  g_argc = 3;
  CHECK(su_args_even(&api, nullptr, "delay 300") == -EINVAL);
  CHECK(g_error == "odd number of arguments (3): arguments are key value pairs, e.g. 'delay 300'");
}

TEST_CASE("su_duration_arg: seconds or days, zero only when allowed, rounded to the ms") {
  uvs_api api = state_api();
  uint64_t ms = 99;
  CHECK(su_duration_arg(&api, nullptr, "delay", "0", 0, 1, 2592000.0, &ms) == 0);
  CHECK(ms == 0);
  CHECK(su_duration_arg(&api, nullptr, "window", "1.5", 0, 0, 2592000.0, &ms) == 0);
  CHECK(ms == 1500);
  CHECK(su_duration_arg(&api, nullptr, "history-days", "0.5", 1, 0, 3650, &ms) == 0);
  CHECK(ms == 43200000);
  ms = 5;
  CHECK(su_duration_arg(&api, nullptr, "window", "0", 0, 0, 2592000.0, &ms) == -EINVAL);
  CHECK(ms == 5);
  CHECK(g_error == "bad value '0' for 'window': expected seconds from more than 0 to 2.592e+06");
  CHECK(su_duration_arg(&api, nullptr, "delay", "x", 0, 1, 2592000.0, &ms) == -EINVAL);
  CHECK(g_error == "bad value 'x' for 'delay': expected seconds from 0 to 2.592e+06");
  CHECK(su_duration_arg(&api, nullptr, "whitelist-days", "3651", 1, 0, 3650, &ms) == -EINVAL);
  CHECK(g_error == "bad value '3651' for 'whitelist-days': expected days from more than 0 to 3650");
}

TEST_CASE("su_fail_arg: open or closed, any case; anything else is an error") {
  uvs_api api = state_api();
  int closed = -1;
  CHECK(su_fail_arg(&api, nullptr, "Closed", &closed) == 0);
  CHECK(closed == 1);
  CHECK(su_fail_arg(&api, nullptr, "open", &closed) == 0);
  CHECK(closed == 0);
  CHECK(su_fail_arg(&api, nullptr, "maybe", &closed) == -EINVAL);
  CHECK(closed == 0);
  CHECK(g_error == "bad value 'maybe' for 'state-fail': expected open or closed");
}

TEST_CASE("su_state_new: ABI check, zeroed state, the plugin's parser, nothing kept on failure") {
  uvs_api api = state_api();
  int rc = 1;
  g_parse_calls = 0;
  CHECK(su_state_new(&api, nullptr, 0, "kv_incr", 16, parse_ok, &rc) == nullptr);
  CHECK(rc == -ENOSYS);
  CHECK(g_error == "needs uvsmtpd plugin ABI 1.5 (kv_incr)");
  CHECK(g_parse_calls == 0);
  CHECK(su_state_new(&api, nullptr, 1, "kv_get", 16, parse_bad, &rc) == nullptr);
  CHECK(rc == -EINVAL);
  CHECK(g_parse_calls == 1);
  int *st =
      static_cast<int *>(su_state_new(&api, nullptr, 1, "kv_get", 4 * sizeof(int), parse_ok, &rc));
  REQUIRE(st != nullptr);
  CHECK(rc == 0);
  CHECK(st[0] == 0);
  CHECK(st[1] == 7);
  CHECK(st[3] == 0);
  std::free(st);
}
