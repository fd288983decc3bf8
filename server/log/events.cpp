// log/events.cpp: formats the accepted-message and session-end lines (see events.hpp).
#include "log/events.hpp"

#include <cstdio>

namespace uvs::log {
namespace {

// Postfix smtpd's order (RFC 5321 commands, then the extensions' verbs), "unknown" last.
constexpr std::string_view kCommandNames[SessionCounters::kNames] = {
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data",   "bdat",
    "rset", "noop", "vrfy",     "expn", "help", "quit", "unknown"};

std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

constexpr size_t kMaxMessageId = 500;

std::string message_id_of(const AcceptedMessage &m) {
  std::string_view v = m.message_id ? trim(*m.message_id) : std::string_view();
  return std::string(v.substr(0, kMaxMessageId));
}

// How many recipients the line lists (see kMaxListedRcpts).
size_t listed_rcpts(std::span<const std::string> rcpts) {
  size_t n = 0, bytes = 0;
  while (n < rcpts.size() && n < kMaxListedRcpts && bytes < kMaxListedRcptBytes)
    bytes += rcpts[n++].size() + 3;
  return n;
}

std::string client_text(std::string_view ip, std::string_view host) {
  return (host.empty() ? std::string("unknown") : printable(host, 255)) + "[" + std::string(ip) +
         "]";
}

std::string json_or_null(std::string_view s) {
  return s.empty() ? "null" : json_string(s);
}

std::string seconds_text(double s) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

}  // namespace

std::string_view end_reason_name(EndReason r) {
  static constexpr std::string_view kNames[kEndReasons] = {
      "lost",     "quit",  "client_closed", "lost",       "timeout", "plugin",
      "shutdown", "limit", "protocol",      "tls_failed", "error"};
  auto i = static_cast<size_t>(r);
  return i < kEndReasons ? kNames[i] : "lost";
}

size_t SessionCounters::command(std::string_view verb) {
  size_t i = 0;
  while (i + 1 < kNames && kCommandNames[i] != verb) ++i;
  ++total_[i];
  pending_ = static_cast<int>(i);
  return i;
}

std::string_view SessionCounters::name(size_t i) {
  return i < kNames ? kCommandNames[i] : kCommandNames[kNames - 1];
}

void SessionCounters::reply(int code) {
  if (pending_ < 0 || code / 100 == 1 || code / 100 == 3) return;
  if (code / 100 == 2) ++ok_[pending_];
  pending_ = -1;
}

std::vector<SessionCounters::Count> SessionCounters::counts() const {
  std::vector<Count> out;
  for (size_t i = 0; i < kNames; ++i)
    if (total_[i] > 0) out.push_back({kCommandNames[i], ok_[i], total_[i]});
  return out;
}

double SessionCounters::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string accepted_text(const AcceptedMessage &m) {
  std::string t = printable(m.queue_id) + ": accepted message-id=";
  std::string mid = message_id_of(m);
  t += mid.empty() ? "none" : printable(mid);
  t += " size=" + std::to_string(m.size) + " from=<" + printable(m.from, 320) + ">";
  t += " nrcpt=" + std::to_string(m.rcpts.size()) + " rcpt=";
  size_t n = listed_rcpts(m.rcpts);
  for (size_t i = 0; i < n; ++i) t += (i ? ",<" : "<") + printable(m.rcpts[i], 320) + ">";
  if (n < m.rcpts.size()) t += ",...(" + std::to_string(m.rcpts.size() - n) + " more)";
  t += " client=" + client_text(m.client_ip, m.client_host);
  t += " queue=" + printable(m.plugin) + ": " + printable(m.reply, 500);
  return t;
}

std::vector<Field> accepted_fields(const AcceptedMessage &m) {
  std::string mid = message_id_of(m);
  size_t n = listed_rcpts(m.rcpts);
  return {
      {"event", json_string("accepted")},
      {"queue_id", json_string(m.queue_id)},
      {"message_id", json_or_null(mid)},
      {"size", json_number(m.size)},
      {"from", json_string(m.from)},
      {"nrcpt", json_number(static_cast<int64_t>(m.rcpts.size()))},
      {"rcpts", json_strings(m.rcpts.first(n))},
      {"plugin", json_string(m.plugin)},
      {"reply", json_string(m.reply)},
      {"client_ip", json_string(m.client_ip)},
      {"client_host", json_or_null(m.client_host)},
  };
}

std::string session_end_text(const SessionEnd &e) {
  std::string t = "disconnect from " + client_text(e.client_ip, e.client_host);
  uint32_t ok = 0, total = 0;
  for (const auto &c : e.counters->counts()) {
    t += " " + std::string(c.name) + "=" + std::to_string(c.ok);
    if (c.ok != c.total) t += "/" + std::to_string(c.total);
    ok += c.ok;
    total += c.total;
  }
  t += " commands=" + std::to_string(ok);
  if (ok != total) t += "/" + std::to_string(total);
  t += " messages=" + std::to_string(e.counters->messages());
  t += " duration=" + seconds_text(e.seconds) + "s";
  if (!e.tls_protocol.empty())
    t += " tls=" + printable(e.tls_protocol, 40) + "/" + printable(e.tls_cipher, 80);
  t += " end=" + std::string(end_reason_name(e.how));
  if (e.how == EndReason::plugin && !e.plugin.empty()) t += ":" + printable(e.plugin, 100);
  return t;
}

std::vector<Field> session_end_fields(const SessionEnd &e) {
  std::string commands = "{";
  uint32_t ok = 0, total = 0;
  for (const auto &c : e.counters->counts()) {
    if (commands.size() > 1) commands += ",";
    commands += json_string(c.name) + ":{\"ok\":" + std::to_string(c.ok) +
                ",\"total\":" + std::to_string(c.total) + "}";
    ok += c.ok;
    total += c.total;
  }
  commands += "}";
  return {
      {"event", json_string("disconnect")},
      {"client_ip", json_string(e.client_ip)},
      {"client_host", json_or_null(e.client_host)},
      {"commands", commands},
      {"commands_ok", json_number(ok)},
      {"commands_total", json_number(total)},
      {"messages", json_number(e.counters->messages())},
      {"duration", seconds_text(e.seconds)},
      {"tls", e.tls_protocol.empty() ? std::string("null")
                                     : "{\"protocol\":" + json_string(e.tls_protocol) +
                                           ",\"cipher\":" + json_string(e.tls_cipher) + "}"},
      {"end", json_string(end_reason_name(e.how))},
      {"end_plugin", e.how == EndReason::plugin ? json_or_null(e.plugin) : "null"},
  };
}

void message_accepted(std::string_view session, const AcceptedMessage &m) {
  if (!enabled(info)) return;
  if (json())
    write(info, session, "", accepted_text(m), accepted_fields(m));
  else
    write(info, session, "", accepted_text(m));
}

void session_end(std::string_view session, const SessionEnd &e) {
  if (!enabled(info)) return;
  if (json())
    write(info, session, "", session_end_text(e), session_end_fields(e));
  else
    write(info, session, "", session_end_text(e));
}

}  // namespace uvs::log
