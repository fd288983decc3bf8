// tests/integration/dns_stub.cpp: the test DNS server: UDP socket, poll loop thread, packet codec.
#include "dns_stub.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace itest {

namespace {

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

void put16(std::string &out, unsigned v) {
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

void put32(std::string &out, unsigned long v) {
  put16(out, static_cast<unsigned>((v >> 16) & 0xffff));
  put16(out, static_cast<unsigned>(v & 0xffff));
}

// A domain name in wire format, uncompressed.
std::string encode_name(const std::string &name) {
  std::string out;
  size_t start = 0;
  std::string n = lower(name);
  while (start < n.size()) {
    size_t dot = n.find('.', start);
    if (dot == std::string::npos) dot = n.size();
    size_t len = std::min<size_t>(dot - start, 63);
    out += static_cast<char>(len);
    out.append(n, start, len);
    start = dot + 1;
  }
  out += '\0';
  return out;
}

// The rdata of one answer; false if the text does not fit the type.
bool encode_rdata(int type, const std::string &text, std::string &out) {
  out.clear();
  switch (type) {
    case DnsStub::A: {
      unsigned char b[4];
      if (inet_pton(AF_INET, text.c_str(), b) != 1) return false;
      out.assign(reinterpret_cast<char *>(b), 4);
      return true;
    }
    case DnsStub::AAAA: {
      unsigned char b[16];
      if (inet_pton(AF_INET6, text.c_str(), b) != 1) return false;
      out.assign(reinterpret_cast<char *>(b), 16);
      return true;
    }
    case DnsStub::PTR:
      out = encode_name(text);
      return true;
    case DnsStub::MX: {
      unsigned pref = 0;
      char host[256];
      if (sscanf(text.c_str(), "%u %255s", &pref, host) != 2) return false;
      put16(out, pref);
      out += encode_name(host);
      return true;
    }
    case DnsStub::TXT: {
      size_t off = 0;
      do {  // an empty TXT record is one empty string
        size_t len = std::min<size_t>(text.size() - off, 255);
        out += static_cast<char>(len);
        out.append(text, off, len);
        off += len;
      } while (off < text.size());
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

std::string DnsStub::type_name(int type) {
  switch (type) {
    case A:
      return "A";
    case AAAA:
      return "AAAA";
    case PTR:
      return "PTR";
    case MX:
      return "MX";
    case TXT:
      return "TXT";
    default:
      return "TYPE" + std::to_string(type);
  }
}

std::string DnsStub::reverse_name(const std::string &ip) {
  unsigned char b[16];
  char part[8];
  std::string out;
  if (inet_pton(AF_INET, ip.c_str(), b) == 1) {
    for (int i = 3; i >= 0; --i) {
      snprintf(part, sizeof part, "%u.", b[i]);
      out += part;
    }
    return out + "in-addr.arpa";
  }
  if (inet_pton(AF_INET6, ip.c_str(), b) == 1) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
      out += hex[b[i] & 15];
      out += '.';
      out += hex[b[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  return "";
}

DnsStub::DnsStub() {
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0 ||
      pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

DnsStub::~DnsStub() {
  stop_ = true;
  if (wake_[1] >= 0) {
    char c = 1;
    (void)!write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
  for (int fd : wake_)
    if (fd >= 0) close(fd);
}

std::string DnsStub::toml(const std::string &extra) const {
  return "[dns]\nservers = [\"127.0.0.1:" + std::to_string(port_) + "\"]\n" + extra;
}

void DnsStub::add(const std::string &name, int type, std::vector<std::string> answers) {
  std::lock_guard<std::mutex> lock(mu_);
  auto &v = records_[{lower(name), type}];
  v.insert(v.end(), answers.begin(), answers.end());
}

void DnsStub::add_ptr(const std::string &ip, const std::string &host) {
  add(reverse_name(ip), PTR, {host});
}

void DnsStub::delay(const std::string &name, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  delays_[lower(name)] = seconds;
}

void DnsStub::never_answer(const std::string &name) {
  std::lock_guard<std::mutex> lock(mu_);
  silent_[name == "*" ? name : lower(name)] = true;
}

int DnsStub::queries(const std::string &name, int type) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string n = lower(name);
  int count = 0;
  for (const auto &[qn, qt] : received_)
    if ((n.empty() || qn == n) && (type == 0 || qt == type)) ++count;
  return count;
}

std::vector<std::string> DnsStub::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto &[qn, qt] : received_) out.push_back(qn + " " + type_name(qt));
  return out;
}

void DnsStub::run() {
  unsigned char buf[4096];
  while (!stop_) {
    double now = mono();
    int wait_ms = 1000;
    for (const Delayed &d : delayed_) {
      int ms = static_cast<int>((d.due - now) * 1000) + 1;
      wait_ms = std::max(0, std::min(wait_ms, ms));
    }
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    poll(p, 2, wait_ms);
    if (stop_) break;
    for (;;) {
      sockaddr_storage peer{};
      socklen_t plen = sizeof peer;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&peer), &plen);
      if (n <= 0) break;
      handle(buf, static_cast<size_t>(n), &peer, plen);
    }
    now = mono();
    for (size_t i = 0; i < delayed_.size();) {
      if (delayed_[i].due <= now) {
        send_to(delayed_[i].packet, delayed_[i].peer.data(),
                static_cast<unsigned>(delayed_[i].peer.size()));
        delayed_.erase(delayed_.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
  }
}

void DnsStub::send_to(const std::string &packet, const void *peer, unsigned peer_len) {
  sendto(fd_, packet.data(), packet.size(), 0, static_cast<const sockaddr *>(peer), peer_len);
}

void DnsStub::handle(const unsigned char *buf, size_t len, const void *peer, unsigned peer_len) {
  if (len < 12) return;
  unsigned flags = (buf[2] << 8) | buf[3];
  unsigned qdcount = (buf[4] << 8) | buf[5];
  if ((flags & 0x8000) || qdcount < 1) return;  // a response, or no question
  // The first question: labels (no compression in a question), then type and class.
  size_t off = 12;
  std::string name;
  for (;;) {
    if (off >= len) return;
    unsigned l = buf[off++];
    if (l == 0) break;
    if (l > 63 || off + l > len) return;
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char *>(buf + off), l);
    off += l;
  }
  if (off + 4 > len) return;
  int type = (buf[off] << 8) | buf[off + 1];
  size_t qend = off + 4;
  name = lower(name);

  std::vector<std::string> answers;
  bool known = false;
  double delay = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    received_.emplace_back(name, type);
    if (silent_.count("*") || silent_.count(name)) return;
    auto it = records_.find({name, type});
    if (it != records_.end()) answers = it->second;
    for (const auto &[key, v] : records_)
      if (key.first == name) known = true;
    auto d = delays_.find(name);
    if (d != delays_.end()) delay = d->second;
  }

  std::string out;
  put16(out, (buf[0] << 8) | buf[1]);
  // QR, the query's opcode, AA, the query's RD, RA; NXDOMAIN (3) for an unknown name.
  unsigned rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080;
  if (!known) rflags |= 3;
  std::vector<std::string> rdatas;
  for (const auto &a : answers) {
    std::string rd;
    if (encode_rdata(type, a, rd)) rdatas.push_back(rd);
  }
  put16(out, rflags);
  put16(out, 1);
  put16(out, static_cast<unsigned>(rdatas.size()));
  put16(out, 0);
  put16(out, 0);
  out.append(reinterpret_cast<const char *>(buf + 12), qend - 12);
  for (const auto &rd : rdatas) {
    put16(out, 0xc00c);  // the question's name
    put16(out, static_cast<unsigned>(type));
    put16(out, 1);  // IN
    put32(out, 60);
    put16(out, static_cast<unsigned>(rd.size()));
    out += rd;
  }
  if (delay > 0) {
    Delayed d;
    d.due = mono() + delay;
    d.packet = std::move(out);
    d.peer.assign(static_cast<const unsigned char *>(peer),
                  static_cast<const unsigned char *>(peer) + peer_len);
    delayed_.push_back(std::move(d));
    return;
  }
  send_to(out, peer, peer_len);
}

}  // namespace itest
