// tests/abi/test_abi10.cpp: the current uvsmtpd loads a plugin built against the frozen ABI 1.0
// header (abi10_plugin.c, tests/abi/frozen-1.0) and its 1.0 hooks, verdicts, replies, notes,
// log and accessors behave: the guard against any change to plugin.h that is not an append.
#include <doctest/doctest.h>

#include <string>

#include "harness.hpp"

using namespace itest;

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// The plugin dir is build/tests/abi, where abi10.so is built (the last --plugin-dir wins).
Options abi10_options(const std::string &line) {
  Options o;
  o.plugins = line + "\n";
  o.args = {"--plugin-dir", build_root() + "/tests/abi"};
  return o;
}

}  // namespace

TEST_CASE("abi 1.0: a plugin built against the frozen 1.0 header loads and its hooks behave") {
  Server s(abi10_options("abi10 deny=blocked@example.org soft=later@example.org"));
  REQUIRE(s.started());
  REQUIRE(s.wait_log(" started (pid", 15));
  std::string log = s.log();
  CHECK(has(
      log, "loaded abi10 (abi10 1.0, needs ABI 1.0) from " + build_root() + "/tests/abi/abi10.so"));
  CHECK(has(log, "abi10: init as abi10 on server ABI 1."));

  Client c(s.port());
  CHECK(c.reply() == "220 mx.test.invalid ESMTP uvsmtpd");
  // DECLINED at helo and mail: the server's replies
  CHECK(c.cmd("EHLO client.example").rfind("250-mx.test.invalid Hello [127.0.0.1]\n", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<sender@example.net>") == "250 2.1.0 <sender@example.net>, sender OK");
  // RCPT: DENY and DENYSOFT with the plugin's codes and texts, OK with its text, which shows the
  // transaction note (MAIL) and the connection notes (connect, EHLO)
  CHECK(c.cmd("RCPT TO:<blocked@example.org>") == "550 5.7.1 abi10 refuses <blocked@example.org>");
  CHECK(c.cmd("RCPT TO:<later@example.org>") == "450 4.7.1 abi10 defers <later@example.org>");
  CHECK(c.cmd("RCPT TO:<one@example.org>") ==
        "250 2.1.5 abi10 accepts <one@example.org> from <sender@example.net>, EHLO client.example "
        "[127.0.0.1], recipient 1");
  CHECK(c.cmd("RCPT TO:<two@example.org>") ==
        "250 2.1.5 abi10 accepts <two@example.org> from <sender@example.net>, EHLO client.example "
        "[127.0.0.1], recipient 2");
  CHECK(c.code() == -1);  // nothing more
  CHECK(c.cmd("DATA").rfind("354 ", 0) == 0);
  const std::string body = "Subject: frozen header\r\n\r\nhello from 1.0\r\n";
  c.send(body + ".\r\n");
  std::string queued = c.reply();
  CHECK(queued.rfind("250 2.0.0 abi10 queued ", 0) == 0);
  CHECK(has(queued,
            " for 2 recipient(s) from <sender@example.net>, subject frozen header, starting "));
  // a new transaction starts without the old transaction note
  CHECK(c.cmd("MAIL FROM:<other@example.net>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<three@example.org>") ==
        "250 2.1.5 abi10 accepts <three@example.org> from <other@example.net>, EHLO client.example "
        "[127.0.0.1], recipient 1");
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  // log() with a call and with the plugin
  CHECK(s.wait_log("abi10: MAIL FROM <sender@example.net>"));
  CHECK(s.wait_log("abi10: abi10 queued "));
}

TEST_CASE(
    "abi 1.0: the frozen-header plugin passes --check-config, and set_error reaches the operator") {
  std::string dir = make_tree(abi10_options("abi10"));
  RunResult ok = run_uvsmtpd(
      {"--check-config", "--config", dir + "/conf", "--plugin-dir", build_root() + "/tests/abi"});
  CHECK(ok.status == 0);
  CHECK(has(ok.output, "configuration OK"));
  remove_tree(dir);

  dir = make_tree(abi10_options("abi10 bogus"));
  RunResult bad = run_uvsmtpd(
      {"--check-config", "--config", dir + "/conf", "--plugin-dir", build_root() + "/tests/abi"});
  CHECK(bad.status == 1);
  CHECK(has(bad.output, "abi10: unknown argument"));
  remove_tree(dir);
}
