// tests/unit/fake_connection.hpp: a Connection without a socket for driving the SMTP session in
// unit tests: records what the session writes, holds injected bytes (and EOF) as the kernel
// would until the session reads (each inject() is one read), answers input_pending() from them
// (as MSG_PEEK would), and records closes and STARTTLS attempts. A test may let start_tls()
// succeed and then end the "handshake" itself (finish_tls / fail_tls) without real TLS.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>
#include <uv.h>

#include "conn/connection.hpp"
#include "tls/details.hpp"

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

  // The TLS handshake started by start_tls() (with accept_tls set) ends: tls() reports
  // `details` from now on and the session hears on_tls_ready().
  void finish_tls(const tls::TlsDetails &details) {
    details_ = details;
    tls_on_ = true;
    trace.push_back("tls ready");
    ev_->on_tls_ready();
  }
  // The handshake fails with `reason`.
  void fail_tls(const std::string &reason) {
    trace.push_back("tls failed");
    ev_->on_tls_failed(reason);
  }
  // start_tls() returns 0 (a handshake begins) instead of -ENOTSUP.
  bool accept_tls = false;

  // ---- what the test reads
  bool graceful() const { return graceful_; }
  int start_tls_calls = 0;
  std::shared_ptr<const tls::TlsContext> tls_context;  // what the last start_tls() got
  // Writes and TLS events in order: "write <bytes>", "start_tls", "tls ready", "tls failed".
  std::vector<std::string> trace;

  // ---- Connection
  void set_events(ConnectionEvents *ev) override { ev_ = ev; }
  const std::string &peer_ip() const override { return peer_; }
  int peer_port() const override { return 40000; }
  const std::string &local_ip() const override { return local_; }
  int local_port() const override { return 25; }
  void set_reading(bool on) override { reading_ = on; }
  bool reading() const override { return reading_; }
  int write(std::string bytes) override {  // written at once: nothing stays in flight
    trace.push_back("write " + bytes);
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
  int start_tls(std::shared_ptr<const tls::TlsContext> ctx) override {
    ++start_tls_calls;
    trace.push_back("start_tls");
    if (!accept_tls) return -ENOTSUP;
    tls_context = std::move(ctx);
    return 0;
  }
  const tls::TlsDetails *tls() const override { return tls_on_ ? &details_ : nullptr; }

 private:
  ConnectionEvents *ev_ = nullptr;
  std::string peer_ = "192.0.2.1", local_ = "192.0.2.25";
  std::deque<std::string> pending_;
  std::string written_;
  bool reading_ = false, eof_pending_ = false, eof_sent_ = false;
  bool graceful_ = false, closed_ = false;
  bool tls_on_ = false;
  tls::TlsDetails details_;
};

}  // namespace uvs::test
