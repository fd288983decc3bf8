// tests/integration/test_rfc_fixes.cpp: session-core rules from RFC 5321 and Postfix practice:
// a repeated HELO/EHLO resets like RSET (4.1.4), the junk-command limit, mail loop detection
// by Received: count (6.3), no pipelining after HELO, bare LF from relay clients, reply texts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

const std::string kSync = "554 5.5.0 Error: SMTP protocol synchronization";
const std::string kJunk = "421 4.7.0 mx.test.invalid Too many commands without mail; closing connection";
const std::string kLoop = "554 5.4.6 Too many hops (mail loop detected)";
const std::string kBareLf = "550 5.5.2 Bare LF received; lines must end with CRLF (RFC 5321 2.3.8)";

// A Maildir root for queue/maildir in a private temp dir.
struct Store {
  std::string root;
  Store() {
    char tmpl[] = "/tmp/uvsmtpd-test.rfc.XXXXXX";
    if (mkdtemp(tmpl)) root = std::string(tmpl) + "/mail";
  }
  ~Store() {
    if (root.empty() || getenv("UVS_KEEP_TEST_DIRS")) return;
    std::error_code ec;
    fs::remove_all(fs::path(root).parent_path(), ec);
  }
  Store(const Store &) = delete;
  Store &operator=(const Store &) = delete;
  std::string plugin_line() const { return "queue/maildir " + root + "\n"; }
  // Contents of every delivered message (files in some */new/).
  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::exists(root, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec) && it->path().parent_path().filename() == "new")
        out.push_back(slurp(it->path().string()));
    return out;
  }
};

void greet(Client &c, const char *verb = "EHLO") {
  REQUIRE(c.reply().rfind("220 ", 0) == 0);
  REQUIRE(c.cmd(std::string(verb) + " client.example").rfind("250", 0) == 0);
}

// A header section with `hops` Received: fields (after `filler` bytes of other fields).
std::string message_with_hops(int hops, size_t filler = 0) {
  std::string m;
  for (size_t i = 0; m.size() < filler; ++i)
    m += "X-Filler-" + std::to_string(i) + ": " + std::string(900, 'f') + "\r\n";
  for (int i = 0; i < hops; ++i)
    m += "Received: from h" + std::to_string(i) + ".example by relay" + std::to_string(i) +
         ".example;\r\n\tMon, 7 Dec 2026 00:00:00 +0000\r\n";
  return m + "Subject: hops\r\n\r\nbody\r\n";
}

// MAIL, RCPT, DATA and the message; returns the reply to the end of data.
std::string deliver(Client &c, const std::string &message) {
  if (c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) != 0) return "MAIL refused";
  if (c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) != 0) return "RCPT refused";
  if (c.cmd("DATA") != "354 go ahead") return "DATA refused";
  c.send(dot_stuff(message) + ".\r\n");
  return c.reply(15);
}

}  // namespace

// ---- 1. a repeated HELO/EHLO -------------------------------------------------------------

TEST_CASE("rfc_fixes: a repeated EHLO resets the transaction like RSET and replaces the greeting") {
  Server s({.plugins = "api_probe\n"});
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply().find("220 mx.test.invalid ") != std::string::npos);  // after 220- lines
  CHECK(c.cmd("HELO first.example") == "250 mx.test.invalid Hello [127.0.0.1]");
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "250 2.1.0 <a@client.example>, sender OK");
  CHECK(c.cmd("RCPT TO:<u@example.test>") == "250 2.1.5 <u@example.test>, recipient ok");
  // EHLO in the middle of a transaction: the normal EHLO reply, the transaction is gone.
  std::string ehlo = c.cmd("EHLO second.example");
  CHECK(ehlo.rfind("250-mx.test.invalid Hello [127.0.0.1]\n250-PIPELINING\n", 0) == 0);
  CHECK(c.cmd("RCPT TO:<v@example.test>") == "503 5.5.1 Use MAIL before RCPT");
  CHECK(s.wait_log("dtor txn:a@client.example"));  // the transaction notes are cleared
  CHECK(s.count_log("api_probe: reset_transaction hook=") == 1);
  // The ehlo hook ran for the new name; the old greeting was forgotten before it.
  CHECK(s.count_log("api_probe: ehlo call_address=second.example") == 1);
  CHECK(s.count_log("api_probe: ehlo helo_name=(null)") == 1);
  // The new name and ESMTP apply: SIZE is accepted now (it was refused after HELO).
  CHECK(c.cmd("MAIL FROM:<b@client.example> SIZE=10").rfind("250 2.1.0 ", 0) == 0);
  CHECK(s.wait_log("api_probe: mail helo_name=second.example"));
  CHECK(s.count_log("api_probe: mail is_esmtp=1") == 1);
  // Back to HELO: the transaction goes again, and the session is no longer ESMTP.
  CHECK(c.cmd("HELO third.example") == "250 mx.test.invalid Hello [127.0.0.1]");
  CHECK(s.wait_log("dtor txn:b@client.example"));
  CHECK(s.count_log("api_probe: reset_transaction hook=") == 2);
  CHECK(c.cmd("MAIL FROM:<c@client.example> SIZE=10") == "555 5.5.4 Unsupported option: SIZE");
  // Without an open transaction a repeated greeting fires no reset_transaction (as RSET).
  CHECK(c.cmd("EHLO fourth.example").rfind("250-mx.test.invalid Hello ", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<d@client.example>").rfind("250 2.1.0 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<u@example.test>").rfind("250 2.1.5 ", 0) == 0);
  CHECK(c.cmd("DATA") == "354 go ahead");
  c.send("Subject: after re-EHLO\r\n\r\nbody\r\n.\r\n");
  CHECK(c.reply() == "250 2.0.0 probe queued");
  CHECK(s.count_log("api_probe: ehlo hook=") == 2);
  CHECK(s.count_log("api_probe: helo hook=") == 2);
  CHECK(s.count_log("api_probe: reset_transaction hook=") == 3);  // the queued message's
  CHECK(s.count_log("(HELO fourth.example)") >= 1);               // in its Received: header
}

TEST_CASE("rfc_fixes: a repeated greeting the hook refuses leaves the session without one") {
  Server s({.plugins = "verdict helo=DENY rcpt=OK\n"});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("HELO other.example") == "550 5.7.1 Access denied");
  CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "503 5.5.1 Error: send HELO/EHLO first");
  CHECK(c.cmd("EHLO client.example").rfind("250-", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
}

// ---- 2. junk commands --------------------------------------------------------------------

TEST_CASE("rfc_fixes: 1000 alternating NOOP/RSET are cut off after max_junk_commands (100)") {
  Server s({.plugins = "verdict rcpt=OK queue=OK\n", .log_level = "info"});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  int ok = 0;
  std::string last;
  for (int i = 0; i < 1000; ++i) {
    last = c.cmd(i % 2 ? "RSET" : "NOOP");
    if (last != "250 2.0.0 OK") break;
    ++ok;
  }
  CHECK(ok == 100);
  CHECK(last == kJunk);
  CHECK(c.closed());
  CHECK(s.wait_log("too many commands without mail (101); closing"));
}

TEST_CASE("rfc_fixes: NOOPs between accepted messages never reach the junk limit") {
  Store store;
  Server s({.plugins = "verdict rcpt=OK\n" + store.plugin_line(), .log_level = "info"});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  for (int m = 0; m < 4; ++m) {
    for (int i = 0; i < 90; ++i) REQUIRE(c.cmd(i % 3 ? "NOOP" : "RSET") == "250 2.0.0 OK");
    CHECK(deliver(c, "Subject: " + std::to_string(m) + "\r\n\r\nbody\r\n").rfind("250 2.0.0 ", 0) ==
          0);
  }
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(store.messages().size() == 4);
  CHECK(s.count_log("too many commands") == 0);
}

TEST_CASE("rfc_fixes: VRFY, HELP and repeated greetings count as junk; a refused message does not reset") {
  SUBCASE("VRFY, HELP, NOOP, RSET") {
    Server s({.toml = "max_junk_commands = 4\n"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(c.cmd("VRFY someone").rfind("252 ", 0) == 0);
    CHECK(c.cmd("HELP").rfind("214", 0) == 0);
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(c.cmd("RSET") == "250 2.0.0 OK");
    CHECK(c.cmd("NOOP") == kJunk);
    CHECK(c.closed());
  }
  SUBCASE("the first greeting is free, every later one counts") {
    Server s({.toml = "max_junk_commands = 2\n"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(c.cmd("EHLO again.example").rfind("250-", 0) == 0);
    CHECK(c.cmd("HELO again.example").rfind("250 ", 0) == 0);
    CHECK(c.cmd("EHLO again.example") == kJunk);
    CHECK(c.closed());
  }
  SUBCASE("a message that is not accepted does not reset the count") {
    Server s({.toml = "max_junk_commands = 2\n", .plugins = "verdict rcpt=OK queue=DENY\n"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(deliver(c, "Subject: x\r\n\r\nbody\r\n") == "552 5.7.1 Message denied");
    CHECK(c.cmd("NOOP") == kJunk);
  }
  SUBCASE("max_junk_commands = 0 is no limit") {
    Server s({.toml = "max_junk_commands = 0\n"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    int ok = 0;
    for (int i = 0; i < 300; ++i) ok += c.cmd("NOOP") == "250 2.0.0 OK";
    CHECK(ok == 300);
  }
}

// ---- 3. mail loops -----------------------------------------------------------------------

TEST_CASE("rfc_fixes: more Received: fields than max_hops is a mail loop: 554 5.4.6, nothing queued") {
  Store store;
  SUBCASE("default max_hops = 100") {
    Server s({.plugins = "verdict rcpt=OK trace=1\n" + store.plugin_line(), .log_level = "info"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(deliver(c, message_with_hops(60)).rfind("250 2.0.0 ", 0) == 0);
    CHECK(deliver(c, message_with_hops(100)).rfind("250 2.0.0 ", 0) == 0);
    CHECK(store.messages().size() == 2);
    CHECK(s.count_log("trace verdict data_post ") == 2);
    CHECK(s.count_log("trace verdict queue arg=") == 2);
    CHECK(deliver(c, message_with_hops(101)) == kLoop);
    // The header section is longer than the copy kept for header_get: counted all the same.
    CHECK(deliver(c, message_with_hops(101, 300 * 1024)) == kLoop);
    CHECK(s.wait_log("101 Received: header fields (max_hops 100); refused", 5, 2));
    // Neither data_post nor queue ran for them, nothing was delivered, the transaction ended.
    CHECK(s.count_log("trace verdict data_post ") == 2);
    CHECK(s.count_log("trace verdict queue arg=") == 2);
    CHECK(store.messages().size() == 2);
    CHECK(s.count_log("trace verdict reset_transaction ") == 4);
    CHECK(c.cmd("RCPT TO:<u@example.test>") == "503 5.5.1 Use MAIL before RCPT");
    // The session goes on.
    CHECK(deliver(c, message_with_hops(1)).rfind("250 2.0.0 ", 0) == 0);
    CHECK(store.messages().size() == 3);
  }
  SUBCASE("max_hops lowered in the config") {
    Server s({.toml = "max_hops = 5\n",
              .plugins = "verdict rcpt=OK\n" + store.plugin_line(),
              .log_level = "info"});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(deliver(c, message_with_hops(5)).rfind("250 2.0.0 ", 0) == 0);
    CHECK(deliver(c, message_with_hops(6)) == kLoop);
    CHECK(store.messages().size() == 1);
  }
}

// ---- 4. no pipelining after HELO ---------------------------------------------------------

TEST_CASE("rfc_fixes: after HELO pipelined MAIL and RCPT are a synchronisation error") {
  Store store;
  const std::string env = "MAIL FROM:<a@client.example>\r\nRCPT TO:<u@example.test>\r\n";
  SUBCASE("HELO: 554 5.5.0 and close, nothing ran") {
    Server s({.plugins = "verdict rcpt=OK\n" + store.plugin_line()});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c, "HELO");
    c.send(env);
    CHECK(c.reply() == kSync);
    CHECK(c.closed());
    CHECK(c.drained.empty());
    CHECK(s.count_log("from=<a@client.example>") == 0);
  }
  SUBCASE("EHLO: pipelining as before") {
    Server s({.plugins = "verdict rcpt=OK\n" + store.plugin_line()});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c, "EHLO");
    c.send(env);
    CHECK(c.reply() == "250 2.1.0 <a@client.example>, sender OK");
    CHECK(c.reply() == "250 2.1.5 <u@example.test>, recipient ok");
  }
  SUBCASE("HELO on a listener without the sync check: served") {
    Server s({.plugins = "verdict rcpt=OK\n" + store.plugin_line(), .args = {"--no-sync-check"}});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c, "HELO");
    c.send(env);
    CHECK(c.reply() == "250 2.1.0 <a@client.example>, sender OK");
    CHECK(c.reply() == "250 2.1.5 <u@example.test>, recipient ok");
  }
}

// ---- 5. bare LF from relay clients -------------------------------------------------------

TEST_CASE("rfc_fixes: a relay client's bare LFs are normalized; anyone else gets 550") {
  Store store;
  const std::string plugins = "relay\nverdict rcpt=OK\n" + store.plugin_line();
  const std::string body = "Subject: bare\nX-Line: two\n\nline one\nline two\r\n";
  SUBCASE("relay client (127.0.0.1 in relayclients): accepted and stored with CRLF") {
    Server s({.plugins = plugins, .files = {{"relayclients", "127.0.0.1\n"}}});
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(c.reply().rfind("220 ", 0) == 0);
    c.send("EHLO client.example\n");  // a bare LF ends a command line too
    REQUIRE(c.reply().rfind("250-", 0) == 0);
    CHECK(deliver(c, body).rfind("250 2.0.0 ", 0) == 0);
    auto msgs = store.messages();
    REQUIRE(msgs.size() == 1);
    std::string hdr, rest;
    REQUIRE(split_received(msgs[0], hdr, rest));
    CHECK(rest == "Subject: bare\r\nX-Line: two\r\n\r\nline one\r\nline two\r\n");
  }
  SUBCASE("not a relay client: 550 with the CRLF text") {
    Server s({.plugins = plugins, .files = {{"relayclients", "10.0.0.0/8\n"}}});
    REQUIRE(s.started());
    Client c(s.port());
    greet(c);
    CHECK(c.cmd("MAIL FROM:<a@client.example>").rfind("250 ", 0) == 0);
    CHECK(c.cmd("RCPT TO:<u@example.test>").rfind("250 ", 0) == 0);
    CHECK(c.cmd("DATA") == "354 go ahead");
    c.send(body + ".\r\n");
    CHECK(c.reply() == kBareLf);
    CHECK(c.closed());
    CHECK(store.messages().empty());
  }
  SUBCASE("normalize_relay_clients = false: a relay client gets 550 as well") {
    Server s({.toml = "[bare_newline]\nnormalize_relay_clients = false\n",
              .plugins = plugins,
              .files = {{"relayclients", "127.0.0.1\n"}}});
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(c.reply().rfind("220 ", 0) == 0);
    c.send("EHLO client.example\n");
    CHECK(c.reply() == kBareLf);
    CHECK(c.closed());
  }
}

// ---- 6. reply texts ----------------------------------------------------------------------

TEST_CASE("rfc_fixes: the core's own reply texts are plain") {
  Server s({.plugins = "verdict rcpt=OK queue=OK\n"});
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply() == "220 mx.test.invalid ESMTP uvsmtpd");
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "503 5.5.1 Error: send HELO/EHLO first");
  CHECK(c.cmd("EHLO") == "501 5.5.4 Syntax: EHLO hostname");
  CHECK(c.cmd("HELO") == "501 5.5.4 Syntax: HELO hostname");
  CHECK(c.cmd("HELO client.example") == "250 mx.test.invalid Hello [127.0.0.1]");
  CHECK(c.cmd("MAIL FROM:<a@client.example>") == "250 2.1.0 <a@client.example>, sender OK");
  CHECK(c.cmd("VRFY someone") ==
        "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery");
  CHECK(c.cmd("QUIT") == "221 2.0.0 mx.test.invalid Service closing transmission channel");
  Client h(s.port());
  h.reply();
  CHECK(h.cmd("GET / HTTP/1.0") == "221 2.7.0 Error: not an SMTP command; closing connection");
}

TEST_CASE("rfc_fixes: a recipient given twice, directly or through an alias, is stored once") {
  Store st;
  Server s(Options{.plugins = "rcpt_map\n" + st.plugin_line() + "rcpt_ok\n",
                   .files = {{"local_recipients", "admin\nbob\n"},
                             {"aliases", "postmaster: admin\n"},
                             {"rcpthosts", "example.test\n"}},
                   .log_level = "info"});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  REQUIRE(c.cmd("MAIL FROM:<a@remote.example>").rfind("250 ", 0) == 0);
  for (const char *to : {"postmaster@example.test", "admin@example.test", "bob@example.test",
                         "bob@EXAMPLE.TEST"})
    CHECK(c.cmd(std::string("RCPT TO:<") + to + ">").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  c.send("Subject: twice\r\n\r\nonce each\r\n.\r\n");
  CHECK(c.reply(10).rfind("250 ", 0) == 0);
  CHECK(st.messages().size() == 2);  // admin and bob, one copy each
  CHECK(s.count_log("duplicate, stored once") == 2);
  CHECK(s.wait_log("nrcpt=2 "));
}

TEST_CASE("rfc_fixes: RSET with a parameter is a syntax error and resets nothing") {
  Store st;
  Server s(Options{.plugins = "verdict rcpt=OK\n" + st.plugin_line()});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  REQUIRE(c.cmd("MAIL FROM:<a@remote.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RSET now") == "501 5.5.4 Syntax: RSET");
  CHECK(c.cmd("RCPT TO:<b@example.test>").rfind("250 ", 0) == 0);  // the transaction is still open
  CHECK(c.cmd("RSET") == "250 2.0.0 OK");
  CHECK(c.cmd("RCPT TO:<b@example.test>").rfind("503 ", 0) == 0);
}

TEST_CASE("rfc_fixes: <postmaster> given twice in any case is stored once; its copy names postmaster@<hostname>") {
  Store st;
  Server s(Options{.plugins = "verdict rcpt=OK\n" + st.plugin_line(), .log_level = "info"});
  REQUIRE(s.started());
  Client c(s.port());
  greet(c);
  REQUIRE(c.cmd("MAIL FROM:<a@remote.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<postmaster>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<PostMaster>").rfind("250 ", 0) == 0);
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  c.send("Subject: pm\r\n\r\nx\r\n.\r\n");
  CHECK(c.reply(10).rfind("250 ", 0) == 0);
  auto msgs = st.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].rfind("Return-Path: <a@remote.example>\r\nDelivered-To: postmaster@mx.test.invalid\r\n", 0) == 0);
  CHECK(s.count_log("duplicate, stored once") == 1);
}
