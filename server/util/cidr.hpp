// util/cidr.hpp: IPv4/IPv6 CIDR parsing and matching (pure).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace uvs {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};  // v4 uses the first 4 bytes
  int prefix = 0;
};

// "192.0.2.0/24", "10.1.2.3" (= /32), "2001:db8::/32", "::1". False on syntax error.
bool parse_cidr(std::string_view text, Cidr &out);
// ip: textual address; IPv4-mapped IPv6 ("::ffff:192.0.2.1") matches IPv4 entries.
bool cidr_contains(const Cidr &c, std::string_view ip);

class CidrList {
 public:
  bool add(std::string_view text);  // false on syntax error
  bool contains(std::string_view ip) const;
  bool empty() const { return list_.empty(); }

 private:
  std::vector<Cidr> list_;
};

}  // namespace uvs
