// tests/integration/test_plugin_host.cpp: the plugin host through the real binary: every uvs_api member via api_probe, the loader's refusals (file:line), conf/plugins features, SIGHUP reload, the tutorial plugin in-tree and built out-of-tree against the installed header.
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "../../include/uvsmtpd/plugin.h"
#include "harness.hpp"

using namespace itest;
namespace fs = std::filesystem;

#define STR2(x) #x
#define STR(x) STR2(x)
#define kAbi STR(UVS_ABI_MAJOR) "." STR(UVS_ABI_MINOR)

namespace {

// What api_probe logged as "<source>: <what>=<value>" (first occurrence); "<missing>" if absent.
std::string probe(const std::string &log, const std::string &what, const std::string &source = "api_probe") {
  std::string needle = source + ": " + what + "=";
  size_t pos = log.find(needle);
  if (pos == std::string::npos) return "<missing>";
  pos += needle.size();
  return log.substr(pos, log.find('\n', pos) - pos);
}

bool has(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

std::string num(int v) { return std::to_string(v); }

// Position of needle in the log (npos if absent), for ordering checks.
size_t at(const std::string &log, const std::string &needle) { return log.find(needle); }

// Options without designated initialisers (which warn about the members left out).
Options opts(const std::string &plugins, const std::map<std::string, std::string> &files = {},
             const std::string &toml = "", const std::vector<std::string> &args = {}) {
  Options o;
  o.plugins = plugins;
  o.files = files;
  o.toml = toml;
  o.args = args;
  return o;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string make_tmpdir() {
  char tmpl[] = "/tmp/uvsmtpd-test.XXXXXX";
  const char *d = mkdtemp(tmpl);
  return d ? d : "";
}

// --check-config over a tree made for opt.
RunResult check_config(const Options &opt, std::string *dir_out = nullptr) {
  std::string dir = make_tree(opt);
  RunResult r = run_uvsmtpd({"--check-config", "--config", dir + "/conf", "--plugin-dir", dir + "/plugins"});
  CHECK(!has(r.output, "Sanitizer"));  // an ASan/LSan build reports at exit
  if (dir_out)
    *dir_out = dir;
  else
    remove_tree(dir);
  return r;
}

// A normal start over a tree made for opt (expected to fail; if it does not, it runs until the
// timeout and the status is -1).
RunResult start_server(const Options &opt, std::string *dir_out) {
  std::string dir = make_tree(opt);
  *dir_out = dir;
  RunResult r = run_uvsmtpd({"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--listen", "127.0.0.1:0"},
                            5);
  CHECK(!has(r.output, "Sanitizer"));
  return r;
}

// The server is serving: "listening on" comes when the listeners are bound, but plugins load
// after that (bind, drop privileges, then load), so wait for the start line, after which every
// init has run and logged.
bool up(const Server &s) { return s.started() && s.wait_log(" started (pid", 15); }

// Reads a greeting that may carry continuation lines.
std::string greeting(Client &c) { return c.reply(5); }

const std::string kMessage =
    "Subject: probe subject\r\n"
    "X-Probe: one\r\n"
    "X-Folded: first part\r\n"
    " second part\r\n"
    "X-Probe: two\r\n"
    "\r\n"
    "probe body marker\r\n"
    "..leading dot\r\n"
    "Body-Looking: x\r\n";

// A tiny DNS server on 127.0.0.1 (UDP) for the 1.1 DNS members, so nothing leaves the machine:
//   probe.test A       -> 192.0.2.7, 192.0.2.8        probe.test TXT -> "v=probe"
//   probe.test MX      -> no data (NOERROR, empty)     127.0.0.1 PTR  -> client.probe.test
//   anything else      -> NXDOMAIN
class DnsStub {
 public:
  DnsStub() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~DnsStub() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  DnsStub(const DnsStub &) = delete;
  DnsStub &operator=(const DnsStub &) = delete;
  int port() const { return port_; }
  int queries() const { return queries_; }

 private:
  static std::string encode_name(const std::string &name) {
    std::string out;
    size_t start = 0;
    while (start < name.size()) {
      size_t dot = name.find('.', start);
      if (dot == std::string::npos) dot = name.size();
      out += static_cast<char>(dot - start);
      out += name.substr(start, dot - start);
      start = dot + 1;
    }
    return out + std::string(1, '\0');
  }

  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      unsigned char q[1500];
      sockaddr_in from{};
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr *>(&from), &fl);
      if (n < 17) continue;
      ++queries_;
      size_t off = 12;
      std::string name;
      while (off < static_cast<size_t>(n) && q[off] != 0) {
        size_t l = q[off];
        if (off + 1 + l > static_cast<size_t>(n)) break;
        if (!name.empty()) name += '.';
        for (size_t i = 0; i < l; ++i) name += static_cast<char>(tolower(q[off + 1 + i]));
        off += 1 + l;
      }
      off += 1;
      if (off + 4 > static_cast<size_t>(n)) continue;
      int qtype = q[off] << 8 | q[off + 1];
      size_t qend = off + 4;
      std::vector<std::string> rdata;
      bool known = true;
      if (name == "probe.test") {
        if (qtype == 1) rdata = {std::string("\xc0\x00\x02\x07", 4), std::string("\xc0\x00\x02\x08", 4)};
        if (qtype == 16) rdata = {std::string("\x07v=probe", 8)};
      } else if (name == "1.0.0.127.in-addr.arpa") {
        if (qtype == 12) rdata = {encode_name("client.probe.test")};
      } else {
        known = false;
      }
      std::string r(reinterpret_cast<char *>(q), 2);                        // id
      r += static_cast<char>(0x80 | (q[2] & 0x01));                         // QR, RD echoed
      r += static_cast<char>(0x80 | (known ? 0 : 3));                       // RA, NXDOMAIN
      r += std::string("\0\x01", 2);                                        // QDCOUNT
      r += static_cast<char>(0);
      r += static_cast<char>(rdata.size());                                 // ANCOUNT
      r += std::string(4, '\0');                                            // NS, AR
      r.append(reinterpret_cast<char *>(q) + 12, qend - 12);                // the question
      for (const std::string &d : rdata) {
        r += std::string("\xc0\x0c", 2);                                    // name: the question's
        r += static_cast<char>(qtype >> 8);
        r += static_cast<char>(qtype & 0xff);
        r += std::string("\0\x01\0\0\0\x3c", 6);                            // IN, TTL 60
        r += static_cast<char>(d.size() >> 8);
        r += static_cast<char>(d.size() & 0xff);
        r += d;
      }
      sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr *>(&from), fl);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

}  // namespace

// ---- api_probe: every uvs_api member through a real session -------------------------------

TEST_CASE("plugin_host: api_probe sees a real session through every accessor") {
  // --no-sync-check: the wait_for_input probe below pipelines a NOOP behind a pending VRFY,
  // which the RFC 2920 check would (rightly) answer 554 5.5.0 (tests/hostile/test_pipelining).
  Server s(opts("api_probe\n", {}, "", {"--no-sync-check"}));
  REQUIRE(up(s));
  {
    Client c(s.port());
    REQUIRE(c.connected());
    // send_continuation from the connect hook and from a pending_timer via pending_call
    CHECK(greeting(c) == "220-probe teaser\n220-probe teaser from timer\n220 mx.test.invalid ESMTP uvsmtpd");
    CHECK(c.cmd("EHLO client.example").rfind("250-mx.test.invalid", 0) == 0);
    CHECK(c.cmd("MAIL FROM:<sender@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8").rfind("250 ", 0) == 0);
    CHECK(c.cmd("RCPT TO:<a@example.net>") == "250 2.1.5 <a@example.net>, recipient ok");
    CHECK(c.cmd("RCPT TO:<thread@example.net>") == "250 2.1.5 probe thread ok");
    CHECK(c.cmd("RCPT TO:<badcomplete@example.net>") == "250 2.1.5 <badcomplete@example.net>, recipient ok");
    CHECK(c.cmd("DATA").rfind("354", 0) == 0);
    c.send(kMessage + ".\r\n");
    CHECK(c.reply(10) == "250 2.0.0 probe queued");
    CHECK(s.wait_log("api_probe: dtor txn:sender@example.org"));  // end of DATA ends the transaction

    CHECK(c.cmd("NOOP replycheck") == "250 2.0.0 OK");
    CHECK(c.cmd("NOOP multiline") == "550-5.7.1 probe line one\n550 5.7.1 probe line two");
    CHECK(c.cmd("NOOP mismatch") == "500 5.5.1 Command refused");
    CHECK(c.cmd("NOOP done") == "250 2.0.0 probe done reply");

    // wait_for_input: nothing comes, then something comes while the call is pending
    double t0 = now();
    CHECK(c.cmd("VRFY wait 200") == "250 2.1.5 input timeout");
    CHECK(now() - t0 >= 0.15);
    c.line("VRFY wait 5000");
    usleep(100 * 1000);
    c.line("NOOP");
    CHECK(c.reply() == "250 2.1.5 input data");
    CHECK(c.reply() == "250 2.0.0 OK");

    CHECK(c.cmd("XYZZY foo bar") == "500 5.5.1 Unrecognized command");
    CHECK(c.cmd("MAIL FROM:<>").rfind("250 ", 0) == 0);
    CHECK(s.count_log("api_probe: dtor txn:\n") == 0);
    CHECK(c.cmd("RSET") == "250 2.0.0 OK");
    CHECK(s.wait_log("api_probe: dtor txn:\n"));  // RSET ends the transaction
    CHECK(s.count_log("api_probe: dtor conn\n") == 0);
    CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
    CHECK(c.closed());
  }
  REQUIRE(s.wait_log("api_probe: dtor conn\n"));  // the connection's pointer note dies with it
  REQUIRE(s.wait_log("api_probe: disconnect suspend="));
  CHECK(s.wait_log("api_probe: init timer fired=1"));  // the one-shot plugin timer of init
  std::string log = s.log();
  auto P = [&](const std::string &what) { return probe(log, what); };

  SUBCASE("session accessors") {
    std::string sid = P("connect session_id");
    CHECK(sid.size() == 12);
    CHECK(has(log, "[" + sid + "] api_probe: connect peer_ip=127.0.0.1"));  // log() prepends the id
    CHECK(P("pre-connection peer_ip") == "127.0.0.1");
    CHECK(P("pre-connection call_arg") == "127.0.0.1");
    CHECK(P("pre-connection send_continuation") == num(-EPERM));
    CHECK(P("connect hook") == num(UVS_HOOK_CONNECT));
    CHECK(P("connect peer_ip") == "127.0.0.1");
    CHECK(P("connect local_ip") == "127.0.0.1");
    CHECK(P("connect local_port") == num(s.port()));
    std::string peer_port = P("connect peer_port");
    CHECK(std::atoi(peer_port.c_str()) > 0);
    CHECK(has(log, "connect from 127.0.0.1:" + peer_port + " to 127.0.0.1:" + num(s.port())));
    CHECK(P("connect helo_name") == "(null)");
    CHECK(P("connect is_esmtp") == "0");
    CHECK(P("connect mail_from") == "(null)");
    CHECK(P("connect rcpt_count") == "0");
    CHECK(P("connect rcpt_at0") == "(null)");
    CHECK(P("connect tls_active") == "0");
    // tls_info (1.3) on a plain connection: -ENOENT and the struct left alone; -EINVAL for a
    // size below the 1.3 struct's, a NULL out or call
    CHECK(P("connect tls_info") == num(-ENOENT));
    CHECK(P("connect tls_info_out") == "untouched");
    CHECK(P("connect tls_info_small") == num(-EINVAL));
    CHECK(P("connect tls_info_zero") == num(-EINVAL));
    CHECK(P("connect tls_info_nullout") == num(-EINVAL));
    CHECK(P("connect tls_info_nullcall") == num(-EINVAL));
    CHECK(P("connect auth_user") == "(null)");
    // 1.4: no password or mechanism outside the auth hook (nor for a NULL call)
    CHECK(P("connect auth_password") == "(null)");
    CHECK(P("connect auth_mechanism") == "(null)");
    CHECK(P("connect auth_password_null") == "(null)");
    CHECK(P("connect auth_mechanism_null") == "(null)");
    CHECK(P("connect queue_id") == "(null)");  // 1.4: no transaction yet
    CHECK(P("connect queue_id_null") == "(null)");
    CHECK(P("connect relay_client") == "0");
    CHECK(P("connect call_param") == "(null)");
    CHECK(P("connect header_get") == "(null)");
    CHECK(P("connect message_fd") == num(-ENOENT));
    CHECK(P("connect remote_host") == "(null)");  // reverse lookups are off in the harness
    CHECK(std::atoi(P("connect message_read").c_str()) < 0);  // no message yet
    CHECK(std::atoi(P("connect message_size").c_str()) < 0);
  }
  SUBCASE("registration after init and continuation lines") {
    CHECK(P("connect register_late") == num(-EPERM));
    CHECK(P("connect send_continuation") == "0");
    CHECK(P("connect send_continuation_crlf") == num(-EINVAL));
    CHECK(P("connect timer send_continuation") == "0");
    CHECK(P("ehlo send_continuation") == num(-EPERM));
    CHECK(P("noop send_continuation") == num(-EPERM));
  }
  SUBCASE("notes") {
    CHECK(P("connect note_set") == "0");
    CHECK(P("connect note_get") == "c1");
    CHECK(P("connect note_get_txn_scope") == "(null)");  // scopes are separate
    CHECK(P("connect note_set_bad_scope") == num(-EINVAL));
    CHECK(P("connect note_set_empty_key") == num(-EINVAL));
    CHECK(P("connect note_set_null_key") == num(-EINVAL));
    CHECK(P("connect note_set_ptr_bad_scope") == num(-EINVAL));
    CHECK(P("connect note_set_ptr") == "0");
    CHECK(P("connect note_get_ptr") == "same");
    CHECK(P("connect note_get_on_ptr") == "(null)");
    CHECK(P("connect note_get_ptr_on_str") == "(null)");
    CHECK(P("connect note_replaced") == "now a string");
    CHECK(P("connect note_erased") == "(null)");
    // replacing a pointer note runs the old destructor at once (before the hook returns)
    size_t end = at(log, "api_probe: connect end");
    CHECK(at(log, "api_probe: dtor replaced\n") < end);
    CHECK(at(log, "api_probe: dtor replacement\n") < end);
    CHECK(P("connect timer note") == "c1");
    CHECK(P("rcpt note_txn") == "t1");
    CHECK(P("rcpt note_txnptr") == "txn:sender@example.org");
    CHECK(P("data_post note_txn") == "t1");
    CHECK(P("reset_transaction note_txn") == "t1");  // still there while reset_transaction runs
    CHECK(P("queue_post note_txn") == "(null)");      // gone after it
    CHECK(P("disconnect note_conn") == "c1");
    // each pointer note's destructor ran exactly once
    CHECK(s.count_log("api_probe: dtor txn:sender@example.org\n") == 1);
    CHECK(s.count_log("api_probe: dtor txn:\n") == 1);
    CHECK(s.count_log("api_probe: dtor conn\n") == 1);
    CHECK(s.count_log("api_probe: dtor replaced\n") == 1);
    CHECK(s.count_log("api_probe: dtor replacement\n") == 1);
  }
  SUBCASE("relay client, is_immune, karma") {
    CHECK(P("connect is_immune") == "0");
    CHECK(P("connect is_immune_whitelisthost") == "1");
    CHECK(P("connect is_immune_whitelisthost0") == "0");
    CHECK(P("connect is_immune_whitelistsender") == "1");
    CHECK(P("connect set_relay_client") == "0");
    CHECK(P("connect relay_client_on") == "1");
    CHECK(P("connect is_immune_relay") == "1");
    CHECK(P("connect relay_client_off") == "0");
    CHECK(P("connect is_immune_after") == "0");
    CHECK(P("connect karma_plus") == "2");
    CHECK(P("connect karma_minus") == "-1");
    CHECK(P("connect karma_note") == "-1");
    CHECK(P("disconnect karma") == "-1");
  }
  SUBCASE("helo, mail and rcpt arguments") {
    CHECK(P("ehlo hook") == num(UVS_HOOK_EHLO));
    CHECK(P("ehlo call_arg") == "client.example");
    CHECK(P("ehlo call_address") == "client.example");
    CHECK(P("ehlo helo_name") == "(null)");  // the command takes effect after its hook
    CHECK(P("ehlo is_esmtp") == "0");
    CHECK(P("mail call_arg") == "FROM:<sender@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8");
    CHECK(P("mail call_address") == "sender@example.org");
    CHECK(P("mail param_size") == "1234");
    CHECK(P("mail param_body") == "8BITMIME");
    CHECK(P("mail param_smtputf8") == "");  // a parameter without a value
    CHECK(P("mail param_missing") == "(null)");
    CHECK(P("mail param_null") == "(null)");
    CHECK(P("mail helo_name") == "client.example");
    CHECK(P("mail is_esmtp") == "1");
    CHECK(P("mail mail_from") == "(null)");  // MAIL takes effect after its hook
    CHECK(P("mail rcpt_count") == "0");
    CHECK(P("rcpt call_arg") == "TO:<a@example.net>");
    CHECK(P("rcpt call_address") == "a@example.net");
    CHECK(P("rcpt mail_from") == "sender@example.org");
    CHECK(P("rcpt rcpt_count") == "0");
    CHECK(P("rcpt rcpt_at_oob") == "(null)");
    CHECK(P("rcpt rcpt_at_neg") == "(null)");
    CHECK(has(log, "api_probe: rcpt rcpt_at[1]=thread@example.net\n"));
    CHECK(P("data rcpt_count") == "3");
    CHECK(P("data rcpt_at[2]") == "badcomplete@example.net");
    CHECK(P("data mail_from") == "sender@example.org");
    CHECK(P("unrecognized_command call_arg") == "foo bar");
    CHECK(P("unrecognized_command call_address") == "xyzzy");
    CHECK(has(log, "api_probe: mail call_address=\n"));  // the null sender
    CHECK(P("queue_post mail_from") == "(null)");
  }
  SUBCASE("the message at data_headers_end, data_post and queue") {
    CHECK(P("data_headers_end header_subject") == "probe subject");
    CHECK(P("data_headers_end message_size_positive") == "1");
    std::string size = P("data_post message_size");
    CHECK(std::atoll(size.c_str()) > static_cast<long long>(kMessage.size()));  // + Received:
    CHECK(P("data_post read_total") == size);
    CHECK(P("data_post read_at_end") == "0");
    CHECK(P("data_post read_negative") == num(-EINVAL));
    CHECK(P("data_post read_null_buf") == num(-EINVAL));
    CHECK(P("data_post first_line").rfind("Received: from ", 0) == 0);  // the server's own header
    CHECK(has(P("data_post first_line"), "(HELO client.example)"));
    CHECK(P("data_post body_marker") == "1");
    CHECK(P("data_post crlf_only") == "1");
    CHECK(P("data_post dot_unstuffed") == "1");
    CHECK(P("data_post message_fd_ok") == "1");
    CHECK(P("data_post message_fd_total") == size);  // the same bytes through the plugin's own fd
    CHECK(P("data_post header_subject") == "probe subject");  // name is case-insensitive
    CHECK(P("data_post header_probe0") == "one");
    CHECK(P("data_post header_probe1") == "two");
    CHECK(P("data_post header_probe2") == "(null)");
    CHECK(P("data_post header_folded") == "first part second part");
    CHECK(P("data_post header_missing") == "(null)");
    CHECK(P("data_post header_neg") == "(null)");
    CHECK(P("data_post header_body_line") == "(null)");  // the body is not the header
    CHECK(P("data_post rcpt_count") == "3");
    CHECK(P("queue message_size_positive") == "1");
    CHECK(P("queue rcpt_count") == "3");
    // 1.4: the transaction's id, once MAIL is accepted (not in the mail hook) to the queue hook
    CHECK(P("mail queue_id") == "(null)");
    CHECK(P("rcpt queue_id").size() == 14);
    CHECK(P("data queue_id") == P("rcpt queue_id"));
    CHECK(P("data_post queue_id") == P("rcpt queue_id"));
    CHECK(P("queue queue_id") == P("rcpt queue_id"));
    CHECK(P("queue_post queue_id") == "(null)");  // the transaction is over
  }
  SUBCASE("reply validation") {
    CHECK(P("noop reply_ok") == "0");
    for (const char *k : {"reply_crlf", "reply_lf", "reply_cr", "reply_tab", "reply_del", "reply_code_low",
                          "reply_code_high", "reply_class_mismatch", "reply_bad_enhanced",
                          "reply_bad_enhanced_class", "reply_501_bytes", "reply_line_cr", "reply_line_null"}) {
      std::string key = k;
      CAPTURE(key);
      CHECK(P(std::string("noop ") + k) == num(-EINVAL));
    }
    CHECK(P("noop reply_500_bytes") == "0");
    CHECK(P("noop reply_null_text") == "0");
    CHECK(P("noop reply_line_accepted") == "63");  // 64 lines in all
    CHECK(P("noop reply_line_limit") == num(-E2BIG));
    CHECK(has(log, "api_probe: reply code 250 does not fit verdict DENY; default reply used"));
    // observers see the deciding plugin and its verdict
    CHECK(has(log, "api_probe: deny arg=api_probe address=" + num(UVS_DENY) + "\n"));
    CHECK(has(log, "api_probe: ok arg=api_probe address=" + num(UVS_OK) + "\n"));
  }
  SUBCASE("the newest 1.3 members: timers, pending notes and cancel, logv, set_errorfv, hook_timeout_ms, connection DNS, edits") {
    CHECK(std::atoll(P("init hook_timeout_ms").c_str()) > 0);
    CHECK(P("init hook_timeout_ms_null") == num(-EINVAL));
    CHECK(P("init set_errorfv") == "0");
    CHECK(P("init set_errorfv_null_plugin") == num(-EINVAL));
    CHECK(has(log, "api_probe: init logv seven=7\n"));
    CHECK(P("init timer_start") == "ok");
    CHECK(P("init timer_stop") == "0");
    CHECK(P("init timer_stop_null") == num(-EINVAL));
    CHECK(P("init timer_start_null_cb") == "(null)");
    CHECK(P("init timer_once") == "ok");
    CHECK(s.count_log("api_probe: init timer fired=1") == 1);
    CHECK(!has(log, "stopped timer fired"));  // timer_stop() stopped it
    CHECK(P("connect pending_on_cancel") == "0");
    CHECK(P("connect pending_on_cancel_null") == num(-EINVAL));
    CHECK(!has(log, "connect cancelled=1"));  // the call completed: its cb never runs
    CHECK(P("connect pending_note_set_null") == num(-EINVAL));
    CHECK(P("connect pending_note_set_bad_scope") == num(-EINVAL));
    CHECK(P("connect pending_note_set") == "0");
    CHECK(P("ehlo pnote") == "from pending");  // applied with the verdict of complete()
    CHECK(P("connect dns_query_conn_null_cb") == num(-EINVAL));
    CHECK(P("connect dns_query_conn_null_call") == num(-EINVAL));
    CHECK(P("connect dns_cancel_conn_unknown") == num(-ENOENT));
    CHECK(P("connect dns_cancel_conn_null") == num(-EINVAL));
    for (const char *k : {"header_add", "header_insert", "header_delete", "header_replace", "body_replace_fd"}) {
      std::string key = k;
      CAPTURE(key);
      CHECK(P(std::string("connect ") + k) == num(-EPERM));  // edits only in the edit hooks
    }
  }
  SUBCASE("async: suspend, pending_call, timers, run_blocking, wait_for_input, complete") {
    CHECK(P("connect suspend") == "ok");
    CHECK(P("connect suspend_again") == "(null)");
    CHECK(P("connect pending_call_in_hook") == "same");
    CHECK(P("connect run_blocking_null") == num(-EINVAL));
    CHECK(P("connect pending_timer_null") == num(-EINVAL));
    CHECK(P("connect pending_timer") == "0");
    CHECK(P("connect timer pending_call") == "ok");
    CHECK(P("connect timer hook") == num(UVS_HOOK_CONNECT));
    CHECK(P("connect complete") == "0");
    CHECK(P("rcpt run_blocking") == "0");
    CHECK(has(log, "api_probe: rcpt worker thread log\n"));  // log() from a pool thread
    CHECK(at(log, "api_probe: rcpt worker thread log") < at(log, "api_probe: rcpt done pending_call=ok"));
    CHECK(P("rcpt done rcpt_count") == "1");
    CHECK(P("rcpt done complete") == "0");
    CHECK(P("rcpt badcomplete complete") == num(-EINVAL));  // the verdict still counts
    CHECK(P("vrfy wait_for_input") == "0");
    CHECK(P("vrfy wait_for_input_again") == num(-EBUSY));
    CHECK(P("vrfy wait_for_input_null") == num(-EINVAL));
    CHECK(has(log, "api_probe: vrfy input=" + num(UVS_INPUT_TIMEOUT) + "\n"));
    CHECK(has(log, "api_probe: vrfy input=" + num(UVS_INPUT_DATA) + "\n"));
    CHECK(P("vrfy input complete") == "0");
    CHECK(P("disconnect suspend") == "(null)");  // not in a notification
  }
}

TEST_CASE("plugin_host: api_probe init: name, arguments, config_lines, registration errors") {
  Server s(opts("# the probe, as instance 3\napi_probe:3 alpha beta=2\n",
                {{"probe_list", "# a comment\n\n  one  \ntwo\n"}}));
  REQUIRE(up(s));
  std::string log = s.log();
  const std::string src = "api_probe:3";
  auto P = [&](const std::string &what) { return probe(log, what, src); };
  CHECK(P("init name") == "api_probe:3");
  CHECK(P("init argc") == "2");
  CHECK(P("init argv[0]") == "alpha");
  CHECK(P("init argv[1]") == "beta=2");
  CHECK(P("init argv_oob") == "(null)");
  CHECK(P("init argv_neg") == "(null)");
  CHECK(P("init data_roundtrip") == "1");
  CHECK(P("init me") == "mx.test.invalid");
  CHECK(P("init event_loop") == "non-null");
  CHECK(P("init api_size") == num(static_cast<int>(sizeof(uvs_api))) + " abi=" + num(UVS_ABI_MAJOR) + "." +
                                  num(UVS_ABI_MINOR));
  CHECK(P("init has_run_blocking") == "1");
  CHECK(P("init config_lines") == "2 calls=2");  // comments and blanks dropped
  CHECK(has(log, "api_probe:3: init config_line=one\n"));  // trimmed
  CHECK(has(log, "api_probe:3: init config_line=two\n"));
  CHECK(P("init config_missing") == num(-ENOENT));
  CHECK(P("init config_dotdot") == num(-EINVAL));
  CHECK(P("init config_absolute") == num(-EINVAL));
  CHECK(P("init config_null_cb") == num(-EINVAL));
  CHECK(P("init config_stop calls") == "1");  // a nonzero return stops the reading
  CHECK(P("init register_999") == num(-ENOSYS));
  CHECK(P("init register_0") == num(-ENOSYS));
  CHECK(P("init register_null_fn") == num(-EINVAL));
  CHECK(P("init set_error") == "0");
  CHECK(P("init has_set_errorf") == "1");
  CHECK(P("init set_errorf") == "0");
  CHECK(P("init set_errorf_null_plugin") == num(-EINVAL));
  CHECK(P("init set_errorf_null_fmt") == "0");
  CHECK(P("init set_errorf_bad_conversion") == num(-EINVAL));  // the message is then the format
  CHECK(has(log, "plugin: probe log without a plugin"));
  CHECK(has(log, "api_probe:3: init done"));
  Client c(s.port());
  CHECK(greeting(c).rfind("220-probe teaser", 0) == 0);
}

// ---- UVS_PLUGIN_MIN_ABI_MINOR: a plugin built against this header that runs on older servers -

TEST_CASE("plugin_host: a plugin declaring ABI 1.0 loads, and uses newer members only where they exist") {
  // min_abi is built with UVS_PLUGIN_MIN_ABI_MINOR 0; as=N makes it see the table of a 1.N server
  struct Case {
    const char *args;
    int minor;
    size_t size;
    const char *remote_host;
  };
  const Case cases[] = {
      {"", UVS_ABI_MINOR, sizeof(uvs_api), "none"},  // reverse lookups are off in the harness
      {" as=2", 2, offsetof(uvs_api, rcpt_replace), "none"},
      {" as=1", 1, offsetof(uvs_api, set_errorf), "none"},
      {" as=0", 0, offsetof(uvs_api, remote_host), "n/a"},
  };
  for (const Case &k : cases) {
    std::string args = k.args;
    CAPTURE(args);
    Server s(opts("min_abi" + args + "\n"));
    REQUIRE(up(s));
    std::string log = s.log();
    CHECK(has(log, "loaded min_abi (min_abi 1.0, needs ABI 1.0) from "));
    CHECK(probe(log, "init stamp", "min_abi") ==
          "1.0 server=" STR(UVS_ABI_MAJOR) "." + num(k.minor) + " api_size=" + num(static_cast<int>(k.size)) +
              " has_remote_host=" + num(k.minor >= 1) + " has_set_errorf=" + num(k.minor >= 2));
    Client c(s.port());
    greeting(c);
    CHECK(c.cmd("HELO client.example") ==
          std::string("250 min_abi ok, remote_host ") + k.remote_host);
  }
}

TEST_CASE("plugin_host: a client that leaves while its call is pending is safe") {
  Server s(opts("api_probe\n"));
  REQUIRE(up(s));
  {
    Client c(s.port());
    greeting(c);
    CHECK(c.cmd("HELO client.example").rfind("250 ", 0) == 0);
    c.line("VRFY gone");
    REQUIRE(s.wait_log("api_probe: vrfy arg=gone"));
  }  // closes the socket while the hook is pending; the plugin completes 300 ms later
  REQUIRE(s.wait_log("api_probe: vrfy gone complete=", 5));
  // docs/hooks.md 1.5: the session does not read while a call is pending, so it sees the EOF
  // only after the completion (then 0); a core that noticed earlier would give -ECANCELED.
  // Either way the handle stayed valid until complete().
  std::string rc = probe(s.log(), "vrfy gone complete");
  CHECK((rc == "0" || rc == num(-ECANCELED)));
  CHECK(s.wait_log("api_probe: dtor conn\n"));
  CHECK(s.wait_log("api_probe: disconnect note_conn=c1"));
  // the server carries on
  Client c2(s.port());
  CHECK(greeting(c2).rfind("220-probe teaser", 0) == 0);
  CHECK(c2.cmd("QUIT").rfind("221 ", 0) == 0);
  CHECK(s.running());
}

TEST_CASE("plugin_host: a call not completed within hook_timeout gets 451 4.3.0; the late complete is harmless") {
  Server s(opts("api_probe\n", {}, "hook_timeout = 0.3\n"));
  REQUIRE(up(s));
  Client c(s.port());
  greeting(c);
  CHECK(c.cmd("HELO client.example").rfind("250 ", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@example.org>").rfind("250 ", 0) == 0);
  double t0 = now();
  CHECK(c.cmd("RCPT TO:<late@example.net>") == "451 4.3.0 Temporary failure, please try again later");
  double took = now() - t0;
  CHECK(took >= 0.25);
  CHECK(took < 0.8);
  CHECK(c.cmd("RCPT TO:<b@example.net>") == "250 2.1.5 <b@example.net>, recipient ok");  // goes on
  REQUIRE(s.wait_log("api_probe: rcpt late complete="));
  std::string log = s.log();
  CHECK(probe(log, "rcpt late pending_call") == "(null)");
  CHECK(probe(log, "rcpt late complete") == num(-ECANCELED));
  CHECK(has(log, "rcpt hook did not complete within 0.3s; answering 451"));
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
}

// Fixed core bug (kept as a regression test): on_timeout (server/hooks/runner.cpp) turns a forgotten completion into DENYSOFT with
// the reply 451 4.3.0, but decide() (server/hooks/replies.cpp) maps DENYSOFT to "proceed" on
// vrfy, noop, help and data_headers_end, so the 451 is dropped: VRFY answers its default 252
// after the timeout instead of 451 4.3.0 (issue 3: "a per-hook timeout ... that turns a
// forgotten completion into 451 4.3.0").
TEST_CASE("plugin_host: the hook timeout answers 451 4.3.0 on every hook") {
  Server s(opts("api_probe\n", {}, "hook_timeout = 0.3\n"));
  REQUIRE(up(s));
  Client c(s.port());
  greeting(c);
  CHECK(c.cmd("HELO client.example").rfind("250 ", 0) == 0);
  CHECK(c.cmd("VRFY late 800") == "451 4.3.0 Temporary failure, please try again later");
  CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
  REQUIRE(s.wait_log("api_probe: vrfy late complete="));
  CHECK(probe(s.log(), "vrfy late complete") == num(-ECANCELED));
}

// Fixed core bug (kept as a regression test): include/uvsmtpd/plugin.h says a transaction note "lives until MAIL, RSET, end of
// DATA, close" (qpsmtpd: MAIL always begins with reset_transaction), but Session::cmd_mail
// (server/session/session.cpp) does not clear txn_notes_: a transaction note set at HELO/EHLO
// (or at connect) is still there in the mail and rcpt hooks of the next transaction.
TEST_CASE("plugin_host: rcpt_replace (ABI 1.3) replaces the recipient on OK, drops duplicates, counts max_recipients") {
  Server s(opts("api_probe\nverdict rcpt=OK\n", {}, "max_recipients = 8\n"));
  REQUIRE(up(s));
  Client c(s.port());
  greeting(c);
  CHECK(c.cmd("HELO client.example").rfind("250 ", 0) == 0);
  CHECK(c.cmd("MAIL FROM:<a@example.org>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<kept@example.test>") == "250 2.1.5 <kept@example.test>, recipient ok");
  // every bad call is refused and records nothing: the address itself is added
  CHECK(c.cmd("RCPT TO:<aliasbad@example.test>") == "250 2.1.5 <aliasbad@example.test>, recipient ok");
  // the reply names the address the client gave; one@EXAMPLE.TEST and kept@ are duplicates
  CHECK(c.cmd("RCPT TO:<aliaslist@example.test>") == "250 2.1.5 <aliaslist@example.test>, recipient ok");
  CHECK(c.cmd("RCPT TO:<aliaspending@example.test>") == "250 2.1.5 <aliaspending@example.test>, recipient ok");
  // 6 accepted + 3 would be 9 > 8: nothing of it is added
  CHECK(c.cmd("RCPT TO:<aliasmany@example.test>") == "452 4.5.3 Error: too many recipients");
  // a replacement whose handler DECLINED is dropped; verdict's OK adds the address itself
  CHECK(c.cmd("RCPT TO:<aliasdeclined@example.test>") ==
        "250 2.1.5 <aliasdeclined@example.test>, recipient ok");
  CHECK(c.cmd("DATA").rfind("354", 0) == 0);
  c.send(kMessage + ".\r\n");
  CHECK(c.reply(10) == "250 2.0.0 probe queued");
  std::string log = s.log();
  CHECK(probe(log, "mail rcpt_replace") == num(-EPERM));
  for (const char *k : {"null", "n0", "nodomain", "route", "brackets", "space", "8bit", "nullentry"})
    CHECK(probe(log, std::string("rcpt rcpt_replace_") + k) == num(-EINVAL));
  CHECK(probe(log, "rcpt rcpt_replace_first") == "0");
  CHECK(probe(log, "rcpt rcpt_replace") == "0");
  CHECK(probe(log, "rcpt aliaspending rcpt_replace") == "0");
  CHECK(probe(log, "rcpt rcpt_replace_many") == "0");
  CHECK(probe(log, "rcpt rcpt_replace_declined") == "0");
  // the data hook sees the list as replaced
  CHECK(probe(log, "data rcpt_count") == "7");
  const char *want[] = {"kept@example.test", "aliasbad@example.test", "one@example.test",
                        "two@example.test", "\"q.u\"@example.test", "later@example.test",
                        "aliasdeclined@example.test"};
  for (int i = 0; i < 7; ++i) CHECK(probe(log, "data rcpt_at[" + num(i) + "]") == want[i]);
  CHECK(has(log, "to=<one@example.test> orig_to=<aliaslist@example.test> by api_probe"));
  CHECK(!has(log, "m1@example.test>"));
}

TEST_CASE("plugin_host: a transaction note set before MAIL is gone at MAIL") {
  Server s(opts("api_probe\n"));
  REQUIRE(up(s));
  Client c(s.port());
  greeting(c);
  c.cmd("EHLO client.example");  // api_probe sets the transaction note probe.early here
  CHECK(c.cmd("MAIL FROM:<x@example.org>").rfind("250 ", 0) == 0);
  CHECK(c.cmd("RCPT TO:<a@example.net>").rfind("250 ", 0) == 0);
  std::string log = s.log();
  CHECK(probe(log, "mail note_early") == "(null)");
  CHECK(probe(log, "rcpt note_early") == "(null)");
}

TEST_CASE("plugin_host: pointer notes die with a connection that breaks off mid-transaction") {
  Server s(opts("api_probe\n"));
  REQUIRE(up(s));
  {
    Client c(s.port());
    greeting(c);
    c.cmd("EHLO client.example");
    CHECK(c.cmd("MAIL FROM:<x@example.org>").rfind("250 ", 0) == 0);
    CHECK(c.cmd("RCPT TO:<a@example.net>").rfind("250 ", 0) == 0);
  }
  CHECK(s.wait_log("api_probe: dtor txn:x@example.org\n"));
  CHECK(s.wait_log("api_probe: dtor conn\n"));
  std::string log = s.log();
  CHECK(probe(log, "reset_transaction note_txn") == "t1");
  CHECK(probe(log, "disconnect note_conn") == "c1");
}

// ---- ABI 1.1: the server's resolver --------------------------------------------------------

TEST_CASE("plugin_host: remote_host and dns_query go through the server's resolver") {
  DnsStub dns;
  REQUIRE(dns.port() > 0);
  Server s(opts("api_probe\n", {},
                "[dns]\nservers = [\"127.0.0.1:" + num(dns.port()) + "\"]\nreverse_lookup = true\ntimeout = 2\n"));
  REQUIRE(up(s));
  Client c(s.port());
  CHECK(greeting(c).rfind("220-probe teaser", 0) == 0);
  CHECK(probe(s.log(), "connect remote_host") == "client.probe.test");  // looked up before connect
  CHECK(c.cmd("HELP dns probe.test " + num(UVS_DNS_A)) == "214 2.0.0 dns status=0 count=2 192.0.2.7 192.0.2.8");
  CHECK(c.cmd("HELP dns probe.test " + num(UVS_DNS_TXT)) == "214 2.0.0 dns status=0 count=1 v=probe");
  CHECK(c.cmd("HELP dns probe.test " + num(UVS_DNS_MX)) == "214 2.0.0 dns status=" + num(-ENOENT) + " count=0");
  CHECK(c.cmd("HELP dns nx.probe.test " + num(UVS_DNS_A)) ==
        "214 2.0.0 dns status=" + num(-ENOENT) + " count=0");
  CHECK(c.cmd("HELP dns 127.0.0.1 " + num(UVS_DNS_PTR)).rfind("214 2.0.0 dns status=0 count=", 0) == 0);
  std::string log = s.log();
  CHECK(probe(log, "help dns_bad_type") == num(-EINVAL));
  CHECK(probe(log, "help dns_null_cb") == num(-EINVAL));
  CHECK(probe(log, "help dns_null_name") == num(-EINVAL));
  CHECK(probe(log, "help dns_query") == "0");
  CHECK(probe(log, "help dns complete") == "0");
  CHECK(dns.queries() >= 6);
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
}

// Fixed core bug (kept as a regression test): server/dns/resolver.cpp (PTR answers) copies host->h_name and then every
// host->h_aliases entry, but c-ares' ares_parse_ptr_reply() lists every PTR name in h_aliases,
// the first one included: one PTR record comes back as two identical answers.
TEST_CASE("plugin_host: dns_query PTR answers each name once") {
  DnsStub dns;
  REQUIRE(dns.port() > 0);
  Server s(opts("api_probe\n", {}, "[dns]\nservers = [\"127.0.0.1:" + num(dns.port()) + "\"]\nreverse_lookup = false\n"));
  REQUIRE(up(s));
  Client c(s.port());
  greeting(c);
  CHECK(c.cmd("HELP dns 127.0.0.1 " + num(UVS_DNS_PTR)) == "214 2.0.0 dns status=0 count=1 client.probe.test");
}

// ---- the loader's refusals: --check-config and startup, with file:line ---------------------

TEST_CASE("plugin_host: bad plugin lines stop --check-config and startup, naming file and line") {
  struct Bad {
    const char *line;
    std::string message;
  };
  const std::string next_minor = STR(UVS_ABI_MAJOR) "." + num(UVS_ABI_MINOR + 1);
  const Bad cases[] = {
      {"no_such_plugin", "plugin 'no_such_plugin': cannot find "},
      {"queue/no_such", "plugin 'queue/no_such': cannot find "},
      {"verdict rcpt.bogus=1", "plugin 'verdict' failed to initialise: unknown option in 'rcpt.bogus=1'"},
      {"verdict rcpt=MAYBE", "plugin 'verdict' failed to initialise: unknown verdict 'MAYBE'"},
      {"bad_nosym", "plugin 'bad_nosym': "},
      {"bad_abi_major", "plugin 'bad_abi_major': built for ABI 2.0, this server speaks ABI " kAbi},
      {"bad_abi_minor", "plugin 'bad_abi_minor': needs ABI 1.99, newer than this server's " kAbi " (upgrade uvsmtpd)"},
      {"bad_abi_next",  // the boundary: one minor newer than the server
       "plugin 'bad_abi_next': needs ABI " + next_minor +
           ", newer than this server's " kAbi " (upgrade uvsmtpd)"},
      {"bad_info_size", "plugin 'bad_info_size': uvs_plugin_info too small (8 bytes)"},
      {"bad_init x", "plugin 'bad_init' failed to initialise: bad_init: refusing to start (argument 'x')"},
      {"bad_init:2 silent", "plugin 'bad_init:2' failed to initialise: Permission denied"},
      // set_errorf (1.2): formatted in full (over 600 bytes), '%' in the arguments kept as is
      {"api_probe errorf",
       "plugin 'api_probe' failed to initialise: probe errorf: 100% %s %d %n|42%|" +
           std::string(600, 'y') + "|end\n"},
      // a plugin stamped 1.0 (UVS_PLUGIN_MIN_ABI_MINOR 0) tests for set_errorf, and does without it
      {"min_abi fail",
       "plugin 'min_abi' failed to initialise: min_abi: refusing to start (set_errorf, ABI " kAbi ")"},
      {"min_abi as=1 fail",
       "plugin 'min_abi' failed to initialise: min_abi: refusing to start (set_error, an older server)"},
      {"../escape", "bad plugin name '../escape'"},
      {"verdict:one", "bad plugin name 'verdict:one'"},
      {"/abs/path", "bad plugin name '/abs/path'"},
      {"verdict:1", "duplicate plugin instance 'verdict:1' (first at "},
      {"$include", "$include needs a path"},
      {"$include nowhere", "cannot open '"},
  };
  for (const Bad &b : cases) {
    std::string line = b.line;
    CAPTURE(line);
    Options opt;
    opt.plugins = std::string("verdict:1 rcpt=OK\n") + b.line + "\nverdict:2 rcpt=OK\n";
    std::string dir;
    RunResult r = check_config(opt, &dir);
    std::string where = dir + "/conf/plugins:2: ";
    CHECK(r.status == 1);
    CHECK(has(r.output, where + b.message));
    CHECK(!has(r.output, "init ran"));  // no plugin code ran for a refused module
    CHECK(!has(r.output, "failed instance"));
    remove_tree(dir);

    // a normal start (no --check-config) stops the same way
    r = start_server(opt, &dir);
    CHECK(r.status == 1);
    CHECK(has(r.output, dir + "/conf/plugins:2: " + b.message));
    CHECK(!has(r.output, "started (pid"));
    CHECK(!has(r.output, "init ran"));
    remove_tree(dir);
  }
  // the missing symbol gets its own words
  RunResult r = check_config(opts("bad_nosym\n"));
  CHECK(has(r.output, "has no uvs_plugin_v1 symbol"));
}

TEST_CASE("plugin_host: errors inside included files name that file; $include cycles are refused") {
  SUBCASE("an error in an included file") {
    std::string dir;
    RunResult r = check_config(
        opts("verdict:1 rcpt=OK\n$include more_plugins\n", {{"more_plugins", "# more\n\nno_such_plugin\n"}}), &dir);
    CHECK(r.status == 1);
    CHECK(has(r.output, dir + "/conf/more_plugins:3: plugin 'no_such_plugin': cannot find"));
    remove_tree(dir);
  }
  SUBCASE("a cycle") {
    std::string dir;
    RunResult r =
        check_config(opts("$include a\n", {{"a", "verdict:1\n$include b\n"}, {"b", "$include a\n"}}), &dir);
    CHECK(r.status == 1);
    CHECK(has(r.output, dir + "/conf/b:1: include cycle through '"));
    remove_tree(dir);
    r = start_server(opts("$include plugins\n"), &dir);  // includes itself
    CHECK(r.status == 1);
    CHECK(has(r.output, dir + "/conf/plugins:1: include cycle through '"));
    remove_tree(dir);
  }
}

TEST_CASE("plugin_host: --check-config accepts a good configuration") {
  RunResult r = check_config(opts("# comment\nverdict:1 rcpt=OK\n$include more\napi_probe\n",
                                   {{"more", "verdict:2 mail=DECLINED\n"}}));
  CHECK(r.status == 0);
  CHECK(has(r.output, "configuration OK"));
  CHECK(has(r.output, "3 plugin instance(s)"));
}

// ---- conf/plugins: instances, order, $include -------------------------------------------------

TEST_CASE("plugin_host: name:N instances keep their own arguments and run in file order") {
  SUBCASE("the first instance decides") {
    Server s(opts("verdict:1 rcpt=DENY rcpt.text=one\nverdict:2 rcpt=OK rcpt.text=two\n"));
    REQUIRE(up(s));
    Client c(s.port());
    greeting(c);
    c.cmd("HELO x.example");
    c.cmd("MAIL FROM:<a@example.org>");
    CHECK(c.cmd("RCPT TO:<b@example.net>") == "550 5.7.1 one");
  }
  SUBCASE("a declining instance passes to the next") {
    Server s(opts("verdict:1 mail=DECLINED rcpt.text=one\nverdict:2 rcpt=OK rcpt.text=two\n"));
    REQUIRE(up(s));
    Client c(s.port());
    greeting(c);
    c.cmd("HELO x.example");
    c.cmd("MAIL FROM:<a@example.org>");
    CHECK(c.cmd("RCPT TO:<b@example.net>") == "250 2.1.5 two");
  }
}

TEST_CASE("plugin_host: $include splices a file or a directory in place") {
  // plugins.d is read in name order, dot files skipped; 10-first includes ../extra; all of it
  // comes before the line after the $include.
  Server s(opts("# main\n$include plugins.d\nverdict:9 rcpt=OK rcpt.text=from_main vrfy=OK vrfy.text=from_main\n",
                {{"plugins.d/10-first", "$include ../extra\n"},
                 {"plugins.d/20-second", "verdict:2 rcpt=DENY rcpt.text=from_second noop=DENY noop.text=from_second\n"},
                 {"plugins.d/.hidden", "no_such_plugin\n"},
                 {"extra", "verdict:1 rcpt=DENYSOFT rcpt.text=from_extra\n"}}));
  REQUIRE(up(s));
  Client c(s.port());
  greeting(c);
  c.cmd("HELO x.example");
  c.cmd("MAIL FROM:<a@example.org>");
  CHECK(c.cmd("RCPT TO:<b@example.net>") == "450 4.7.1 from extra");
  CHECK(c.cmd("NOOP") == "500 5.5.1 from second");
  CHECK(c.cmd("VRFY someone") == "250 2.1.5 from main");
}

// ---- SIGHUP --------------------------------------------------------------------------------

TEST_CASE("plugin_host: SIGHUP: a new plugin order for new connections, the old set for sessions in progress") {
  Server s(opts("verdict:1 rcpt=OK rcpt.text=first\nverdict:2 rcpt=OK rcpt.text=second\n"));
  REQUIRE(up(s));
  Client old_session(s.port());
  greeting(old_session);
  old_session.cmd("HELO x.example");
  old_session.cmd("MAIL FROM:<a@example.org>");
  CHECK(old_session.cmd("RCPT TO:<b@example.net>") == "250 2.1.5 first");

  spit(s.conf_dir() + "/plugins", "verdict:2 rcpt=OK rcpt.text=second\nverdict:1 rcpt=OK rcpt.text=first\n");
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded (2 plugin instance(s))"));

  Client fresh(s.port());
  greeting(fresh);
  fresh.cmd("HELO x.example");
  fresh.cmd("MAIL FROM:<a@example.org>");
  CHECK(fresh.cmd("RCPT TO:<b@example.net>") == "250 2.1.5 second");
  // the session opened before the reload keeps the set it started with
  CHECK(old_session.cmd("RCPT TO:<c@example.net>") == "250 2.1.5 first");
  CHECK(old_session.cmd("RSET") == "250 2.0.0 OK");
  old_session.cmd("MAIL FROM:<a@example.org>");
  CHECK(old_session.cmd("RCPT TO:<d@example.net>") == "250 2.1.5 first");
}

TEST_CASE("plugin_host: SIGHUP with a broken configuration keeps the running one") {
  Server s(opts("verdict:1 rcpt=OK rcpt.text=first\n"));
  REQUIRE(up(s));
  auto rcpt_reply = [&] {
    Client c(s.port());
    greeting(c);
    c.cmd("HELO x.example");
    c.cmd("MAIL FROM:<a@example.org>");
    return c.cmd("RCPT TO:<b@example.net>");
  };
  CHECK(rcpt_reply() == "250 2.1.5 first");

  spit(s.conf_dir() + "/plugins", "verdict:1 rcpt=OK rcpt.text=second\nno_such_plugin\n");
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("reload failed"));
  std::string log = s.log();
  CHECK(has(log, "SIGHUP: reload failed, keeping the running configuration: " + s.conf_dir() +
                     "/plugins:2: plugin 'no_such_plugin': cannot find"));
  CHECK(s.running());
  CHECK(rcpt_reply() == "250 2.1.5 first");

  // a plugin whose init refuses its arguments is a broken configuration too
  spit(s.conf_dir() + "/plugins", "verdict:1 rcpt=OK rcpt.bogus=1\n");
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("reload failed", 5, 2));
  CHECK(has(s.log(), s.conf_dir() + "/plugins:1: plugin 'verdict:1' failed to initialise: unknown option"));
  CHECK(rcpt_reply() == "250 2.1.5 first");

  // fixed: the next SIGHUP takes it
  spit(s.conf_dir() + "/plugins", "verdict:1 rcpt=OK rcpt.text=second\n");
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  CHECK(rcpt_reply() == "250 2.1.5 second");
}

TEST_CASE("plugin_host: SIGHUP retires the old instances once their last session ends") {
  Server s(opts("api_probe\n"));
  REQUIRE(up(s));
  Client old_session(s.port());
  CHECK(greeting(old_session).rfind("220-probe teaser", 0) == 0);
  s.signal(SIGHUP);
  REQUIRE(s.wait_log("SIGHUP: configuration and plugins reloaded"));
  CHECK(s.count_log("api_probe: init done") == 2);  // a new instance for new connections
  usleep(100 * 1000);
  CHECK(s.count_log("api_probe: fini\n") == 0);  // the old one still serves old_session
  CHECK(old_session.cmd("NOOP") == "250 2.0.0 OK");
  CHECK(old_session.cmd("QUIT").rfind("221 ", 0) == 0);
  CHECK(old_session.closed());
  CHECK(s.wait_log("api_probe: fini\n"));
  // the new instance serves on
  Client c(s.port());
  CHECK(greeting(c).rfind("220-probe teaser", 0) == 0);
  CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  // and is retired at shutdown
  s.signal(SIGTERM);
  CHECK(s.wait_exit() == 0);
  CHECK(s.count_log("api_probe: fini\n") == 2);
  CHECK(s.count_log("Sanitizer") == 0);  // a clean exit: no leak reported in an ASan build
}

// ---- the tutorial plugin --------------------------------------------------------------------

TEST_CASE("plugin_host: helo_blocklist (the tutorial plugin) in the build tree") {
  const std::string mod = "helo_blocklist";  // build/plugins/helo_blocklist.so
  const std::string list = "# blocked names\nbad.example\n.spam.example\n\n";
  SUBCASE("exact names and .domain suffixes, any case, HELO and EHLO") {
    Server s(opts(mod + "\n", {{"badhelo", list}}));
    REQUIRE(up(s));
    CHECK(has(s.log(), "2 entries from badhelo"));
    Client c(s.port());
    greeting(c);
    CHECK(c.cmd("HELO bad.example") == "550 5.7.1 Your HELO name bad.example is on my blocklist");
    CHECK(c.cmd("EHLO BAD.Example") == "550 5.7.1 Your HELO name BAD.Example is on my blocklist");
    CHECK(c.cmd("EHLO host.spam.example") == "550 5.7.1 Your HELO name host.spam.example is on my blocklist");
    CHECK(c.cmd("EHLO a.b.SPAM.example extra words") ==
          "550 5.7.1 Your HELO name a.b.SPAM.example is on my blocklist");
    CHECK(c.cmd("HELO spam.example").rfind("250 ", 0) == 0);  // the suffix needs one more label
    Client c2(s.port());
    greeting(c2);
    CHECK(c2.cmd("EHLO notbad.example").rfind("250-", 0) == 0);
    CHECK(has(s.log(), "refusing HELO name bad.example"));
  }
  SUBCASE("a list file named as the argument") {
    Server s(opts(mod + " my_list\n", {{"my_list", "other.example\n"}, {"badhelo", list}}));
    REQUIRE(up(s));
    Client c(s.port());
    greeting(c);
    CHECK(c.cmd("HELO bad.example").rfind("250 ", 0) == 0);  // not on my_list
    Client c2(s.port());
    greeting(c2);
    CHECK(c2.cmd("HELO other.example") == "550 5.7.1 Your HELO name other.example is on my blocklist");
  }
  SUBCASE("immune clients pass") {
    Server s(opts("verdict connect=DECLINED connect.note=whitelisthost:1\n" + mod + "\n", {{"badhelo", list}}));
    REQUIRE(up(s));
    Client c(s.port());
    greeting(c);
    CHECK(c.cmd("HELO bad.example").rfind("250 ", 0) == 0);
  }
  SUBCASE("no badhelo file: nothing blocked, a warning") {
    Server s(opts(mod + "\n"));
    REQUIRE(up(s));
    CHECK(has(s.log(), "no badhelo file in the config directory: nothing is blocked"));
    Client c(s.port());
    greeting(c);
    CHECK(c.cmd("HELO bad.example").rfind("250 ", 0) == 0);
  }
  SUBCASE("a missing named file or extra arguments stop startup") {
    std::string dir;
    RunResult r = check_config(opts(mod + " nothere\n"), &dir);
    CHECK(r.status == 1);
    CHECK(has(r.output, dir + "/conf/plugins:1: plugin '" + mod +
                            "' failed to initialise: cannot read the list file 'nothere'"));
    remove_tree(dir);
    r = check_config(opts("# x\n" + mod + " a b\n"), &dir);
    CHECK(r.status == 1);
    CHECK(has(r.output, dir + "/conf/plugins:2: plugin '" + mod + "' failed to initialise: usage: helo_blocklist [FILE]"));
    remove_tree(dir);
  }
}

TEST_CASE("plugin_host: helo_blocklist built out of tree against the installed header only") {
  const std::string tmp = make_tmpdir();
  REQUIRE(!tmp.empty());
  const std::string destdir = tmp + "/destdir";
  RunResult r = sh("meson install -C '" + build_root() + "' --no-rebuild --quiet --destdir '" + destdir + "'");
  INFO(r.output);
  REQUIRE(r.status == 0);

  // what the install put there
  std::string pc, header;
  for (auto it = fs::recursive_directory_iterator(destdir); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().filename() == "uvsmtpd-plugin.pc") pc = it->path().string();
    if (it->path().filename() == "plugin.h" && it->path().parent_path().filename() == "uvsmtpd")
      header = it->path().string();
  }
  REQUIRE(!pc.empty());
  REQUIRE(!header.empty());
  const std::string pcdir = fs::path(pc).parent_path().string();
  // only this .pc, nothing from the system; includedir is inside the prefix, so the sysroot
  // maps it into destdir
  const std::string env = "PKG_CONFIG_LIBDIR='" + pcdir + "' PKG_CONFIG_PATH= ";
  RunResult cflags = sh(env + "PKG_CONFIG_SYSROOT_DIR='" + destdir + "' pkg-config --cflags uvsmtpd-plugin");
  INFO(cflags.output);
  REQUIRE(cflags.status == 0);
  CHECK(has(cflags.output, "-I" + destdir + "/"));
  CHECK(fs::exists(trim(cflags.output).substr(2) + "/uvsmtpd/plugin.h"));

  RunResult plugindir = sh(env + "pkg-config --variable=plugindir uvsmtpd-plugin");
  CHECK(plugindir.status == 0);
  std::string pdir = trim(plugindir.output);
  CHECK(pdir.size() > 1);
  CHECK(pdir[0] == '/');
  CHECK(pdir.size() >= 16);
  CHECK(pdir.rfind("/uvsmtpd/plugins") == pdir.size() - 16);
  CHECK(fs::exists(destdir + pdir + "/helo_blocklist.so"));  // meson install put it there

  // compile the tutorial source, copied away from the repository's include/ directory
  fs::create_directories(tmp + "/src");
  fs::create_directories(tmp + "/out");
  fs::copy_file(source_root() + "/plugins/example/helo_blocklist.c", tmp + "/src/helo_blocklist.c");
  RunResult cc = sh("cc -std=c11 -Wall -Wextra -Werror -pedantic -fvisibility=hidden -shared -fPIC " +
                   trim(cflags.output) + " -o '" + tmp + "/out/helo_blocklist.so' '" + tmp +
                   "/src/helo_blocklist.c'");
  INFO(cc.output);
  REQUIRE(cc.status == 0);
  RunResult syms = sh("nm -D --defined-only '" + tmp + "/out/helo_blocklist.so'");
  CHECK(has(syms.output, " uvs_plugin_v1"));

  // a plugin cannot declare a minimum newer than the header it is built with
  spit(tmp + "/src/too_new.c",
             "#define UVS_PLUGIN_MIN_ABI_MINOR (UVS_ABI_MINOR + 1)\n#include <uvsmtpd/plugin.h>\n");
  RunResult too_new =
      sh("cc -std=c11 -fsyntax-only " + trim(cflags.output) + " '" + tmp + "/src/too_new.c'");
  CHECK(too_new.status != 0);
  CHECK(has(too_new.output,
            "UVS_PLUGIN_MIN_ABI_MINOR must be from 0 to this header's UVS_ABI_MINOR"));

  {
    // the last --plugin-dir wins over the harness's tree (which links the in-tree build)
    Server s(opts("helo_blocklist\n", {{"badhelo", "bad.example\n.spam.example\n"}}, "",
                  {"--plugin-dir", tmp + "/out"}));
    REQUIRE(up(s));
    CHECK(has(s.log(), "from " + tmp + "/out/helo_blocklist.so"));
    // the minimum it declares (UVS_PLUGIN_MIN_ABI_MINOR 0)
    CHECK(has(s.log(), "loaded helo_blocklist (helo_blocklist 1.0, needs ABI 1.0) from"));
    Client c(s.port());
    CHECK(greeting(c).rfind("220 ", 0) == 0);
    CHECK(c.cmd("HELO bad.example") == "550 5.7.1 Your HELO name bad.example is on my blocklist");
    CHECK(c.cmd("HELO x.spam.example") == "550 5.7.1 Your HELO name x.spam.example is on my blocklist");
    CHECK(c.cmd("HELO good.example").rfind("250 ", 0) == 0);
  }
  std::error_code ec;
  if (!getenv("UVS_KEEP_TEST_DIRS")) fs::remove_all(tmp, ec);
}

// ---- message edits (ABI 1.3): header_add/insert/delete/replace, body_replace_fd -------------

namespace {

// A fresh directory for a Maildir, removed at the end.
struct EditMailDir {
  std::string path;
  EditMailDir() {
    std::string tmpl = "/tmp/uvsmtpd-test.edit.XXXXXX";
    if (mkdtemp(tmpl.data())) path = tmpl;
  }
  ~EditMailDir() {
    std::error_code ec;
    if (!path.empty() && !getenv("UVS_KEEP_TEST_DIRS")) fs::remove_all(path, ec);
  }
  EditMailDir(const EditMailDir &) = delete;
  EditMailDir &operator=(const EditMailDir &) = delete;
  // The one message delivered to alice@one.test, everything after the Received: field (and
  // the Maildir's Return-Path/Delivered-To before it); the Received: field in *received.
  std::string single(std::string *received = nullptr) const {
    std::vector<std::string> files;
    std::error_code ec;
    for (auto it = fs::directory_iterator(path + "/one.test/alice/new", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec))
      files.push_back(it->path().string());
    if (files.size() != 1) return "<" + std::to_string(files.size()) + " files>";
    std::string hdr, rest;
    if (!split_received(slurp(files[0]), hdr, rest)) return "<no Received:>";
    if (received) *received = hdr;
    return rest;
  }
};

// The header section edit_probe leaves at data_post (its empty line included), as stored.
const std::string kEditedHeaders =
    "Authentication-Results: mx.test.invalid; none\r\n"
    "X-Test: 1\r\n"
    "From: <sender@client.test>\r\n"
    "X-Before-To: yes\r\n"
    "To: <alice@one.test>\r\n"
    "Subject: edited subject\r\n"
    "X-Remove: second\r\n"
    "X-Folded: one\r\n two\r\n"
    "\r\n";

const std::string kEditMsg =
    "From: <sender@client.test>\r\n"
    "To: <alice@one.test>\r\n"
    "Subject: original\r\n"
    "X-Remove: first\r\n"
    "X-Remove: second\r\n"
    "\r\n";

// conf/plugins for an edit_probe run: the probe with `args`, then queue/maildir into mail.
Options edit_opts(const EditMailDir &mail, const std::string &args) {
  Options o;
  o.plugins = "verdict rcpt=OK\nedit_probe" + (args.empty() ? "" : " " + args) +
              "\nqueue/maildir " + mail.path + "\n";
  return o;
}

// The greeting read and EHLO accepted.
bool greeted(Client &c, const std::string &helo = "client.test") {
  return c.reply().rfind("220 ", 0) == 0 && c.cmd("EHLO " + helo).rfind("250", 0) == 0;
}

}  // namespace

TEST_CASE("plugin_host: message edits at data_headers_end and data_post reach queue/maildir") {
  EditMailDir mail;
  REQUIRE(!mail.path.empty());
  Options o = edit_opts(mail, "");
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "sender@client.test", {"alice@one.test"},
                               kEditMsg + "old body\r\n..dotted\r\n");
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  const std::string inval = std::to_string(-EINVAL);
  CHECK(s.wait_log("edit_probe: hde add=0 fold=0 get=1"));
  CHECK(s.wait_log("edit_probe: hde einval name=" + inval + " crlf=" + inval + " lf=" + inval +
                   " cr=" + inval + " ctl=" + inval + " where=" + inval + " blankfold=" + inval +
                   " 8bit=" + inval + " i=" + inval + " enoent=" + std::to_string(-ENOENT)));
  CHECK(s.wait_log("edit_probe: post ar=0 del=0 rep=0 ins=0 body=0 badbody=" + inval +
                   " subject=edited subject removed=second"));
  // what fstat tells is refused at once: -1, an fd not open, a pipe, a write-only file
  CHECK(s.wait_log("edit_probe: post badfd neg=" + inval + " closed=" + inval + " pipe=" + inval +
                   " wronly=" + inval));
  const std::string expected =
      kEditedHeaders + "new body\r\n"
      "line 2\r\n";
  std::string received;
  CHECK(mail.single(&received) == expected);
  CHECK(received.find("Received: from ") != std::string::npos);  // the server's, still first
  // message_size/message_read/message_fd agree: the Received: field plus the edited message
  std::string rcv = received.substr(received.find("Received: "));
  std::string n = std::to_string(rcv.size() + expected.size());
  CHECK(s.wait_log("edit_probe: post size=" + n + " read=" + n + " fd=" + n + " same=1"));
  const std::string perm = std::to_string(-EPERM);
  CHECK(s.wait_log("edit_probe: queue add=" + perm + " del=" + perm + " body=" + perm));
}

TEST_CASE("plugin_host: header-only edits keep a large spooled body as it was") {
  EditMailDir mail;
  REQUIRE(!mail.path.empty());
  Options o = edit_opts(mail, "keepbody");
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string body;
  for (int i = 0; i < 6000; ++i) body += "line " + std::to_string(i) + " " + std::string(60, 'b') + "\r\n";
  std::string r = send_message(c, "sender@client.test", {"alice@one.test"}, kEditMsg + body);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("edit_probe: post ar=0 del=0 rep=0 ins=0 body=0 badbody=0"));
  CHECK(s.wait_log(" same=1"));
  const std::string expected =
      kEditedHeaders + body;
  std::string got = mail.single();
  CHECK(got.size() == expected.size());
  CHECK(got == expected);
}

TEST_CASE("plugin_host: a large edited message is written out off the loop before the queue hook") {
  EditMailDir mail;
  REQUIRE(!mail.path.empty());
  // data_post edits the header section and does not read the message: the first message_fd()
  // comes from queue/maildir, which gets the copy made on the thread pool
  Options o = edit_opts(mail, "noread");
  Server s(o);
  REQUIRE(s.started());
  Client a(s.port()), b(s.port());
  REQUIRE(greeted(a));
  REQUIRE(greeted(b, "other.test"));
  std::string body;
  const std::string line = std::string(98, 'q') + "\r\n";
  body.reserve(20u << 20);
  for (int i = 0; body.size() < (20u << 20); ++i) body += std::to_string(i % 10) + line;
  REQUIRE(a.cmd("MAIL FROM:<sender@client.test>").rfind("250", 0) == 0);
  REQUIRE(a.cmd("RCPT TO:<alice@one.test>").rfind("250", 0) == 0);
  REQUIRE(a.cmd("DATA").rfind("354", 0) == 0);
  a.send(kEditMsg + body + ".\r\n");
  // the other client is answered promptly all along (generous tolerance for a loaded machine)
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    CHECK(b.cmd("NOOP").rfind("250", 0) == 0);
    worst = std::max(worst, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  CHECK_MESSAGE(worst < 1.0, "slowest NOOP " << worst << " s");
  std::string r = a.reply(60);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("edited message (", 10));
  CHECK(s.wait_log("bytes) written out on the thread pool"));
  const std::string expected =
      kEditedHeaders + body;
  std::string got = mail.single();
  CHECK(got.size() == expected.size());
  CHECK((got == expected));
}

TEST_CASE("plugin_host: a large replacement body is written out off the loop before the queue hook") {
  EditMailDir mail;
  REQUIRE(!mail.path.empty());
  Options o = edit_opts(mail, "bigbody");
  Server s(o);
  REQUIRE(s.started());
  Client c(s.port());
  REQUIRE(greeted(c));
  std::string r = send_message(c, "sender@client.test", {"alice@one.test"}, kEditMsg + "old body\r\n");
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("edit_probe: post bigbody=0"));
  CHECK(s.wait_log("bytes) written out on the thread pool"));
  std::string body;
  char line[80];
  for (int i = 0; i < 20000; ++i) {
    snprintf(line, sizeof line, "big body line %05d %s\r\n", i, std::string(40, 'z').c_str());
    body += line;
  }
  const std::string expected =
      kEditedHeaders + body;
  std::string got = mail.single();
  CHECK(got.size() == expected.size());
  CHECK((got == expected));
}

TEST_CASE("plugin_host: body_replace_fd copies a 20 MB file on the thread pool, not on the loop") {
  EditMailDir mail;
  REQUIRE(!mail.path.empty());
  // the file the plugin hands over (and closes at once): 20 MB of CRLF lines
  std::string body;
  const std::string line = std::string(98, 'r') + "\r\n";
  body.reserve(20u << 20);
  for (int i = 0; body.size() < (20u << 20); ++i) body += std::to_string(i % 10) + line;
  const std::string file = mail.path + "/replacement.txt";
  spit(file, body);
  Options o = edit_opts(mail, "bodyfile=" + file);
  Server s(o);
  REQUIRE(s.started());
  Client a(s.port()), b(s.port());
  REQUIRE(greeted(a));
  REQUIRE(greeted(b, "other.test"));
  REQUIRE(a.cmd("MAIL FROM:<sender@client.test>").rfind("250", 0) == 0);
  REQUIRE(a.cmd("RCPT TO:<alice@one.test>").rfind("250", 0) == 0);
  REQUIRE(a.cmd("DATA").rfind("354", 0) == 0);
  a.send(kEditMsg + "old body\r\n.\r\n");
  // the other client's round trips stay short while the body is copied, written out and
  // delivered (a generous tolerance: this only shows that the loop is not held)
  double worst = 0;
  for (int i = 0; i < 30; ++i) {
    double t0 = now();
    CHECK(b.cmd("NOOP").rfind("250", 0) == 0);
    worst = std::max(worst, now() - t0);
  }
  CHECK_MESSAGE(worst < 0.2, "slowest NOOP " << worst << " s");
  std::string r = a.reply(60);
  CHECK_MESSAGE(r.rfind("250 2.0.0 Queued as ", 0) == 0, r);
  CHECK(s.wait_log("edit_probe: post bodyfile=0"));
  std::string got = mail.single();
  const std::string expected = kEditedHeaders + body;
  CHECK(got.size() == expected.size());
  CHECK((got == expected));
}

TEST_CASE("plugin_host: a replacement body that fails when the server copies it: 451, not queued") {
  for (const char *mode : {"barelf", "readerr"}) {
    CAPTURE(mode);
    EditMailDir mail;
    REQUIRE(!mail.path.empty());
    Options o = edit_opts(mail, mode);
    Server s(o);
    REQUIRE(s.started());
    Client c(s.port());
    REQUIRE(greeted(c));
    // body_replace_fd accepted it (fstat sees a regular file); the copy before queue fails
    std::string r =
        send_message(c, "sender@client.test", {"alice@one.test"}, kEditMsg + "old body\r\n");
    CHECK(r == "451 4.3.0 Temporary failure: cannot store the message, try again later");
    CHECK(s.wait_log("edit_probe: post bodyfile=0"));
    CHECK(s.wait_log(std::string("the replacement body a plugin supplied cannot be used (") +
                     (mode[0] == 'b' ? "a bare CR or LF, or no CRLF at its end" : "i/o error") +
                     "); not accepted"));
    CHECK(!has(s.log(), "Queued as"));
    CHECK(mail.single() == "<0 files>");
    // the session goes on
    CHECK(c.cmd("NOOP") == "250 2.0.0 OK");
    CHECK(send_message(c, "sender@client.test", {"alice@one.test"}, kEditMsg + "x\r\n") ==
          "451 4.3.0 Temporary failure: cannot store the message, try again later");
    CHECK(c.cmd("QUIT").rfind("221 ", 0) == 0);
  }
}
