// tests/integration/test_metrics.cpp: the metrics endpoint ([metrics] listen) of the real
// binary: scraped over HTTP after real SMTP sessions (connections, refusals, sessions by end,
// commands, plugin verdicts and latencies, messages and bytes, TLS, AUTH, the outbound queue
// and its deliveries to a fake MX), the format checked with promtool, the HTTP side (404, 405,
// 400, 431, 505, HEAD, garbage, slow and idle clients, many at once: never blocking SMTP), and
// the configuration (off by default, loopback only unless allow_remote, errors naming file and
// line). Cases are named "metrics: ...".
#include <doctest/doctest.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "fake_mx.hpp"
#include "harness.hpp"
#include "queue_helpers.hpp"
#include "tls_certs.hpp"
#include "tls_client.hpp"

using namespace itest;
using std::string_literals::operator""s;

namespace {

// The port of "metrics endpoint on http://127.0.0.1:PORT/metrics"; 0 if not logged in time.
int metrics_port(const Server &s) {
  const std::string needle = "metrics endpoint on http://127.0.0.1:";
  if (!s.wait_log(needle)) return 0;
  std::string log = s.log();
  return atoi(log.c_str() + log.find(needle) + needle.size());
}

// Sends `request` on a fresh connection and reads until the server closes (or timeout).
std::string http(int port, const std::string &request, double timeout = 5) {
  int fd = connect_loopback(port);
  if (fd < 0) return "";
  if (!request.empty() && write(fd, request.data(), request.size()) < 0) {
    close(fd);
    return "";
  }
  std::string out;
  double end = now() + timeout;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>((end - now()) * 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0) break;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string body_of(const std::string &response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

int status_of(const std::string &response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return -1;
  return atoi(response.c_str() + 9);
}

// "name{labels}" -> value of every sample.
using Samples = std::map<std::string, double>;
Samples parse(const std::string &text) {
  Samples out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.empty() || l[0] == '#') continue;
    size_t sp = l.rfind(' ');
    out[l.substr(0, sp)] = strtod(l.c_str() + sp + 1, nullptr);
  }
  return out;
}

struct Scrape {
  std::string text;
  Samples v;
  double operator[](const std::string &k) const {
    auto it = v.find(k);
    return it == v.end() ? 0 : it->second;
  }
};

Scrape scrape(int port) {
  std::string r = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE_MESSAGE(status_of(r) == 200, r);
  CHECK(r.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  CHECK(r.find("\r\nConnection: close\r\n") != std::string::npos);
  Scrape s;
  s.text = body_of(r);
  size_t cl = r.find("Content-Length: ");
  REQUIRE(cl != std::string::npos);
  CHECK(static_cast<size_t>(atol(r.c_str() + cl + 16)) == s.text.size());
  s.v = parse(s.text);
  return s;
}

// promtool check metrics on the text: "" when it passes, else what it said.
std::string promtool(const std::string &text) {
  if (access("/usr/bin/promtool", X_OK) != 0) {
    MESSAGE("promtool not installed (Debian package prometheus): format not checked by it");
    return "";
  }
  char path[] = "/tmp/uvsmtpd-scrape.XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  RunResult r = sh("/usr/bin/promtool check metrics < " + std::string(path));
  unlink(path);
  return r.status == 0 ? "" : "promtool: " + r.output;
}

// Waits until pred(scrape) holds; the last scrape either way.
template <class P>
Scrape scrape_until(int port, P pred, double timeout = 5) {
  Scrape s = scrape(port);
  for (double end = now() + timeout; !pred(s) && now() < end;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s = scrape(port);
  }
  return s;
}

const std::string kMetricsToml = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

// Options for a server with the metrics endpoint: toml (kMetricsToml by default; a test that
// adds keys includes it), the plugins, log level info.
Options metered(const std::string &plugins, const std::string &toml = kMetricsToml) {
  Options o;
  o.toml = toml;
  o.plugins = plugins;
  o.log_level = "info";
  return o;
}

// A started server and its metrics port; a test binds it as `auto &&[s, mport] = Metered(o);`.
struct Metered {
  Server s;
  int mport = 0;
  explicit Metered(const Options &o) : s(o) {
    REQUIRE(s.started());
    mport = metrics_port(s);
    REQUIRE(mport > 0);
  }
};

// Checks the value of each sample, naming the sample when it differs.
void check_samples(const Scrape &x, std::initializer_list<std::pair<std::string, double>> want) {
  for (const auto &[name, value] : want) CHECK_MESSAGE(x[name] == value, name);
}

// A client past the greeting and EHLO.
void ehlo(Client &c) {
  REQUIRE(c.code() == 220);
  CHECK(c.cmd("EHLO client.test").rfind("250", 0) == 0);
}

}  // namespace

TEST_CASE("metrics: a scrape after real sessions: the counters moved as the sessions went") {
  auto &&[s, mport] = Metered(
      metered("verdict rcpt=OK queue=OK vrfy=DENY_DISCONNECT rcpt.async=timer rcpt.delay=30\n",
              "max_connections_per_ip = 2\n" + kMetricsToml));
  Scrape before = scrape(mport);
  CHECK(promtool(before.text) == "");
  check_samples(before, {{"uvsmtpd_connections_total", 0},
                         {"uvsmtpd_connections_open", 0},
                         {"uvsmtpd_sessions_total{end=\"quit\"}", 0}});

  const std::string body = "Subject: metrics\r\n\r\nHello.\r\n";
  {  // a message, a refused RCPT, QUIT
    Client c(s.port());
    ehlo(c);
    Scrape during = scrape(mport);
    CHECK(during["uvsmtpd_connections_open"] == 1);
    CHECK(c.cmd("MAIL FROM:<a@example.org>").rfind("250", 0) == 0);
    CHECK(c.cmd("RCPT TO:<b@example.org>").rfind("250", 0) == 0);
    CHECK(c.cmd("RCPT TO:<b@example.org").rfind("501", 0) == 0);
    CHECK(c.cmd("DATA").rfind("354", 0) == 0);
    CHECK(c.cmd(body + ".").rfind("250", 0) == 0);
    CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  }
  {  // closed by a plugin
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("VRFY x").rfind("5", 0) == 0);
    CHECK(c.closed());
  }
  {  // an HTTP request on the SMTP port
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("GET / HTTP/1.0").rfind("221", 0) == 0);
  }
  // the sessions above are gone (their slots for this IP too)
  scrape_until(mport, [](const Scrape &x) { return x["uvsmtpd_connections_open"] == 0; });
  {  // the third connection from one IP is refused (max_connections_per_ip = 2)
    Client a(s.port()), b(s.port());
    REQUIRE(a.code() == 220);
    REQUIRE(b.code() == 220);
    Client c(s.port());
    CHECK(c.code() == 421);
    CHECK(c.closed());
  }
  Scrape after = scrape_until(mport, [](const Scrape &x) {
    return x["uvsmtpd_connections_open"] == 0 && x["uvsmtpd_connections_total"] == 6;
  });
  CHECK(promtool(after.text) == "");
  check_samples(after, {{"uvsmtpd_connections_total", 6},
                        {"uvsmtpd_connections_open", 0},
                        {"uvsmtpd_connections_refused_total{reason=\"max_connections_per_ip\"}", 1},
                        {"uvsmtpd_connections_refused_total{reason=\"max_connections\"}", 0},
                        {"uvsmtpd_sessions_total{end=\"quit\"}", 1},
                        {"uvsmtpd_sessions_total{end=\"plugin\"}", 1},
                        {"uvsmtpd_sessions_total{end=\"protocol\"}", 1},
                        {"uvsmtpd_sessions_total{end=\"limit\"}", 1},
                        {"uvsmtpd_sessions_total{end=\"client_closed\"}", 2},
                        {"uvsmtpd_smtp_commands_total{verb=\"ehlo\"}", 1},
                        {"uvsmtpd_smtp_commands_total{verb=\"rcpt\"}", 2},
                        {"uvsmtpd_smtp_commands_total{verb=\"vrfy\"}", 1},
                        {"uvsmtpd_smtp_commands_total{verb=\"unknown\"}", 1},
                        {"uvsmtpd_smtp_commands_total{verb=\"quit\"}", 1},
                        {"uvsmtpd_messages_accepted_total", 1}});
  CHECK(after["uvsmtpd_message_bytes_accepted_total"] > static_cast<double>(body.size()));
  check_samples(
      after, {{"uvsmtpd_hook_verdicts_total{hook=\"rcpt\",plugin=\"verdict\",verdict=\"OK\"}", 1},
              {"uvsmtpd_hook_verdicts_total{hook=\"queue\",plugin=\"verdict\",verdict=\"OK\"}", 1},
              {"uvsmtpd_hook_verdicts_total{hook=\"vrfy\",plugin=\"verdict\",verdict="
               "\"DENY_DISCONNECT\"}",
               1}});
  // The rcpt verdict came 30 ms later, from a timer: both histograms saw it. (libuv starts a
  // timer from the loop's cached time, which lags the clock the histograms read: a 30 ms timer
  // can measure a little less, hence 25 ms.)
  check_samples(after, {{"uvsmtpd_hook_duration_seconds_count{hook=\"rcpt\"}", 1},
                        {"uvsmtpd_hook_duration_seconds_bucket{hook=\"rcpt\",le=\"0.01\"}", 0},
                        {"uvsmtpd_hook_duration_seconds_bucket{hook=\"rcpt\",le=\"+Inf\"}", 1}});
  CHECK(after["uvsmtpd_hook_duration_seconds_sum{hook=\"rcpt\"}"] >= 0.025);
  CHECK(after["uvsmtpd_hook_duration_seconds_sum{hook=\"rcpt\"}"] < 5);
  CHECK(after["uvsmtpd_plugin_hook_duration_seconds_count{hook=\"rcpt\",plugin=\"verdict\"}"] == 1);
  CHECK(after["uvsmtpd_plugin_hook_duration_seconds_sum{hook=\"rcpt\",plugin=\"verdict\"}"] >=
        0.025);
  CHECK(after["uvsmtpd_queue_entries{state=\"active\"}"] == 0);  // no delivery engine here
  CHECK(after["uvsmtpd_deliveries_total{result=\"sent\"}"] == 0);
}

TEST_CASE("metrics: a plugin's refusal at connect is counted with its name") {
  auto &&[s, mport] = Metered(metered("verdict connect=DENY\n"));
  for (int i = 0; i < 2; ++i) {
    Client c(s.port());
    CHECK(c.code() == 550);
    CHECK(c.closed());
  }
  Scrape x = scrape_until(mport, [](const Scrape &x) {
    return x["uvsmtpd_connections_refused_total{reason=\"plugin\",plugin=\"verdict\"}"] == 2;
  });
  check_samples(
      x,
      {{"uvsmtpd_connections_refused_total{reason=\"plugin\",plugin=\"verdict\"}", 2},
       {"uvsmtpd_sessions_total{end=\"plugin\"}", 2},
       {"uvsmtpd_hook_verdicts_total{hook=\"connect\",plugin=\"verdict\",verdict=\"DENY\"}", 2}});
  CHECK(promtool(x.text) == "");
}

TEST_CASE("metrics: hosts_allow's refusals at pre-connection are counted as hosts_allow's") {
  Options o = metered("hosts_allow max-from-ip 0\nverdict rcpt=OK queue=OK\n");
  o.files["hosts_allow"] = "127.0.0.1 DENY not from here\n";
  auto &&[s, mport] = Metered(o);
  {
    Client c(s.port());
    CHECK(c.code() == 550);
    CHECK(c.closed());
  }
  const std::string refused =
      "uvsmtpd_connections_refused_total{reason=\"plugin\",plugin=\"hosts_allow\"}";
  Scrape x = scrape_until(mport, [&](const Scrape &x) { return x[refused] == 1; });
  check_samples(
      x, {{refused, 1},
          {"uvsmtpd_hook_verdicts_total{hook=\"pre-connection\",plugin=\"hosts_allow\",verdict="
           "\"DENY\"}",
           1},
          {"uvsmtpd_sessions_total{end=\"plugin\"}", 1}});
  CHECK(s.wait_log(" end=plugin:hosts_allow"));
}

TEST_CASE("metrics: TLS handshakes and failures, AUTH successes and failures") {
  const auto &pki = tls::certs();
  REQUIRE_MESSAGE(pki.ok(), pki.error);
  Options o;
  o.cli_listen = false;
  o.toml = kMetricsToml +
           "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\nauth_plaintext = true\n"
           "[auth]\nfailure_delay = 0\n[tls]\ncertificate = \"" +
           pki.leaf.cert + "\"\nkey = \"" + pki.leaf.key + "\"\n";
  o.plugins = "auth_static alice s3cret\nverdict rcpt=OK queue=OK\n";
  o.log_level = "info";
  Server s(o);
  std::vector<int> ports = s.ports(1);
  REQUIRE(ports.size() == 1);
  int port = ports[0];
  int mport = metrics_port(s);
  REQUIRE(mport > 0);
  {  // a handshake, then a good AUTH inside TLS
    tls::TlsClient c(port);
    REQUIRE_MESSAGE(c.starttls(), c.error());
    CHECK(c.cmd("EHLO client.test").rfind("250", 0) == 0);
    CHECK(c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").rfind("235", 0) == 0);  // alice / s3cret
    CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  }
  {  // a bad password, in plaintext (auth_plaintext)
    Client c(port);
    ehlo(c);
    CHECK(c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n").rfind("535", 0) == 0);  // alice / wrong
  }
  {  // STARTTLS, then bytes that are not TLS: the handshake fails
    Client c(port);
    ehlo(c);
    CHECK(c.cmd("STARTTLS").rfind("220", 0) == 0);
    c.send(std::string("this is not a ClientHello\r\n") + std::string(600, 'x'));
    CHECK(c.closed());
  }
  Scrape x = scrape_until(mport, [](const Scrape &x) {
    return x["uvsmtpd_tls_handshake_failures_total{reason=\"error\"}"] == 1 &&
           x["uvsmtpd_connections_open"] == 0;
  });
  check_samples(x, {{"uvsmtpd_tls_handshakes_total{mode=\"starttls\"}", 1},
                    {"uvsmtpd_tls_handshakes_total{mode=\"implicit\"}", 0},
                    {"uvsmtpd_tls_handshake_failures_total{reason=\"error\"}", 1},
                    {"uvsmtpd_auth_total{result=\"success\"}", 1},
                    {"uvsmtpd_auth_total{result=\"failure\"}", 1},
                    {"uvsmtpd_sessions_total{end=\"tls_failed\"}", 1},
                    {"uvsmtpd_smtp_commands_total{verb=\"starttls\"}", 2},
                    {"uvsmtpd_smtp_commands_total{verb=\"auth\"}", 2}});
  CHECK(promtool(x.text) == "");
}

TEST_CASE("metrics: the outbound queue: deliveries by result, entries deferred and held") {
  TempDir tmp("metrics");
  std::string queue = tmp.path + "/queue";
  MxScript script;
  script.rcpt_replies = {{"bad@*", "550 5.1.1 no such user"}, {"later@*", "450 4.2.0 try later"}};
  FakeMx mx("127.0.0.2", 0, script);
  REQUIRE_MESSAGE(mx.started(), mx.error());
  auto &&[s, mport] =
      Metered(metered("verdict rcpt=OK\nqueue/outbound " + queue + "\n",
                      kMetricsToml + "[delivery]\nretry_min = 300\nrescan_interval = 1\n" +
                          "[[delivery.route]]\ndomain = \"*\"\nto = \"smtp:[127.0.0.2]:" +
                          std::to_string(mx.port()) + "\"\n"));
  REQUIRE(s.wait_log("delivery: queue "));
  std::string id;
  {  // the null sender: the bounced recipient makes no notice (nothing else to deliver)
    Client c(s.port());
    ehlo(c);
    id = queued_as_id(send_message(c, "", {"ok@dest.test", "bad@dest.test", "later@dest.test"},
                                   "Subject: queued\r\n\r\nHello.\r\n"));
    REQUIRE(!id.empty());
  }
  REQUIRE(mx.wait_messages(1));
  Scrape x = scrape_until(mport, [](const Scrape &x) {
    return x["uvsmtpd_deliveries_total{result=\"deferred\"}"] == 1 &&
           x["uvsmtpd_queue_entries{state=\"active\"}"] == 0;
  });
  check_samples(x, {{"uvsmtpd_deliveries_total{result=\"sent\"}", 1},
                    {"uvsmtpd_deliveries_total{result=\"bounced\"}", 1},
                    {"uvsmtpd_deliveries_total{result=\"deferred\"}", 1},
                    {"uvsmtpd_queue_entries{state=\"active\"}", 0},
                    {"uvsmtpd_queue_entries{state=\"deferred\"}", 1},
                    {"uvsmtpd_queue_entries{state=\"held\"}", 0}});
  CHECK(promtool(x.text) == "");

  RunResult h = queue_tool(queue, "hold " + id);
  REQUIRE_MESSAGE(h.status == 0, h.output);
  x = scrape_until(mport, [](const Scrape &x) {  // the next scan (rescan_interval = 1) sees it
    return x["uvsmtpd_queue_entries{state=\"held\"}"] == 1;
  });
  CHECK(x["uvsmtpd_queue_entries{state=\"held\"}"] == 1);
  CHECK(x["uvsmtpd_queue_entries{state=\"deferred\"}"] == 0);
}

TEST_CASE(
    "metrics: HTTP: other paths, methods, versions and garbage get their status; SMTP goes on") {
  auto &&[s, mport] = Metered(metered("verdict rcpt=OK queue=OK\n"));

  // HTTP/1.0, a query string, bare LF line ends, empty lines before the request line
  CHECK(status_of(http(mport, "GET /metrics HTTP/1.0\r\n\r\n")) == 200);
  CHECK(status_of(http(mport, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")) == 200);
  CHECK(status_of(http(mport, "GET /metrics HTTP/1.0\n\n")) == 200);
  CHECK(status_of(http(mport, "\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")) == 200);
  // HEAD: the headers, no body
  std::string head = http(mport, "HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(head) == 200);
  CHECK(body_of(head).empty());
  CHECK(head.find("Content-Length: 0\r\n") == std::string::npos);

  std::string nf = http(mport, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(nf) == 404);
  CHECK(body_of(nf) == "Not Found\n");
  CHECK(status_of(http(mport, "GET /metricsx HTTP/1.1\r\n\r\n")) == 404);
  std::string na = http(mport, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  CHECK(status_of(na) == 405);
  CHECK(na.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  CHECK(status_of(http(mport, "DELETE /metrics HTTP/1.0\r\n\r\n")) == 405);
  CHECK(status_of(http(mport, "GET /metrics HTTP/2.0\r\n\r\n")) == 505);
  CHECK(status_of(http(mport, "GET /metrics\r\n\r\n")) == 400);  // HTTP/0.9
  CHECK(status_of(http(mport, "GET  /metrics HTTP/1.1\r\n\r\n")) == 400);
  CHECK(status_of(http(mport, "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n")) == 400);
  CHECK(status_of(http(mport, "GET /met rics HTTP/1.1\r\n\r\n")) == 400);
  CHECK(status_of(http(mport, "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n"s)) == 400);
  CHECK(status_of(http(mport, "EHLO client.test\r\n\r\n")) == 400);  // SMTP at the HTTP port
  std::string bin;
  for (int i = 0; i < 4000; ++i) bin += static_cast<char>((i * 7919) % 256);
  std::string g = http(mport, bin + "\r\n\r\n");
  CHECK((g.empty() || status_of(g) == 400 || status_of(g) == 431));
  // a head over 8 KiB: 431, whether or not it ever ends
  CHECK(status_of(http(
            mport, "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n")) == 431);
  CHECK(status_of(http(mport, std::string(20000, 'A'))) == 431);
  std::string many = "GET /metrics HTTP/1.1\r\n";
  for (int i = 0; i < 150; ++i) many += "X-" + std::to_string(i) + ": y\r\n";
  CHECK(status_of(http(mport, many + "\r\n")) == 431);

  // Clients that say nothing, or half a request, and one that sends and never reads: SMTP and
  // the endpoint stay served meanwhile.
  std::vector<int> idle;
  for (int i = 0; i < 5; ++i) idle.push_back(connect_loopback(mport));
  int half = connect_loopback(mport);
  REQUIRE(half >= 0);
  REQUIRE(write(half, "GET /metr", 9) == 9);
  {
    Client c(s.port());
    ehlo(c);
    CHECK(status_of(http(mport, "GET /metrics HTTP/1.0\r\n\r\n")) == 200);
    CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  }
  // 100 silent connections (more than the 64 served together) do not keep a scraper out: the
  // oldest silent ones are closed to make room
  std::vector<int> flood;
  for (int i = 0; i < 100; ++i) flood.push_back(connect_loopback(mport));
  CHECK(status_of(http(mport, "GET /metrics HTTP/1.0\r\n\r\n")) == 200);
  int dropped = 0;
  for (int fd : flood) {
    if (fd < 0) continue;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) ++dropped;  // EOF: closed by the server
    close(fd);
  }
  CHECK(dropped >= 36);
  for (int fd : idle)
    if (fd >= 0) close(fd);
  close(half);
  // The slow ones are dropped after the request timeout; the endpoint answers throughout.
  CHECK(status_of(http(mport, "GET /metrics HTTP/1.0\r\n\r\n")) == 200);
  Client c(s.port());
  CHECK(c.code() == 220);
}

TEST_CASE("metrics: a client that stalls mid-request is dropped after the request timeout") {
  auto &&[s, mport] = Metered(metered("verdict rcpt=OK queue=OK\n"));
  double t0 = now();
  std::string r = http(mport, "GET /metrics HTTP/1.1\r\nHost: a\r\n", 20);
  double took = now() - t0;
  CHECK(r.empty());  // closed without a response
  CHECK(took > 9);   // the 10 s request timeout, with tolerance
  CHECK(took < 15);
}

TEST_CASE(
    "metrics: [metrics] is off by default; non-loopback needs allow_remote; errors name file and "
    "line") {
  {  // off by default: no endpoint
    Options o;
    o.plugins = "verdict rcpt=OK queue=OK\n";
    o.log_level = "info";
    Server s(o);
    REQUIRE(s.started());
    REQUIRE(s.wait_log("started (pid"));
    CHECK(s.count_log("metrics endpoint") == 0);
  }
  auto check = [](const std::string &metrics_toml) {
    Options o;
    o.toml = "[metrics]\n" + metrics_toml;
    o.plugins = "verdict rcpt=OK queue=OK\n";
    std::string dir = make_tree(o);
    RunResult r = run_uvsmtpd(
        {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--check-config"});
    remove_tree(dir);
    return r;
  };
  // the harness writes hostname and spool_dir first: [metrics] starts on line 3
  RunResult r = check("listen = \"0.0.0.0:9101\"\n");
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("uvsmtpd.toml:4: 'metrics.listen' \"0.0.0.0:9101\" is not a "
                              "loopback address") != std::string::npos,
                r.output);
  CHECK_MESSAGE(r.output.find("'metrics.allow_remote = true'") != std::string::npos, r.output);
  r = check("listen = \"[2001:db8::1]:9101\"\n");
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("uvsmtpd.toml:4: 'metrics.listen'") != std::string::npos, r.output);
  r = check("listen = \"0.0.0.0:9101\"\nallow_remote = true\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  r = check("listen = \"[::1]:9101\"\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  r = check("listen = \"127.0.0.2:9101\"\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  r = check("listen = \"localhost:9101\"\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  r = check("listen = \"9101\"\n");
  CHECK(r.status == 1);
  CHECK_MESSAGE(
      r.output.find("uvsmtpd.toml:4: 'metrics.listen' must be ADDR:PORT") != std::string::npos,
      r.output);
  r = check("listen = 9101\n");
  CHECK(r.status == 1);
  CHECK_MESSAGE(
      r.output.find("uvsmtpd.toml:4: 'metrics.listen' must be a string") != std::string::npos,
      r.output);
  r = check("allow_remote = \"yes\"\n");
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("uvsmtpd.toml:4:") != std::string::npos, r.output);
  r = check("port = 9101\n");
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.output.find("uvsmtpd.toml:4: unknown key 'metrics.port'") != std::string::npos,
                r.output);

  {  // a port in use: the start fails naming [metrics] listen
    Options o;
    o.plugins = "verdict rcpt=OK queue=OK\n";
    o.log_level = "info";
    Server a(o);
    REQUIRE(a.started());
    Options b;
    b.toml = "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(a.port()) + "\"\n";
    b.plugins = o.plugins;
    std::string dir = make_tree(b);
    RunResult r2 = run_uvsmtpd(
        {"--config", dir + "/conf", "--plugin-dir", dir + "/plugins", "--listen", "127.0.0.1:0"});
    remove_tree(dir);
    CHECK(r2.status == 1);
    CHECK_MESSAGE(
        r2.output.find("uvsmtpd.toml:4: cannot listen on 127.0.0.1:" + std::to_string(a.port()) +
                       " for the metrics") != std::string::npos,
        r2.output);
  }
}

TEST_CASE(
    "metrics: SIGHUP keeps the counters and the endpoint; a [metrics] change waits for a restart") {
  auto &&[s, mport] = Metered(metered("verdict rcpt=OK queue=OK\n"));
  {
    Client c(s.port());
    REQUIRE(c.code() == 220);
    CHECK(c.cmd("QUIT").rfind("221", 0) == 0);
  }
  REQUIRE(scrape_until(mport, [](const Scrape &x) {
            return x["uvsmtpd_sessions_total{end=\"quit\"}"] == 1;
          })["uvsmtpd_sessions_total{end=\"quit\"}"] == 1);
  REQUIRE(s.reload_toml("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\""));
  CHECK(
      s.wait_log("SIGHUP: [metrics] changed (now listen = \"127.0.0.1:1\"); it needs a restart: "
                 "the metrics are still served on 127.0.0.1:0"));
  Scrape x = scrape(mport);  // the same endpoint, the same counts
  CHECK(x["uvsmtpd_sessions_total{end=\"quit\"}"] == 1);
  CHECK(x["uvsmtpd_connections_total"] == 1);
}
