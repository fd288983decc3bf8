// tests/unit/test_metrics.cpp: the metrics text format (server/metrics/): value and label
// writing, histogram buckets, render() of this process's counters, and sum(), which adds the
// expositions of several worker processes into one. Cases are named "metrics: ...".
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "hooks/call.hpp"
#include "metrics/exposition.hpp"
#include "metrics/http_request.hpp"
#include "metrics/registry.hpp"

using uvs::metrics::sum;

namespace {

// sample line (without the value) -> value, of an exposition; comments left out.
std::map<std::string, std::string> samples(const std::string &text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.empty() || l[0] == '#') continue;
    size_t sp = l.rfind(' ');
    out[l.substr(0, sp)] = l.substr(sp + 1);
  }
  return out;
}

bool have_promtool() {
  return access("/usr/bin/promtool", X_OK) == 0;
}

// promtool check metrics on text: its exit status and output.
std::pair<int, std::string> promtool(const std::string &text) {
  char path[] = "/tmp/uvsmtpd-metrics.XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  std::string cmd = "/usr/bin/promtool check metrics < " + std::string(path) + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  unlink(path);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST_CASE("metrics: values and label values are written as the text format wants") {
  using uvs::metrics::escape_label;
  using uvs::metrics::format_value;
  CHECK(format_value(0) == "0");
  CHECK(format_value(42) == "42");
  CHECK(format_value(-3) == "-3");
  CHECK(format_value(0.25) == "0.25");
  CHECK(format_value(0.1) == "0.1");
  CHECK(format_value(1e300) == "1e+300");
  CHECK(format_value(HUGE_VAL) == "+Inf");
  CHECK(format_value(-HUGE_VAL) == "-Inf");
  CHECK(format_value(NAN) == "NaN");
  CHECK(escape_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  std::string out;
  uvs::metrics::family_head(out, "x_total", "counter", "Line one\nback\\slash");
  uvs::metrics::sample(out, "x_total", "a=\"1\"", uint64_t{7});
  uvs::metrics::sample(out, "x_total", "", 0.5);
  CHECK(out ==
        "# HELP x_total Line one\\nback\\\\slash\n# TYPE x_total counter\n"
        "x_total{a=\"1\"} 7\nx_total 0.5\n");
}

TEST_CASE("metrics: a histogram counts each observation in the first bucket it fits (le)") {
  uvs::metrics::Histogram h;
  h.observe(0);               // <= 0.0001
  h.observe(100'000);         // = 0.0001: still the first bucket
  h.observe(100'001);         // the second
  h.observe(20'000'000'000);  // over 10 s: +Inf
  CHECK(h.counts[0] == 2);
  CHECK(h.counts[1] == 1);
  CHECK(h.counts[uvs::metrics::Histogram::kBuckets] == 1);
  CHECK(h.count() == 4);
  CHECK(h.sum_ns == 20'000'200'001);
}

TEST_CASE("metrics: sum adds counters, gauges and histograms with the same name and labels") {
  std::string a =
      "# HELP c_total Things.\n# TYPE c_total counter\n"
      "c_total{x=\"1\",y=\"2\"} 3\nc_total{x=\"2\",y=\"2\"} 1\n"
      "# HELP g Open now.\n# TYPE g gauge\ng 5\n"
      "# HELP h_seconds Time.\n# TYPE h_seconds histogram\n"
      "h_seconds_bucket{hook=\"rcpt\",le=\"0.1\"} 1\nh_seconds_bucket{hook=\"rcpt\",le=\"+Inf\"} "
      "2\n"
      "h_seconds_sum{hook=\"rcpt\"} 0.5\nh_seconds_count{hook=\"rcpt\"} 2\n";
  // the same families, labels in another order, one value with a timestamp
  std::string b =
      "# HELP c_total Things.\n# TYPE c_total counter\n"
      "c_total{y=\"2\",x=\"1\"} 4 1700000000000\n"
      "# TYPE g gauge\ng 2\n"
      "# HELP h_seconds Time.\n# TYPE h_seconds histogram\n"
      "h_seconds_bucket{le=\"0.1\",hook=\"rcpt\"} 3\nh_seconds_bucket{hook=\"rcpt\",le=\"+Inf\"} "
      "3\n"
      "h_seconds_sum{hook=\"rcpt\"} 0.25\nh_seconds_count{hook=\"rcpt\"} 3\n";
  std::vector<std::string> in{a, b};
  size_t skipped = 99;
  std::string s = sum(in, &skipped);
  CHECK(skipped == 0);
  CHECK(s ==
        "# HELP c_total Things.\n# TYPE c_total counter\n"
        "c_total{x=\"1\",y=\"2\"} 7\nc_total{x=\"2\",y=\"2\"} 1\n"
        "# HELP g Open now.\n# TYPE g gauge\ng 7\n"
        "# HELP h_seconds Time.\n# TYPE h_seconds histogram\n"
        "h_seconds_bucket{hook=\"rcpt\",le=\"0.1\"} 4\nh_seconds_bucket{hook=\"rcpt\",le=\"+Inf\"} "
        "5\n"
        "h_seconds_sum{hook=\"rcpt\"} 0.75\nh_seconds_count{hook=\"rcpt\"} 5\n");
  // one input: itself; none: nothing
  std::vector<std::string> one{a};
  CHECK(sum(one) == a);
  CHECK(sum(std::vector<std::string>{}).empty());
}

TEST_CASE("metrics: sum keeps what only some inputs have, each series together in its family") {
  std::string a =
      "# HELP h Time.\n# TYPE h histogram\n"
      "h_bucket{p=\"a\",le=\"1\"} 1\nh_bucket{p=\"a\",le=\"+Inf\"} 1\nh_sum{p=\"a\"} 1\n"
      "h_count{p=\"a\"} 1\n"
      "# HELP v_total Verdicts.\n# TYPE v_total counter\nv_total{p=\"a\"} 1\n";
  std::string b =
      "# HELP h Time.\n# TYPE h histogram\n"
      "h_bucket{p=\"b\",le=\"1\"} 2\nh_bucket{p=\"b\",le=\"+Inf\"} 2\nh_sum{p=\"b\"} 2\n"
      "h_count{p=\"b\"} 2\n"
      "h_bucket{p=\"a\",le=\"1\"} 1\nh_bucket{p=\"a\",le=\"+Inf\"} 1\nh_sum{p=\"a\"} 1\n"
      "h_count{p=\"a\"} 1\n"
      "# HELP v_total Verdicts.\n# TYPE v_total counter\nv_total{p=\"b\"} 5\n"
      "# HELP only_b A family only the second has.\n# TYPE only_b gauge\nonly_b 1\n";
  std::vector<std::string> in{a, b};
  CHECK(sum(in) ==
        "# HELP h Time.\n# TYPE h histogram\n"
        "h_bucket{p=\"a\",le=\"1\"} 2\nh_bucket{p=\"a\",le=\"+Inf\"} 2\nh_sum{p=\"a\"} 2\n"
        "h_count{p=\"a\"} 2\n"
        "h_bucket{p=\"b\",le=\"1\"} 2\nh_bucket{p=\"b\",le=\"+Inf\"} 2\nh_sum{p=\"b\"} 2\n"
        "h_count{p=\"b\"} 2\n"
        "# HELP v_total Verdicts.\n# TYPE v_total counter\nv_total{p=\"a\"} 1\nv_total{p=\"b\"} 5\n"
        "# HELP only_b A family only the second has.\n# TYPE only_b gauge\nonly_b 1\n");
}

TEST_CASE("metrics: sum reads escaped label values and skips lines that do not parse") {
  std::string a =
      "# TYPE m counter\n"
      "m{v=\"a\\\"b,c}\\\\\\n\"} 1\n"  // a value with a quote, comma, brace, backslash, newline
      "m{v=\"x\"} +Inf\n"
      "# just a comment\n"
      "\n"
      "m{v=\"unterminated} 1\n"
      "m{v=\"x\"}\n"            // no value
      "m{v=\"x\",v=\"y\"} 1\n"  // a label twice
      "9bad 1\n"
      "m 1 notatime\n"
      "# TYPE\n";
  std::string b = "# TYPE m counter\nm{v=\"a\\\"b,c}\\\\\\n\"} 2\nm{v=\"x\"} 1\nm{v=\"y\"} NaN\n";
  std::vector<std::string> in{a, b};
  size_t skipped = 0;
  std::string s = sum(in, &skipped);
  CHECK(skipped == 6);
  CHECK(s == "# TYPE m counter\nm{v=\"a\\\"b,c}\\\\\\n\"} 3\nm{v=\"x\"} +Inf\nm{v=\"y\"} NaN\n");
}

TEST_CASE("metrics: render() lists every family; the sum of two renders doubles every value") {
  auto &c = uvs::metrics::core();
  c.connections += 3;
  c.closed += 1;
  c.sessions[static_cast<size_t>(uvs::log::EndReason::quit)] += 2;
  c.hooks[UVS_HOOK_RCPT].observe(2'000'000);
  uvs_plugin p;
  p.instance = "rcpt_ok \"x\"";  // a name that needs escaping
  auto &ps = uvs::metrics::plugin(&p);
  CHECK(&uvs::metrics::plugin(&p) == &ps);  // cached in the instance
  uvs_plugin again;
  again.instance = p.instance;
  CHECK(&uvs::metrics::plugin(&again) == &ps);  // found by name (a reload's new instance)
  ps.verdicts[UVS_HOOK_RCPT][UVS_OK] += 1;
  ps.latency[UVS_HOOK_RCPT].observe(1'000'000);
  ps.refused += 1;
  std::string r = uvs::metrics::render();
  for (const char *family :
       {"uvsmtpd_connections_open gauge", "uvsmtpd_connections_total counter",
        "uvsmtpd_connections_refused_total counter", "uvsmtpd_sessions_total counter",
        "uvsmtpd_smtp_commands_total counter", "uvsmtpd_hook_verdicts_total counter",
        "uvsmtpd_hook_duration_seconds histogram", "uvsmtpd_plugin_hook_duration_seconds histogram",
        "uvsmtpd_messages_accepted_total counter", "uvsmtpd_message_bytes_accepted_total counter",
        "uvsmtpd_tls_handshakes_total counter", "uvsmtpd_tls_handshake_failures_total counter",
        "uvsmtpd_auth_total counter", "uvsmtpd_queue_entries gauge",
        "uvsmtpd_deliveries_total counter"})
    CHECK_MESSAGE(r.find(std::string("# TYPE ") + family + "\n") != std::string::npos, family);
  auto one = samples(r);
  CHECK(one.at("uvsmtpd_hook_verdicts_total{hook=\"rcpt\",plugin=\"rcpt_ok "
               "\\\"x\\\"\",verdict=\"OK\"}") ==
        std::to_string(ps.verdicts[UVS_HOOK_RCPT][UVS_OK]));
  CHECK(one.count("uvsmtpd_plugin_hook_duration_seconds_bucket{hook=\"rcpt\",plugin=\"rcpt_ok "
                  "\\\"x\\\"\",le=\"0.001\"}") == 1);
  CHECK(one.at("uvsmtpd_hook_duration_seconds_bucket{hook=\"rcpt\",le=\"+Inf\"}") ==
        one.at("uvsmtpd_hook_duration_seconds_count{hook=\"rcpt\"}"));
  CHECK(
      one.at("uvsmtpd_connections_refused_total{reason=\"plugin\",plugin=\"rcpt_ok \\\"x\\\"\"}") ==
      std::to_string(ps.refused));
  std::vector<std::string> two{r, r};
  std::string s = sum(two);
  auto doubled = samples(s);
  REQUIRE(doubled.size() == one.size());
  for (const auto &[k, v] : one) CHECK_MESSAGE(std::stod(doubled.at(k)) == 2 * std::stod(v), k);
  if (have_promtool()) {
    auto [st, out] = promtool(r);
    CHECK_MESSAGE(st == 0, out);
    auto [st2, out2] = promtool(s);
    CHECK_MESSAGE(st2 == 0, out2);
  } else {
    MESSAGE("promtool not installed: format not checked by it");
  }
}

TEST_CASE(
    "metrics: HTTP request heads: 200 for GET and HEAD /metrics, the right status otherwise") {
  using uvs::metrics::judge_request;
  auto st = [](std::string_view h) { return judge_request(h).status; };
  CHECK(st("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == 200);
  CHECK(st("GET /metrics HTTP/1.0\r\n\r\n") == 200);
  CHECK(st("GET /metrics?name[]=x HTTP/1.0\n\n") == 200);
  CHECK(st("\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n") == 200);  // leading empty lines
  CHECK(judge_request("HEAD /metrics HTTP/1.1\r\n\r\n").head);
  CHECK_FALSE(judge_request("GET /metrics HTTP/1.1\r\n\r\n").head);
  CHECK(st("GET / HTTP/1.1\r\n\r\n") == 404);
  CHECK(st("GET /metrics/ HTTP/1.1\r\n\r\n") == 404);
  CHECK(st("POST / HTTP/1.1\r\n\r\n") == 404);  // the path first
  CHECK(st("POST /metrics HTTP/1.1\r\n\r\n") == 405);
  CHECK(st("get /metrics HTTP/1.1\r\n\r\n") == 405);  // methods are case-sensitive
  CHECK(st("GET /metrics HTTP/1.2\r\n\r\n") == 505);
  CHECK(st("GET /metrics HTTP/3.0\r\n\r\n") == 505);
  CHECK(st("GET /metrics http/1.1\r\n\r\n") == 400);
  CHECK(st("GET /metrics HTTP/1.10\r\n\r\n") == 400);
  CHECK(st("GET /metrics\r\n\r\n") == 400);
  CHECK(st("GET /metrics HTTP/1.1 x\r\n\r\n") == 400);
  CHECK(st("G(T /metrics HTTP/1.1\r\n\r\n") == 400);
  CHECK(st("GET /m\x7f HTTP/1.1\r\n\r\n") == 400);
  CHECK(st("GET /metrics HTTP/1.1\r\n folded\r\n\r\n") == 400);
  CHECK(st("GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n") == 400);
  CHECK(st("") == 400);
  CHECK(st("\r\n\r\n") == 400);
  std::string many = "GET /metrics HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) many += "X: y\r\n";
  CHECK(st(many + "\r\n") == 431);

  std::string r = uvs::metrics::http_response({405, false}, nullptr);
  CHECK(r ==
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 19\r\nAllow: GET, HEAD\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\nMethod Not Allowed\n");
  r = uvs::metrics::http_response({200, true}, [] { return std::string("x 1\n"); });
  CHECK(r ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Content-Length: 4\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
}

TEST_CASE("metrics: random bytes never crash the request parser or sum()") {
  uint32_t x = 12345;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  const std::string alphabet = "GET /metrics HTTP/1.0\r\n:{}\"=,\\# \t+-.eInfNa0123456789_le";
  for (int round = 0; round < 3000; ++round) {
    std::string s;
    size_t n = next() % 200;
    for (size_t i = 0; i < n; ++i)
      s +=
          (next() % 4 == 0) ? static_cast<char>(next() & 0xff) : alphabet[next() % alphabet.size()];
    int status = uvs::metrics::judge_request(s).status;
    CHECK((status == 200 || status == 400 || status == 404 || status == 405 || status == 431 ||
           status == 505));
    std::vector<std::string> in{s, s + "\n" + s};
    (void)sum(in);
  }
}
