// tests/integration/test_envelope.cpp: the envelope edits of ABI 1.5 (mail_from_replace, rcpt_add,
// rcpt_delete) through tests/plugins/envelope_probe.so: what the queue hook then sees, the
// refusals, and a transaction left without recipients (dropped after a 250).
#include <cerrno>
#include <doctest/doctest.h>
#include <string>

#include "harness.hpp"

using namespace itest;

namespace {

const std::string kMsg = "From: <s@client.test>\r\nSubject: envelope\r\n\r\nbody\r\n";

// conf/plugins: the probe with args (it is also the queue plugin), then every RCPT accepted.
Options probe_opts(const std::string &args, const std::string &toml = "") {
  Options o;
  o.plugins = "envelope_probe " + args + "\nverdict rcpt=OK\n";
  o.toml = toml;
  return o;
}

bool greeted(Client &c) {
  return c.reply().rfind("220 ", 0) == 0 && c.cmd("EHLO client.test").rfind("250", 0) == 0;
}

const std::string E(int e) {
  return std::to_string(-e);
}

}  // namespace

TEST_CASE(
    "envelope: data_post replaces the sender, adds and deletes recipients; the queue sees it") {
  Server s(
      probe_opts("from=new@sender.test add=carol@three.test del=alice@ONE.test "
                 "add=bob@two.test"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "old@sender.test", {"alice@one.test", "bob@two.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("envelope_probe: post from=new@sender.test rc=0"));
  CHECK(s.wait_log("envelope_probe: post add=carol@three.test rc=0"));
  CHECK(s.wait_log("envelope_probe: post del=alice@ONE.test rc=0"));  // domain case-insensitive
  CHECK(s.wait_log("envelope_probe: post add=bob@two.test rc=0"));    // already there: once
  CHECK(
      s.wait_log("envelope_probe: queue from=<new@sender.test> "
                 "rcpts=<bob@two.test>,<carol@three.test> perm=" +
                 E(EPERM)));
  CHECK(s.wait_log("from=<new@sender.test> orig_from=<old@sender.test> by envelope_probe"));
  CHECK(s.wait_log("to=<carol@three.test> added by envelope_probe"));
  CHECK(s.wait_log("to=<alice@ONE.test> removed by envelope_probe"));
  // outside data_post: -EPERM
  CHECK(s.wait_log("envelope_probe: rcpt from=" + E(EPERM) + " add=" + E(EPERM) +
                   " del=" + E(EPERM)));
}

TEST_CASE("envelope: the null sender, bad addresses, a missing recipient and max_recipients") {
  Server s(probe_opts("checks from= add=c@three.test add=d@four.test", "max_recipients = 3\n"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "old@sender.test", {"a@one.test", "b@two.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  const std::string inval = E(EINVAL);
  CHECK(s.wait_log("envelope_probe: post einval call=" + inval + " addr=" + inval +
                   " from=" + inval + " route=" + inval + " rcpt=" + inval + " null=" + inval +
                   " 8bit=" + inval));
  CHECK(s.wait_log("envelope_probe: post delbad=" + inval));
  CHECK(s.wait_log("envelope_probe: post enoent=" + E(ENOENT)));
  CHECK(s.wait_log("envelope_probe: post from= rc=0"));
  CHECK(s.wait_log("envelope_probe: post add=c@three.test rc=0"));
  CHECK(s.wait_log("envelope_probe: post add=d@four.test rc=" + E(E2BIG)));
  CHECK(s.wait_log("envelope_probe: queue from=<> rcpts=<a@one.test>,<b@two.test>,<c@three.test>"));
}

TEST_CASE("envelope: a message whose recipients are all deleted gets 250 and is not queued") {
  Server s(probe_opts("del=a@one.test del=b@two.test"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "old@sender.test", {"a@one.test", "b@two.test"}, kMsg);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("not queued: no recipient left after data_post; message dropped"));
  CHECK(s.count_log("envelope_probe: queue ") == 0);
  // the session goes on: another message with the same edits, then QUIT
  CHECK(c.cmd("RSET").rfind("250", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
}
