// tests/integration/fake_milter.hpp: a scripted milter (the filter side of Sendmail's milter
// protocol) on 127.0.0.1 for the milter plugin's tests: it negotiates, records every packet it
// receives, and answers each event as the test's script says (replies, edits, silence, a
// disconnect, garbage).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace itest {

struct MilterPkt {
  char cmd = 0;
  std::string data;
};

// Reply builders (the packet's data as the protocol lays it out).
MilterPkt mpkt(char cmd, const std::string &data = "");
MilterPkt mpkt_str2(char cmd, const std::string &a, const std::string &b);  // a NUL b NUL
MilterPkt mpkt_idx(char cmd, uint32_t index, const std::string &a, const std::string &b);
// Pseudo-replies for the script: close the connection; sleep ms (then go on); raw bytes.
MilterPkt mclose();
MilterPkt msleep(int ms);
MilterPkt mraw(const std::string &bytes);

class FakeMilter {
 public:
  // Answers for one event received (never called for SMFIC_MACRO, SMFIC_ABORT, SMFIC_QUIT and
  // the negotiation); no answer at all: an empty vector. The default answers SMFIR_CONTINUE.
  using Script = std::function<std::vector<MilterPkt>(const MilterPkt &in)>;
  explicit FakeMilter(Script script = nullptr, uint32_t protocol = 0, uint32_t actions = 0x1ff,
                      std::string optneg_extra = "");
  ~FakeMilter();
  FakeMilter(const FakeMilter &) = delete;
  FakeMilter &operator=(const FakeMilter &) = delete;

  // The protocol version it answers the negotiation with (6 unless set before a connection).
  void set_version(uint32_t v) { version_ = v; }
  int port() const { return port_; }
  std::string spec() const { return "inet:127.0.0.1:" + std::to_string(port_); }
  std::vector<MilterPkt> received() const;
  // Packets received with this command, in order.
  std::vector<MilterPkt> of(char cmd) const;
  // The macros (name -> value) the last SMFIC_MACRO for event cmd carried.
  std::vector<std::pair<std::string, std::string>> macros(char cmd) const;
  bool wait_for(char cmd, double timeout = 5, size_t count = 1) const;
  int connections() const { return connections_.load(); }
  int closed() const { return closed_.load(); }

 private:
  void accept_loop();
  void serve(int fd);
  Script script_;
  uint32_t protocol_, actions_;
  std::atomic<uint32_t> version_{6};
  std::string optneg_extra_;
  int lfd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, closed_{0};
  mutable std::mutex mu_;
  std::vector<MilterPkt> got_;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace itest
