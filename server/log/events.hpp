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
  void command(std::string_view verb);
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

struct SessionEnd {
  std::string_view client_ip;
  std::string_view client_host;
  const SessionCounters *counters = nullptr;
  double seconds = 0;  // the session's duration
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
