// tests/integration/test_outbound_queue.cpp: queue/outbound end to end: real clients (smtplib,
// the raw harness client) get "250 2.0.0 Ok: queued as <id>" and the queue directory holds the
// message byte-exact and its envelope; a failed write answers 451 and leaves nothing; kill -9 in
// a loop loses no acknowledged message and the next start's scan leaves no half files; every
// `uvsmtpd queue` command against that queue; the relay policy is unchanged.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <pwd.h>
#include <mutex>
#include <random>
#include <set>
#include <regex>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "harness.hpp"
#include "queue_helpers.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

// Every regular file under root, relative to it, sorted.
std::vector<std::string> files_under(const std::string &root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(fs::relative(it->path(), root).string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> with_suffix(const std::vector<std::string> &files,
                                     const std::string &suf) {
  std::vector<std::string> out;
  for (const auto &f : files)
    if (f.size() > suf.size() && f.compare(f.size() - suf.size(), suf.size(), suf) == 0)
      out.push_back(f);
  return out;
}

// The file of id in the queue (q/<bucket>/<id><suffix>), "" if none.
std::string entry_file(const std::string &queue, const std::string &id, const std::string &suffix) {
  for (const auto &f : files_under(queue + "/q"))
    if (fs::path(f).filename().string() == id + suffix) return queue + "/q/" + f;
  return "";
}

std::string py_send(int port, const std::string &from, const std::vector<std::string> &to,
                    const std::string &msg_file, const std::string &mail_opt = "") {
  std::string cmd = "python3 '" + source_root() +
                    "/tests/integration/clients/smtp_send.py' --port " + std::to_string(port) +
                    " --from '" + from + "' --file '" + msg_file + "'";
  for (const auto &t : to) cmd += " --to '" + t + "'";
  if (!mail_opt.empty()) cmd += " --mail-opt " + mail_opt;
  RunResult r = sh(cmd + " 2>&1");
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

Options outbound_opts(const std::string &queue, const std::string &before = "verdict rcpt=OK\n") {
  Options o;
  o.plugins = before + "queue/outbound " + queue + "\n";
  o.toml = "[delivery]\nenabled = false\n";  // these tests look at the queue, not delivery
  return o;
}

std::string message(const std::string &subject) {
  return "From: Sender <sender@client.test>\r\nTo: <alice@remote.test>\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + subject + "@client.test>\r\n\r\nHello.\r\n.leading dot\r\n";
}

}  // namespace

TEST_CASE(
    "outbound: smtplib message: 250 with the id; the queue holds the exact bytes and the "
    "envelope") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  Server s(outbound_opts(queue));
  REQUIRE(s.started());
  std::string msg = message("first");
  spit(tmp.path + "/msg", msg);
  std::string reply = py_send(s.port(), "sender@client.test",
                              {"alice@remote.test", "bob@other.test"}, tmp.path + "/msg");
  REQUIRE_MESSAGE(reply.rfind("250 2.0.0 Ok: queued as ", 0) == 0, reply);
  std::string id = queued_as_id(reply);
  REQUIRE(!id.empty());
  // The id is the transaction's: the core's accepted line and the plugin's line carry it.
  CHECK(s.wait_log(id + ": accepted"));
  CHECK(s.wait_log(id + ": queued in " + queue));
  std::string mfile = entry_file(queue, id, ".msg"), efile = entry_file(queue, id, ".env");
  REQUIRE_MESSAGE(!mfile.empty(), s.log());
  REQUIRE(!efile.empty());
  CHECK(fs::path(mfile).parent_path() == fs::path(efile).parent_path());
  std::string stored = slurp(mfile), hdr, rest;
  REQUIRE(split_received(stored, hdr, rest));
  CHECK(hdr.rfind("Received: from ", 0) == 0);
  CHECK(hdr.find(" id " + id + ";") != std::string::npos);
  CHECK(rest == msg);
  std::string env = slurp(efile);
  CHECK(env.rfind("uvsmtpd-queue-envelope 1\nid " + id + "\n", 0) == 0);
  CHECK(env.find("\nsize " + std::to_string(stored.size()) + "\n") != std::string::npos);
  CHECK(env.find("\nsender sender@client.test\n") != std::string::npos);
  CHECK(env.find("\nclient-ip 127.0.0.1\n") != std::string::npos);
  CHECK(env.find("\nhelo client.test\n") != std::string::npos);
  CHECK(env.find("\nprotocol ESMTP\n") != std::string::npos);
  CHECK(env.find("\nrcpt state=pending addr=alice@remote.test ") != std::string::npos);
  CHECK(env.find("\nrcpt state=pending addr=bob@other.test ") != std::string::npos);
  CHECK(env.substr(env.size() - 4) == "end\n");
  CHECK(files_under(queue + "/tmp").empty());
  CHECK(slurp(queue + "/format") == "uvsmtpd-queue 1\n");
}

TEST_CASE("outbound: BODY=8BITMIME and SMTPUTF8 are recorded in the envelope") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  Server s(outbound_opts(queue));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.code() == 220);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  REQUIRE(c.cmd("MAIL FROM:<j\xC3\xBCrgen@client.test> BODY=8BITMIME SMTPUTF8").rfind("250", 0) ==
          0);
  REQUIRE(c.cmd("RCPT TO:<m\xC3\xBCller@remote.test>").rfind("250", 0) == 0);
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  std::string body =
      "Subject: gr\xC3\xBC\xC3\x9F"
      "e\r\n\r\n8-bit body \xC3\xA4\r\n";
  c.send(body + ".\r\n");
  std::string reply = c.reply();
  REQUIRE_MESSAGE(reply.rfind("250 2.0.0 Ok: queued as ", 0) == 0, reply);
  // The next transaction on the same connection is 7-bit: the flags do not carry over.
  std::string reply2 =
      send_message(c, "plain@client.test", {"x@remote.test"}, "Subject: b\r\n\r\nb\r\n");
  REQUIRE_MESSAGE(reply2.rfind("250 2.0.0 Ok: queued as ", 0) == 0, reply2);
  std::string env = slurp(entry_file(queue, queued_as_id(reply), ".env"));
  CHECK_MESSAGE(env.find("\nflags smtputf8,8bitmime\n") != std::string::npos, env);
  CHECK(env.find("\nprotocol UTF8SMTP\n") != std::string::npos);
  CHECK(env.find("\nsender j+C3+BCrgen@client.test\n") != std::string::npos);
  CHECK(env.find("addr=m+C3+BCller@remote.test") != std::string::npos);
  std::string stored = slurp(entry_file(queue, queued_as_id(reply), ".msg")), hdr, rest;
  REQUIRE(split_received(stored, hdr, rest));
  CHECK(rest == body);
  std::string env2 = slurp(entry_file(queue, queued_as_id(reply2), ".env"));
  CHECK_MESSAGE(env2.find("\nflags \n") != std::string::npos, env2);
}

TEST_CASE("outbound: a write that fails answers 451 4.3.0 and leaves nothing half-written") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  Server s(outbound_opts(queue));
  REQUIRE(s.started());
  // The entries' directory replaced by a file: the store fails after the temp files were made.
  fs::remove_all(queue + "/q");
  spit(queue + "/q", "not a directory");
  Client c(s.port());
  REQUIRE(c.code() == 220);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  std::string reply =
      send_message(c, "a@client.test", {"b@remote.test"}, "Subject: x\r\n\r\nx\r\n");
  CHECK_MESSAGE(reply.rfind("451 4.3.0 ", 0) == 0, reply);
  CHECK(s.wait_log("not queued: mkdir " + queue + "/q/"));
  CHECK(files_under(queue + "/tmp").empty());
  // Put right, the next message is queued on the same connection.
  fs::remove(queue + "/q");
  fs::create_directories(queue + "/q");
  reply = send_message(c, "a@client.test", {"b@remote.test"}, "Subject: y\r\n\r\ny\r\n");
  CHECK_MESSAGE(reply.rfind("250 2.0.0 Ok: queued as ", 0) == 0, reply);
}

TEST_CASE("outbound: bad arguments and an unusable directory stop startup, naming it") {
  TempDir tmp("outq");
  Options none;
  none.plugins = "queue/outbound\n";
  std::string tree = make_tree(none);
  RunResult r = run_uvsmtpd(
      {"--config", tree + "/conf", "--plugin-dir", tree + "/plugins", "--check-config"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("usage: queue/outbound <queue dir>") != std::string::npos, r.output);
  remove_tree(tree);
  spit(tmp.path + "/file", "x");
  tree = make_tree(outbound_opts(tmp.path + "/file/queue"));
  r = run_uvsmtpd(
      {"--config", tree + "/conf", "--plugin-dir", tree + "/plugins", "--check-config"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find(tmp.path + "/file") != std::string::npos, r.output);
  remove_tree(tree);
  // A directory that is something else (a Maildir, say) is never taken over.
  spit(tmp.path + "/maildir/new/1", "mail");
  tree = make_tree(outbound_opts(tmp.path + "/maildir"));
  r = run_uvsmtpd(
      {"--config", tree + "/conf", "--plugin-dir", tree + "/plugins", "--check-config"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("not an uvsmtpd queue directory") != std::string::npos, r.output);
  remove_tree(tree);
}

TEST_CASE("outbound: the startup scan removes what a crash left and reports the queue") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  std::string id, orphan;
  {
    Server s(outbound_opts(queue));
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(c.code() == 220);
    REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
    id = queued_as_id(
        send_message(c, "a@client.test", {"b@remote.test"}, "Subject: x\r\n\r\nx\r\n"));
    REQUIRE(!id.empty());
    orphan = queued_as_id(
        send_message(c, "a@client.test", {"b@remote.test"}, "Subject: o\r\n\r\no\r\n"));
    REQUIRE(!orphan.empty());
  }
  // What a kill -9 between the steps of a store leaves.
  spit(queue + "/tmp/0ZZZZZZZZZ0001.999.0.msg", "half a message");
  spit(queue + "/tmp/0ZZZZZZZZZ0001.999.1.env", "uvsmtpd-queue-envelope 1\nid 0Z");
  // A message renamed in whose envelope never was.
  REQUIRE(fs::remove(entry_file(queue, orphan, ".env")));
  // Shown by the tool as being written, not as entries.
  RunResult l = queue_tool(queue, "list");
  CHECK(l.output.find(id) != std::string::npos);
  CHECK(l.output.find(orphan) == std::string::npos);
  CHECK(l.output.find("2 message(s) being written") != std::string::npos);

  Server s(outbound_opts(queue));
  REQUIRE(s.started());
  CHECK_MESSAGE(s.wait_log("queue " + queue + ": 1 waiting, 0 held"), s.log());
  CHECK(s.wait_log("removed 2 temp file(s) and 1 unfinished message(s)"));
  CHECK(files_under(queue + "/tmp").empty());
  auto files = files_under(queue + "/q");
  CHECK(files.size() == 2);
  CHECK(!entry_file(queue, id, ".msg").empty());
  CHECK(!entry_file(queue, id, ".env").empty());
  CHECK(entry_file(queue, orphan, ".msg").empty());
  // A reload (SIGHUP) does not clean: the running instance uses the queue.
  s.signal(SIGHUP);
  CHECK(s.wait_log("is in use by another instance or process: no startup cleaning"));
}

TEST_CASE("outbound: the plugin (C++ inside) exports uvs_plugin_v1 and nothing else") {
  RunResult r = sh("nm -D --defined-only '" + build_root() + "/plugins/queue/outbound.so' 2>&1");
  REQUIRE(r.status == 0);
  std::string names;
  for (size_t pos = 0; pos < r.output.size();) {
    size_t eol = r.output.find('\n', pos);
    std::string line = r.output.substr(pos, eol - pos);
    pos = eol == std::string::npos ? r.output.size() : eol + 1;
    size_t sp = line.rfind(' ');
    if (sp != std::string::npos) names += line.substr(sp + 1) + " ";
  }
  CHECK_MESSAGE(names == "uvs_plugin_v1 ", r.output);
}

TEST_CASE(
    "outbound: relay policy unchanged: a foreign domain from a non-relay client is refused at "
    "RCPT") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  Options o = outbound_opts(queue, "relay\nrcpt_ok\n");
  o.files["rcpthosts"] = "example.test\n";
  o.files["relayclients"] = "192.0.2.0/24\n";  // not this client
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.code() == 220);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  REQUIRE(c.cmd("MAIL FROM:<a@client.test>").rfind("250", 0) == 0);
  std::string r = c.cmd("RCPT TO:<victim@foreign.test>");
  CHECK_MESSAGE(r.rfind("550 5.7.1 Relaying denied", 0) == 0, r);
  CHECK(c.cmd("RCPT TO:<user@example.test>").rfind("250", 0) == 0);
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  c.send("Subject: local\r\n\r\nlocal\r\n.\r\n");
  std::string reply = c.reply();
  REQUIRE_MESSAGE(reply.rfind("250 2.0.0 Ok: queued as ", 0) == 0, reply);
  std::string env = slurp(entry_file(queue, queued_as_id(reply), ".env"));
  CHECK(env.find("addr=user@example.test") != std::string::npos);
  CHECK(env.find("foreign.test") == std::string::npos);

  // A relay client may send to the foreign domain: queued for it.
  Options relay = outbound_opts(queue, "relay\nrcpt_ok\n");
  relay.files["rcpthosts"] = "example.test\n";
  relay.files["relayclients"] = "127.0.0.1\n";
  Server s2(relay);
  REQUIRE(s2.started());
  Client c2(s2.port());
  REQUIRE(c2.code() == 220);
  REQUIRE(c2.cmd("EHLO client.test").rfind("250", 0) == 0);
  std::string r2 =
      send_message(c2, "a@client.test", {"friend@foreign.test"}, "Subject: r\r\n\r\nr\r\n");
  CHECK_MESSAGE(r2.rfind("250 2.0.0 Ok: queued as ", 0) == 0, r2);
}

// `queue list` output with each entry's AGE column blanked (it moves with the clock).
std::string without_ages(const std::string &list) {
  static const std::regex age(R"(^(\S+ +\d+ +)\d+[smhd])", std::regex::multiline);
  return std::regex_replace(list, age, "$1-");
}

TEST_CASE("outbound: uvsmtpd queue: list, show, hold, release, flush, delete; unknown ids") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  Server s(outbound_opts(queue));
  REQUIRE(s.started());
  std::vector<std::string> ids;
  Client c(s.port());
  REQUIRE(c.code() == 220);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  for (int i = 0; i < 3; ++i) {
    std::string r = send_message(c, "sender" + std::to_string(i) + "@client.test",
                                 {"r" + std::to_string(i) + "@remote.test", "x@other.test"},
                                 "Subject: tool " + std::to_string(i) + "\r\n\r\nbody\r\n");
    REQUIRE_MESSAGE(r.rfind("250 ", 0) == 0, r);
    ids.push_back(queued_as_id(r));
  }
  RunResult r = queue_tool(queue, "list");
  CHECK_MESSAGE(r.status == 0, r.output);
  for (int i = 0; i < 3; ++i) {
    CHECK(r.output.find(ids[i]) != std::string::npos);
    CHECK(r.output.find("<sender" + std::to_string(i) + "@client.test>") != std::string::npos);
    CHECK(r.output.find("    r" + std::to_string(i) + "@remote.test\n") != std::string::npos);
  }
  CHECK(r.output.find("-- 3 message(s), 6 pending recipient(s), 0 held") != std::string::npos);

  // The queue dir from the configuration's queue/outbound line (--config, -c).
  RunResult rc = sh("'" + uvsmtpd_bin() + "' queue --config '" + s.conf_dir() + "' list 2>&1");
  CHECK(rc.status == 0);
  CHECK(without_ages(rc.output) == without_ages(r.output));  // a second may pass between them
  rc = sh("'" + uvsmtpd_bin() + "' queue -c '" + s.conf_dir() + "' show " + ids[0] + " 2>&1");
  CHECK(rc.status == 0);

  r = queue_tool(queue, "show " + ids[1]);
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("id: " + ids[1] + "\nstate: waiting\n") == 0);
  CHECK(r.output.find("sender: <sender1@client.test>") != std::string::npos);
  CHECK(r.output.find("client: unknown [127.0.0.1] helo=client.test") != std::string::npos);
  CHECK(r.output.find("recipient: r1@remote.test pending") != std::string::npos);
  CHECK(r.output.find("\nReceived: from ") != std::string::npos);
  CHECK(r.output.find("\nSubject: tool 1\n") != std::string::npos);
  CHECK(r.output.find("body") == std::string::npos);  // headers only

  r = queue_tool(queue, "hold " + ids[0]);
  CHECK(r.status == 0);
  CHECK(r.output == ids[0] + ": held\n");
  CHECK(!entry_file(queue, ids[0], ".hold").empty());
  CHECK(entry_file(queue, ids[0], ".env").empty());
  r = queue_tool(queue, "list");
  CHECK(r.output.find("-- 3 message(s), 6 pending recipient(s), 1 held") != std::string::npos);
  CHECK(r.output.find(ids[0] + " ") != std::string::npos);
  CHECK(queue_tool(queue, "show " + ids[0]).output.find("state: held") != std::string::npos);

  // flush: every entry not held becomes due now (its envelope's next-try and mtime).
  std::string env2 = entry_file(queue, ids[2], ".env");
  struct timespec past[2] = {{1000, 0}, {1000, 0}};
  REQUIRE(utimensat(AT_FDCWD, env2.c_str(), past, 0) == 0);
  r = queue_tool(queue, "flush");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(r.output == "2 message(s) due now, 1 held left as they are\n");
  struct stat sb {};
  REQUIRE(stat(entry_file(queue, ids[2], ".env").c_str(), &sb) == 0);
  CHECK(sb.st_mtim.tv_sec > 1000);
  r = queue_tool(queue, "flush " + ids[2]);
  CHECK(r.output == ids[2] + ": due now\n");

  r = queue_tool(queue, "release " + ids[0]);
  CHECK(r.output == ids[0] + ": released\n");
  CHECK(!entry_file(queue, ids[0], ".env").empty());
  r = queue_tool(queue, "delete " + ids[1]);
  CHECK(r.status == 0);
  CHECK(r.output == ids[1] + ": deleted\n");
  CHECK(entry_file(queue, ids[1], ".msg").empty());
  CHECK(entry_file(queue, ids[1], ".env").empty());
  r = queue_tool(queue, "list");
  CHECK(r.output.find(ids[1]) == std::string::npos);
  CHECK(r.output.find("-- 2 message(s), 4 pending recipient(s), 0 held") != std::string::npos);

  // Unknown ids: exit 1 and one clear line, for every command that takes one.
  for (std::string cmd : {"show", "delete", "hold", "release", "flush"}) {
    r = queue_tool(queue, cmd + " " + ids[1]);
    CHECK_MESSAGE(r.status == 1, cmd);
    CHECK_MESSAGE(r.output == "uvsmtpd queue: no message " + ids[1] + " in " + queue + "\n",
                  r.output);
  }
  r = queue_tool(queue, "show ../../format");
  CHECK(r.status == 1);
  CHECK(r.output.find("no message ../../format") != std::string::npos);
  // Usage errors: exit 2.
  CHECK(queue_tool(queue, "").status == 2);
  CHECK(queue_tool(queue, "frobnicate").status == 2);
  CHECK(queue_tool(queue, "show").status == 2);
  CHECK(queue_tool(queue, "list extra").status == 2);
  r = sh("'" + uvsmtpd_bin() + "' queue --queue-dir '" + tmp.path + "/nothing' list 2>&1");
  CHECK(r.status == 2);
  CHECK(r.output.find(tmp.path + "/nothing") != std::string::npos);
  Options none;
  none.plugins = "verdict rcpt=OK\n";
  std::string tree = make_tree(none);
  r = sh("'" + uvsmtpd_bin() + "' queue --config '" + tree + "/conf' list 2>&1");
  CHECK(r.status == 2);
  CHECK_MESSAGE(r.output.find(tree + "/conf/plugins: no queue/outbound line") != std::string::npos,
                r.output);
  remove_tree(tree);

  // The server keeps queuing while the tool works (and the deleted id is not reused).
  std::string r4 =
      send_message(c, "late@client.test", {"y@remote.test"}, "Subject: late\r\n\r\nl\r\n");
  CHECK(r4.rfind("250 2.0.0 Ok: queued as ", 0) == 0);
  CHECK(queue_tool(queue, "list").output.find(queued_as_id(r4)) != std::string::npos);

  // A damaged envelope: show names the file and the line, list shows the others and exits 1.
  std::string env0 = entry_file(queue, ids[0], ".env");
  std::string text = slurp(env0);
  spit(env0, text.substr(0, text.size() / 2));
  r = queue_tool(queue, "show " + ids[0]);
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("uvsmtpd queue: " + ids[0] + ": " + env0 + ": ") == 0, r.output);
  CHECK(r.output.find("truncated") != std::string::npos);
  r = queue_tool(queue, "list");
  CHECK(r.status == 1);
  CHECK(r.output.find(ids[0] + "   (damaged: " + env0) != std::string::npos);
  CHECK(r.output.find(ids[2]) != std::string::npos);
  CHECK(r.output.find(queued_as_id(r4)) != std::string::npos);
  spit(env0, text);
  CHECK(queue_tool(queue, "list").status == 0);
}

TEST_CASE(
    "outbound: the queue tool works while the server writes; as root it acts as the queue's "
    "owner") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  Server s(outbound_opts(queue));
  REQUIRE(s.started());
  std::atomic<bool> done{false};
  std::vector<std::string> acked;
  std::thread sender([&] {
    Client c(s.port());
    if (c.code() == 220 && c.cmd("EHLO client.test").rfind("250", 0) == 0)
      for (int i = 0; i < 40; ++i) {
        std::string r = send_message(c, "busy@client.test", {"r@remote.test"},
                                     "Subject: busy " + std::to_string(i) + "\r\n\r\nb\r\n");
        if (r.rfind("250 ", 0) == 0) acked.push_back(queued_as_id(r));
      }
    done = true;
  });
  int runs = 0, bad = 0;
  while (!done) {
    RunResult l = queue_tool(queue, "list");
    RunResult f = queue_tool(queue, "flush");
    ++runs;
    if (l.status != 0 || f.status != 0) {
      ++bad;
      FAIL_CHECK(l.output << f.output);
    }
  }
  sender.join();
  CHECK(acked.size() == 40);
  CHECK(bad == 0);
  CHECK(runs > 0);
  RunResult l = queue_tool(queue, "list");
  for (const auto &id : acked) CHECK(l.output.find(id) != std::string::npos);
  CHECK(l.output.find("-- 40 message(s), 40 pending recipient(s), 0 held") != std::string::npos);

  // Run as root, the tool writes as the owner of the queue directory (the server's user).
  if (geteuid() == 0) {
    struct passwd *nobody = getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    for (const auto &p : fs::recursive_directory_iterator(queue))
      REQUIRE(lchown(p.path().c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    REQUIRE(chown(queue.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    REQUIRE(chmod(tmp.path.c_str(), 0711) == 0);  // the way to the queue, as for the server's user
    RunResult f = queue_tool(queue, "flush " + acked[0]);
    CHECK_MESSAGE(f.status == 0, f.output);
    struct stat sb {};
    REQUIRE(stat(entry_file(queue, acked[0], ".env").c_str(), &sb) == 0);
    CHECK(sb.st_uid == nobody->pw_uid);
  }
}

// ---- kill -9: no message that got 250 is lost, no half files after the next scan ---------

namespace {

std::string kill_message(int n) {
  return itest::kill_message(n, "<a@remote.test>", 300000u);
}

}  // namespace

TEST_CASE(
    "outbound: kill -9 in a loop: every message that got 250 is queued intact, no half files") {
  TempDir tmp("outq");
  std::string queue = tmp.path + "/queue";
  std::string tree = make_tree(outbound_opts(queue));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      if (!getenv("UVS_KEEP_TEST_DIRS")) remove_tree(dir);
    }
  } cleanup{tree};

  std::atomic<int> port{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<int, std::string> acked;  // message number -> queue id from the 250
  std::atomic<int> data_sent{0};
  std::thread client([&] {
    int next = 0;
    while (!stop) {
      int p = port.load();
      if (!p) {
        usleep(1000);
        continue;
      }
      Client c(p);
      if (!c.connected() || c.code(2) != 220 || c.cmd("EHLO client.test", 2).rfind("250", 0) != 0) {
        usleep(1000);
        continue;
      }
      while (!stop) {
        int n = next;  // a message without 250 is sent again, as a real client would
        if (c.cmd("MAIL FROM:<kill@client.test>", 2).rfind("250", 0) != 0) break;
        if (c.cmd("RCPT TO:<a@remote.test>", 2).rfind("250", 0) != 0) break;
        if (c.cmd("DATA", 2).rfind("354", 0) != 0) break;
        ++data_sent;
        c.send(dot_stuff(kill_message(n)) + ".\r\n");
        std::string r = c.reply(10);
        if (r.rfind("250 ", 0) != 0) break;
        std::lock_guard<std::mutex> lock(mu);
        acked[n] = queued_as_id(r);
        ++next;
      }
    }
  });

  std::mt19937 rng(static_cast<unsigned>(time(nullptr)));
  const int kKills = 20;
  int kills = 0;
  OwnServer srv;
  for (int round = 0; round < kKills; ++round) {
    srv.start(tree, tree + "/log." + std::to_string(round));
    if (srv.port <= 0) {  // not REQUIRE: the client thread must be joined first
      FAIL_CHECK("start " << round << ": " << srv.failure
                          << "; log: " << slurp(tree + "/log." + std::to_string(round)));
      break;
    }
    port = srv.port;
    usleep(static_cast<useconds_t>(30000 + rng() % 250001));
    port = 0;
    srv.kill9();
    ++kills;
  }
  stop = true;
  client.join();

  // The next start's scan: no temp file, no message without envelope is left.
  srv.start(tree, tree + "/log.final");
  REQUIRE_MESSAGE(srv.port > 0, srv.failure);
  std::string log = slurp(tree + "/log.final");
  CHECK_MESSAGE(log.find("queue " + queue + ": ") != std::string::npos, log);
  CHECK(files_under(queue + "/tmp").empty());
  auto files = files_under(queue + "/q");
  auto msgs = with_suffix(files, ".msg"), envs = with_suffix(files, ".env");
  CHECK(msgs.size() == envs.size());
  CHECK(msgs.size() + envs.size() == files.size());
  CHECK(files_under(queue + "/corrupt").empty());

  // Every entry is complete; every acknowledged message is there under its id.
  std::map<int, int> copies;
  int partial = 0;
  for (const auto &m : msgs) {
    std::string stored = slurp(queue + "/q/" + m), hdr, rest;
    int n = split_received(stored, hdr, rest) ? kill_message_id(rest) : -1;
    if (n < 0 || rest != kill_message(n)) {
      ++partial;
      FAIL_CHECK("incomplete message: " << m << " (" << stored.size() << " bytes)");
      continue;
    }
    ++copies[n];
  }
  int lost = 0;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto &[n, id] : acked) {
    std::string mfile = entry_file(queue, id, ".msg"), efile = entry_file(queue, id, ".env");
    if (mfile.empty() || efile.empty()) {
      ++lost;
      FAIL_CHECK("message " << n << " got 250 (" << id << ") but is not in the queue");
      continue;
    }
    std::string stored = slurp(mfile), hdr, rest;
    CHECK(split_received(stored, hdr, rest));
    CHECK(rest == kill_message(n));
    std::string env = slurp(efile);
    CHECK(env.find("\nsize " + std::to_string(stored.size()) + "\n") != std::string::npos);
    CHECK(env.substr(env.size() - 4) == "end\n");
  }
  // Every queue command against that queue, the restarted server running.
  RunResult l = queue_tool(queue, "list");
  CHECK_MESSAGE(l.status == 0, l.output);
  CHECK(l.output.find("-- " + std::to_string(msgs.size()) + " message(s)") != std::string::npos);
  if (!acked.empty()) {
    const std::string &id = acked.begin()->second;
    CHECK(queue_tool(queue, "show " + id).output.find("id: " + id + "\n") == 0);
    CHECK(queue_tool(queue, "hold " + id).output == id + ": held\n");
    CHECK(queue_tool(queue, "release " + id).output == id + ": released\n");
    CHECK(queue_tool(queue, "flush " + id).output == id + ": due now\n");
    CHECK(queue_tool(queue, "flush").status == 0);
    CHECK(queue_tool(queue, "delete " + id).output == id + ": deleted\n");
    CHECK(queue_tool(queue, "show " + id).status == 1);
  }
  MESSAGE("kill -9 test: " << kills << " kills, " << data_sent.load() << " DATA attempts, "
                           << acked.size() << " got 250, " << msgs.size() << " entries, " << lost
                           << " lost, " << partial << " partial");
  CHECK(kills == kKills);
  CHECK(acked.size() >= 3);
  CHECK(lost == 0);
  CHECK(partial == 0);
}
