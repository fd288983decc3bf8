// tests/sendmail/test_parts.cpp: uvsmtpd-sendmail's parts on their own: address lists, line
// ends, the "." rule, header fields, dot-stuffing, options, server addresses.
#include <doctest/doctest.h>

#include <string>
#include <sysexits.h>
#include <unistd.h>
#include <vector>

#include "addresses.hpp"
#include "message.hpp"
#include "options.hpp"
#include "server_config.hpp"

using V = std::vector<std::string>;

TEST_CASE("sendmail parts: address lists") {
  CHECK(sm::parse_address_list("a@x") == V{"a@x"});
  CHECK(sm::parse_address_list(" Ann <a@x>, b@y (Bob, Jr.) ,c@z") == V{"a@x", "b@y", "c@z"});
  CHECK(sm::parse_address_list("\"Doe, John\" <j@x>, \"q d\"@y") == V{"j@x", "\"q d\"@y"});
  CHECK(sm::parse_address_list("team: c@z, D <d@z>;, e@w") == V{"c@z", "d@z", "e@w"});
  CHECK(sm::parse_address_list("undisclosed-recipients:;").empty());
  CHECK(sm::parse_address_list("<@relay.example,@r2:u@h>") == V{"u@h"});
  CHECK(sm::parse_address_list("root") == V{"root"});
  CHECK(sm::parse_address_list(" , ,").empty());
  CHECK(sm::qualify("root", "h.example") == "root@h.example");
  CHECK(sm::qualify("a@b", "h.example") == "a@b");
  CHECK(sm::qualify("\"x@y\"", "h") == "\"x@y\"@h");
  CHECK(sm::address_ok("a@b"));
  CHECK(sm::address_ok("\"q d\"@b"));
  CHECK_FALSE(sm::address_ok(""));
  CHECK_FALSE(sm::address_ok("a@b\r\nRSET"));
  CHECK_FALSE(sm::address_ok("a b@c"));
  CHECK_FALSE(sm::address_ok("a>@c"));
}

TEST_CASE("sendmail parts: line ends become CRLF") {
  CHECK(sm::to_crlf("a\nb\n") == "a\r\nb\r\n");
  CHECK(sm::to_crlf("a\r\nb") == "a\r\nb\r\n");
  CHECK(sm::to_crlf("a\rb\r\n\n") == "a\r\nb\r\n\r\n");
  CHECK(sm::to_crlf("") == "");
}

TEST_CASE("sendmail parts: a line with a lone dot ends the input unless -i") {
  auto feed = [](const std::string &in, bool dot_ends) {
    int p[2];
    REQUIRE(pipe(p) == 0);
    REQUIRE(write(p[1], in.data(), in.size()) == static_cast<ssize_t>(in.size()));
    close(p[1]);
    std::string out, err;
    CHECK(sm::read_message(p[0], dot_ends, out, err));
    close(p[0]);
    return out;
  };
  CHECK(feed("a\n.\nb\n", true) == "a\n");
  CHECK(feed("a\n.\r\nb\n", true) == "a\n");
  CHECK(feed(".\nb\n", true) == "");
  CHECK(feed("a\n..\n.x\nb\n.", true) == "a\n..\n.x\nb\n");
  CHECK(feed("a\n.\nb\n", false) == "a\n.\nb\n");
}

TEST_CASE("sendmail parts: header fields, folding, Bcc removal, dot-stuffing") {
  std::string m = "To: a@x,\r\n b@y\r\nbcc: c@z\r\nSubject: s\r\n\r\nBcc: not a header\r\n";
  auto f = sm::header_fields(m);
  REQUIRE(f.size() == 3);
  CHECK(f[0].name == "to");
  CHECK(f[0].value == " a@x, b@y");
  CHECK(f[1].name == "bcc");
  CHECK(sm::remove_fields(m, "bcc") == 1);
  CHECK(m == "To: a@x,\r\n b@y\r\nSubject: s\r\n\r\nBcc: not a header\r\n");
  CHECK(sm::header_fields("no header line\r\nTo: a@x\r\n").empty());
  // The obsolete form with blanks before the colon (RFC 5322 4.5) is a field too: a Bcc written
  // so is still a recipient and still removed.
  m = "Subject: s\r\nBcc : c@z\r\nTo\t: a@x\r\n\r\nbody\r\n";
  f = sm::header_fields(m);
  REQUIRE(f.size() == 3);
  CHECK(f[1].name == "bcc");
  CHECK(f[1].value == " c@z");
  CHECK(f[2].name == "to");
  CHECK(sm::remove_fields(m, "bcc") == 1);
  CHECK(m == "Subject: s\r\nTo\t: a@x\r\n\r\nbody\r\n");
  CHECK(sm::dot_stuff(".a\r\nb.\r\n.\r\n") == "..a\r\nb.\r\n..\r\n");
}

TEST_CASE("sendmail parts: options") {
  auto parse = [](V args, sm::Options &o, std::string &err) {
    args.insert(args.begin(), "uvsmtpd-sendmail");
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    return sm::parse_options(static_cast<int>(argv.size()), argv.data(), o, err);
  };
  sm::Options o;
  std::string err;
  CHECK(parse({"-t", "-oi", "-oem", "-fme@x", "-F", "Me", "-bm", "-S", "h:26", "--", "a", "-b"}, o,
              err) == 0);
  CHECK(o.from_headers);
  CHECK_FALSE(o.dot_ends);
  CHECK(o.sender == "me@x");
  CHECK(o.full_name == "Me");
  CHECK(o.server == "h:26");
  CHECK(o.recipients == V{"a", "-b"});
  for (const char *mode : {"-bp", "-bs", "-bd", "-bi", "-q", "-q1h", "-Z"}) {
    sm::Options o2;
    CHECK_MESSAGE(parse({mode}, o2, err) == EX_USAGE, mode);
  }
  sm::Options o3;
  CHECK(parse({"-f"}, o3, err) == EX_USAGE);
  CHECK(err == "option -f needs a value");
}

TEST_CASE("sendmail parts: server addresses") {
  sm::Target t;
  REQUIRE(sm::parse_target("127.0.0.1:2525", t));
  CHECK(t.host == "127.0.0.1");
  CHECK(t.port == "2525");
  REQUIRE(sm::parse_target("[::1]:26", t));
  CHECK(t.host == "::1");
  CHECK(t.shown() == "[::1]:26");
  REQUIRE(sm::parse_target("mail.example", t));
  CHECK(t.port == "25");
  CHECK_FALSE(sm::parse_target("::1:25", t));
  CHECK_FALSE(sm::parse_target("h:99999", t));
  CHECK_FALSE(sm::parse_target("h:", t));
  CHECK(sm::connectable("*:25") == "127.0.0.1:25");
  CHECK(sm::connectable("0.0.0.0:25") == "127.0.0.1:25");
  CHECK(sm::connectable("[::]:25") == "[::1]:25");
  CHECK(sm::connectable("localhost:2525") == "127.0.0.1:2525");
  CHECK(sm::connectable("192.0.2.1:25") == "192.0.2.1:25");
}
