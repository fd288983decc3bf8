// tests/hostile/test_smuggling.cpp: SMTP smuggling: every end-of-data variant, both policies.
#include <doctest/doctest.h>

#include <unistd.h>

#include "hostile.hpp"

using namespace hostile;

namespace {

struct Variant {
  const char *name;
  std::string bytes;
};

// security.md §1.2: hannob/smtpsmug's ten plus The-Login's two outbound sequences.
const std::vector<Variant> &variants() {
  static const std::vector<Variant> v = {
      {"lflf", "\n.\n"},
      {"lfcrlf", "\n.\r\n"},
      {"crlflf", "\r\n.\n"},
      {"crlf", "\r.\n"},
      {"lfcr", "\n.\r"},
      {"crcr", "\r.\r"},
      {"crcrlf", "\r.\r\n"},
      {"crlfcr", "\r\n.\r"},
      {"nullbefore", std::string("\r\n\0.\r\n", 6)},
      {"nullafter", std::string("\r\n.\0\r\n", 6)},
      {"crlfcrcrlf", "\r\n.\r\r\n"},
      {"crcrlfcrcrlf", "\r\r\n.\r\r\n"},
  };
  return v;
}

// Where the variant goes: right after the DATA line, inside the header, or after body text.
enum class Pos { start, header, body };
const char *pos_name(Pos p) {
  return p == Pos::start ? "start" : p == Pos::header ? "header" : "body";
}

const std::string kSmuggled =
    "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
    "Subject: smuggled\r\n\r\nevil second message\r\n.\r\n";

std::string prefix(Pos p) {
  switch (p) {
    case Pos::start:
      return "";
    case Pos::header:
      return "Subject: first";
    case Pos::body:
      return "Subject: first\r\n\r\nbody";
  }
  return "";
}

// The first bare CR or LF in the data stream under the reject policy: 'R', 'L' or 0 (none).
// `s` starts right after the CRLF of the DATA command.
char first_bare(const std::string &s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) return 'R';
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return 'L';
  }
  return 0;
}

bool has_bare_lf(const std::string &m) {
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) return true;
  return false;
}

void open_data(Client &c) {
  greet(c);
  REQUIRE(c.cmd("MAIL FROM:<sender@client.example>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("DATA") == "354 go ahead");
}

// Sends payload = pre + variant + post either whole or as: pre | each variant byte | post in
// two halves, with small sleeps so that each piece travels in its own segment.
void send_payload(Client &c, const std::string &pre, const std::string &v, const std::string &post,
                  bool split) {
  if (!split) return c.send(pre + v + post);
  if (!pre.empty()) c.send(pre);
  usleep(10000);
  for (char ch : v) {
    c.send(std::string(1, ch));
    usleep(10000);
  }
  c.send(post.substr(0, post.size() / 2));
  usleep(10000);
  c.send(post.substr(post.size() / 2));
}

enum class Policy { reject, normalize, normalize_nosync };

Options options(Policy p, const MailStore &store) {
  Options o;
  o.plugins = "verdict rcpt=OK\n" + store.plugin_line();
  if (p != Policy::reject) o.toml = "[bare_newline]\npolicy = \"normalize\"\n";
  if (p == Policy::normalize_nosync) o.args = {"--no-sync-check"};
  o.log_level = "info";
  return o;
}

// Runs every variant at every position (and split, at the body position) against one server.
void run_battery(Policy policy) {
  MailStore store;
  Server s(options(policy, store));
  REQUIRE(s.started());
  size_t expect_delivered = 0;
  struct Case {
    Pos pos;
    bool split;
  };
  const Case cases[] = {
      {Pos::start, false}, {Pos::header, false}, {Pos::body, false}, {Pos::body, true}};
  for (const Variant &v : variants()) {
    for (const Case &k : cases) {
      CAPTURE(v.name);
      CAPTURE(pos_name(k.pos));
      CAPTURE(k.split);
      Client c(s.port());
      open_data(c);
      const std::string pre = prefix(k.pos);
      const std::string post = kSmuggled;
      send_payload(c, pre, v.bytes, post, k.split);
      char bare = first_bare(pre + v.bytes + post);
      if (policy == Policy::reject && bare) {
        // The bare CR/LF is refused where it is found; the session ends; nothing queued.
        CHECK(c.reply() ==
              std::string("550 5.5.2 Bare ") + (bare == 'L' ? "LF" : "CR") +
                  " received; lines must end with CRLF (RFC 5321 2.3.8)");
        CHECK(c.closed());
        CHECK(c.drained.empty());  // no second reply: nothing smuggled ran
      } else {
        // The variant is message content; only the real CRLF.CRLF ends the data: one 250, then
        // nothing else was executed (the next reply is the NOOP's).
        CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
        CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
        CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
        ++expect_delivered;
      }
      CHECK(store.count() == expect_delivered);
    }
  }
  // Exactly the expected messages, each the whole payload: never a second (smuggled) one.
  CHECK(store.count() == expect_delivered);
  for (const std::string &m : store.messages()) {
    CHECK(m.find("evil second message") != std::string::npos);
    CHECK(m.find("MAIL FROM:<smuggled@evil.example>") != std::string::npos);
    if (policy != Policy::reject) CHECK(!has_bare_lf(m));
  }
  CHECK(s.count_log(": accepted message-id=") == static_cast<int>(expect_delivered));
  CHECK(s.count_log("from=<smuggled@evil.example>") == 0);
  CHECK(alive(s));
  if (policy == Policy::reject)
    CHECK(expect_delivered == 2 * 4);  // only the two NUL variants
  else
    CHECK(expect_delivered == variants().size() * 4);
  CHECK(clean_exit(s));
}

}  // namespace

TEST_CASE("smuggling: reject policy: bare CR/LF variants are refused with 550 5.5.2 and close") {
  run_battery(Policy::reject);
}

TEST_CASE("smuggling: normalize policy: every variant is content; one message per session") {
  run_battery(Policy::normalize);
}

TEST_CASE("smuggling: normalize policy with the sync check off: still one message per session") {
  run_battery(Policy::normalize_nosync);
}

TEST_CASE("smuggling: smtpsmug 'pipelining' probe: a second transaction after CRLF.CRLF") {
  // A correct end of data followed, in the same write, by MAIL, RCPT, DATA and the content of
  // a second message: MAIL and RCPT may be pipelined, content after DATA before 354 may not.
  const std::string probe =
      "Subject: first\r\n\r\nfirst message\r\n.\r\n"
      "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
      "Subject: second\r\n\r\nsecond message\r\n.\r\n";
  for (Policy policy : {Policy::reject, Policy::normalize}) {
    CAPTURE(static_cast<int>(policy));
    MailStore store;
    Server s(options(policy, store));
    REQUIRE(s.started());
    SUBCASE("in one write") {
      Client c(s.port());
      open_data(c);
      c.send(probe);
      CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
      CHECK(c.reply() ==
            "250 2.1.0 <smuggled@evil.example>, sender OK");
      CHECK(c.reply() == "250 2.1.5 <u@example.test>, recipient ok");
      CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
      CHECK(c.closed());
      CHECK(c.drained.empty());
    }
    SUBCASE("split: DATA and the second message's content in a later segment") {
      Client c(s.port());
      open_data(c);
      size_t cut = probe.find("DATA\r\n");
      c.send(probe.substr(0, cut));
      CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
      CHECK(c.reply().rfind("250 2.1.0 ", 0) == 0);
      CHECK(c.reply().rfind("250 2.1.5 ", 0) == 0);
      c.send(probe.substr(cut));
      CHECK(c.reply() == "554 5.5.0 Error: SMTP protocol synchronization");
      CHECK(c.closed());
    }
    // Exactly the first message, never the second.
    auto msgs = store.messages();
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].find("first message") != std::string::npos);
    CHECK(msgs[0].find("second message") == std::string::npos);
    CHECK(s.count_log(": accepted message-id=") == 1);
    CHECK(alive(s));
  }
}

TEST_CASE(
    "smuggling: with --no-sync-check the pipelining probe delivers both (documented trade-off)") {
  // The sync check is the only guard against content pipelined behind DATA; switching it off
  // (per listener) makes the second transaction an ordinary pipelined one.
  MailStore store;
  Options o = options(Policy::reject, store);
  o.args = {"--no-sync-check"};
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  open_data(c);
  c.send(
      "Subject: first\r\n\r\nfirst message\r\n.\r\n"
      "MAIL FROM:<second@client.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
      "Subject: second\r\n\r\nsecond message\r\n.\r\nQUIT\r\n");
  CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(c.reply().rfind("250 2.1.0 ", 0) == 0);
  CHECK(c.reply().rfind("250 2.1.5 ", 0) == 0);
  CHECK(c.reply() == "354 go ahead");
  CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(c.reply().rfind("221 ", 0) == 0);
  CHECK(store.count() == 2);
  CHECK(alive(s));
}

TEST_CASE(
    "smuggling: a smuggled end inside a dot-stuffed line and a lone '.' line split 1 "
    "byte/segment") {
  // "..\r\n" is a stuffed dot (content "."), ". \r\n" and ".x" are content; only the real end
  // counts, even when each byte arrives in its own segment.
  MailStore store;
  Server s(options(Policy::reject, store));
  REQUIRE(s.started());
  Client c(s.port());
  open_data(c);
  std::string payload =
      "Subject: dots\r\n\r\n..\r\n. \r\n.x\r\n...\r\nMAIL FROM:<smuggled@evil.example>\r\n.\r\n";
  for (char ch : payload) {
    c.send(std::string(1, ch));
    usleep(2000);
  }
  CHECK(c.reply().rfind("250 2.0.0 Queued as ", 0) == 0);
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  auto msgs = store.messages();
  REQUIRE(msgs.size() == 1);
  size_t body = msgs[0].find("\r\n\r\n");
  REQUIRE(body != std::string::npos);
  CHECK(msgs[0].substr(body + 4) == ".\r\n \r\nx\r\n..\r\nMAIL FROM:<smuggled@evil.example>\r\n");
  CHECK(s.count_log("from=<smuggled@evil.example>") == 0);
  CHECK(alive(s));
}
