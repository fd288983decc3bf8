// tests/integration/test_shipped.cpp: the shipped configuration (conf/) as a new admin runs it:
// its plugins and list files, with only the Maildir root moved into the test's directory.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>

#include "harness.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

// The shipped conf/ with the Maildir root moved into the test's directory.
Options shipped(const std::string &maildirs) {
  Options o = shipped_options(maildirs);
  REQUIRE(o.plugins.find("queue/maildir " + maildirs) != std::string::npos);
  return o;
}

}  // namespace

TEST_CASE("shipped conf: a burst of 25 parallel connections from one IP is greeted, none deferred") {
  // A default Postfix opens up to 20 parallel deliveries to one destination
  // (default_destination_concurrency_limit); the per-IP limit must not defer them.
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  std::string maildirs = mkdtemp(tmpl);
  Server s(shipped(maildirs));
  REQUIRE(s.started());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 25; ++i) {
    clients.push_back(std::make_unique<Client>(s.port()));
    REQUIRE(clients.back()->connected());
  }
  int greeted = 0;
  for (auto &c : clients) {
    std::string r = c->reply(10);  // earlytalker holds each greeting about a second, in parallel
    if (r.rfind("220 ", 0) == 0) ++greeted;
    else
      MESSAGE("reply: " << r);
  }
  CHECK(greeted == 25);
  for (auto &c : clients) CHECK(c->cmd("QUIT").rfind("221 ", 0) == 0);
  remove_tree(maildirs);
}

TEST_CASE("hosts_allow without arguments: 50 connections per IP, the 51st is deferred") {
  // The core's own per-IP limit (also 50) is lifted so that the plugin's limit is the one seen.
  Server s(Options{.toml = "max_connections_per_ip = 0\n", .plugins = "hosts_allow\nverdict rcpt=OK\n",
                   .log_level = "info"});
  REQUIRE(s.started());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<Client>(s.port()));
    REQUIRE(clients.back()->connected());
    CHECK(clients.back()->reply().rfind("220 ", 0) == 0);
  }
  Client extra(s.port());
  std::string r = extra.reply();
  CHECK_MESSAGE(r.rfind("451 ", 0) == 0, r);
  CHECK(extra.closed());
}

namespace {

// The [bare_newline] table of the shipped uvsmtpd.toml (the harness writes the other keys).
std::string shipped_bare_newline() {
  std::string toml = slurp(source_root() + "/conf/uvsmtpd.toml");
  size_t at = toml.find("\n[bare_newline]");
  REQUIRE(at != std::string::npos);
  size_t end = toml.find("\n[", at + 1);
  return toml.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
}

// Files under `root` whose parent directory is new/ (delivered Maildir messages).
std::vector<std::string> delivered(const std::string &root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file() && it->path().parent_path().filename() == "new")
      out.push_back(it->path().string());
  return out;
}

}  // namespace

TEST_CASE("shipped conf: Python smtplib's sendmail(msg.as_bytes()) with bare LF from loopback is delivered with CRLF") {
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  std::string maildirs = mkdtemp(tmpl);
  Options o = shipped(maildirs);
  o.toml = shipped_bare_newline();
  Server s(o);
  REQUIRE(s.started());
  std::string script = source_root() + "/tests/integration/clients/send_bare_lf.py";
  RunResult r = sh("python3 " + script + " " + std::to_string(s.port()));
  CHECK_MESSAGE(r.status == 0, r.output);
  auto files = delivered(maildirs);
  REQUIRE(files.size() == 1);
  std::string stored = slurp(files[0]);
  CHECK(stored.find("Subject: bare LF from smtplib\r\n") != std::string::npos);
  CHECK(stored.find("line one\r\nline two\r\n") != std::string::npos);
  CHECK(stored.find("\n\n") == std::string::npos);
  remove_tree(maildirs);
}
