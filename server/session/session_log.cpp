// session/session_log.cpp: the session's two mail-log lines (log/events.hpp): one per accepted
// message and one summary when the session ends.
#include "log/events.hpp"
#include "metrics/registry.hpp"
#include "session/session.hpp"
#include "tls/details.hpp"

namespace uvs {

void Session::log_accepted(const std::string &plugin, const Reply &reply) {
  counters_.message_accepted();
  auto &stats = metrics::core();
  ++stats.messages;
  if (txn_.spool()) stats.bytes += static_cast<uint64_t>(txn_.message_size());
  if (!log::enabled(log::info)) return;
  std::string wire = reply.wire();
  std::string_view first(wire);
  first = first.substr(0, first.find('\r'));  // the reply's first line, without CRLF
  log::AcceptedMessage m;
  m.queue_id = txn_.id();
  m.message_id = header("Message-ID", 0);
  m.size = txn_.spool() ? txn_.message_size() : 0;
  m.from = txn_.mail_from();
  m.rcpts = txn_.rcpts();
  m.plugin = plugin;
  m.reply = first;
  m.client_ip = peer_ip();
  m.client_host = remote_host_;
  log::message_accepted(id_, m);
}

void Session::log_session_end() {
  if (peer_ip().empty()) return;  // never accepted: no session to summarise
  const tls::TlsDetails *t = conn_->tls();
  log::SessionEnd e{peer_ip(),
                    remote_host_,
                    &counters_,
                    counters_.seconds(),
                    end_,
                    end_plugin_,
                    t ? std::string_view(t->protocol) : std::string_view(),
                    t ? std::string_view(t->cipher) : std::string_view()};
  log::session_end(id_, e);
}

}  // namespace uvs
