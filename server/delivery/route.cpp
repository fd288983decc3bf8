// delivery/route.cpp: route table, MX selection and address resolution (route.hpp).
#include "delivery/route.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ifaddrs.h>
#include <memory>
#include <netinet/in.h>
#include <strings.h>

namespace uvs::delivery {

namespace {

std::string lower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool to_sockaddr(const std::string &ip, uint16_t port, sockaddr_storage &ss) {
  memset(&ss, 0, sizeof ss);
  auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return true;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return true;
  }
  return false;
}

struct MxHost {
  int pref = 0;
  std::string host;
  Hop hop;
  bool self = false;
  int a_status = 0, aaaa_status = 0;
};

// The state of one resolution, shared by its DNS callbacks.
struct Job : std::enable_shared_from_this<Job> {
  DnsFn dns;
  std::string domain;
  uint16_t port = 25;
  Self self;
  std::function<void(Destination)> cb;
  Destination dest;
  std::vector<MxHost> hosts;
  bool implicit = false;

  void finish() {
    auto done = std::move(cb);
    done(std::move(dest));
  }
  void fail(int code, const char *enh, std::string text) {
    dest.code = code;
    dest.enhanced = enh;
    dest.text = std::move(text);
    finish();
  }

  // Looks up AAAA then A of hosts[i], then the next host; then decides.
  void addresses(size_t i) {
    if (i == hosts.size()) return decide();
    MxHost &h = hosts[i];
    sockaddr_storage ss;
    if (to_sockaddr(h.host, port, ss)) {  // an address literal (routes)
      h.hop.addrs.push_back(ss);
      return addresses(i + 1);
    }
    auto self_ptr = shared_from_this();
    dns(h.host, Resolver::AAAA, [self_ptr, i](int st, std::vector<std::string> ans) {
      self_ptr->hosts[i].aaaa_status = st;
      self_ptr->add(i, ans);
      self_ptr->dns(self_ptr->hosts[i].host, Resolver::A,
                    [self_ptr, i](int st2, std::vector<std::string> ans2) {
                      self_ptr->hosts[i].a_status = st2;
                      self_ptr->add(i, ans2);
                      self_ptr->addresses(i + 1);
                    });
    });
  }
  void add(size_t i, const std::vector<std::string> &ans) {
    for (const auto &ip : ans) {
      sockaddr_storage ss;
      if (!to_sockaddr(ip, port, ss)) continue;
      std::string ep = endpoint_text(ss);
      if (std::find(self.endpoints.begin(), self.endpoints.end(), ep) != self.endpoints.end())
        hosts[i].self = true;
      hosts[i].hop.addrs.push_back(ss);
    }
  }

  void decide() {
    // RFC 5321 5.1: a host that is ourselves, and every host of its preference or worse, is
    // not tried (mail would come back here).
    int self_pref = -1;
    for (const auto &h : hosts)
      if (h.self && (self_pref < 0 || h.pref < self_pref)) self_pref = h.pref;
    bool temp = false, any_address = false;
    for (auto &h : hosts) {
      if (self_pref >= 0 && h.pref >= self_pref) continue;
      if (h.hop.addrs.empty()) {
        if ((h.a_status != 0 && h.a_status != -ENOENT) ||
            (h.aaaa_status != 0 && h.aaaa_status != -ENOENT))
          temp = true;
        continue;
      }
      any_address = true;
      h.hop.host = h.host;
      dest.hops.push_back(std::move(h.hop));
    }
    if (any_address) return finish();
    if (self_pref >= 0) return fail(451, "4.4.6", "mail for " + domain + " loops back to myself");
    if (temp)
      return fail(451, "4.4.3",
                  "Host or domain name not found. Name service error for name=" +
                      hosts.front().host + ": temporary failure");
    if (implicit || hosts.size() == 1)
      return fail(550, "5.4.4",
                  "Host or domain name not found. Name service error for name=" +
                      hosts.front().host + " type=A: Host not found");
    fail(451, "4.4.4", "no MX host of " + domain + " has an address");
  }

  void on_mx(int st, std::vector<std::string> answers, std::mt19937 &rng) {
    if (st == -ENOENT) {  // no MX: the domain itself is the implicit MX (RFC 5321 5.1)
      implicit = true;
      hosts.push_back({0, domain, {}, false, 0, 0});
      return check_names_then_addresses();
    }
    if (st != 0)
      return fail(451, "4.4.3",
                  "Host or domain name not found. Name service error for name=" + domain +
                      " type=MX: " + (st == -ETIMEDOUT ? "timed out" : "temporary failure"));
    for (const auto &a : answers) {
      size_t sp = a.find(' ');
      MxHost h;
      h.pref = atoi(a.substr(0, sp).c_str());
      h.host = sp == std::string::npos ? "" : a.substr(sp + 1);
      if (!h.host.empty() && h.host.back() == '.') h.host.pop_back();
      hosts.push_back(std::move(h));
    }
    // RFC 7505: a single MX with the root as its host says the domain takes no mail.
    if (hosts.size() == 1 && hosts[0].host.empty())
      return fail(
          556, "5.1.10",
          "Recipient address rejected: Domain " + domain + " does not accept mail (null MX)");
    hosts.erase(
        std::remove_if(hosts.begin(), hosts.end(), [](const MxHost &h) { return h.host.empty(); }),
        hosts.end());
    if (hosts.empty())
      return fail(
          556, "5.1.10",
          "Recipient address rejected: Domain " + domain + " does not accept mail (null MX)");
    std::shuffle(hosts.begin(), hosts.end(), rng);  // random order among equal preferences...
    std::stable_sort(hosts.begin(), hosts.end(),    // ...kept by the stable sort on preference
                     [](const MxHost &a, const MxHost &b) { return a.pref < b.pref; });
    check_names_then_addresses();
  }

  void check_names_then_addresses() {
    for (auto &h : hosts)
      if (!self.hostname.empty() && strcasecmp(h.host.c_str(), self.hostname.c_str()) == 0)
        h.self = true;
    addresses(0);
  }
};

}  // namespace

std::string endpoint_text(const sockaddr_storage &ss) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    const auto *v4 = reinterpret_cast<const sockaddr_in *>(&ss);
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto *v6 = reinterpret_cast<const sockaddr_in6 *>(&ss);
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

bool parse_target(const std::string &to, RouteTarget &out) {
  std::string why;
  if (!config::valid_route_target(to, why)) return false;
  RouteTarget t;
  t.text = to;
  if (to == "mx") {
    out = t;
    return true;
  }
  if (to.rfind("lmtp:unix:", 0) == 0) {
    t.kind = RouteTarget::lmtp_unix;
    t.path = to.substr(10);
    out = t;
    return true;
  }
  t.kind = to.rfind("lmtp:", 0) == 0 ? RouteTarget::lmtp : RouteTarget::smtp;
  std::string rest = to.substr(5), port;
  if (rest[0] == '[') {
    size_t close = rest.find(']');
    t.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) port = rest.substr(close + 2);
  } else if (size_t c = rest.rfind(':'); c != std::string::npos) {
    t.host = rest.substr(0, c);
    port = rest.substr(c + 1);
  } else {
    t.host = rest;
  }
  if (!port.empty()) t.port = static_cast<uint16_t>(std::stoul(port));
  out = t;
  return true;
}

bool RouteTable::load(const std::vector<config::DeliveryRoute> &routes, std::string &err) {
  routes_.clear();
  for (const auto &r : routes) {
    RouteTarget t;
    if (!parse_target(r.to, t)) {
      err = "[[delivery.route]] for " + r.domain + ": bad 'to' \"" + r.to + "\"";
      return false;
    }
    routes_.emplace_back(lower(r.domain), t);
  }
  default_.text = "mx";
  return true;
}

const RouteTarget &RouteTable::lookup(const std::string &domain_in) const {
  std::string domain = lower(domain_in);
  for (const auto &[d, t] : routes_)
    if (d == domain) return t;
  for (const auto &[d, t] : routes_)
    if (d.size() > 1 && d[0] == '.' && domain.size() > d.size() &&
        domain.compare(domain.size() - d.size(), d.size(), d) == 0)
      return t;
  for (const auto &[d, t] : routes_)
    if (d == "*") return t;
  return default_;
}

std::vector<sockaddr_storage> Destination::addresses() const {
  std::vector<sockaddr_storage> out;
  for (const auto &h : hops) out.insert(out.end(), h.addrs.begin(), h.addrs.end());
  return out;
}

Self self_from_listeners(const std::string &hostname, const std::vector<std::string> &bound) {
  Self s;
  s.hostname = hostname;
  std::vector<std::string> local;
  ifaddrs *ifa = nullptr;
  if (getifaddrs(&ifa) == 0) {
    for (ifaddrs *i = ifa; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      char ip[INET6_ADDRSTRLEN];
      if (i->ifa_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(i->ifa_addr)->sin_addr, ip, sizeof ip);
      else if (i->ifa_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 *>(i->ifa_addr)->sin6_addr, ip,
                  sizeof ip);
      else
        continue;
      local.emplace_back(ip);
    }
    freeifaddrs(ifa);
  }
  for (const auto &b : bound) {  // "ip:port" or "[ip6]:port"
    size_t c = b.rfind(':');
    if (c == std::string::npos) continue;
    std::string ip = b.substr(0, c), port = b.substr(c + 1);
    if (ip.size() > 2 && ip[0] == '[') ip = ip.substr(1, ip.size() - 2);
    if (ip == "0.0.0.0" || ip == "::") {
      for (const auto &l : local) {
        bool v6 = l.find(':') != std::string::npos;
        s.endpoints.push_back((v6 ? "[" + l + "]" : l) + ":" + port);
      }
    } else {
      bool v6 = ip.find(':') != std::string::npos;
      s.endpoints.push_back((v6 ? "[" + ip + "]" : ip) + ":" + port);
    }
  }
  return s;
}

void resolve(const DnsFn &dns, const RouteTarget &t, const std::string &domain, uint16_t smtp_port,
             const Self &self, std::mt19937 &rng, std::function<void(Destination)> cb) {
  auto job = std::make_shared<Job>();
  job->dns = dns;
  job->domain = lower(domain);
  job->self = self;
  job->cb = std::move(cb);
  job->port = t.port ? t.port : smtp_port;
  job->dest.key = t.kind == RouteTarget::mx ? job->domain : t.text;
  job->dest.lmtp = t.kind == RouteTarget::lmtp || t.kind == RouteTarget::lmtp_unix;
  if (t.kind == RouteTarget::lmtp_unix) {
    job->dest.unix_path = t.path;
    return job->finish();
  }
  if (t.kind != RouteTarget::mx) {  // a fixed host: no MX lookup
    job->hosts.push_back({0, t.host, {}, false, 0, 0});
    return job->check_names_then_addresses();
  }
  std::mt19937 *r = &rng;
  dns(job->domain, Resolver::MX,
      [job, r](int st, std::vector<std::string> ans) { job->on_mx(st, std::move(ans), *r); });
}

}  // namespace uvs::delivery
