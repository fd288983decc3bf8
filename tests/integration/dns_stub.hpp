// tests/integration/dns_stub.hpp: a tiny authoritative DNS server on 127.0.0.1 (UDP) for tests.
//
// It answers A, AAAA, TXT, PTR and MX questions from a table (name, type) -> answers, says
// NOERROR with no answers for a name it knows with another type, and NXDOMAIN otherwise. A
// name can be given a delay or be told never to answer (to test timeouts). It counts every
// question it receives, so a test can prove its lookups went here and nowhere else. Names are
// case-insensitive, without the trailing dot. It runs in its own thread until destroyed.
#pragma once
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace itest {

class DnsStub {
 public:
  enum Type { A = 1, PTR = 12, MX = 15, TXT = 16, AAAA = 28 };

  DnsStub();  // binds 127.0.0.1:0 and starts the thread
  ~DnsStub();
  DnsStub(const DnsStub &) = delete;
  DnsStub &operator=(const DnsStub &) = delete;

  bool started() const { return port_ > 0; }
  int port() const { return port_; }
  // "[dns]\nservers = [\"127.0.0.1:<port>\"]\n" plus extra lines: the toml table that points
  // the server's resolver here (put it last in Options.toml).
  std::string toml(const std::string &extra = "") const;

  // Answers: A "1.2.3.4", AAAA "::1", PTR "host.example", MX "10 mx.example" ("0 .": a null
  // MX, RFC 7505), TXT "text"
  // (one string per TXT record; longer than 255 bytes is split into several strings).
  void add(const std::string &name, int type, std::vector<std::string> answers);
  // A PTR record for an IPv4/IPv6 address (the in-addr.arpa / ip6.arpa name is derived).
  void add_ptr(const std::string &ip, const std::string &host);
  // Answer questions for this name (any type) only after `seconds`.
  void delay(const std::string &name, double seconds);
  // Never answer questions for this name ("*": never answer anything).
  void never_answer(const std::string &name);

  // Questions received so far: for name (any type when type is 0), or all when name is "".
  int queries(const std::string &name = "", int type = 0) const;
  // Every question received, in order, as "name TYPE" (e.g. "2.0.0.127.bl.test A").
  std::vector<std::string> received() const;

  // The reverse-lookup name of an address: "1.0.0.127.in-addr.arpa", nibbles for IPv6;
  // "" if ip is not an address.
  static std::string reverse_name(const std::string &ip);
  static std::string type_name(int type);

 private:
  struct Delayed {
    double due;
    std::string packet;
    std::vector<unsigned char> peer;  // sockaddr bytes
  };
  void run();
  void handle(const unsigned char *buf, size_t len, const void *peer, unsigned peer_len);
  void send_to(const std::string &packet, const void *peer, unsigned peer_len);

  int fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::vector<std::string>> records_;
  std::map<std::string, double> delays_;
  std::map<std::string, bool> silent_;
  std::vector<std::pair<std::string, int>> received_;
  std::vector<Delayed> delayed_;  // loop thread only
};

}  // namespace itest
