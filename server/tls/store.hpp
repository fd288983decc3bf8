// tls/store.hpp: the TLS context in force. New handshakes take current(); sessions already in
// TLS keep the context they started with (shared_ptr). reload() builds a new context and keeps
// the old one when that fails; the certificate, key and CA files are watched on the loop and
// a change reloads them (debounced), so renewal tools need not signal the server.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <uv.h>

#include "config/tls_settings.hpp"
#include "util/timer.hpp"

namespace uvs::tls {

class TlsContext;

class TlsStore {
 public:
  explicit TlsStore(uv_loop_t *loop);
  ~TlsStore();  // stop()
  TlsStore(const TlsStore &) = delete;
  TlsStore &operator=(const TlsStore &) = delete;

  // The context for new handshakes; null when TLS is off (no certificate) or never loaded.
  std::shared_ptr<const TlsContext> current() const;

  // Builds a context from settings (an empty certificate switches TLS off). On failure the
  // current context stays, one error line is logged, last_error() says why and it returns
  // false. Either way the files of `settings` are watched when settings.watch is true.
  // log_failure = false: the caller reports the error (the first load at startup, printed once).
  bool reload(const config::TlsSettings &settings, bool log_failure = true);
  const std::string &last_error() const { return last_error_; }
  uint64_t reloads() const { return reloads_; }  // successful reloads so far

  // Closes the watchers (the loop can then exit); later reloads do not watch.
  void stop();

  // Watcher timing (ms): how often each file is stat()ed and how long changes must settle
  // before the reload. Defaults 1000 and 1000; applies to watches started afterwards.
  void set_watch_timing(unsigned poll_ms, unsigned debounce_ms);

 private:
  struct Poll;
  void watch(const config::TlsSettings &settings);
  void unwatch();
  void on_change();
  static void warn_expiry(const TlsContext &ctx);

  uv_loop_t *loop_;
  mutable std::mutex mu_;
  std::shared_ptr<const TlsContext> current_;
  config::TlsSettings watched_settings_;
  std::vector<std::string> watched_files_;
  std::vector<Poll *> polls_;
  Timer debounce_;
  unsigned poll_ms_ = 1000, debounce_ms_ = 1000;
  bool stopped_ = false;
  uint64_t reloads_ = 0;
  std::string last_error_;
};

}  // namespace uvs::tls
