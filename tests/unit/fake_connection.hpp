// tests/unit/fake_connection.hpp: a Connection without a socket for driving the SMTP session in
// unit tests: records what the session writes, holds injected bytes (and EOF) as the kernel
// would until the session reads (each inject() is one read), answers input_pending() from them
// (as MSG_PEEK would), and records closes and STARTTLS attempts.
#pragma once
#include <deque>
#include <string>
#include <uv.h>

#include "conn/connection.hpp"

namespace uvs::test {

class FakeConnection final : public Connection {
 public:
  // ---- what the test does
  // Bytes from the client: they wait (as in the kernel) until the session reads; each
  // inject() arrives as one read.
  void inject(const std::string &bytes) { pending_.push_back(bytes); }
  void inject_eof() { eof_pending_ = true; }
  // Delivers the next waiting read if the session is reading, or EOF once nothing else waits;
  // false if nothing was delivered.
  bool pump() {
    if (closed_ || graceful_ || !reading_) return false;
    if (!pending_.empty()) {
      std::string b = std::move(pending_.front());
      pending_.pop_front();
      ev_->on_data(b.data(), b.size());
      return true;
    }
    if (eof_pending_ && !eof_sent_) {
      eof_sent_ = true;
      reading_ = false;
      ev_->on_eof(UV_EOF);
      return true;
    }
    return false;
  }
  // Everything written since the last call.
  std::string take_output() {
    std::string o;
    o.swap(written_);
    return o;
  }

  // ---- what the test reads
  bool graceful() const { return graceful_; }
  int start_tls_calls = 0;

  // ---- Connection
  void set_events(ConnectionEvents *ev) override { ev_ = ev; }
  const std::string &peer_ip() const override { return peer_; }
  int peer_port() const override { return 40000; }
  const std::string &local_ip() const override { return local_; }
  int local_port() const override { return 25; }
  void set_reading(bool on) override { reading_ = on; }
  bool reading() const override { return reading_; }
  int write(std::string bytes) override {  // written at once: nothing stays in flight
    written_ += bytes;
    return 0;
  }
  size_t writes_in_flight() const override { return 0; }
  size_t write_bytes_in_flight() const override { return 0; }
  bool input_pending() override { return !pending_.empty(); }
  void close_gracefully() override { graceful_ = true; }
  void close() override {
    if (closed_) return;
    closed_ = true;
    ev_->on_closed();
  }
  bool closed() const override { return closed_; }
  int start_tls(std::shared_ptr<const tls::TlsContext>) override {
    ++start_tls_calls;
    return -ENOTSUP;
  }

 private:
  ConnectionEvents *ev_ = nullptr;
  std::string peer_ = "192.0.2.1", local_ = "192.0.2.25";
  std::deque<std::string> pending_;
  std::string written_;
  bool reading_ = false, eof_pending_ = false, eof_sent_ = false;
  bool graceful_ = false, closed_ = false;
};

}  // namespace uvs::test
