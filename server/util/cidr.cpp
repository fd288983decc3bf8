// server/util/cidr.cpp: IPv4/IPv6 CIDR parsing and matching (inet_pton based, no I/O).
#include "util/cidr.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace uvs {

namespace {

// Parses a bare textual address (no prefix). v6 iff the text contains ':'.
bool parse_addr(std::string_view text, bool &v6, std::array<uint8_t, 16> &addr) {
  if (text.empty() || text.size() > 45) return false;  // INET6_ADDRSTRLEN - 1
  std::string s(text);
  addr.fill(0);
  if (s.find(':') != std::string::npos) {
    v6 = true;
    return inet_pton(AF_INET6, s.c_str(), addr.data()) == 1;
  }
  v6 = false;
  return inet_pton(AF_INET, s.c_str(), addr.data()) == 1;
}

// True when the first `prefix` bits of a and b are equal.
bool prefix_equal(const uint8_t *a, const uint8_t *b, int prefix) {
  int full = prefix / 8;
  if (full > 0 && std::memcmp(a, b, static_cast<size_t>(full)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool is_v4_mapped(const std::array<uint8_t, 16> &a) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(a.data(), kMapped, 12) == 0;
}

}  // namespace

bool parse_cidr(std::string_view text, Cidr &out) {
  std::string_view addr_text = text;
  std::string_view prefix_text;
  bool has_prefix = false;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr_text = text.substr(0, slash);
    prefix_text = text.substr(slash + 1);
    has_prefix = true;
  }
  Cidr c;
  if (!parse_addr(addr_text, c.v6, c.addr)) return false;
  int max_prefix = c.v6 ? 128 : 32;
  if (has_prefix) {
    if (prefix_text.empty() || prefix_text.size() > 3) return false;
    int p = 0;
    for (char ch : prefix_text) {
      if (ch < '0' || ch > '9') return false;
      p = p * 10 + (ch - '0');
    }
    if (p > max_prefix) return false;
    c.prefix = p;
  } else {
    c.prefix = max_prefix;
  }
  out = c;
  return true;
}

namespace {

// Parses an address to match against entries; false if it is not an IP address.
bool parse_match_ip(std::string_view ip, bool &v6, std::array<uint8_t, 16> &a) {
  // Tolerate a zone id on link-local IPv6 ("fe80::1%eth0"): it does not take part in matching.
  if (auto pct = ip.find('%');
      pct != std::string_view::npos && ip.find(':') != std::string_view::npos)
    ip = ip.substr(0, pct);
  return parse_addr(ip, v6, a);
}

bool match(const Cidr &c, bool v6, const std::array<uint8_t, 16> &a) {
  if (c.v6 == v6) return prefix_equal(a.data(), c.addr.data(), c.prefix);
  if (!c.v6) {
    // IPv4 entry, IPv6 address: matches only if the address is IPv4-mapped (::ffff:a.b.c.d).
    if (!is_v4_mapped(a)) return false;
    return prefix_equal(a.data() + 12, c.addr.data(), c.prefix);
  }
  // IPv6 entry, IPv4 address: compare the address in its IPv4-mapped form.
  std::array<uint8_t, 16> mapped{};
  mapped[10] = 0xFF;
  mapped[11] = 0xFF;
  std::memcpy(mapped.data() + 12, a.data(), 4);
  return prefix_equal(mapped.data(), c.addr.data(), c.prefix);
}

}  // namespace

bool cidr_contains(const Cidr &c, std::string_view ip) {
  bool v6 = false;
  std::array<uint8_t, 16> a{};
  if (!parse_match_ip(ip, v6, a)) return false;
  return match(c, v6, a);
}

bool CidrList::add(std::string_view text) {
  Cidr c;
  if (!parse_cidr(text, c)) return false;
  list_.push_back(c);
  return true;
}

bool CidrList::contains(std::string_view ip) const {
  bool v6 = false;
  std::array<uint8_t, 16> a{};
  if (list_.empty() || !parse_match_ip(ip, v6, a)) return false;
  for (const Cidr &c : list_)
    if (match(c, v6, a)) return true;
  return false;
}

}  // namespace uvs
