// tests/sendmail/test_sendmail.cpp: the real uvsmtpd-sendmail end to end: into the real
// uvsmtpd (rcpt_ok + queue/maildir; the Maildir files are checked) and into a scripted fake
// server (the bytes on the wire, 4xx replies), with its sysexits.h exit codes.
#include <doctest/doctest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <netinet/in.h>
#include <pwd.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "harness.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr
};

// Runs uvsmtpd-sendmail with args, input on its standard input, extra environment entries.
Run sendmail(const std::vector<std::string> &args, const std::string &input,
             const std::vector<std::string> &env = {}) {
  signal(SIGPIPE, SIG_IGN);
  const char *exe = getenv("UVS_SENDMAIL");
  std::string path = exe ? exe : build_root() + "/sendmail/uvsmtpd-sendmail";
  char out_tmpl[] = "/tmp/uvsmtpd-test.smout.XXXXXX";
  int out = mkstemp(out_tmpl);
  int in[2];
  REQUIRE(pipe(in) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out, 1);
    dup2(out, 2);
    close(in[1]);
    unsetenv("UVSMTPD_SENDMAIL_SERVER");
    for (auto &e : env) putenv(const_cast<char *>(e.c_str()));
    std::vector<char *> argv{const_cast<char *>(path.c_str())};
    for (auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;  // the program stopped reading (a usage error, a "." line)
    off += static_cast<size_t>(n);
  }
  close(in[1]);
  int st = 0;
  waitpid(pid, &st, 0);
  Run r;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.output = slurp(out_tmpl);
  close(out);
  unlink(out_tmpl);
  return r;
}

std::string crlf(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '\n') o += '\r';
    o += c;
  }
  return o;
}

// A real server delivering into <mail>/<domain>/<user>: rcpt_ok accepts example.test and the
// server's own name.
struct Mta {
  std::string mail;
  std::unique_ptr<Server> server;
  Mta() {
    char tmpl[] = "/tmp/uvsmtpd-test.smmail.XXXXXX";
    mail = mkdtemp(tmpl);
    server = std::make_unique<Server>(Options{
        .plugins = "rcpt_ok\nqueue/maildir " + mail + "\n",
        .files = {{"rcpthosts", "example.test\n"}},
    });
  }
  ~Mta() {
    std::error_code ec;
    fs::remove_all(mail, ec);
  }
  std::string at() const { return "127.0.0.1:" + std::to_string(server->port()); }
  // The messages in user@domain's Maildir new/, each without the Received: field uvsmtpd adds.
  std::vector<std::string> messages(const std::string &user, const std::string &domain) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto &e : fs::directory_iterator(mail + "/" + domain + "/" + user + "/new", ec)) {
      std::string hdr, rest, m = slurp(e.path().string());
      out.push_back(split_received(m, hdr, rest) ? rest : "no Received: " + m);
    }
    return out;
  }
};

// A scripted SMTP server on 127.0.0.1 for one connection: replies from the script, records
// what the client sent (the message data included).
struct FakeServer {
  int lfd = -1, port = 0;
  std::string received;
  std::string rcpt_reply = "250 2.1.5 Ok";
  std::thread t;
  FakeServer() {
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &len);
    port = ntohs(a.sin_port);
    listen(lfd, 1);
  }
  void start() {
    t = std::thread([this] {
      int fd = accept(lfd, nullptr, nullptr);
      if (fd < 0) return;
      auto say = [&](const std::string &s) { (void)!write(fd, s.data(), s.size()); };
      say("220 fake.test ESMTP\r\n");
      std::string buf;
      bool in_data = false;
      char b[4096];
      for (;;) {
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0) break;
        received.append(b, static_cast<size_t>(n));
        buf.append(b, static_cast<size_t>(n));
        size_t e;
        while ((e = buf.find(in_data ? "\r\n.\r\n" : "\r\n")) != std::string::npos) {
          std::string line = buf.substr(0, e);
          buf.erase(0, e + (in_data ? 5 : 2));
          if (in_data) {
            in_data = false;
            say("250 2.0.0 Ok\r\n");
          } else if (line.rfind("EHLO", 0) == 0) {
            say("250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n");
          } else if (line.rfind("RCPT", 0) == 0) {
            say(rcpt_reply + "\r\n");
          } else if (line == "DATA") {
            in_data = true;
            say("354 go ahead\r\n");
            if (buf.rfind(".\r\n", 0) == 0) buf.insert(0, "\r\n");  // an empty message
          } else if (line == "QUIT") {
            say("221 2.0.0 Bye\r\n");
            close(fd);
            return;
          } else {
            say("250 2.0.0 Ok\r\n");
          }
        }
      }
      close(fd);
    });
  }
  ~FakeServer() {
    if (t.joinable()) t.join();
    close(lfd);
  }
  std::string at() const { return "127.0.0.1:" + std::to_string(port); }
};

std::string login() {
  const passwd *pw = getpwuid(getuid());
  return pw ? pw->pw_name : "";
}

}  // namespace

TEST_CASE("sendmail: recipients from the arguments; bare LF arrives as CRLF") {
  Mta m;
  REQUIRE(m.server->started());
  std::string msg = "From: a@example.test\nTo: bob@example.test\nSubject: t\n\nline 1\nline 2\n";
  Run r = sendmail({"-S", m.at(), "-f", "a@example.test", "bob@example.test",
                    "Carol <carol@example.test>, dan@example.test"},
                   msg);
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(r.output == "");
  for (const char *u : {"bob", "carol", "dan"}) {
    auto got = m.messages(u, "example.test");
    REQUIRE_MESSAGE(got.size() == 1, u);
    CHECK(got[0] == crlf(msg));
  }
  CHECK(m.server->count_log(": from=<a@example.test>") == 1);
}

TEST_CASE("sendmail: -t takes To, Cc and Bcc; Bcc is removed from the message") {
  Mta m;
  REQUIRE(m.server->started());
  std::string msg =
      "From: a@example.test\nTo: Bob <bob@example.test>\nCc: carol@example.test,\n"
      "  \"Dan D.\" <dan@example.test>\nBcc: eve@example.test\nSubject: t\n\nBcc: in the body\n";
  Run r = sendmail({"-S", m.at(), "-t", "-i"}, msg);
  CHECK_MESSAGE(r.status == 0, r.output);
  std::string want = crlf(
      "From: a@example.test\nTo: Bob <bob@example.test>\nCc: carol@example.test,\n"
      "  \"Dan D.\" <dan@example.test>\nSubject: t\n\nBcc: in the body\n");
  for (const char *u : {"bob", "carol", "dan", "eve"}) {
    auto got = m.messages(u, "example.test");
    REQUIRE_MESSAGE(got.size() == 1, u);
    CHECK(got[0] == want);
  }
}

TEST_CASE("sendmail: a lone '.' line: kept with -i (stuffed on the wire), ends the input without") {
  std::string msg = "Subject: dots\n\nbefore\n.\n..two\nafter\n";
  {
    Mta m;
    REQUIRE(m.server->started());
    Run r = sendmail({"-S", m.at(), "-i", "bob@example.test"}, msg);
    CHECK_MESSAGE(r.status == 0, r.output);
    auto got = m.messages("bob", "example.test");
    REQUIRE(got.size() == 1);
    CHECK(got[0] == crlf(msg));
    Run r2 = sendmail({"-S", m.at(), "carol@example.test"}, msg);
    CHECK_MESSAGE(r2.status == 0, r2.output);
    got = m.messages("carol", "example.test");
    REQUIRE(got.size() == 1);
    CHECK(got[0] == crlf("Subject: dots\n\nbefore\n"));
  }
  FakeServer f;
  f.start();
  Run r = sendmail({"-S", f.at(), "-oi", "bob@example.test"}, msg);
  CHECK_MESSAGE(r.status == 0, r.output);
  f.t.join();
  CHECK(f.received.find(
            "DATA\r\nSubject: dots\r\n\r\nbefore\r\n..\r\n...two\r\nafter\r\n.\r\nQUIT\r\n") !=
        std::string::npos);
  // The multiline EHLO reply was read to its end: MAIL came next, 8-bit-free so no BODY=.
  CHECK(f.received.find("\r\nMAIL FROM:<") != std::string::npos);
  CHECK(f.received.find("BODY=") == std::string::npos);
}

TEST_CASE("sendmail: 8-bit content gets BODY=8BITMIME when the server offers it") {
  FakeServer f;
  f.start();
  Run r = sendmail({"-S", f.at(), "-f", "a@example.test", "bob@example.test"},
                   "Subject: caf\xc3\xa9\n\nna\xc3\xafve\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  f.t.join();
  CHECK(f.received.find("MAIL FROM:<a@example.test> BODY=8BITMIME\r\n") != std::string::npos);
}

TEST_CASE("sendmail: a refused recipient: exit 67 (EX_NOUSER), nothing is delivered") {
  Mta m;
  REQUIRE(m.server->started());
  Run r =
      sendmail({"-S", m.at(), "bob@example.test", "nobody@elsewhere.invalid"}, "Subject: x\n\nx\n");
  CHECK(r.status == EX_NOUSER);
  CHECK(r.output.find("uvsmtpd-sendmail: recipient <nobody@elsewhere.invalid> refused: 550") !=
        std::string::npos);
  CHECK(r.output.find(" (message not sent)\n") != std::string::npos);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);  // one line
  CHECK(m.messages("bob", "example.test").empty());
}

TEST_CASE("sendmail: 4xx replies and no server: exit 75 (EX_TEMPFAIL)") {
  {
    FakeServer f;
    f.rcpt_reply = "450 4.2.0 Mailbox busy";
    f.start();
    Run r = sendmail({"-S", f.at(), "bob@example.test"}, "Subject: x\n\nx\n");
    CHECK(r.status == EX_TEMPFAIL);
    CHECK(r.output.find("refused: 450 4.2.0 Mailbox busy") != std::string::npos);
    f.t.join();
    CHECK(f.received.find("DATA") == std::string::npos);
  }
  int port;
  {
    FakeServer f;  // never accepts: closed below, so the port is free
    port = f.port;
  }
  Run r = sendmail({"-S", "127.0.0.1:" + std::to_string(port), "bob@example.test"}, "x\n");
  CHECK(r.status == EX_TEMPFAIL);
  CHECK(r.output == "uvsmtpd-sendmail: cannot connect to 127.0.0.1:" + std::to_string(port) +
                        ": Connection refused\n");
}

TEST_CASE("sendmail: the config's first listen address and hostname; the environment variable") {
  Mta m;
  REQUIRE(m.server->started());
  std::string port = std::to_string(m.server->port());
  std::string conf = m.mail + "/conf";
  spit(conf + "/uvsmtpd.toml", "hostname = \"example.test\"\nlisten = [\"*:" + port + "\"]\n");
  // "bob" and the default sender are qualified with the config's hostname.
  Run r = sendmail({"-C", conf, "bob"}, "Subject: 1\n\n1\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(m.messages("bob", "example.test").size() == 1);
  CHECK(m.server->count_log(": from=<" + login() + "@example.test>") == 1);
  // The [[listen]] table form, a file named directly.
  spit(conf + "/other.toml", "[[listen]]\naddress = \"127.0.0.1:" + port +
                                 "\"\n[[listen]]\n"
                                 "address = \"127.0.0.1:1\"\n");
  r = sendmail({"-C", conf + "/other.toml", "carol@example.test"}, "Subject: 2\n\n2\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(m.messages("carol", "example.test").size() == 1);
  r = sendmail({"dan@example.test"}, "Subject: 3\n\n3\n", {"UVSMTPD_SENDMAIL_SERVER=" + m.at()});
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(m.messages("dan", "example.test").size() == 1);
  // -f "<>": the null sender.
  r = sendmail({"-S", m.at(), "-f", "<>", "eve@example.test"}, "Subject: 4\n\n4\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(m.server->count_log(": from=<>") == 1);
  // A broken config file: EX_CONFIG naming the file.
  spit(conf + "/bad.toml", "listen = [\n");
  r = sendmail({"-C", conf + "/bad.toml", "bob@example.test"}, "x\n");
  CHECK(r.status == EX_CONFIG);
  CHECK(r.output.find(conf + "/bad.toml:") != std::string::npos);
}

TEST_CASE("sendmail: unsupported modes and bad input: exit 64 (EX_USAGE) / 65 (EX_DATAERR)") {
  for (const char *mode : {"-bp", "-bs", "-bd", "-q"}) {
    Run r = sendmail({mode}, "");
    CHECK_MESSAGE(r.status == EX_USAGE, mode);
    CHECK(r.output.rfind(std::string("uvsmtpd-sendmail: "), 0) == 0);
    CHECK(r.output.find("not supported") != std::string::npos);
  }
  Run r = sendmail({"-S", "127.0.0.1:1"}, "Subject: x\n\nx\n");
  CHECK(r.status == EX_USAGE);
  CHECK(r.output.find("no recipients given") != std::string::npos);
  r = sendmail({"-S", "127.0.0.1:1", "-t"}, "Subject: x\n\nx\n");
  CHECK(r.status == EX_DATAERR);
  r = sendmail({"-S", "127.0.0.1:1", "a@b\r\nRSET"}, "x\n");
  CHECK(r.status == EX_USAGE);
  CHECK(r.output.find("bad recipient address") != std::string::npos);
}
