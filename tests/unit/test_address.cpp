// tests/unit/test_address.cpp: unit tests for smtp/address (MAIL/RCPT paths and ESMTP parameters).
#include <doctest/doctest.h>

#include <string>

#include "smtp/address.hpp"

using uvs::smtp::find_param;
using uvs::smtp::parse_mail_arg;
using uvs::smtp::parse_rcpt_arg;
using uvs::smtp::PathParse;

namespace {

// A domain of exactly n octets made of 63-octet labels ("aaa...a.bbb...b...").
std::string domain_of(size_t n) {
  std::string d;
  char fill = 'a';
  while (d.size() < n) {
    if (!d.empty()) d.push_back('.');
    const size_t room = n - d.size();
    size_t len = room < 63 ? room : 63;
    if (room - len == 1) --len;  // never leave room for a dot alone
    d.append(len, fill);
    fill = static_cast<char>(fill == 'z' ? 'a' : fill + 1);
  }
  return d;
}

void check_failure(const PathParse &r, int code, const std::string &enhanced,
                   const std::string &message) {
  CHECK_FALSE(r.ok);
  CHECK(r.code == code);
  CHECK(r.enhanced == enhanced);
  CHECK(r.message == message);
  CHECK(r.message.find_first_of("\r\n") == std::string::npos);
}

void check_mail_syntax(const std::string &arg) {
  INFO("arg: " << arg);
  check_failure(parse_mail_arg(arg), 501, "5.1.7", "Bad sender address syntax");
}

void check_rcpt_syntax(const std::string &arg) {
  INFO("arg: " << arg);
  check_failure(parse_rcpt_arg(arg), 501, "5.1.3", "Bad recipient address syntax");
}

void check_mail_usage(const std::string &arg) {
  INFO("arg: " << arg);
  check_failure(parse_mail_arg(arg), 501, "5.5.4", "Syntax: MAIL FROM:<address>");
}

void check_rcpt_usage(const std::string &arg) {
  INFO("arg: " << arg);
  check_failure(parse_rcpt_arg(arg), 501, "5.5.4", "Syntax: RCPT TO:<address>");
}

}  // namespace

TEST_CASE("address: plain sender") {
  const auto r = parse_mail_arg("FROM:<User.Name@Example.COM>");
  REQUIRE(r.ok);
  CHECK_FALSE(r.path.null);
  CHECK(r.path.address == "User.Name@Example.COM");
  CHECK(r.path.local == "User.Name");
  CHECK(r.path.domain == "Example.COM");
  CHECK(r.path.route.empty());
  CHECK_FALSE(r.path.has_8bit);
  CHECK(r.params.empty());
  CHECK(r.code == 0);
}

TEST_CASE("address: plain recipient") {
  const auto r = parse_rcpt_arg("TO:<joe@d.example>");
  REQUIRE(r.ok);
  CHECK(r.path.address == "joe@d.example");
  CHECK(r.path.local == "joe");
  CHECK(r.path.domain == "d.example");
}

TEST_CASE("address: FROM: and TO: are case-insensitive") {
  CHECK(parse_mail_arg("from:<a@b.example>").ok);
  CHECK(parse_mail_arg("FrOm:<a@b.example>").ok);
  CHECK(parse_rcpt_arg("to:<a@b.example>").ok);
  CHECK(parse_rcpt_arg("tO:<a@b.example>").ok);
}

TEST_CASE("address: null sender") {
  const auto r = parse_mail_arg("FROM:<>");
  REQUIRE(r.ok);
  CHECK(r.path.null);
  CHECK(r.path.address.empty());
  CHECK(r.path.local.empty());
  CHECK(r.path.domain.empty());

  const auto with_params = parse_mail_arg("FROM:<> SIZE=100");
  REQUIRE(with_params.ok);
  CHECK(with_params.path.null);
  REQUIRE(with_params.params.size() == 1);
  CHECK(with_params.params[0].key == "SIZE");

  const auto spaced = parse_mail_arg("FROM: <>");
  REQUIRE(spaced.ok);
  CHECK(spaced.path.null);
}

TEST_CASE("address: null recipient is refused") {
  check_failure(parse_rcpt_arg("TO:<>"), 501, "5.1.3", "Bad recipient address syntax");
  check_failure(parse_rcpt_arg("TO: <> NOTIFY=NEVER"), 501, "5.1.3",
                "Bad recipient address syntax");
}

TEST_CASE("address: postmaster without domain") {
  for (const char *pm : {"postmaster", "Postmaster", "POSTMASTER", "PostMaster"}) {
    const auto r = parse_rcpt_arg(std::string("TO:<") + pm + ">");
    INFO(pm);
    REQUIRE(r.ok);
    CHECK(r.path.address == pm);
    CHECK(r.path.local == pm);
    CHECK(r.path.domain.empty());
    CHECK_FALSE(r.path.null);
  }
  const auto with_param = parse_rcpt_arg("TO: <postmaster> NOTIFY=NEVER");
  REQUIRE(with_param.ok);
  CHECK(with_param.path.address == "postmaster");
  CHECK(find_param(with_param.params, "NOTIFY") != nullptr);
}

TEST_CASE("address: postmaster with domain is an ordinary address") {
  const auto r = parse_rcpt_arg("TO:<Postmaster@d.example>");
  REQUIRE(r.ok);
  CHECK(r.path.local == "Postmaster");
  CHECK(r.path.domain == "d.example");
}

TEST_CASE("address: bare postmaster is only special for RCPT and only unquoted, unrouted") {
  check_mail_syntax("FROM:<postmaster>");
  check_rcpt_syntax("TO:<\"postmaster\">");
  check_rcpt_syntax("TO:<@a.example:postmaster>");
  check_rcpt_syntax("TO:<postmasters>");
  check_rcpt_syntax("TO:<postmaster.>");
}

TEST_CASE("address: address without @ is refused") {
  check_mail_syntax("FROM:<user>");
  check_rcpt_syntax("TO:<user>");
  check_rcpt_syntax("TO:<user@>");
  check_rcpt_syntax("TO:<@d.example>");
  check_mail_syntax("FROM:<user@>");
}

TEST_CASE("address: one optional space after the colon") {
  const auto m = parse_mail_arg("FROM: <a@b.example>");
  REQUIRE(m.ok);
  CHECK(m.path.address == "a@b.example");
  const auto r = parse_rcpt_arg("TO: <a@b.example> NOTIFY=NEVER");
  REQUIRE(r.ok);
  CHECK(r.path.address == "a@b.example");
  CHECK(r.params.size() == 1);

  check_mail_usage("FROM:  <a@b.example>");
  check_rcpt_usage("TO:  <a@b.example>");
  check_mail_usage("FROM:\t<a@b.example>");
}

TEST_CASE("address: missing or misplaced FROM:/TO:") {
  check_mail_usage("");
  check_mail_usage("FROM");
  check_mail_usage("FROM <a@b.example>");
  check_mail_usage("FROM :<a@b.example>");
  check_mail_usage("TO:<a@b.example>");
  check_mail_usage("FROMX:<a@b.example>");
  check_rcpt_usage("");
  check_rcpt_usage("TO <a@b.example>");
  check_rcpt_usage("FROM:<a@b.example>");
  check_rcpt_usage(" TO:<a@b.example>");
}

TEST_CASE("address: path must be in angle brackets") {
  check_mail_usage("FROM:a@b.example");
  check_mail_usage("FROM: a@b.example");
  check_mail_usage("FROM:");
  check_mail_usage("FROM: ");
  check_mail_usage("FROM:<a@b.example");
  check_mail_usage("FROM:a@b.example>");
  check_rcpt_usage("TO:a@b.example");
  check_rcpt_usage("TO:<a@b.example");
  check_rcpt_usage("TO:postmaster");
}

TEST_CASE("address: trailing garbage after '>'") {
  check_mail_usage("FROM:<a@b.example>x");
  check_mail_usage("FROM:<a@b.example>>");
  check_mail_usage("FROM:<a@b.example>\tSIZE=1");
  check_rcpt_usage("TO:<a@b.example>SIZE=1");
  check_rcpt_usage("TO:<a@b.example><c@d.example>");
}

TEST_CASE("address: trailing spaces after '>' are tolerated") {
  const auto r = parse_mail_arg("FROM:<a@b.example>   ");
  REQUIRE(r.ok);
  CHECK(r.params.empty());
  CHECK(parse_rcpt_arg("TO:<a@b.example> ").ok);
}

TEST_CASE("address: source routes are stripped and kept") {
  const auto one = parse_rcpt_arg("TO:<@relay.example:user@d.example>");
  REQUIRE(one.ok);
  CHECK(one.path.address == "user@d.example");
  CHECK(one.path.local == "user");
  CHECK(one.path.domain == "d.example");
  CHECK(one.path.route == "@relay.example");

  const auto two = parse_mail_arg("FROM:<@a.example,@b.example:user@c.example>");
  REQUIRE(two.ok);
  CHECK(two.path.address == "user@c.example");
  CHECK(two.path.route == "@a.example,@b.example");

  const auto literal = parse_rcpt_arg("TO:<@[192.0.2.1]:relaytest@d.example>");
  REQUIRE(literal.ok);
  CHECK(literal.path.route == "@[192.0.2.1]");
  CHECK(literal.path.address == "relaytest@d.example");
}

TEST_CASE("address: malformed source routes") {
  check_rcpt_syntax("TO:<@:user@d.example>");
  check_rcpt_syntax("TO:<@a.example user@d.example>");
  check_rcpt_syntax("TO:<@a.example,user@d.example>");
  check_rcpt_syntax("TO:<@a.example,:user@d.example>");
  check_rcpt_syntax("TO:<@a.example,,@b.example:user@d.example>");
  check_rcpt_syntax("TO:<@a.example:>");
  check_rcpt_syntax("TO:<@a..example:user@d.example>");
  check_rcpt_syntax("TO:<a.example:user@d.example>");
}

TEST_CASE("address: dot-string local parts") {
  const auto r = parse_rcpt_arg("TO:<a.b!c#d$e%f&g'h*i+j-k/l=m?n^o_p`q{r|s}t~u@d.example>");
  REQUIRE(r.ok);
  CHECK(r.path.local == "a.b!c#d$e%f&g'h*i+j-k/l=m?n^o_p`q{r|s}t~u");

  const auto bang = parse_rcpt_arg("TO:<elsewhere!victim@d.example>");
  REQUIRE(bang.ok);
  CHECK(bang.path.local == "elsewhere!victim");
  const auto pct = parse_rcpt_arg("TO:<victim%elsewhere@d.example>");
  REQUIRE(pct.ok);
  CHECK(pct.path.local == "victim%elsewhere");
}

TEST_CASE("address: bad dot-string local parts") {
  check_rcpt_syntax("TO:<.a@d.example>");
  check_rcpt_syntax("TO:<a.@d.example>");
  check_rcpt_syntax("TO:<a..b@d.example>");
  check_rcpt_syntax("TO:<a b@d.example>");
  check_rcpt_syntax("TO:<a,b@d.example>");
  check_rcpt_syntax("TO:<a(b)@d.example>");
  check_rcpt_syntax("TO:<a\\b@d.example>");
  check_rcpt_syntax("TO:<a\"b\"@d.example>");
  check_rcpt_syntax("TO:<a:b@d.example>");
  check_rcpt_syntax("TO:<a;b@d.example>");
  check_rcpt_syntax("TO:<a\tb@d.example>");
  check_rcpt_syntax("TO:<a\001b@d.example>");
  check_rcpt_syntax("TO:<a\177b@d.example>");
  check_rcpt_syntax("TO:<a@b@d.example>");
  check_mail_syntax("FROM:< a@b.example>");
  check_mail_syntax("FROM:<a@b.example >");
}

TEST_CASE("address: quoted local parts with @ % ! inside") {
  const auto at = parse_rcpt_arg("TO:<\"victim@elsewhere\"@d.example>");
  REQUIRE(at.ok);
  CHECK(at.path.local == "\"victim@elsewhere\"");
  CHECK(at.path.domain == "d.example");
  CHECK(at.path.address == "\"victim@elsewhere\"@d.example");

  const auto pct = parse_rcpt_arg("TO:<\"relaytest%d\"@d.example>");
  REQUIRE(pct.ok);
  CHECK(pct.path.local == "\"relaytest%d\"");

  const auto bang = parse_rcpt_arg("TO:<\"d!relaytest\"@[192.0.2.1]>");
  REQUIRE(bang.ok);
  CHECK(bang.path.local == "\"d!relaytest\"");
  CHECK(bang.path.domain == "[192.0.2.1]");
}

TEST_CASE("address: quoted local parts with spaces, brackets and escapes") {
  const auto sp = parse_mail_arg("FROM:<\"John Doe\"@b.example>");
  REQUIRE(sp.ok);
  CHECK(sp.path.local == "\"John Doe\"");

  const auto gt = parse_rcpt_arg("TO:<\"a>b<c\"@d.example> NOTIFY=NEVER");
  REQUIRE(gt.ok);
  CHECK(gt.path.local == "\"a>b<c\"");
  REQUIRE(gt.params.size() == 1);
  CHECK(gt.params[0].key == "NOTIFY");

  const auto esc = parse_rcpt_arg("TO:<\"a\\\"b\\\\c\"@d.example>");
  REQUIRE(esc.ok);
  CHECK(esc.path.local == "\"a\\\"b\\\\c\"");

  const auto esc_gt = parse_rcpt_arg("TO:<\"a\\>\"@d.example>");
  REQUIRE(esc_gt.ok);
  CHECK(esc_gt.path.local == "\"a\\>\"");

  const auto empty = parse_rcpt_arg("TO:<\"\"@d.example>");
  REQUIRE(empty.ok);
  CHECK(empty.path.local == "\"\"");

  const auto dots = parse_rcpt_arg("TO:<\"..a..\"@d.example>");
  REQUIRE(dots.ok);
  CHECK(dots.path.local == "\"..a..\"");
}

TEST_CASE("address: bad quoted local parts") {
  check_rcpt_usage("TO:<\"abc@d.example>");  // unterminated quote hides the '>'
  check_rcpt_syntax("TO:<\"a\"b@d.example>");
  check_rcpt_syntax("TO:<\"a\".b@d.example>");
  check_rcpt_syntax("TO:<\"a\"\"b\"@d.example>");
  check_rcpt_syntax("TO:<\"a\tb\"@d.example>");
  check_rcpt_syntax("TO:<\"a\001b\"@d.example>");
  check_rcpt_syntax("TO:<\"a\\\tb\"@d.example>");
  check_rcpt_syntax("TO:<\"a\x7F\"@d.example>");
  check_rcpt_syntax("TO:<\"a\">");
}

TEST_CASE("address: domain labels") {
  const auto r = parse_rcpt_arg("TO:<a@x-1.Sub-Domain.example>");
  REQUIRE(r.ok);
  CHECK(r.path.domain == "x-1.Sub-Domain.example");
  CHECK(parse_rcpt_arg("TO:<a@localhost>").ok);
  CHECK(parse_rcpt_arg("TO:<a@1.2.3.4>").ok);  // all-digit labels are syntactically labels
  CHECK(parse_rcpt_arg("TO:<a@xn--caf-dma.example>").ok);

  check_rcpt_syntax("TO:<a@-d.example>");
  check_rcpt_syntax("TO:<a@d-.example>");
  check_rcpt_syntax("TO:<a@d.example->");
  check_rcpt_syntax("TO:<a@d..example>");
  check_rcpt_syntax("TO:<a@.d.example>");
  check_rcpt_syntax("TO:<a@d.example.>");
  check_rcpt_syntax("TO:<a@d_e.example>");
  check_rcpt_syntax("TO:<a@d e.example>");
  check_rcpt_syntax("TO:<a@d.example:25>");
  check_mail_syntax("FROM:<a@b.exa!mple>");
}

TEST_CASE("address: label length boundary 63/64") {
  const std::string l63(63, 'x');
  const std::string l64(64, 'x');
  CHECK(parse_rcpt_arg("TO:<a@" + l63 + ".example>").ok);
  check_rcpt_syntax("TO:<a@" + l64 + ".example>");
  check_mail_syntax("FROM:<a@b." + l64 + ">");
}

TEST_CASE("address: IPv4 address literals") {
  const auto r = parse_rcpt_arg("TO:<a@[192.0.2.1]>");
  REQUIRE(r.ok);
  CHECK(r.path.domain == "[192.0.2.1]");
  CHECK(r.path.address == "a@[192.0.2.1]");
  CHECK(parse_rcpt_arg("TO:<a@[0.0.0.0]>").ok);
  CHECK(parse_rcpt_arg("TO:<a@[255.255.255.255]>").ok);

  check_rcpt_syntax("TO:<a@[256.0.0.1]>");
  check_rcpt_syntax("TO:<a@[1.2.3]>");
  check_rcpt_syntax("TO:<a@[1.2.3.4.5]>");
  check_rcpt_syntax("TO:<a@[1.2.3.]>");
  check_rcpt_syntax("TO:<a@[.1.2.3]>");
  check_rcpt_syntax("TO:<a@[1..2.3]>");
  check_rcpt_syntax("TO:<a@[1.2.3.0004]>");
  check_rcpt_syntax("TO:<a@[1.2.3.a]>");
  check_rcpt_syntax("TO:<a@[]>");
  check_rcpt_syntax("TO:<a@[1.2.3.4>");
  check_rcpt_syntax("TO:<a@[1.2.3.4]x>");
  check_rcpt_syntax("TO:<a@[1.2.3.4].example>");
  check_rcpt_syntax("TO:<a@[ 1.2.3.4]>");
  check_rcpt_syntax("TO:<a@[host.example]>");
}

TEST_CASE("address: IPv6 address literals") {
  const auto r = parse_rcpt_arg("TO:<a@[IPv6:2001:db8::1]>");
  REQUIRE(r.ok);
  CHECK(r.path.domain == "[IPv6:2001:db8::1]");
  CHECK(parse_rcpt_arg("TO:<a@[ipv6:::1]>").ok);
  CHECK(parse_rcpt_arg("TO:<a@[IPv6:::ffff:192.0.2.1]>").ok);
  CHECK(parse_mail_arg("FROM:<@[IPv6:2001:db8::2]:a@b.example>").ok);

  check_rcpt_syntax("TO:<a@[IPv6:]>");
  check_rcpt_syntax("TO:<a@[IPv6:2001:db8::g]>");
  check_rcpt_syntax("TO:<a@[IPv6 ::1]>");
  check_rcpt_syntax("TO:<a@[2001:db8::1]>");
  check_rcpt_syntax("TO:<a@[x-tag:foo]>");
}

TEST_CASE("address: local-part length boundary 64/65") {
  const std::string l64(64, 'l');
  const std::string l65(65, 'l');
  const auto ok = parse_rcpt_arg("TO:<" + l64 + "@d.example>");
  REQUIRE(ok.ok);
  CHECK(ok.path.local == l64);
  check_failure(parse_rcpt_arg("TO:<" + l65 + "@d.example>"), 553, "5.1.3", "Local part too long");
  check_failure(parse_mail_arg("FROM:<" + l65 + "@d.example>"), 553, "5.1.3",
                "Local part too long");

  const std::string q64 = "\"" + std::string(62, 'q') + "\"";  // quotes count
  CHECK(parse_rcpt_arg("TO:<" + q64 + "@d.example>").ok);
  check_failure(parse_rcpt_arg("TO:<\"" + std::string(63, 'q') + "\"@d.example>"), 553, "5.1.3",
                "Local part too long");
}

TEST_CASE("address: domain length boundary 255/256") {
  const std::string d255 = domain_of(255);
  const std::string d256 = domain_of(256);
  REQUIRE(d255.size() == 255);
  REQUIRE(d256.size() == 256);
  // A 255-octet domain is within the domain limit but cannot fit in a 256-octet path.
  check_failure(parse_rcpt_arg("TO:<a@" + d255 + ">"), 501, "5.1.7", "Path too long");
  check_failure(parse_rcpt_arg("TO:<a@" + d256 + ">"), 501, "5.1.2", "Domain name too long");
  check_failure(parse_mail_arg("FROM:<a@" + d256 + ">"), 501, "5.1.2", "Domain name too long");
}

TEST_CASE("address: path length boundary 256 including brackets") {
  // "<" + 64 + "@" + domain + ">" == 256  ->  domain 189
  const std::string local(64, 'l');
  const auto at_limit = "<" + local + "@" + domain_of(189) + ">";
  REQUIRE(at_limit.size() == 256);
  const auto ok = parse_rcpt_arg("TO:" + at_limit);
  REQUIRE(ok.ok);
  CHECK(ok.path.domain.size() == 189);

  const auto over = "<" + local + "@" + domain_of(190) + ">";
  REQUIRE(over.size() == 257);
  check_failure(parse_rcpt_arg("TO:" + over), 501, "5.1.7", "Path too long");
  check_failure(parse_mail_arg("FROM:" + over), 501, "5.1.7", "Path too long");

  // The source route counts towards the path length.
  const auto routed = "<@r.example:" + local + "@" + domain_of(180) + ">";
  REQUIRE(routed.size() == 258);
  check_failure(parse_rcpt_arg("TO:" + routed), 501, "5.1.7", "Path too long");
}

TEST_CASE("address: 8-bit detection") {
  const auto plain = parse_rcpt_arg("TO:<a@d.example>");
  REQUIRE(plain.ok);
  CHECK_FALSE(plain.path.has_8bit);

  const auto local = parse_rcpt_arg("TO:<j\xC3\xBCrgen@d.example>");
  REQUIRE(local.ok);
  CHECK(local.path.has_8bit);
  CHECK(local.path.local == "j\xC3\xBCrgen");

  const auto domain = parse_mail_arg("FROM:<a@b\303\274cher.example>");  // octal: b\u00FCcher
  REQUIRE(domain.ok);
  CHECK(domain.path.has_8bit);
  CHECK(domain.path.domain == "b\303\274cher.example");

  const auto cjk = parse_rcpt_arg("TO:<\xE7\x94\xA8\xE6\x88\xB7@\xE4\xBE\x8B\xE5\xAD\x90.cn>");
  REQUIRE(cjk.ok);
  CHECK(cjk.path.has_8bit);

  const auto quoted = parse_rcpt_arg("TO:<\"caf\xC3\xA9 bar\"@d.example>");
  REQUIRE(quoted.ok);
  CHECK(quoted.path.has_8bit);

  const auto param_only = parse_mail_arg("FROM:<a@b.example> X-NOTE=caf\xC3\xA9");
  REQUIRE(param_only.ok);
  CHECK_FALSE(param_only.path.has_8bit);
}

TEST_CASE("address: 8-bit label is not held to 63 octets but the domain limit applies") {
  std::string label;
  for (int i = 0; i < 30; ++i) label += "\xC3\xA9";  // 60 octets, 30 characters
  label += "abcdef";                                 // 66 octets
  CHECK(parse_rcpt_arg("TO:<a@" + label + ".example>").ok);
}

TEST_CASE("address: ESMTP parameters") {
  const auto r = parse_mail_arg("FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8");
  REQUIRE(r.ok);
  REQUIRE(r.params.size() == 3);
  CHECK(r.params[0].key == "SIZE");
  CHECK(r.params[0].value == std::optional<std::string>("100"));
  CHECK(r.params[1].key == "BODY");
  CHECK(r.params[1].value == std::optional<std::string>("8BITMIME"));
  CHECK(r.params[2].key == "SMTPUTF8");
  CHECK_FALSE(r.params[2].value.has_value());

  const auto *size = find_param(r.params, "SIZE");
  REQUIRE(size != nullptr);
  CHECK(*size->value == "100");
  CHECK(find_param(r.params, "SMTPUTF8") != nullptr);
  CHECK(find_param(r.params, "AUTH") == nullptr);
  CHECK(find_param({}, "SIZE") == nullptr);
}

TEST_CASE("address: parameter keys are upper-cased, values kept as written") {
  const auto r = parse_mail_arg("FROM:<a@b.example> body=8bitmime x-Custom-1=MiXeD ret=hdrs");
  REQUIRE(r.ok);
  REQUIRE(r.params.size() == 3);
  CHECK(r.params[0].key == "BODY");
  CHECK(*r.params[0].value == "8bitmime");
  CHECK(r.params[1].key == "X-CUSTOM-1");
  CHECK(*r.params[1].value == "MiXeD");
  CHECK(r.params[2].key == "RET");
  CHECK(find_param(r.params, "body") != nullptr);
}

TEST_CASE("address: parameter values may hold any printable char except '='") {
  const auto r = parse_rcpt_arg(
      "TO:<a@d.example> ORCPT=rfc822;a+2Bb@d.example NOTIFY=SUCCESS,FAILURE X=<>!~\"");
  REQUIRE(r.ok);
  REQUIRE(r.params.size() == 3);
  CHECK(*r.params[0].value == "rfc822;a+2Bb@d.example");
  CHECK(*r.params[1].value == "SUCCESS,FAILURE");
  CHECK(*r.params[2].value == "<>!~\"");

  const auto auth = parse_mail_arg("FROM:<a@b.example> AUTH=<>");
  REQUIRE(auth.ok);
  CHECK(*auth.params[0].value == "<>");
}

TEST_CASE("address: multiple spaces between parameters are tolerated") {
  const auto r = parse_mail_arg("FROM:<a@b.example>   SIZE=1    BODY=7BIT  ");
  REQUIRE(r.ok);
  REQUIRE(r.params.size() == 2);
  CHECK(r.params[1].key == "BODY");
}

TEST_CASE("address: unknown parameters are parsed, not judged") {
  const auto r = parse_rcpt_arg("TO:<a@d.example> FOO BAR=1 XYZZY=plugh");
  REQUIRE(r.ok);
  CHECK(r.params.size() == 3);
}

TEST_CASE("address: malformed parameters") {
  const std::string base = "FROM:<a@b.example> ";
  for (const char *bad : {"SIZE=", "=100", "-SIZE=1", "SI_ZE=1", "SIZE==1", "SIZE=1=2", "SIZE=a\tb",
                          "SI.ZE", "SIZE=\x7F", "\xC3\xA9=1"}) {
    INFO("param: " << bad);
    check_failure(parse_mail_arg(base + bad), 555, "5.5.4", "Syntax error in parameters");
  }
  check_failure(parse_rcpt_arg("TO:<a@d.example> NOTIFY=NEVER ,"), 555, "5.5.4",
                "Syntax error in parameters");
  check_failure(parse_mail_arg("FROM:<a@b.example> SIZE=1\x01"), 555, "5.5.4",
                "Syntax error in parameters");
}

TEST_CASE("address: duplicate parameters") {
  check_failure(parse_mail_arg("FROM:<a@b.example> SIZE=1 SIZE=2"), 501, "5.5.4",
                "Duplicate parameter SIZE");
  check_failure(parse_mail_arg("FROM:<a@b.example> body=7BIT BODY=8BITMIME"), 501, "5.5.4",
                "Duplicate parameter BODY");
  check_failure(parse_mail_arg("FROM:<a@b.example> SMTPUTF8 smtputf8"), 501, "5.5.4",
                "Duplicate parameter SMTPUTF8");
}

TEST_CASE("address: the first bad parameter in line order decides (duplicate or malformed)") {
  // A duplicate before a malformed parameter is reported as the duplicate, and the other way.
  check_failure(parse_mail_arg("FROM:<a@b.example> A=1 B C=3 b =x"), 501, "5.5.4",
                "Duplicate parameter B");
  check_failure(parse_mail_arg("FROM:<a@b.example> A=1 B =x C=3 b"), 555, "5.5.4",
                "Syntax error in parameters");
  // Of two duplicated keywords, the one whose repeat comes first is named.
  check_failure(parse_mail_arg("FROM:<a@b.example> Z Y A Y Z A"), 501, "5.5.4",
                "Duplicate parameter Y");
  check_failure(parse_mail_arg("FROM:<a@b.example> Z Y A A Y Z"), 501, "5.5.4",
                "Duplicate parameter A");
  // Keywords that share a prefix are different keywords.
  const auto r = parse_mail_arg("FROM:<a@b.example> A AB A-B AB-C a-bc");
  REQUIRE(r.ok);
  CHECK(r.params.size() == 5);
}

TEST_CASE("address: thousands of parameters (a 64 KiB line) parse in linear-ish time") {
  // 11,000 distinct keywords, then variants: all accepted, a duplicate at the very end, a
  // duplicate in the middle, a malformed one at the end. Before the fix this was quadratic
  // (about 60 M keyword comparisons); no timing is asserted, the answers are.
  std::string arg = "FROM:<a@b.example>";
  constexpr int kCount = 11000;
  for (int i = 0; i < kCount; ++i) arg += " K" + std::to_string(i);
  const auto all = parse_mail_arg(arg);
  REQUIRE(all.ok);
  REQUIRE(all.params.size() == kCount);
  CHECK(all.params.front().key == "K0");
  CHECK(all.params.back().key == "K10999");
  check_failure(parse_mail_arg(arg + " k5000"), 501, "5.5.4", "Duplicate parameter K5000");
  check_failure(parse_mail_arg(arg + " K7 K3"), 501, "5.5.4", "Duplicate parameter K7");
  check_failure(parse_mail_arg(arg + " =1 K3"), 555, "5.5.4", "Syntax error in parameters");
  check_failure(parse_rcpt_arg("TO:<a@b.example>" + arg.substr(arg.find('>') + 1) + " K0"), 501,
                "5.5.4", "Duplicate parameter K0");
}

TEST_CASE("address: nmap open-relay probes parse (the relay decision is not ours)") {
  for (const char *arg :
       {"TO:<relaytest%d.example@[192.0.2.1]>", "TO:<relaytest%d.example@s.example>",
        "TO:<\"relaytest@d.example\"@[192.0.2.1]>", "TO:<@[192.0.2.1]:relaytest@d.example>",
        "TO:<@s.example:relaytest@d.example>", "TO:<d.example!relaytest@[192.0.2.1]>",
        "TO:<d.example!relaytest@s.example>"}) {
    INFO(arg);
    CHECK(parse_rcpt_arg(arg).ok);
  }
  // Unquoted double '@', and local parts with no domain, are syntax errors.
  check_rcpt_syntax("TO:<relaytest@d.example@[192.0.2.1]>");
  check_rcpt_syntax("TO:<relaytest@d.example@s.example>");
  check_rcpt_syntax("TO:<d.example!relaytest>");
  check_rcpt_syntax("TO:<\"relaytest@d.example\">");
  check_rcpt_syntax("TO:<\"relaytest%d.example\">");
}

TEST_CASE("address: failure leaves ok false and fields untouched for success-only data") {
  const auto r = parse_mail_arg("FROM:<bad address@b.example> SIZE=1");
  CHECK_FALSE(r.ok);
  CHECK(r.params.empty());
  CHECK(r.path.address.empty());
}

TEST_CASE("address: IPv6 address literals must be real IPv6 addresses") {
  CHECK(uvs::smtp::parse_rcpt_arg("TO:<a@[IPv6:2001:db8::1]>").ok);
  CHECK(uvs::smtp::parse_rcpt_arg("TO:<a@[IPv6:::ffff:192.0.2.1]>").ok);
  CHECK_FALSE(uvs::smtp::parse_rcpt_arg("TO:<a@[IPv6:8:....]>").ok);
  CHECK_FALSE(uvs::smtp::parse_rcpt_arg("TO:<a@[IPv6:ffffffffffffffff]>").ok);
  CHECK_FALSE(uvs::smtp::parse_rcpt_arg("TO:<a@[IPv6::::::::::::]>").ok);
}
