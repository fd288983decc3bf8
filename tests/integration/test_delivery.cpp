// tests/integration/test_delivery.cpp: queue/maildir end to end (issue 5): real clients (Python
// smtplib, swaks, the raw harness client) deliver into Maildirs; failures leave nothing in new/;
// SIGKILL loops lose no message that got 250.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <poll.h>
#include <random>
#include <set>
#include <sstream>
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

// ---- files ----------------------------------------------------------------------------

// Regular files directly in dir, sorted (empty if dir does not exist).
std::vector<std::string> files_in(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    if (it->is_regular_file()) out.push_back(it->path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Every regular file under root, relative to it, sorted.
std::vector<std::string> all_files_under(const std::string &root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(fs::relative(it->path(), root).string());
  std::sort(out.begin(), out.end());
  return out;
}

bool all_crlf(const std::string &m) {
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) return false;
    if (m[i] == '\r' && (i + 1 >= m.size() || m[i + 1] != '\n')) return false;
  }
  return !m.empty() && m.size() >= 2 && m.compare(m.size() - 2, 2, "\r\n") == 0;
}

// ---- processes ------------------------------------------------------------------------

struct CmdResult {
  int status = -1;
  std::string out;
};

// Runs argv (PATH lookup) to completion with stdout+stderr captured; killed after timeout.
CmdResult run_cmd(const std::vector<std::string> &args, double timeout = 30) {
  CmdResult res;
  int pipefd[2];
  if (pipe(pipefd) != 0) return res;
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    exec_program(pipefd[1], args);
  }
  close(pipefd[1]);
  double deadline = now() + timeout;
  char buf[4096];
  for (;;) {
    int left = static_cast<int>((deadline - now()) * 1000);
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    res.out.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  res.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return res;
}

std::string client_script() {
  return source_root() + "/tests/integration/clients/smtp_send.py";
}

// Python smtplib: returns "<code> <text>" of the final reply (one line), or the tool's output.
std::string py_send(int port, const std::string &from, const std::vector<std::string> &to,
                    const std::string &msg_file, const std::vector<std::string> &mail_opts = {}) {
  std::vector<std::string> args = {
      "python3", client_script(), "--port", std::to_string(port), "--from",
      from,      "--file",        msg_file};
  for (auto &t : to) args.insert(args.end(), {"--to", t});
  for (auto &o : mail_opts) args.insert(args.end(), {"--mail-opt", o});
  CmdResult r = run_cmd(args);
  std::string out = r.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return r.status == 0 ? out : "exit " + std::to_string(r.status) + ": " + out;
}

// swaks with the DATA file sent as is (the file holds the wire form, final "." included).
CmdResult swaks_send(int port, const std::string &from, const std::string &to_list,
                     const std::string &wire_file) {
  return run_cmd({"swaks", "--server", "127.0.0.1", "--port", std::to_string(port), "--ehlo",
                  "client.test", "--from", from, "--to", to_list, "--data", "@" + wire_file,
                  "--no-data-fixup", "--timeout", "20"});
}

std::string queued_id(const std::string &reply) {
  auto pos = reply.find("Queued as ");
  if (pos == std::string::npos) return "";
  std::string id = reply.substr(pos + 10);
  size_t end = id.find_first_of(" \r\n");
  return end == std::string::npos ? id : id.substr(0, end);
}

Options deliver_opts(const std::string &maildir_args, const std::string &toml = "") {
  Options o;
  o.plugins = "verdict rcpt=OK\nqueue/maildir " + maildir_args + "\n";
  o.toml = toml;
  return o;
}

std::string message(const std::string &subject, const std::string &body) {
  return "From: Sender <sender@client.test>\r\nTo: <alice@one.test>\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + subject + "@client.test>\r\n\r\n" + body;
}

// Checks the single message in maildir/new against `expected` (everything after Received:);
// returns the Received header.
std::string check_single(const std::string &maildir, const std::string &expected) {
  auto files = files_in(maildir + "/new");
  REQUIRE_MESSAGE(files.size() == 1, maildir);
  CHECK(files_in(maildir + "/tmp").empty());
  CHECK(fs::is_directory(maildir + "/cur"));
  std::string stored = slurp(files[0]);
  std::string hdr, rest;
  REQUIRE_MESSAGE(split_received(stored, hdr, rest), stored.substr(0, 200));
  CHECK(rest.size() == expected.size());
  CHECK(rest == expected);
  CHECK(all_crlf(stored));
  struct stat sb {};
  REQUIRE(stat(files[0].c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0600);
  // The copy starts with the envelope: Return-Path (the sender) and Delivered-To (the recipient);
  // the Received header the core added follows and is what is returned.
  CHECK_MESSAGE(hdr.rfind("Return-Path: <", 0) == 0, hdr);
  CHECK_MESSAGE(hdr.find("\r\nDelivered-To: ") != std::string::npos, hdr);
  size_t received = hdr.find("Received: ");
  REQUIRE(received != std::string::npos);
  return hdr.substr(received);
}

}  // namespace

TEST_CASE("delivery: smtplib message lands in the Maildir byte-exact after the Received header") {
  TempDir mail("mail");
  Server s(deliver_opts(mail.path));
  REQUIRE(s.started());
  std::string body =
      "Plain line\r\n"
      ".leading dot (smtplib sends ..leading dot)\r\n"
      "..two dots\r\n"
      ".\r\n"
      "a line with trailing blanks   \t\r\n"
      "\r\n" +
      std::string(990, 'x') +
      "\r\n"
      "last line\r\n";
  std::string msg = message("smtplib-1", body);
  spit(mail.path + "/msg.eml", msg);
  std::string r =
      py_send(s.port(), "sender@client.test", {"alice@one.test"}, mail.path + "/msg.eml");
  REQUIRE_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  std::string id = queued_id(r);
  CHECK(!id.empty());
  std::string hdr = check_single(mail.path + "/one.test/alice", msg);
  CHECK(hdr.rfind("Received: from Unknown (HELO client.test) ([127.0.0.1])\r\n\tby mx.test.invalid "
                  "(uvsmtpd/",
                  0) == 0);
  CHECK_MESSAGE(hdr.find(" id " + id + "; ") != std::string::npos, hdr);
  CHECK(s.wait_log("delivered " + std::to_string(hdr.size() + msg.size()) +
                   " bytes to 1 Maildir(s)"));
}

TEST_CASE("delivery: swaks with dot-stuffed data, as sent on the wire") {
  TempDir mail("mail");
  Server s(deliver_opts(mail.path));
  REQUIRE(s.started());
  std::string body = ".foo\r\n..bar\r\n.\r\n...\r\nend . of line\r\n";
  std::string msg = message("swaks-dots", body);
  std::string wire = dot_stuff(msg) + ".\r\n";
  REQUIRE(wire.find("\r\n..foo\r\n") != std::string::npos);
  REQUIRE(wire.find("\r\n...bar\r\n") != std::string::npos);
  REQUIRE(wire.find("\r\n..\r\n") != std::string::npos);
  spit(mail.path + "/wire.eml", wire);
  CmdResult r = swaks_send(s.port(), "sender@client.test", "bob@two.test", mail.path + "/wire.eml");
  CHECK_MESSAGE(r.status == 0, r.out);
  CHECK_MESSAGE(r.out.find("<-  250 2.0.0 Queued as ") != std::string::npos, r.out);
  check_single(mail.path + "/two.test/bob", msg);
}

TEST_CASE("delivery: 8-bit body with BODY=8BITMIME is stored unchanged") {
  TempDir mail("mail");
  Server s(deliver_opts(mail.path));
  REQUIRE(s.started());
  std::string body =
      "Gr\xc3\xbc\xc3\x9f"
      "e aus K\xc3\xb6ln\r\n";
  for (int line = 0; line < 40; ++line) {
    for (int i = 0; i < 64; ++i) body += static_cast<char>(0x80 + (line * 64 + i) % 128);
    body += "\r\n";
  }
  std::string msg = message("eightbit", "Content-Transfer-Encoding: 8bit\r\n\r\n" + body);
  spit(mail.path + "/msg.eml", msg);
  std::string r = py_send(s.port(), "sender@client.test", {"carol@one.test"},
                          mail.path + "/msg.eml", {"BODY=8BITMIME"});
  REQUIRE_MESSAGE(r.rfind("250 ", 0) == 0, r);
  check_single(mail.path + "/one.test/carol", msg);
}

TEST_CASE("delivery: a long message just under max_message_size; one over it delivers nothing") {
  TempDir mail("mail");
  const size_t kMax = 4 * 1024 * 1024;
  Server s(deliver_opts(mail.path, "max_message_size = " + std::to_string(kMax)));
  REQUIRE(s.started());
  std::string head = message("long", "");
  std::string body;
  body.reserve(kMax);
  std::mt19937 rng(42);
  for (int n = 0; head.size() + body.size() + 80 < kMax - 10; ++n) {
    std::string line = std::to_string(n) + " ";
    if (n % 17 == 0) line = "." + line;  // stuffed on the wire
    while (line.size() < 76) line += static_cast<char>('a' + rng() % 26);
    body += line + "\r\n";
  }
  while (head.size() + body.size() < kMax - 10) body += "z";
  body += "\r\n";
  std::string msg = head + body;
  REQUIRE(msg.size() <= kMax);
  REQUIRE(msg.size() > kMax - 20);
  spit(mail.path + "/long.eml", msg);
  std::string r =
      py_send(s.port(), "sender@client.test", {"dave@one.test"}, mail.path + "/long.eml");
  REQUIRE_MESSAGE(r.rfind("250 ", 0) == 0, r);
  check_single(mail.path + "/one.test/dave", msg);

  std::string big = msg + std::string(2000, 'y') + "\r\n";
  spit(mail.path + "/big.eml", big);
  r = py_send(s.port(), "sender@client.test", {"dave@one.test", "erin@two.test"},
              mail.path + "/big.eml");
  CHECK_MESSAGE(r.rfind("552 ", 0) == 0, r);
  CHECK(files_in(mail.path + "/one.test/dave/new").size() == 1);
  CHECK(!fs::exists(mail.path + "/two.test/erin"));
}

TEST_CASE("delivery: recipients in several domains each get one copy; same Maildir only once") {
  TempDir mail("mail");
  Server s(deliver_opts(mail.path));
  REQUIRE(s.started());
  std::string msg = message("multi", "one message, several mailboxes\r\n");
  spit(mail.path + "/wire.eml", dot_stuff(msg) + ".\r\n");
  CmdResult r = swaks_send(s.port(), "sender@client.test",
                           "alice@one.test,Bob@TWO.test,alice@ONE.test,carol@two.test",
                           mail.path + "/wire.eml");
  CHECK_MESSAGE(r.out.find("<-  250 2.0.0 Queued as ") != std::string::npos, r.out);
  std::string h1 = check_single(mail.path + "/one.test/alice", msg);
  std::string h2 = check_single(mail.path + "/two.test/Bob", msg);
  std::string h3 = check_single(mail.path + "/two.test/carol", msg);
  CHECK(h1 == h2);
  CHECK(h1 == h3);
  CHECK(s.wait_log("to 3 Maildir(s) for 3 recipient(s)"));
  // Exactly those three Maildirs (and the message file written for swaks).
  auto all = all_files_under(mail.path);
  CHECK(all.size() == 4);
}

TEST_CASE("delivery: pattern with %l and a literal part; <postmaster> goes to the server's name") {
  TempDir mail("mail");
  Server s(deliver_opts(mail.path + " mail/%d/%l/Maildir"));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.code() == 220);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  REQUIRE(c.cmd("MAIL FROM:<sender@client.test>").rfind("250", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<Postmaster>").rfind("250", 0) == 0);
  REQUIRE(c.cmd("RCPT TO:<Bob.Smith@Two.Test>").rfind("250", 0) == 0);
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  std::string msg = message("pattern", "hello\r\n");
  c.send(dot_stuff(msg) + ".\r\n");
  std::string r = c.reply(10);
  REQUIRE_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  check_single(mail.path + "/mail/mx.test.invalid/postmaster/Maildir", msg);
  check_single(mail.path + "/mail/two.test/bob.smith/Maildir", msg);
}

TEST_CASE("delivery: recipients that would escape the Maildir tree are refused, nothing created") {
  TempDir mail("mail");
  std::string base = mail.path + "/mail";
  Server s(deliver_opts(base));
  REQUIRE(s.started());
  const std::vector<std::string> bad = {
      "\"../../../etc/x\"@one.test",
      "\"a/b\"@one.test",
      "\"..\"@one.test",
      "\".hidden\"@one.test",
      "\"a b\"@one.test",
      "user@[192.0.2.1]",
      "..@one.test",
      ".x@one.test",
      "a..b@one.test",
      "user@one..test",
      "user@.one.test",
      "\"x\\\"y\"@one.test",
  };
  int reached_data = 0;
  for (const auto &addr : bad) {
    CAPTURE(addr);
    Client c(s.port());
    REQUIRE(c.code() == 220);
    REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
    REQUIRE(c.cmd("MAIL FROM:<sender@client.test>").rfind("250", 0) == 0);
    // A good recipient too: the whole message is refused, the good one gets nothing either.
    REQUIRE(c.cmd("RCPT TO:<good@one.test>").rfind("250", 0) == 0);
    std::string rr = c.cmd("RCPT TO:<" + addr + ">");
    if (rr.rfind("250", 0) != 0) continue;  // the core's parser refused it already
    REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
    c.send(message("unsafe", "x\r\n") + ".\r\n");
    std::string r = c.reply(10);
    CHECK_MESSAGE(r.rfind("554 5.1.3 ", 0) == 0, r);
    ++reached_data;
  }
  MESSAGE(reached_data << " of " << bad.size() << " unsafe addresses passed the core's parser");
  CHECK(reached_data >= 4);
  CHECK(!fs::exists(base));
  CHECK(all_files_under(mail.path).empty());
  CHECK(s.wait_log("refusing the message: recipient <", 5, reached_data));
  CHECK(s.count_log("refusing the message: recipient <") == reached_data);
}

TEST_CASE("delivery: Maildir cannot be created (parent is a file): 451, nothing delivered") {
  // The root is fine (startup checks it), but a domain directory under it is a regular file.
  TempDir mail("mail");
  spit(mail.path + "/root/one.test", "not a directory\n");
  Server s(deliver_opts(mail.path + "/root"));
  REQUIRE(s.started());
  std::string msg = message("fail", "x\r\n");
  spit(mail.path + "/msg.eml", msg);
  std::string r = py_send(s.port(), "sender@client.test", {"alice@one.test", "bob@two.test"},
                          mail.path + "/msg.eml");
  CHECK_MESSAGE(r.rfind("451 4.3.0 ", 0) == 0, r);
  CHECK(s.wait_log("delivery failed: mkdir " + mail.path + "/root/one.test"));
  CHECK(s.count_log("(ENOTDIR 20)") >= 1);
  CHECK(all_files_under(mail.path) == std::vector<std::string>{"msg.eml", "root/one.test"});
  CHECK(s.wait_log("not queued (DENYSOFT from queue/maildir"));
}

TEST_CASE("delivery: a Maildir root under a regular file stops startup, naming it") {
  TempDir mail("mail");
  spit(mail.path + "/file", "not a directory\n");
  std::string dir = make_tree(deliver_opts(mail.path + "/file/mail"));
  RunResult r =
      run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("plugin 'queue/maildir' failed to initialise: " + mail.path +
                              "/file: Not a directory") != std::string::npos,
                r.output);
  remove_tree(dir);
}

TEST_CASE("delivery: failure after one copy is already in new/ removes that copy too") {
  // z.test/u/new is a symlink to a directory on another mount: link() there fails with EXDEV
  // after a.test/a's copy was linked into its new/ (copies are published in path order).
  TempDir mail("mail");
  TempDir other("mail", "/dev/shm");
  REQUIRE(!other.path.empty());
  struct stat a {
  }, b{};
  REQUIRE(stat(mail.path.c_str(), &a) == 0);
  REQUIRE(stat(other.path.c_str(), &b) == 0);
  if (a.st_dev == b.st_dev) {
    MESSAGE("/tmp and /dev/shm are one file system here; test skipped");
    return;
  }
  std::string z = mail.path + "/mail/z.test/u";
  fs::create_directories(z + "/tmp");
  fs::create_directories(z + "/cur");
  fs::create_symlink(other.path, z + "/new");
  Server s(deliver_opts(mail.path + "/mail"));
  REQUIRE(s.started());
  std::string msg = message("partial", "x\r\n");
  spit(mail.path + "/msg.eml", msg);
  std::string r =
      py_send(s.port(), "sender@client.test", {"u@z.test", "a@a.test"}, mail.path + "/msg.eml");
  CHECK_MESSAGE(r.rfind("451 4.3.0 ", 0) == 0, r);
  CHECK(s.wait_log("delivery failed: link " + z + "/new/"));
  CHECK(s.count_log("(EXDEV 18)") >= 1);
  CHECK(fs::is_directory(mail.path + "/mail/a.test/a/new"));
  CHECK(files_in(mail.path + "/mail/a.test/a/new").empty());
  CHECK(files_in(mail.path + "/mail/a.test/a/tmp").empty());
  CHECK(files_in(z + "/tmp").empty());
  CHECK(files_in(other.path).empty());
}

TEST_CASE(
    "delivery: parallel sessions into a shared and an own Maildir: each 250 is in both once") {
  // Group commit: the fsyncs of a new/ directory are shared by the copies linked while the
  // previous one ran, so one message's two copies are settled by different batches of two
  // directories. Whatever the interleaving, every message that got 250 is complete in both of
  // its Maildirs, exactly once, and tmp/ is empty.
  TempDir mail("mail");
  std::string base = mail.path + "/mail";
  Server s(deliver_opts(base));
  REQUIRE(s.started());
  const int kSessions = 6, kEach = 5;
  auto body = [](int n) {  // n + 5 lines of 62 bytes
    std::string b;
    for (int l = 0; l < n + 5; ++l)
      b += std::to_string(n) + ":" + std::string(58, static_cast<char>('a' + l % 26)) + "\r\n";
    return b;
  };
  std::vector<std::string> replies(kSessions * kEach);
  std::vector<std::thread> threads;
  for (int t = 0; t < kSessions; ++t)
    threads.emplace_back([&, t] {
      Client c(s.port());
      if (c.code(10) != 220 || c.cmd("EHLO client.test", 10).rfind("250", 0) != 0) return;
      for (int i = 0; i < kEach; ++i) {
        int n = t * kEach + i;
        if (c.cmd("MAIL FROM:<sender@client.test>", 10).rfind("250", 0) != 0) return;
        if (c.cmd("RCPT TO:<shared@one.test>", 10).rfind("250", 0) != 0) return;
        if (c.cmd("RCPT TO:<own" + std::to_string(t) + "@two.test>", 10).rfind("250", 0) != 0)
          return;
        if (c.cmd("DATA", 10).rfind("354", 0) != 0) return;
        c.send(dot_stuff(message("par" + std::to_string(n), body(n))) + ".\r\n");
        replies[n] = c.reply(20);
      }
      c.cmd("QUIT", 5);
    });
  for (auto &th : threads) th.join();
  auto subject_of = [](const std::string &stored) {
    auto pos = stored.find("\r\nSubject: ");
    return pos == std::string::npos
               ? std::string()
               : stored.substr(pos + 11, stored.find("\r\n", pos + 11) - pos - 11);
  };
  std::map<std::string, int> shared;
  for (const auto &f : files_in(base + "/one.test/shared/new")) ++shared[subject_of(slurp(f))];
  CHECK(files_in(base + "/one.test/shared/tmp").empty());
  for (int t = 0; t < kSessions; ++t) {
    std::string own = base + "/two.test/own" + std::to_string(t);
    CHECK(files_in(own + "/tmp").empty());
    std::map<std::string, int> mine;
    for (const auto &f : files_in(own + "/new")) {
      std::string stored = slurp(f), hdr, rest;
      REQUIRE(split_received(stored, hdr, rest));
      std::string subj = subject_of(stored);
      int n = atoi(subj.c_str() + 3);
      CHECK(rest == message(subj, body(n)));
      ++mine[subj];
    }
    for (int i = 0; i < kEach; ++i) {
      int n = t * kEach + i;
      std::string subj = "par" + std::to_string(n);
      CAPTURE(subj);
      CHECK_MESSAGE(replies[n].rfind("250 ", 0) == 0, replies[n]);
      CHECK(mine[subj] == 1);
      CHECK(shared[subj] == 1);
    }
  }
  CHECK(files_in(base + "/one.test/shared/new").size() == static_cast<size_t>(kSessions * kEach));
}

TEST_CASE("delivery: bad plugin arguments stop startup") {
  // The server binds (and logs "listening") before it loads plugins, so wait for its exit.
  TempDir mail("mail");
  {
    Server s(deliver_opts(mail.path + " %d/%x"));
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find("unknown escape") != std::string::npos);
  }
  {
    Server s(deliver_opts(mail.path + " ../%u"));
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find("component in pattern") != std::string::npos);
  }
  {
    Server s(deliver_opts(""));
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find("usage: queue/maildir <dir> [pattern] [domains=FILE]") != std::string::npos);
  }
  {
    Server s(deliver_opts(mail.path + " domains=nosuchfile"));
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find("domains=nosuchfile: no such file in the config directory") !=
          std::string::npos);
  }
  {
    Options o = deliver_opts(mail.path + " domains=maildomains");
    o.files = {{"maildomains", "one.test\nbad entry\n"}};
    Server s(o);
    CHECK(s.wait_exit() == 1);
    CHECK(s.log().find(
              "conf/maildomains:2: 'bad entry' is not a domain, .domain or address literal") !=
          std::string::npos);
  }
}

// ---- RCPT: queue/maildir accepts only what it can deliver ------------------------------

namespace {
// queue/maildir before rcpt_ok, as in conf/plugins; 127.0.0.1 relays when `relay_client`.
Options rcpt_opts(const std::string &maildir_args, bool relay_client) {
  Options o;
  o.plugins = "relay\nqueue/maildir " + maildir_args + "\nrcpt_ok\n";
  o.files = {{"rcpthosts", "one.test\n"},
             {"relayclients", relay_client ? "127.0.0.1\n" : "192.0.2.0/24\n"}};
  return o;
}

std::string open_txn(Client &c) {
  std::string r = c.reply();
  r += c.cmd("EHLO client.test");
  return r + c.cmd("MAIL FROM:<sender@client.test>");
}
}  // namespace

TEST_CASE(
    "delivery: a quoted local part with safe characters is stored unquoted (RCPT and queue)") {
  TempDir mail("mail");
  Server s(rcpt_opts(mail.path, false));
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<\"john.doe\"@one.test>") ==
        "250 2.1.5 <\"john.doe\"@one.test>, recipient ok");
  CHECK(c.cmd("RCPT TO:<\"a\\+b\"@one.test>") == "250 2.1.5 <\"a\\+b\"@one.test>, recipient ok");
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  std::string msg = message("quoted", "hello\r\n");
  c.send(dot_stuff(msg) + ".\r\n");
  CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
  check_single(mail.path + "/one.test/john.doe", msg);
  check_single(mail.path + "/one.test/a+b", msg);
  CHECK(all_files_under(mail.path).size() == 2);
}

TEST_CASE("delivery: what cannot be stored in a Maildir is refused at RCPT, never after DATA") {
  TempDir mail("mail");
  Server s(rcpt_opts(mail.path, true));  // even a relay client
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  for (std::string bad :
       {"\"a b\"@one.test", "\"../x\"@one.test", "\".hidden\"@one.test", "a..b@one.test",
        "\"x\\\"y\"@one.test", "user@one..test", "u%other.example@one.test"}) {
    CAPTURE(bad);
    std::string r = c.cmd("RCPT TO:<" + bad + ">");
    if (r.rfind("501 ", 0) == 0) continue;  // the core's parser refused it already
    CHECK(r == "550 5.1.3 <" + bad + ">: local part cannot be stored in a Maildir");
  }
  // the good recipient of the same transaction still gets the message
  CHECK(c.cmd("RCPT TO:<good@one.test>") == "250 2.1.5 <good@one.test>, recipient ok");
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  std::string msg = message("good", "x\r\n");
  c.send(dot_stuff(msg) + ".\r\n");
  CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
  check_single(mail.path + "/one.test/good", msg);
  CHECK(all_files_under(mail.path).size() == 1);
  CHECK(
      s.wait_log("queue/maildir: refusing <\"a b\"@one.test>: local part has characters outside"));
}

TEST_CASE(
    "delivery: a hostname written with a trailing dot: <postmaster> and the own literal go to it "
    "without") {
  // An address's domain never ends in '.' (the core's parser refuses it); me may, and %d drops it.
  TempDir mail("mail");
  Server s(rcpt_opts(mail.path, false));
  REQUIRE(s.started());
  REQUIRE_MESSAGE(
      s.reload_toml("hostname = \"mx.test.invalid\"", "hostname = \"mx.test.invalid.\""), s.log());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<postmaster>") == "250 2.1.5 <postmaster>, recipient ok");
  CHECK(c.cmd("RCPT TO:<u@[127.0.0.1]>") == "250 2.1.5 <u@[127.0.0.1]>, recipient ok");
  CHECK(c.cmd("RCPT TO:<u@example.test.>").rfind("501 ", 0) == 0);
  REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
  std::string msg = message("dot", "x\r\n");
  c.send(dot_stuff(msg) + ".\r\n");
  CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
  check_single(mail.path + "/mx.test.invalid/postmaster", msg);
  check_single(mail.path + "/mx.test.invalid/u", msg);
  CHECK(all_files_under(mail.path).size() == 2);
}

TEST_CASE(
    "delivery: a foreign domain: 550 5.4.4 for a relay client, rcpt_ok's Relaying denied for "
    "others") {
  for (bool relay_client : {true, false}) {
    CAPTURE(relay_client);
    TempDir mail("mail");
    Server s(rcpt_opts(mail.path, relay_client));
    REQUIRE(s.started());
    Client c(s.port());
    open_txn(c);
    std::string r = c.cmd("RCPT TO:<victim@Elsewhere.Invalid>");
    if (relay_client)
      CHECK(r == "550 5.4.4 <victim@Elsewhere.Invalid>: no route to domain Elsewhere.Invalid");
    else
      CHECK(r == "550 5.7.1 Relaying denied");
    CHECK(c.cmd("RCPT TO:<victim@[192.0.2.1]>")
              .rfind(relay_client ? "550 5.4.4 " : "550 5.7.1 ", 0) == 0);
    // a percent hack to a local domain: left to rcpt_ok, unless the session may relay
    CHECK(c.cmd("RCPT TO:<u%other.example@one.test>") ==
          (relay_client
               ? "550 5.1.3 <u%other.example@one.test>: local part cannot be stored in a Maildir"
               : "550 5.7.1 Relaying denied"));
    // local: me, rcpthosts, and the server's own address literal (stored under me)
    for (std::string ok : {"u@one.test", "u@mx.test.invalid", "postmaster@[127.0.0.1]"}) {
      CAPTURE(ok);
      CHECK(c.cmd("RCPT TO:<" + ok + ">") == "250 2.1.5 <" + ok + ">, recipient ok");
    }
    REQUIRE(c.cmd("DATA").rfind("354", 0) == 0);
    std::string msg = message("local", "x\r\n");
    c.send(dot_stuff(msg) + ".\r\n");
    CHECK(c.reply(10).rfind("250 2.0.0 Queued as ", 0) == 0);
    check_single(mail.path + "/one.test/u", msg);
    check_single(mail.path + "/mx.test.invalid/u", msg);
    check_single(mail.path + "/mx.test.invalid/postmaster", msg);
    CHECK(!fs::exists(mail.path + "/elsewhere.invalid"));
  }
}

TEST_CASE("delivery: domains=FILE names the Maildir domains instead of rcpthosts") {
  TempDir mail("mail");
  Options o = rcpt_opts(mail.path + " domains=maildomains", true);
  o.files["maildomains"] = "two.test\n";
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  open_txn(c);
  CHECK(c.cmd("RCPT TO:<u@one.test>") == "550 5.4.4 <u@one.test>: no route to domain one.test");
  CHECK(c.cmd("RCPT TO:<u@two.test>") == "250 2.1.5 <u@two.test>, recipient ok");
  CHECK(c.cmd("RCPT TO:<u@mx.test.invalid>") == "250 2.1.5 <u@mx.test.invalid>, recipient ok");
}

// ---- SIGKILL: no message that got 250 is lost ------------------------------------------

namespace {

// Message number n of the kill test: deterministic, 200 B .. ~400 KB (the core keeps messages
// under 256 KiB in memory and spills larger ones to disk: both kinds of message_fd), some lines
// need stuffing.
std::string kill_message(int n) {
  return itest::kill_message(n, "<a@one.test>, <b@two.test>", 400000u);
}

}  // namespace

TEST_CASE("delivery: SIGKILL loop loses no message that got 250") {
  Options o;
  o.plugins = "verdict rcpt=OK\n";  // queue/maildir added below, once the tree's path is known
  std::string tree = make_tree(o);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      if (!getenv("UVS_KEEP_TEST_DIRS")) remove_tree(dir);
    }
  } cleanup{tree};
  std::string maildirs = tree + "/mail";
  spit(tree + "/conf/plugins", "verdict rcpt=OK\nqueue/maildir " + maildirs + "\n");

  std::atomic<int> port{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<int> acked;
  std::atomic<int> data_sent{0}, connections{0};
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
      ++connections;
      while (!stop) {
        int n = next;  // a message without 250 is sent again, as a real client would
        std::string r = c.cmd("MAIL FROM:<kill@client.test>", 2);
        if (r.rfind("250", 0) != 0) break;
        if (c.cmd("RCPT TO:<a@one.test>", 2).rfind("250", 0) != 0) break;
        if (c.cmd("RCPT TO:<b@two.test>", 2).rfind("250", 0) != 0) break;
        if (c.cmd("DATA", 2).rfind("354", 0) != 0) break;
        ++data_sent;
        c.send(dot_stuff(kill_message(n)) + ".\r\n");
        r = c.reply(10);
        if (r.rfind("250 ", 0) != 0) break;
        std::lock_guard<std::mutex> lock(mu);
        acked.insert(n);
        ++next;
      }
    }
  });

  std::mt19937 rng(static_cast<unsigned>(time(nullptr)));
  const int kKills = 8;
  int kills = 0;
  double t0 = now();
  OwnServer srv;
  for (int round = 0; round <= kKills && now() - t0 < 12; ++round) {
    srv.start(tree, tree + "/log." + std::to_string(round));
    if (srv.port <= 0) {  // not REQUIRE: the client thread must be joined first
      FAIL_CHECK("start " << round << ": " << srv.failure
                          << "; log: " << slurp(tree + "/log." + std::to_string(round)));
      break;
    }
    port = srv.port;
    if (round == kKills) {
      // Last round: no kill until a few more messages got through, to show the restart works.
      size_t before;
      {
        std::lock_guard<std::mutex> lock(mu);
        before = acked.size();
      }
      for (double deadline = now() + 4; now() < deadline; usleep(5000)) {
        std::lock_guard<std::mutex> lock(mu);
        if (acked.size() >= before + 3) break;
      }
      stop = true;
    } else {
      usleep(static_cast<useconds_t>(50000 + rng() % 250001));
    }
    port = 0;
    srv.kill9();
    if (round < kKills) ++kills;
  }
  stop = true;
  client.join();
  double elapsed = now() - t0;

  // Every file in new/ is one complete message; every acknowledged message is in both Maildirs.
  std::map<int, int> copies[2];
  int partial = 0, files_total = 0;
  const char *boxes[2] = {"/one.test/a", "/two.test/b"};
  for (int b = 0; b < 2; ++b) {
    for (const auto &f : files_in(maildirs + boxes[b] + "/new")) {
      ++files_total;
      std::string stored = slurp(f), hdr, rest;
      int n = split_received(stored, hdr, rest) ? kill_message_id(rest) : -1;
      if (n < 0 || rest != kill_message(n)) {
        ++partial;
        FAIL_CHECK("incomplete message in new/: " << f << " (" << stored.size() << " bytes)");
        continue;
      }
      ++copies[b][n];
    }
  }
  int lost = 0, dup = 0, unacked_delivered = 0;
  std::lock_guard<std::mutex> lock(mu);
  for (int n : acked)
    for (int b = 0; b < 2; ++b)
      if (!copies[b].count(n)) {
        ++lost;
        FAIL_CHECK("message " << n << " got 250 but is missing from " << boxes[b]);
      }
  for (int b = 0; b < 2; ++b)
    for (auto &[n, k] : copies[b]) {
      dup += k - 1;
      if (!acked.count(n)) ++unacked_delivered;
    }
  size_t tmp_left =
      files_in(maildirs + "/one.test/a/tmp").size() + files_in(maildirs + "/two.test/b/tmp").size();
  MESSAGE("SIGKILL test: " << kills << " kills in " << elapsed << " s, " << connections.load()
                           << " connections, " << data_sent.load() << " DATA attempts, "
                           << acked.size() << " got 250, " << files_total
                           << " files in new/ (2 Maildirs), " << lost << " lost, " << partial
                           << " partial, " << dup << " duplicates, " << unacked_delivered
                           << " copies of messages never acknowledged, " << tmp_left
                           << " tmp/ leftovers");
  fprintf(stderr,
          "SIGKILL test: kills=%d data_attempts=%d acked=%zu files=%d lost=%d partial=%d dup=%d "
          "unacked_delivered=%d tmp=%zu\n",
          kills, data_sent.load(), acked.size(), files_total, lost, partial, dup, unacked_delivered,
          tmp_left);
  CHECK(kills == kKills);
  CHECK(acked.size() >= 3);  // the last round alone waits for 3 (ASan builds are slow)
  CHECK(lost == 0);
  CHECK(partial == 0);
}

TEST_CASE(
    "delivery: each copy starts with Return-Path (the sender, <> for bounces) and Delivered-To") {
  TempDir mail("mail");
  Server s(deliver_opts(mail.path));
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(c.reply().rfind("220 ", 0) == 0);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  CHECK(send_message(c, "", {"alice@one.test", "bob@two.test"}, "Subject: bounce\r\n\r\nx\r\n")
            .rfind("250 ", 0) == 0);
  CHECK(send_message(c, "Sender@Client.test", {"carol@one.test"}, "Subject: s\r\n\r\ny\r\n")
            .rfind("250 ", 0) == 0);
  auto first = [&](const std::string &box) {
    auto f = files_in(mail.path + "/" + box + "/new");
    return f.size() == 1 ? slurp(f[0]) : std::string("(" + std::to_string(f.size()) + " files)");
  };
  CHECK(first("one.test/alice")
            .rfind("Return-Path: <>\r\nDelivered-To: alice@one.test\r\nReceived: ", 0) == 0);
  CHECK(first("two.test/bob")
            .rfind("Return-Path: <>\r\nDelivered-To: bob@two.test\r\nReceived: ", 0) == 0);
  CHECK(
      first("one.test/carol")
          .rfind("Return-Path: <Sender@Client.test>\r\nDelivered-To: carol@one.test\r\nReceived: ",
                 0) == 0);
}

TEST_CASE(
    "delivery: a Maildir root the run-as user cannot write stops startup and --check-config") {
  // As root the check runs as user nobody (as a start would: plugins load after the drop); as
  // anyone else a directory without write permission is refused to its owner too.
  TempDir mail("mail");
  std::string root = mail.path + "/mail";
  fs::create_directories(root);
  chmod(mail.path.c_str(), 0755);
  chmod(root.c_str(), 0555);
  std::string toml;
  std::string dir =
      make_tree(Options{.plugins = "verdict rcpt=OK\nqueue/maildir " + root + "/sub\n"});
  if (geteuid() == 0) {
    toml = "user = \"nobody\"\n";
    chmod(dir.c_str(), 0755);
    REQUIRE(chown((dir + "/spool").c_str(), 65534, 65534) == 0);
    std::string t = slurp(dir + "/conf/uvsmtpd.toml");
    spit(dir + "/conf/uvsmtpd.toml", toml + t);
  }
  for (bool check : {true, false}) {
    std::vector<std::string> args = {"--config",       dir + "/conf", "--plugin-dir",
                                     dir + "/plugins", "--listen",    "127.0.0.1:0"};
    if (check) args.push_back("--check-config");
    RunResult r = run_uvsmtpd(args);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("plugin 'queue/maildir' failed to initialise: " + root +
                                ": Permission denied (uid ") != std::string::npos,
                  r.output);
    CHECK(r.output.find("must be able to create Maildirs under " + root + "/sub") !=
          std::string::npos);
  }
  chmod(root.c_str(), 0755);
  remove_tree(dir);
}
