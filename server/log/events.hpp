// log/events.hpp: the two structured lines of the mail log: one per accepted message and one
// per session end (with its command counts), as text (Postfix-like key=value) or JSON fields.
#pragma once
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "log/log.hpp"

namespace uvs::log {

// Command counts of one session, for the summary line. A command counts as attempted when it
// is dispatched, and as accepted when the reply that settles it is 2xx; 1xx/3xx replies (DATA's
// 354) do not settle it, the next reply does (DATA: the reply to the end of the message).
class SessionCounters {
 public:
  SessionCounters() : start_(std::chrono::steady_clock::now()) {}
  // Lower-case verb as dispatched; names not in the command table count as "unknown".
  // Returns the verb's index in the table (name(i)).
  size_t command(std::string_view verb);
  static std::string_view name(size_t i);
  void reply(int code);
  void message_accepted() { ++messages_; }

  struct Count {
    std::string_view name;
    uint32_t ok = 0, total = 0;
  };
  std::vector<Count> counts() const;  // table order, commands with total > 0 only
  uint32_t messages() const { return messages_; }
  double seconds() const;  // since construction

  static constexpr size_t kNames = 15;

 private:
  uint32_t ok_[kNames] = {};
  uint32_t total_[kNames] = {};
  int pending_ = -1;  // the command waiting for its settling reply
  uint32_t messages_ = 0;
  std::chrono::steady_clock::time_point start_;
};

struct AcceptedMessage {
  std::string_view queue_id;
  const std::string *message_id = nullptr;  // the Message-ID header's value; null if none
  int64_t size = 0;
  std::string_view from;  // "" for the null sender <>
  std::span<const std::string> rcpts;
  std::string_view plugin;  // the queue plugin instance that said OK
  std::string_view reply;   // what the client got, e.g. "250 2.0.0 Queued as <id>"
  std::string_view client_ip;
  std::string_view client_host;  // reverse DNS name, "" if none
};

// How a session ended (the summary line's end=, the metric uvsmtpd_sessions_total's label).
// The first cause recorded wins: a QUIT whose 221 cannot be written still ended by quit.
enum class EndReason : uint8_t {
  unknown,        // nothing recorded (reads "lost" in the line)
  quit,           // the client sent QUIT
  client_closed,  // the client closed the connection (EOF) without QUIT
  lost,           // a read or write error (reset), or a client that stopped reading
  timeout,        // a command, DATA or TLS handshake deadline passed
  plugin,         // a plugin's verdict closed it (DENY_DISCONNECT, a connect-time DENY, ...)
  shutdown,       // the server shut down (SIGTERM/SIGINT), also refused while shutting down
  limit,          // a core limit: connections, errors, junk commands, AUTH failures
  protocol,       // a protocol violation: RFC 2920 sync, bare CR/LF, HTTP or proxy requests
  tls_failed,     // the TLS handshake (or a later TLS record) failed
  error,          // a local error (TLS could not start, no certificate for implicit TLS)
};
constexpr size_t kEndReasons = static_cast<size_t>(EndReason::error) + 1;
std::string_view end_reason_name(EndReason r);  // "quit", "client_closed", ...

struct SessionEnd {
  std::string_view client_ip;
  std::string_view client_host;
  const SessionCounters *counters = nullptr;
  double seconds = 0;  // the session's duration
  EndReason how = EndReason::unknown;
  std::string_view plugin;        // how == plugin: the instance whose verdict closed it
  std::string_view tls_protocol;  // "" if the session never completed a TLS handshake
  std::string_view tls_cipher;
};

// Recipients listed in the accepted line: at most this many, and no more once the list holds
// kMaxListedRcptBytes; nrcpt always has the full count.
constexpr size_t kMaxListedRcpts = 20;
constexpr size_t kMaxListedRcptBytes = 1000;

// The lines, at level info. `session` is the session id.
void message_accepted(std::string_view session, const AcceptedMessage &m);
void session_end(std::string_view session, const SessionEnd &e);

// Their parts, for tests: the text message and the JSON fields.
std::string accepted_text(const AcceptedMessage &m);
std::vector<Field> accepted_fields(const AcceptedMessage &m);
std::string session_end_text(const SessionEnd &e);
std::vector<Field> session_end_fields(const SessionEnd &e);

}  // namespace uvs::log
