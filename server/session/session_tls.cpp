// session/session_tls.cpp: TLS in the SMTP session: STARTTLS (RFC 3207: offered, refused,
// started; nothing the client sent behind it survives into TLS), implicit TLS (RFC 8314), the
// handshake deadline, and the reset when the handshake is done.
#include "log/log.hpp"
#include "metrics/registry.hpp"
#include "session/session.hpp"
#include "tls/details.hpp"

namespace uvs {

bool Session::tls_offered() const {
  if (tls_mode_ != TlsMode::starttls || handshaking_ || conn_->tls() || !ctx_.tls) return false;
  return ctx_.tls() != nullptr;
}

void Session::cmd_starttls(const Command &c) {
  if (!c.arg.empty()) return reply_error(501, "5.5.4", "Syntax: STARTTLS");
  if (conn_->tls()) return reply_error(503, "5.5.1", "Error: TLS already active");
  auto ctx = ctx_.tls ? ctx_.tls() : nullptr;
  if (!ctx) return reply_error(454, "4.7.0", "TLS not available due to temporary reason");
  // Whatever follows the STARTTLS line was sent before the client saw our 220: it must never
  // be read as a command inside TLS (CVE-2011-0411). With the RFC 2920 check on, dispatch has
  // already answered 554 and closed; without it, it is dropped here. Bytes that arrive later
  // in plaintext reach the TLS engine and fail the handshake.
  if (in_off_ < in_.size()) {
    log::format(log::notice, id_, "", "discarded %zu byte(s) sent after STARTTLS",
                in_.size() - in_off_);
    in_off_ = in_.size();
  }
  send(make_reply(220, "2.0.0", "Ready to start TLS"));
  flush();  // the 220 goes out in plaintext, ahead of the handshake
  if (ending()) return;
  begin_handshake(std::move(ctx));
}

void Session::begin_handshake(std::shared_ptr<const tls::TlsContext> ctx) {
  int rc = conn_->start_tls(std::move(ctx));
  if (rc < 0) {
    log::format(log::err, id_, "", "cannot start TLS: %s", uv_strerror(rc));
    ended(log::EndReason::error);
    return hard_close();
  }
  handshaking_ = true;
  idle_timer_.start(static_cast<uint64_t>(cfg_.timeout_tls_handshake * 1000),
                    [this] { on_idle_timeout(); });
  update_reading();
}

void Session::on_handshake_timeout() {
  log::format(log::notice, id_, "", "TLS handshake with %s:%d timed out", peer_ip().c_str(),
              peer_port());
  ended(log::EndReason::timeout);
  metrics::inc(metrics::core().tls_failed, metrics::TlsFailure::timeout);
  abandon_handshake();  // nothing can be said in plaintext now: close
}

void Session::abandon_handshake() {
  handshaking_ = false;
  out_.clear();
  // disconnect fires only if greet() began (run_disconnect): not for an implicit-TLS handshake
  // that failed, but for a record that fails later, even while the connect hooks still run.
  begin_close();  // the connection sends the alert (if any), then closes
}

void Session::on_tls_ready() {
  if (!handshaking_) return;
  handshaking_ = false;
  idle_timer_.stop();
  metrics::inc(metrics::core().tls_ok, tls_mode_ == TlsMode::implicit ? metrics::TlsMode::implicit
                                                                      : metrics::TlsMode::starttls);
  const tls::TlsDetails *t = conn_->tls();
  if (t && log::enabled(log::info)) {
    std::string extra;
    if (!t->sni.empty()) extra += ", SNI " + log::printable(t->sni);
    if (t->resumed) extra += ", resumed";
    if (t->client_cert_presented)
      extra += std::string(", client certificate ") +
               (t->client_cert_verified ? "verified" : "not verified") + " (" +
               log::printable(t->client_subject) + ")";
    log::format(log::info, id_, "", "TLS established with %s:%d: %s with cipher %s (%d bits)%s",
                peer_ip().c_str(), peer_port(), t->protocol.c_str(), t->cipher.c_str(), t->bits,
                extra.c_str());
  }
  if (state_ == State::greeting) return greet();  // implicit TLS: now the SMTP dialogue
  // RFC 3207 4.2: the client starts afresh: no greeting, no transaction, no transaction notes.
  // Connection notes stay (what plugins learnt about the client at connect still holds).
  reset_transaction();
  helo_.reset();
  esmtp_ = false;
  auth_forget();  // an AUTH made in plaintext (auth_plaintext) does not carry into TLS
  arm_idle_timer();
  process();
}

void Session::on_tls_failed(const std::string &reason) {
  // Also after the handshake: a bad record, an alert, an unexpected message.
  log::format(log::notice, id_, "",
              handshaking_ ? "TLS handshake with %s:%d failed: %s" : "TLS error with %s:%d: %s",
              peer_ip().c_str(), peer_port(), reason.c_str());
  ended(log::EndReason::tls_failed);
  if (handshaking_) metrics::inc(metrics::core().tls_failed, metrics::TlsFailure::error);
  abandon_handshake();
}

}  // namespace uvs
