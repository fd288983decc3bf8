// delivery/route.hpp: where mail for a domain goes: the [[delivery.route]] table (mx, smtp to a
// fixed host, LMTP over TCP or a UNIX socket) and the resolution of a route into the ordered
// list of hosts and addresses to try: MX lookup (RFC 5321 5.1), preference order with a random
// order among equal preferences, the implicit MX, the null MX (RFC 7505), AAAA then A for each
// host, and the "loops back to myself" check against our own name and listening addresses.
// DNS comes in through a function, so the unit tests give it a fake resolver.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <sys/socket.h>
#include <vector>

#include "config/settings.hpp"
#include "dns/resolver.hpp"

namespace uvs::delivery {

struct RouteTarget {
  enum Kind { mx, smtp, lmtp, lmtp_unix } kind = mx;
  std::string host;   // smtp/lmtp: a name or an IP literal
  uint16_t port = 0;  // 0 = delivery.smtp_port
  std::string path;   // lmtp_unix
  std::string text;   // as configured ("mx", "smtp:[10.0.0.1]:25")
};

// Parses a route's 'to' (config::valid_route_target checked it already). false on bad syntax.
bool parse_target(const std::string &to, RouteTarget &out);

class RouteTable {
 public:
  // false with err naming the route when a 'to' does not parse.
  bool load(const std::vector<config::DeliveryRoute> &routes, std::string &err);
  // The first route whose domain is `domain` itself, else ".parent" for a subdomain, else "*";
  // the default is mx. Domains compare case-insensitively.
  const RouteTarget &lookup(const std::string &domain) const;

 private:
  std::vector<std::pair<std::string, RouteTarget>> routes_;
  RouteTarget default_;
};

struct Hop {
  std::string host;                     // the MX host name (or the route's host)
  std::vector<sockaddr_storage> addrs;  // AAAA answers first, then A, each with the port
};

// A destination ready to connect to, or the reason there is none.
struct Destination {
  std::string key;  // what concurrency is counted by: the domain, or the route's text
  bool lmtp = false;
  std::string unix_path;  // lmtp:unix
  std::vector<Hop> hops;  // in the order to try
  int code = 0;           // != 0: no destination: 4xx try later, 5xx return to the sender
  std::string enhanced, text;
  std::vector<sockaddr_storage> addresses() const;  // every hop's addresses, in order
};

// Who we are, for the loop check: our hostname and "ip:port" of every listening address
// (wildcard listeners expanded to the host's interface addresses).
struct Self {
  std::string hostname;
  std::vector<std::string> endpoints;  // "127.0.0.1:25", "[::1]:25"
};
Self self_from_listeners(const std::string &hostname, const std::vector<std::string> &bound);

using DnsFn =
    std::function<void(const std::string &name, Resolver::Type type, Resolver::Callback cb)>;

// Resolves `domain` by route t; cb(dest) once (possibly before resolve returns).
void resolve(const DnsFn &dns, const RouteTarget &t, const std::string &domain, uint16_t smtp_port,
             const Self &self, std::mt19937 &rng, std::function<void(Destination)> cb);

// "ip:port" / "[ip6]:port" of an address.
std::string endpoint_text(const sockaddr_storage &ss);

}  // namespace uvs::delivery
