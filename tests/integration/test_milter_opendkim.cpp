// tests/integration/test_milter_opendkim.cpp: the milter plugin with real OpenDKIM filters
// (/usr/sbin/opendkim), started by the test on 127.0.0.1 with their own configuration and a key
// made by opendkim-genkey, stopped by their PID: a signer that signs only for authenticated
// clients (InternalHosts leaves 127.0.0.1 out, so the {auth_type} macro decides), checked with
// python3-dkim, which reads the public key from the tests' DNS stub (a TXT record at
// sel._domainkey.client.test), and a verifier that reads the public key from its TestDNSData
// (OpenDKIM asks port 53 only) and adds Authentication-Results to inbound mail.
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "daemon_process.hpp"
#include "dns_stub.hpp"
#include "harness.hpp"
#include "mail_root.hpp"

using namespace itest;
namespace fs = std::filesystem;

namespace {

// A temporary directory with a DKIM key pair for client.test, selector "sel".
struct Keys {
  std::string dir, txt;  // txt: the DNS TXT record's content ("v=DKIM1; h=sha256; k=rsa; p=...")
  Keys() {
    std::string tmpl = "/tmp/uvsmtpd-test.dkim.XXXXXX";
    if (!mkdtemp(tmpl.data())) return;
    dir = tmpl;
    RunResult r = sh("opendkim-genkey -b 1024 -d client.test -s sel -D " + dir);
    if (r.status != 0) return;
    // sel.txt is a zone file line: join its quoted strings
    std::string zone = slurp(dir + "/sel.txt");
    for (size_t q = zone.find('"'); q != std::string::npos; q = zone.find('"', q + 1)) {
      size_t e = zone.find('"', q + 1);
      if (e == std::string::npos) break;
      txt += zone.substr(q + 1, e - q - 1);
      q = e;
    }
  }
  ~Keys() {
    std::error_code ec;
    if (!dir.empty() && !getenv("UVS_KEEP_TEST_DIRS")) fs::remove_all(dir, ec);
  }
};

class OpenDkim {
 public:
  // conf: more opendkim.conf lines (Mode, keys); on a TCP port on 127.0.0.1, or with unix_socket
  // on <dir>/<name>.sock.
  OpenDkim(const Keys &k, const std::string &name, const std::string &conf,
           bool unix_socket = false) {
    port_ = unix_socket ? 0 : free_port(SOCK_STREAM);
    if (unix_socket) path_ = k.dir + "/" + name + ".sock";
    std::string cf = k.dir + "/" + name + ".conf";
    std::string sock =
        unix_socket ? "local:" + path_ : "inet:" + std::to_string(port_) + "@127.0.0.1";
    spit(cf, "Syslog no\nBackground no\nSocket " + sock + "\nPidFile " + k.dir + "/" + name +
                 ".pid\nCanonicalization relaxed/simple\n"
                 "RequireSafeKeys false\nAuthservID mx.test.invalid\nOn-Default accept\n" +
                 conf);
    out_ = k.dir + "/" + name + ".out";
    proc_.start({"/usr/sbin/opendkim", "-f", "-x", cf}, out_);
  }
  OpenDkim(const OpenDkim &) = delete;
  OpenDkim &operator=(const OpenDkim &) = delete;
  bool ready(double timeout = 20) const {
    return proc_.wait_accepting(
        [this] { return path_.empty() ? connect_loopback(port_) : connect_unix(path_); }, timeout,
        100);
  }
  // The milter plugin's argument for it.
  std::string spec() const {
    return path_.empty() ? "inet:127.0.0.1:" + std::to_string(port_) : "unix:" + path_;
  }
  std::string output() const { return slurp(out_); }

 private:
  static int connect_unix(const std::string &path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
  }
  int port_ = 0;
  std::string path_;
  std::string out_;
  DaemonProcess proc_;
};

const std::string kMsg =
    "From: Alice <alice@client.test>\r\n"
    "To: Bob <bob@one.test>\r\n"
    "Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
    "Message-ID: <dkim.1@client.test>\r\n"
    "Subject: signed by the submission server\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "this message is signed.\r\n";

// python3-dkim's verdict on a message, its key lookup sent to the DNS stub on `port` (a TXT
// query over UDP, built and parsed here with the standard library).
std::string py_verify(const Keys &k, const std::string &msg, int port) {
  spit(k.dir + "/msg.eml", msg);
  spit(k.dir + "/verify.py",
       "import socket, struct, sys, dkim\n"
       "port = int(sys.argv[2])\n"
       "def dnsfunc(name, timeout=5):\n"
       "    name = (name.decode() if isinstance(name, bytes) else name).rstrip('.')\n"
       "    q = struct.pack('>HHHHHH', 0x2b2b, 0x0100, 1, 0, 0, 0)\n"
       "    q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0'\n"
       "    q += struct.pack('>HH', 16, 1)\n"
       "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
       "    s.settimeout(timeout)\n"
       "    s.sendto(q, ('127.0.0.1', port))\n"
       "    r = s.recvfrom(65535)[0]\n"
       "    p = 12\n"
       "    while r[p]: p += r[p] + 1\n"
       "    p += 5\n"
       "    for _ in range(struct.unpack('>H', r[6:8])[0]):\n"
       "        if r[p] & 0xC0 == 0xC0: p += 2\n"
       "        else:\n"
       "            while r[p]: p += r[p] + 1\n"
       "            p += 1\n"
       "        t, _c, _ttl, n = struct.unpack('>HHIH', r[p:p + 10])\n"
       "        rd, p = r[p + 10:p + 10 + n], p + 10 + n\n"
       "        if t == 16:\n"
       "            out, i = b'', 0\n"
       "            while i < len(rd): out, i = out + rd[i + 1:i + 1 + rd[i]], i + 1 + rd[i]\n"
       "            return out\n"
       "    return None\n"
       "msg = open(sys.argv[1], 'rb').read()\n"
       "print('pass' if dkim.verify(msg, dnsfunc=dnsfunc) else 'fail')\n");
  RunResult r =
      sh("/usr/bin/python3 " + k.dir + "/verify.py " + k.dir + "/msg.eml " + std::to_string(port));
  return r.output;
}

}  // namespace

TEST_CASE("milter_opendkim: an authenticated submission is signed, inbound mail is verified") {
  Keys k;
  REQUIRE(!k.txt.empty());
  OpenDkim signer(k, "signer",
                  "Mode s\nDomain client.test\nSelector sel\nKeyFile " + k.dir +
                      "/sel.private\nInternalHosts 192.0.2.1\n");
  spit(k.dir + "/dnsdata", "sel._domainkey.client.test " + k.txt + "\n");
  // the verifier on a UNIX socket (the plugin's unix: transport)
  OpenDkim verifier(k, "verifier", "Mode v\nTestDNSData " + k.dir + "/dnsdata\n", true);
  REQUIRE_MESSAGE(signer.ready(), signer.output());
  REQUIRE_MESSAGE(verifier.ready(), verifier.output());

  // the submission server: AUTH on a plain loopback listener, then the signing milter
  MailRoot out;
  Options so;
  so.cli_listen = false;
  so.toml =
      "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"none\"\nauth_plaintext = true\n"
      "[auth]\nfailure_delay = 0\n";
  so.plugins = "auth_static alice s3cret\nmilter " + signer.spec() +
               "\nverdict rcpt=OK\nqueue/maildir " + out.path + "\n";
  Server sub(so);
  REQUIRE(sub.started());
  std::string signed_msg;
  {
    Client c(sub.ports().at(0));
    REQUIRE(c.reply().rfind("220 ", 0) == 0);
    REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
    // without AUTH (127.0.0.1 is not an internal host here): not signed
    std::string r = send_message(c, "alice@client.test", {"bob@one.test"}, kMsg);
    CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
    // PLAIN: "\0alice\0s3cret"
    CHECK(c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").rfind("235", 0) == 0);
    r = send_message(c, "alice@client.test", {"bob@one.test"}, kMsg);
    CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
    auto got = out.of("bob", "one.test");
    REQUIRE(got.size() == 2);
    int nsigned = 0;
    for (const std::string &m : got) {
      if (m.find("DKIM-Signature:") == std::string::npos) continue;
      nsigned++;
      std::string hdr;
      REQUIRE(split_received(m, hdr, signed_msg));
    }
    CHECK(nsigned == 1);
  }
  REQUIRE(!signed_msg.empty());
  CHECK(signed_msg.rfind(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=client.test; s=sel;", 0) == 0);
  itest::DnsStub dns;
  REQUIRE(dns.started());
  dns.add("sel._domainkey.client.test", itest::DnsStub::TXT, {k.txt});
  CHECK(py_verify(k, signed_msg, dns.port()) == "pass\n");
  CHECK(dns.queries("sel._domainkey.client.test", itest::DnsStub::TXT) >= 1);

  // the inbound server: the verifying milter adds Authentication-Results
  MailRoot in;
  Options io;
  io.plugins = "milter " + verifier.spec() + "\nverdict rcpt=OK\nqueue/maildir " + in.path + "\n";
  Server mx(io);
  REQUIRE(mx.started());
  Client c(mx.port());
  REQUIRE(c.reply().rfind("220 ", 0) == 0);
  REQUIRE(c.cmd("EHLO client.test").rfind("250", 0) == 0);
  std::string r = send_message(c, "alice@client.test", {"bob@one.test"}, dot_stuff(signed_msg));
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  std::string tampered = signed_msg;
  tampered.replace(tampered.find("this message is signed."), 4, "THIS");
  r = send_message(c, "alice@client.test", {"bob@one.test"}, dot_stuff(tampered));
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  auto got = in.of("bob", "one.test");
  REQUIRE(got.size() == 2);
  int pass = 0, fail = 0;
  for (const std::string &m : got) {
    size_t ar = m.find("Authentication-Results: mx.test.invalid;");
    REQUIRE_MESSAGE(ar != std::string::npos, m);
    bool is_tampered = m.find("THIS message") != std::string::npos;
    if (!is_tampered && m.find("dkim=pass", ar) < m.find("\r\n\r\n")) pass++;
    if (is_tampered && m.find("dkim=fail", ar) < m.find("\r\n\r\n")) fail++;
  }
  CHECK(pass == 1);
  CHECK(fail == 1);
}
