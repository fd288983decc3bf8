// fuzz/fuzz_settings.cpp: uvsmtpd.toml loading (server/config/settings.hpp load_settings) and the
// listen-address parser it uses.
// Input: the file's text (written to a per-process scratch file).
// Invariants: no crash and no escaping exception; a failure's error is "<file>:<line>: <message>"
// with line >= 1 and at most the file's line count (+1 for an error at the end); a success has
// every field inside its documented range (so the server never starts with a setting it would
// have refused).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/settings.hpp"
#include "fuzz_common.hpp"
#include "util/cidr.hpp"

namespace {

bool printable(std::string_view s, bool allow_space) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F || (c == ' ' && !allow_space)) return false;
  }
  return true;
}

bool seconds_ok(double x) {
  return std::isfinite(x) && x > 0 && x <= 1e9;
}

size_t count_lines(std::string_view s) {
  size_t n = 1;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view in(reinterpret_cast<const char *>(data), size);
  const std::string path = fuzz::scratch_dir() + "/uvsmtpd.toml";
  fuzz::write_file(path, in);
  const std::string ctx = "\n  file=\"" + fuzz::esc(in, 600) + "\"";

  uvs::config::Settings s;
  std::string err;
  bool ok = false;
  try {
    ok = uvs::config::load_settings(path, s, err, false);
  } catch (const std::exception &e) {
    FUZZ_CHECK(false, std::string("exception escaped load_settings: ") + e.what() + ctx);
  }
  if (!ok) {
    FUZZ_CHECK(fuzz::has_file_line_prefix(err, path), "error not <file>:<line>: " + fuzz::esc(err) + ctx);
    const size_t line = std::stoul(err.substr(path.size() + 1));
    FUZZ_CHECK(line <= count_lines(in), "error line beyond the file: " + fuzz::esc(err) + ctx);
    return 0;
  }
  FUZZ_CHECK(!s.hostname.empty() && s.hostname.size() <= 255 && printable(s.hostname, false),
             "hostname '" + fuzz::esc(s.hostname) + "'" + ctx);
  FUZZ_CHECK(s.greeting.size() <= 400 && printable(s.greeting, true), "greeting" + ctx);
  FUZZ_CHECK(!s.listen.empty(), "no listener" + ctx);
  for (size_t i = 0; i < s.listen.size(); ++i) {
    const auto &l = s.listen[i];
    std::string text = l.host.find(':') != std::string::npos ? "[" + l.host + "]" : l.host;
    text += ":" + std::to_string(l.port);
    uvs::config::Listen again;
    FUZZ_CHECK(uvs::config::parse_listen(text, again) && again.host == l.host && again.port == l.port,
               "listener does not round-trip: " + text + ctx);
    for (size_t j = 0; j < i; ++j)
      FUZZ_CHECK(l.port == 0 || s.listen[j].host != l.host || s.listen[j].port != l.port,
                 "duplicate listener accepted" + ctx);
  }
  FUZZ_CHECK(s.max_recipients >= 1, "max_recipients" + ctx);
  FUZZ_CHECK(s.max_line_length >= 64 && s.max_line_length <= 65536, "max_line_length" + ctx);
  FUZZ_CHECK(s.max_message_size <= static_cast<uint64_t>(INT64_MAX), "max_message_size" + ctx);
  FUZZ_CHECK(seconds_ok(s.timeout_command) && seconds_ok(s.timeout_data) &&
                 seconds_ok(s.hook_timeout) && seconds_ok(s.shutdown_grace) &&
                 seconds_ok(s.dns_timeout) && seconds_ok(s.reverse_timeout),
             "a duration out of range" + ctx);
  FUZZ_CHECK(!s.spool_dir.empty(), "empty spool_dir" + ctx);
  FUZZ_CHECK(s.bare_newline == "reject" || s.bare_newline == "normalize", "bare_newline" + ctx);
  FUZZ_CHECK(s.log_format == "text" || s.log_format == "json", "log.format" + ctx);
  static const char *levels[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
  bool level_ok = false;
  for (const char *lv : levels) level_ok = level_ok || s.log_level == lv;
  FUZZ_CHECK(level_ok, "log.level" + ctx);
  for (const auto &n : s.bare_newline_normalize_networks) {
    uvs::Cidr c;
    FUZZ_CHECK(uvs::parse_cidr(n, c), "normalize network '" + fuzz::esc(n) + "'" + ctx);
  }
  for (const auto &d : s.dns_servers) {
    uvs::config::Listen l;
    FUZZ_CHECK(uvs::config::parse_listen(d, l), "dns server '" + fuzz::esc(d) + "'" + ctx);
  }
  return 0;
}
