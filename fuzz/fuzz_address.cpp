// fuzz/fuzz_address.cpp: parse_mail_arg / parse_rcpt_arg (server/smtp/address.hpp).
// The input is run as a MAIL argument and as a RCPT argument, both as is and behind "FROM:<" /
// "TO:<" (so the fuzzer spends its time inside the path and parameter grammar).
// Invariants on success: the address has no control bytes (so no CR/LF/NUL), local <= 64,
// domain <= 255, the whole path (route included) <= 256 with its brackets, address is
// local "@" domain (or a bare postmaster, RCPT only), <> only for MAIL, has_8bit matches the
// bytes, parameters are valid upper-case keywords with valid values and no duplicates, and
// re-formatting the result and parsing it again gives the same result.
// Invariants on failure: code 501/553/555, enhanced code 5.x.x, a non-empty one-line message,
// no path, no parameters.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "smtp/address.hpp"

namespace {

using uvs::smtp::PathParse;

bool is_ctl(char c) {
  auto b = static_cast<unsigned char>(c);
  return b < 0x20 || b == 0x7F;
}

bool any_ctl(std::string_view s) {
  for (char c : s)
    if (is_ctl(c)) return true;
  return false;
}

bool any_8bit(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

bool digit(char c) {
  return c >= '0' && c <= '9';
}

// "5.d{1,3}.d{1,3}"
bool enhanced_5xx(std::string_view e) {
  if (e.size() < 5 || e[0] != '5' || e[1] != '.') return false;
  size_t i = 2, d = 0;
  while (i < e.size() && digit(e[i])) ++i, ++d;
  if (d < 1 || d > 3 || i >= e.size() || e[i] != '.') return false;
  ++i;
  d = 0;
  while (i < e.size() && digit(e[i])) ++i, ++d;
  return d >= 1 && d <= 3 && i == e.size();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

bool same(const PathParse &a, const PathParse &b) {
  if (a.ok != b.ok || a.code != b.code || a.enhanced != b.enhanced || a.message != b.message)
    return false;
  const auto &p = a.path, &q = b.path;
  if (p.null != q.null || p.address != q.address || p.local != q.local || p.domain != q.domain ||
      p.route != q.route || p.has_8bit != q.has_8bit)
    return false;
  if (a.params.size() != b.params.size()) return false;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (a.params[i].key != b.params[i].key || a.params[i].value != b.params[i].value) return false;
  return true;
}

void check(std::string_view arg, const PathParse &r, bool rcpt) {
  const std::string where = std::string(rcpt ? "RCPT " : "MAIL ") + fuzz::esc(arg);
  if (!r.ok) {
    FUZZ_CHECK(r.code == 501 || r.code == 553 || r.code == 555,
               "failure code " + std::to_string(r.code) + " for " + where);
    FUZZ_CHECK(enhanced_5xx(r.enhanced), "enhanced code '" + r.enhanced + "' for " + where);
    FUZZ_CHECK(!r.message.empty() && !any_ctl(r.message), "bad message for " + where);
    FUZZ_CHECK(r.params.empty() && r.path.address.empty() && !r.path.null,
               "failure carries a path or params: " + where);
    return;
  }
  FUZZ_CHECK(r.code == 0, "ok with a code: " + where);
  const std::string_view prefix = rcpt ? "TO:" : "FROM:";
  FUZZ_CHECK(arg.size() >= prefix.size() && iequals(arg.substr(0, prefix.size()), prefix),
             "accepted without " + std::string(prefix) + ": " + where);
  const auto &p = r.path;
  if (p.null) {
    FUZZ_CHECK(!rcpt, "RCPT accepted <>");
    FUZZ_CHECK(p.address.empty() && p.local.empty() && p.domain.empty() && p.route.empty() &&
                   !p.has_8bit,
               "null path with content: " + where);
  } else {
    FUZZ_CHECK(!p.address.empty(), "empty address accepted: " + where);
    FUZZ_CHECK(!any_ctl(p.address) && !any_ctl(p.route),
               "control byte (CR/LF/NUL...) in accepted address: " + where);
    FUZZ_CHECK(p.local.size() <= uvs::smtp::kMaxLocalPart, "local part too long: " + where);
    FUZZ_CHECK(p.domain.size() <= uvs::smtp::kMaxDomain, "domain too long: " + where);
    const size_t body = p.address.size() + (p.route.empty() ? 0 : p.route.size() + 1);
    FUZZ_CHECK(body + 2 <= uvs::smtp::kMaxPath, "path too long: " + where);
    if (p.domain.empty()) {
      FUZZ_CHECK(rcpt && iequals(p.address, "postmaster") && p.local == p.address &&
                     p.route.empty(),
                 "address without domain: " + where);
    } else {
      FUZZ_CHECK(p.address == p.local + "@" + p.domain, "address != local@domain: " + where);
      FUZZ_CHECK(!p.local.empty(), "empty local part: " + where);
    }
    FUZZ_CHECK(p.has_8bit == (any_8bit(p.address) || any_8bit(p.route)), "has_8bit: " + where);
  }
  for (size_t i = 0; i < r.params.size(); ++i) {
    const auto &kv = r.params[i];
    FUZZ_CHECK(!kv.key.empty(), "empty keyword: " + where);
    for (char c : kv.key)
      FUZZ_CHECK((c >= 'A' && c <= 'Z') || digit(c) || c == '-',
                 "keyword not upper-case [A-Z0-9-]: " + where);
    FUZZ_CHECK(kv.key[0] != '-', "keyword starts with '-': " + where);
    if (kv.value) {
      FUZZ_CHECK(!kv.value->empty(), "empty value: " + where);
      for (char c : *kv.value)
        FUZZ_CHECK(!is_ctl(c) && c != ' ' && c != '=', "bad byte in value: " + where);
    }
    FUZZ_CHECK(uvs::smtp::find_param(r.params, kv.key) == &kv, "duplicate keyword: " + where);
  }

  // Re-format and re-parse: the canonical form must parse to the same result.
  std::string again(prefix);
  again += "<";
  if (!p.route.empty()) again += p.route + ":";
  again += p.address + ">";
  for (const auto &kv : r.params) again += " " + kv.key + (kv.value ? "=" + *kv.value : "");
  const PathParse r2 = rcpt ? uvs::smtp::parse_rcpt_arg(again) : uvs::smtp::parse_mail_arg(again);
  FUZZ_CHECK(same(r, r2), "round trip differs: " + where + " -> " + fuzz::esc(again));
}

void run(std::string_view arg) {
  check(arg, uvs::smtp::parse_mail_arg(arg), false);
  check(arg, uvs::smtp::parse_rcpt_arg(arg), true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view in(reinterpret_cast<const char *>(data), size);
  run(in);
  run("FROM:<" + std::string(in));
  run("TO:<" + std::string(in));
  return 0;
}
