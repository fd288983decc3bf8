// tests/integration/fake_server.hpp: a scripted peer on a raw socket, shared by the suites of
// the SMTP client side (smtpc, forward): Conn reads the client's lines and DATA bytes and sends
// replies; FakeServer listens on loopback (or a unix socket) and hands each connection to a
// handler, one at a time, on a thread of its own. What to answer stays with each suite.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace itest {

class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  bool send(std::string_view s);  // all of s; false when the peer is gone
  // One line without its CRLF; false on EOF or timeout. `batched` tells whether more bytes
  // were already buffered behind it (the client pipelined).
  bool line(std::string &out, bool *batched = nullptr, double timeout = 15);
  // The raw DATA bytes up to and including CRLF.CRLF (or ".\r\n" for an empty message).
  bool data(std::string &raw, double timeout = 15);
  bool some(double timeout);  // waits for more bytes (kept in the buffer); false on EOF/timeout
  void drain(double timeout = 15);  // waits until the peer closes (or timeout)

 private:
  bool fill(double deadline);
  int fd_;
  std::string buf_;
};

// Listens on 127.0.0.1 (or ::1) port 0, or on a unix socket, and runs handler for each
// connection, one at a time, on its own thread. With accept_conns false it only listens: the
// kernel completes the handshake, nobody ever speaks.
class FakeServer {
 public:
  using Handler = std::function<void(Conn &)>;
  explicit FakeServer(Handler h, bool v6 = false, bool accept_conns = true);
  FakeServer(Handler h, const std::string &unix_path);  // (LMTP routes can point at one)
  ~FakeServer();
  FakeServer(const FakeServer &) = delete;
  FakeServer &operator=(const FakeServer &) = delete;
  bool ok() const { return lfd_ >= 0; }
  int port() const { return port_; }  // 0 on a unix socket
  int connections() const { return conns_; }  // accepted so far
  bool idle() const { return busy_ == 0; }

 private:
  void run();
  Handler handler_;
  int lfd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> conns_{0};
  std::atomic<int> busy_{0};
};

}  // namespace itest
