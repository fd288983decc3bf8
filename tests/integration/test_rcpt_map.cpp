// tests/integration/test_rcpt_map.cpp: rcpt_map (local users, aliases, virtual domains) through
// the real binary with queue/maildir and rcpt_ok, its load errors, and the shipped conf/ end to end.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>

#include "harness.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

struct MailDir {
  std::string path;
  MailDir() {
    char tmpl[] = "/tmp/uvsmtpd-test.rcptmap.XXXXXX";
    if (mkdtemp(tmpl)) path = tmpl;
  }
  ~MailDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
  MailDir(const MailDir &) = delete;
  MailDir &operator=(const MailDir &) = delete;
  // Messages in <path>/<sub>/new.
  size_t count(const std::string &sub) const {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator(path + "/" + sub + "/new", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec))
      ++n;
    return n;
  }
  // Every Maildir below path, as "<domain>/<user>" (sorted).
  std::vector<std::string> maildirs() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory() && it->path().filename() == "new")
        out.push_back(fs::relative(it->path().parent_path(), path).string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

const std::map<std::string, std::string> kFiles = {
    {"rcpthosts", "one.test\n"},
    {"local_recipients", "admin\nalice\nbob\n# a comment\nCarol\n"},
    {"aliases", "postmaster: admin\nabuse: admin, alice\nteam: sales, bob\nsales: alice, bob\n"
                "bob.smith: bob\nself: admin\nalice2: alice@one.test\n"},
};

Options map_opts(const std::string &maildir, std::map<std::string, std::string> files = kFiles,
                 const std::string &rcpt_map_args = "") {
  Options o;
  o.plugins = "relay\nrcpt_map" + rcpt_map_args + "\nqueue/maildir " + maildir + "\nrcpt_ok\n";
  o.files = std::move(files);
  return o;
}

std::string open_txn(Client &c) {
  std::string r = c.reply();
  r += c.cmd("EHLO client.example");
  return r + c.cmd("MAIL FROM:<sender@client.example>");
}

std::string accepted(const std::string &a) { return "250 2.1.5 <" + a + ">, recipient ok"; }
std::string unknown(const std::string &a) {
  return "550 5.1.1 <" + a + ">: Recipient address rejected: user unknown";
}

bool send_data(Client &c) {
  if (c.cmd("DATA").rfind("354", 0) != 0) return false;
  c.send("Subject: t\r\n\r\nbody\r\n.\r\n");
  return c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0;
}

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("rcpt_map: local users pass, unknown ones get 550 5.1.1, aliases are rewritten") {
  MailDir mail;
  Server s(map_opts(mail.path));
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  for (std::string bad : {"unknown@one.test", "nobody@mx.test.invalid", "\"a b\"@one.test",
                          "alice+x@one.test"}) {
    CAPTURE(bad);
    CHECK(c.cmd("RCPT TO:<" + bad + ">") == unknown(bad));
  }
  // sender-specified routing is a relaying attempt, refused as such by rcpt_ok
  for (std::string relay : {"alice%other.example@one.test", "other.example!alice@one.test",
                            "\"alice@other.example\"@one.test"}) {
    CAPTURE(relay);
    CHECK(c.cmd("RCPT TO:<" + relay + ">") == "550 5.7.1 Relaying denied");
  }
  // case-insensitive local part and domain; quotes dropped; the reply names what was asked
  CHECK(c.cmd("RCPT TO:<Alice@ONE.test>") == accepted("Alice@ONE.test"));
  CHECK(c.cmd("RCPT TO:<\"bob\"@one.test>") == accepted("\"bob\"@one.test"));
  CHECK(c.cmd("RCPT TO:<carol@one.test>") == accepted("carol@one.test"));
  CHECK(c.cmd("RCPT TO:<Postmaster>") == accepted("Postmaster"));  // bare postmaster: admin
  CHECK(c.cmd("RCPT TO:<team@one.test>") == accepted("team@one.test"));  // -> sales -> alice, bob
  CHECK(c.cmd("RCPT TO:<alice2@mx.test.invalid>") == accepted("alice2@mx.test.invalid"));
  CHECK(c.cmd("RCPT TO:<postmaster@[127.0.0.1]>") == accepted("postmaster@[127.0.0.1]"));
  // a domain rcpt_map does not serve goes on to rcpt_ok
  CHECK(c.cmd("RCPT TO:<victim@other.example>") == "550 5.7.1 Relaying denied");
  REQUIRE(send_data(c));
  // The local domains share one namespace of users, each with one mailbox under the server's
  // own name (me), where aliases deliver too: Alice@ONE.test, alice2 and team's alice are one
  // copy in mx.test.invalid/alice.
  CHECK(mail.maildirs() == std::vector<std::string>{"mx.test.invalid/admin", "mx.test.invalid/alice",
                                                    "mx.test.invalid/bob", "mx.test.invalid/carol"});
  CHECK(mail.count("mx.test.invalid/alice") == 1);
  CHECK(mail.count("mx.test.invalid/admin") == 1);
  std::string log = s.log();
  CHECK(has(log, "to=<alice@mx.test.invalid> orig_to=<Alice@ONE.test> by rcpt_map"));
  CHECK(has(log, "to=<carol@mx.test.invalid> orig_to=<carol@one.test> by rcpt_map"));
  CHECK(has(log, "to=<team@one.test> duplicate, stored once"));  // alice and bob already there
  CHECK(has(log, "to=<admin@mx.test.invalid> orig_to=<Postmaster> by rcpt_map"));
  // the own address literal is a local domain; its admin@ is a duplicate of Postmaster's
  CHECK(has(log, "rcpt_map: pass, alias: <postmaster@[127.0.0.1]> -> 1 address (first <admin@mx.test.invalid>)"));
  CHECK(!has(log, "orig_to=<postmaster@[127.0.0.1]>"));
  CHECK(has(log, "rcpt_map: fail, user unknown: <unknown@one.test>"));
}

TEST_CASE("rcpt_map: an alias that names itself keeps its own mailbox; duplicates are dropped") {
  MailDir mail;
  auto files = kFiles;
  files["aliases"] = "postmaster: admin\nalice: alice, bob, bob@mx.test.invalid\nall: alice, bob, admin\n";
  Server s(map_opts(mail.path, files));
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<alice@mx.test.invalid>") == accepted("alice@mx.test.invalid"));
  CHECK(c.cmd("RCPT TO:<all@mx.test.invalid>") == accepted("all@mx.test.invalid"));  // adds admin
  REQUIRE(send_data(c));
  CHECK(mail.maildirs() ==
        std::vector<std::string>{"mx.test.invalid/admin", "mx.test.invalid/alice", "mx.test.invalid/bob"});
  CHECK(s.count_log("to=<bob@mx.test.invalid>") == 1);
}

TEST_CASE("rcpt_map: max_recipients counts the expanded list (452 4.5.3)") {
  MailDir mail;
  Options o = map_opts(mail.path);
  o.toml = "max_recipients = 2\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<admin@one.test>") == accepted("admin@one.test"));
  CHECK(c.cmd("RCPT TO:<abuse@one.test>") == accepted("abuse@one.test"));  // + alice@me
  CHECK(c.cmd("RCPT TO:<team@one.test>") == "452 4.5.3 Error: too many recipients");
  REQUIRE(send_data(c));
  CHECK(mail.maildirs() == std::vector<std::string>{"mx.test.invalid/admin", "mx.test.invalid/alice"});
}

TEST_CASE("rcpt_map: virtual domains: exact entries, catch-all, implicit postmaster") {
  MailDir mail;
  auto files = kFiles;
  files["virtual"] =
      "# virtual domains\ninfo@v.test alice\nsales@V.test alice, admin@one.test\n@v.test bob\n"
      "x@w.test carol\nhelp@w.test info@v.test\n";
  Options o = map_opts(mail.path, files);
  o.files["relayclients"] = "127.0.0.1\n";  // a relay client: foreign mail is still refused
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<Info@V.TEST>") == accepted("Info@V.TEST"));              // alice@me
  CHECK(c.cmd("RCPT TO:<sales@v.test>") == accepted("sales@v.test"));            // alice@me, admin@me
  CHECK(c.cmd("RCPT TO:<anything@v.test>") == accepted("anything@v.test"));      // catch-all: bob@me
  CHECK(c.cmd("RCPT TO:<postmaster@w.test>") == accepted("postmaster@w.test"));  // the local postmaster
  CHECK(c.cmd("RCPT TO:<help@w.test>") == accepted("help@w.test"));              // via info@v.test
  CHECK(c.cmd("RCPT TO:<nobody@w.test>") == unknown("nobody@w.test"));
  CHECK(c.cmd("RCPT TO:<x@other.example>") ==
        "550 5.4.4 <x@other.example>: no route to domain other.example");
  REQUIRE(send_data(c));
  CHECK(mail.maildirs() == std::vector<std::string>{"mx.test.invalid/admin", "mx.test.invalid/alice",
                                                    "mx.test.invalid/bob"});
  CHECK(!fs::exists(mail.path + "/v.test"));
  CHECK(!fs::exists(mail.path + "/w.test"));
}

TEST_CASE("rcpt_map: recipients=, aliases=, virtual= and domains= name other files") {
  MailDir mail;
  std::map<std::string, std::string> files = {
      {"users", "root\n"}, {"mailaliases", "postmaster: root\n"}, {"maildomains", "two.test\n"},
      {"rcpthosts", "two.test\n"},  // rcpt_ok and queue/maildir
      {"vmap", "@v.test root\n"}};
  Server s(map_opts(mail.path, files,
                    " recipients=users aliases=mailaliases virtual=vmap domains=maildomains"));
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<root@two.test>") == accepted("root@two.test"));
  CHECK(c.cmd("RCPT TO:<alice@two.test>") == unknown("alice@two.test"));
  CHECK(c.cmd("RCPT TO:<z@v.test>") == accepted("z@v.test"));
  CHECK(c.cmd("RCPT TO:<postmaster>") == accepted("postmaster"));
}

TEST_CASE("rcpt_map: bad files and arguments stop startup, naming file and line") {
  struct Case {
    std::string args;
    std::map<std::string, std::string> files;
    std::string message;
  };
  const std::string deep = [] {
    std::string a = "postmaster: admin\n";
    for (int i = 1; i <= 18; ++i) a += "a" + std::to_string(i) + ": a" + std::to_string(i + 1) + "\n";
    return a + "a19: admin\n";
  }();
  const std::vector<Case> cases = {
      {"", {{"local_recipients", "alice\n"}},
       "postmaster does not resolve (RFC 5321 4.5.1): add 'postmaster: <user>' to aliases or "
       "postmaster to local_recipients"},
      {"", {{"local_recipients", "admin\nbad name\n"}},
       "conf/local_recipients:2: 'bad name' is not a local user name"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: admin\n\na: b\nb: a\n"}},
       "conf/aliases:3: 'a' loops: it expands to itself"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: admin\nx: nobody\n"}},
       "conf/aliases:2: target 'nobody' of 'x' is neither a local user nor an alias"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: admin\nx: u@other.example\n"}},
       "conf/aliases:2: target 'u@other.example' is not in a local or virtual domain"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: |/bin/sh\n"}},
       "conf/aliases:1: target '|/bin/sh' is not supported"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster admin\n"}},
       "conf/aliases:1: 'postmaster admin': expected 'name: target, target...'"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: admin\nPostmaster: admin\n"}},
       "conf/aliases:2: alias 'postmaster' is defined twice (also at "},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster:\n"}},
       "conf/aliases:1: 'postmaster' has no target"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", deep}}, "is nested deeper than 16 levels"},
      {"", {{"local_recipients", "admin\npostmaster\n"}, {"rcpthosts", "one.test\n"}, {"virtual", "x@one.test admin\n"}},
       "conf/virtual:1: one.test is a local domain (one.test): virtual domains must not be local"},
      {"", {{"local_recipients", "postmaster\n"}, {"virtual", "x@v.test y@v.test\ny@v.test x@v.test\n"}},
       "' loops: it expands to itself"},
      {"", {{"local_recipients", "postmaster\n"}, {"virtual", "just-a-name postmaster\n"}},
       "conf/virtual:1: 'just-a-name postmaster': expected 'user@domain target...'"},
      // names must be unquoted dot-strings, or the core's rcpt_replace refuses "name@domain"
      {"", {{"local_recipients", "admin\nj.doe.\n"}, {"aliases", "postmaster: j.doe.\n"}},
       "conf/local_recipients:2: 'j.doe.' is not a local user name (an unquoted dot-string: "
       "letters, digits and - + _ = in parts joined by single dots, no leading or trailing '.'"},
      {"", {{"local_recipients", "postmaster\na,b\n"}},
       "conf/local_recipients:2: 'a,b' is not a local user name (an unquoted dot-string"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: admin.\n"}},
       "conf/aliases:1: target 'admin.' is not a local name or user@domain (an unquoted dot-string"},
      {"", {{"local_recipients", "admin\n"}, {"aliases", "postmaster: admin\nx.: admin\n"}},
       "conf/aliases:2: 'x.' is not an alias name (an unquoted dot-string"},
      {" aliases=nosuch", {{"local_recipients", "postmaster\n"}},
       "aliases=nosuch: no such file in the config directory"},
      {" foo", {{"local_recipients", "postmaster\n"}}, "bad argument 'foo': usage: rcpt_map"},
  };
  for (const Case &k : cases) {
    CAPTURE(k.message);
    Options o;
    o.plugins = "rcpt_map" + k.args + "\n";
    o.files = k.files;
    Server s(o);
    CHECK(s.wait_exit() == 1);
    std::string log = s.log();
    CHECK_MESSAGE(has(log, "plugins:1: plugin 'rcpt_map' failed to initialise: "), log);
    CHECK_MESSAGE(has(log, k.message), log);
  }
}

TEST_CASE("rcpt_map: a local user in a domain queue/maildir could not store lands in its one mailbox") {
  // rcpthosts may list a non-ASCII domain (rcpt_ok accepts it); queue/maildir could not make a
  // directory of it. rcpt_map rewrites every local user to <user>@<me>, so the message is
  // accepted and stored, never refused after DATA.
  MailDir mail;
  auto files = kFiles;
  files["rcpthosts"] = "one.test\nb\xc3\xbc" "cher.example\n";
  Server s(map_opts(mail.path, files));
  REQUIRE(s.started());
  Client c(s.port());
  c.reply();
  c.cmd("EHLO client.example");
  REQUIRE(c.cmd("MAIL FROM:<sender@client.example> SMTPUTF8").rfind("250 ", 0) == 0);
  const std::string bad = "alice@b\xc3\xbc" "cher.example";
  CHECK(c.cmd("RCPT TO:<" + bad + ">") == accepted(bad));
  // an alias there is rewritten to a mailbox that can be stored: fine
  CHECK(c.cmd("RCPT TO:<postmaster@b\xc3\xbc" "cher.example>") ==
        accepted("postmaster@b\xc3\xbc" "cher.example"));
  CHECK(c.cmd("RCPT TO:<alice@one.test>") == accepted("alice@one.test"));
  REQUIRE(send_data(c));
  CHECK(mail.maildirs() == std::vector<std::string>{"mx.test.invalid/admin", "mx.test.invalid/alice"});
  CHECK(mail.count("mx.test.invalid/alice") == 1);
}

TEST_CASE("rcpt_map: a hostname written with its root dot: local users land under the name without it") {
  // "mx.test.invalid." is the same name as "mx.test.invalid": the core drops the dot, so the
  // rewrite of a bare <postmaster> (a local user here) is a valid address and one mailbox.
  MailDir mail;
  auto files = kFiles;
  files["local_recipients"] = "postmaster\nalice\n";
  files["aliases"] = "";
  Server s(map_opts(mail.path, files));
  REQUIRE(s.started());
  REQUIRE_MESSAGE(s.reload_toml("hostname = \"mx.test.invalid\"", "hostname = \"mx.test.invalid.\""),
                  s.log());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<postmaster>") == accepted("postmaster"));
  CHECK(c.cmd("RCPT TO:<alice@one.test>") == accepted("alice@one.test"));
  REQUIRE(send_data(c));
  CHECK(mail.maildirs() ==
        std::vector<std::string>{"mx.test.invalid/alice", "mx.test.invalid/postmaster"});
}

// ---- the shipped configuration -------------------------------------------------------------

TEST_CASE("rcpt_map: the shipped conf/ end to end: users, aliases, foreign mail, quoted names") {
  MailDir mail;
  std::string plugins = slurp(source_root() + "/conf/plugins");
  REQUIRE(has(plugins, "\nrcpt_map\n"));
  // the order the rcpt chain needs
  REQUIRE(plugins.find("\nrcpt_map") < plugins.find("\nqueue/maildir"));
  REQUIRE(plugins.find("\nqueue/maildir") < plugins.find("\nrcpt_ok"));
  Options o = shipped_options(mail.path);
  o.log_level = "debug";
  REQUIRE(has(o.files["relayclients"], "127.0.0.1"));  // so this client relays
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  CHECK(c.reply(5).rfind("220 ", 0) == 0);
  CHECK(c.cmd("EHLO client.example").rfind("250", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<sender@client.example>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<unknown@localhost>") == unknown("unknown@localhost"));
  CHECK(c.cmd("RCPT TO:<someone@elsewhere.invalid>") ==
        "550 5.4.4 <someone@elsewhere.invalid>: no route to domain elsewhere.invalid");
  CHECK(c.cmd("RCPT TO:<postmaster@localhost>") == accepted("postmaster@localhost"));
  CHECK(c.cmd("RCPT TO:<\"alice\"@localhost>") == accepted("\"alice\"@localhost"));
  CHECK(c.cmd("RCPT TO:<bob@example.test>") == accepted("bob@example.test"));
  REQUIRE(send_data(c));
  // every local user has one mailbox under the server's name (the harness's hostname,
  // mx.test.invalid), whichever local domain the client wrote; postmaster -> admin
  CHECK(mail.maildirs() == std::vector<std::string>{"mx.test.invalid/admin", "mx.test.invalid/alice",
                                                    "mx.test.invalid/bob"});
  CHECK(!fs::exists(mail.path + "/elsewhere.invalid"));
}
