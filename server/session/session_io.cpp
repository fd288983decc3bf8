// session/session_io.cpp: the session's side of its Connection: bytes in (framing commands,
// RFC 2920 synchronisation, back-pressure by turning reads off), replies out (one write per
// pipelining group), the connection's events, and the plugins' input watch and continuations.
#include <cerrno>
#include <cstring>
#include <string_view>

#include "hooks/hook_names.hpp"
#include "log/log.hpp"
#include "metrics/registry.hpp"
#include "session/session.hpp"

namespace uvs {

namespace {
constexpr size_t kMaxBufferedInput = 256 * 1024;  // stop reading beyond this (back-pressure)
constexpr size_t kMaxBufferedOutput = 256 * 1024;
// RFC 4954 4: an AUTH continuation line may be 12288 octets long (plus CRLF).
constexpr size_t kAuthLineMax = 12288 + 2;

bool is_auth_command(std::string_view line) {
  return line.size() >= 4 && (line[0] | 0x20) == 'a' && (line[1] | 0x20) == 'u' &&
         (line[2] | 0x20) == 't' && (line[3] | 0x20) == 'h' && (line.size() == 4 || line[4] == ' ');
}

// The 550 for a line end that is not CRLF in a command.
std::string bare_newline_text(bool cr) {
  return std::string(cr ? "Bare CR" : "Bare LF") +
         " received; lines must end with CRLF (RFC 5321 2.3.8)";
}
}  // namespace

// ---- connection events ------------------------------------------------------------------

void Session::on_data(const char *p, size_t n) {
  if (ending()) return;  // closing: drop input
  in_.append(p, n);
  if (input_watch_) {
    auto cb = std::move(input_watch_);
    input_watch_ = nullptr;
    update_reading();
    cb(UVS_INPUT_DATA);
    return;
  }
  // In DATA every read extends the deadline by what it brought (at min_data_rate); between
  // commands only a complete command restarts it (dispatch), so a client trickling a line or a
  // message byte by byte meets the deadline.
  if (state_ == State::data)
    data_clock_.credit(n, cfg_.timeout_data * 1000, static_cast<double>(cfg_.min_data_rate));
  process();
}

void Session::on_eof(int status) {
  eof_ = true;
  if (ending()) return;
  if (handshaking_) {
    log::format(log::info, id_, "", "client closed the connection during the TLS handshake");
    ended(log::EndReason::client_closed);
    metrics::inc(metrics::core().tls_failed, metrics::TlsFailure::closed);
    return abandon_handshake();
  }
  // A plugin call is pending and nobody watches the input for it: a client that leaves (EOF
  // or a TLS close_notify with nothing sent after the pending command, or a reset) is gone,
  // and the call is given up now. Two cases are let finish, then process() closes at the end
  // of the input: a call whose plugin has answered already (its reply goes out), and a
  // half-close behind more commands or data (the client sent its last commands, then FIN:
  // they are answered in order after the verdict, as Postfix serves what it has read).
  if (!input_watch_ && chain_ && !chain_->answered() && (status != UV_EOF || in_off_ == in_.size()))
    return lost_while_pending(status);
  if (status != UV_EOF) {
    log::format(log::info, id_, "", "read error: %s", uv_strerror(status));
    ended(log::EndReason::lost);
  }
  if (input_watch_) {
    auto cb = std::move(input_watch_);
    input_watch_ = nullptr;
    cb(UVS_INPUT_EOF);
    return;
  }
  process();
}

void Session::lost_while_pending(int status) {
  std::string hook(hook_name(chain_->hook()));
  log::format(log::info, id_, "", "lost connection%s%s while the %s hook of %s was pending%s",
              status == UV_EOF ? "" : ": ", status == UV_EOF ? "" : uv_strerror(status),
              hook.c_str(), chain_->pending_plugin().c_str(),
              in_off_ < in_.size() ? "; buffered input dropped" : "");
  ended(status == UV_EOF ? log::EndReason::client_closed : log::EndReason::lost);
  chain_->cancel();  // the plugin's cancel callback runs now; a later complete() gets -ECANCELED
  hard_close();      // the disconnect hook, then the socket
}

void Session::on_write_done() {
  if (!ending()) update_reading();
}

void Session::on_write_error(int) {
  ended(log::EndReason::lost);
  hard_close();
}

void Session::on_drain_timeout() {
  // A client that does not read would hold the session (and its per-IP slot) forever.
  log::format(log::info, id_, "", "client does not read its replies; dropping the connection");
  ended(log::EndReason::lost);
}

void Session::on_closed() {
  state_ = State::closed;
  release();
  run_disconnect();
  if (ctx_.closed) ctx_.closed(this);  // may delete this
}

// ---- input ------------------------------------------------------------------------------

void Session::update_reading() {
  sync_data_clock();
  bool want = false;
  if (!eof_ && (state_ == State::command || state_ == State::data)) {
    want = !held() && in_.size() - in_off_ < kMaxBufferedInput &&
           out_.size() < kMaxBufferedOutput && conn_->write_bytes_in_flight() < kMaxBufferedOutput;
  }
  if ((input_watch_ || handshaking_) && !eof_) want = true;
  // A pending plugin call: keep reading, so that a client that goes away is noticed now
  // (on_eof) rather than at the completion or the hook timeout. What arrives is only buffered
  // (held() stops process()), within the same limit; nothing is interpreted before the verdict.
  if (chain_ && !eof_ && !ending() && !waiting_disk_) want = true;
  if (want && in_.size() - in_off_ >= kMaxBufferedInput && !input_watch_) want = false;
  if (want != conn_->reading()) conn_->set_reading(want);
}

bool Session::sync_violation(const std::string &what) {
  if (!sync_check_ || !input_pending()) return false;
  log::format(log::notice, id_, "", "pipelining violation %s; closing", what.c_str());
  ended(log::EndReason::protocol);
  close_after(make_reply(554, "5.5.0", "Error: SMTP protocol synchronization"));
  return true;
}

bool Session::input_pending() {
  if (in_off_ < in_.size()) return true;
  if (eof_) return false;
  return conn_->input_pending();
}

void Session::process() {
  if (processing_) return;
  processing_ = true;
  while (state_ == State::command || state_ == State::data) {
    if (held()) break;
    if (state_ == State::command && shutting_down_) {
      ended(log::EndReason::shutdown);
      close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
      break;
    }
    size_t before = in_off_;
    State state_before = state_;
    if (state_ == State::command)
      process_command_input();
    else
      process_data_input();
    if (in_off_ == before && state_ == state_before && !held()) break;
  }
  if (in_off_ > 0 && (in_off_ == in_.size() || in_off_ > 64 * 1024)) {
    in_.erase(0, in_off_);
    in_off_ = 0;
  }
  processing_ = false;
  // At EOF nothing more can complete a partial line: whatever is left is dropped.
  if (eof_ && (state_ == State::command || state_ == State::data) && !held()) {
    if (state_ == State::data)
      log::format(log::info, id_, "", "client closed during DATA; message discarded");
    log::format(log::info, id_, "", "client closed the connection%s",
                in_off_ < in_.size() ? " (after an incomplete line)" : "");
    ended(log::EndReason::client_closed);
    begin_close();
    return;
  }
  flush();
  update_reading();
}

smtp::NewlinePolicy Session::newline_policy() const {
  // Relay clients get normalize as Postfix exempts $mynetworks; the flag is read when the bytes
  // are judged, so a plugin that sets it at connect (or later) counts.
  if (relay_client_ && cfg_.bare_newline_normalize_relay_clients)
    return smtp::NewlinePolicy::normalize;
  return newline_policy_;
}

void Session::process_command_input() {
  std::string_view view(in_.data() + in_off_, in_.size() - in_off_);
  lines_.set_policy(newline_policy());
  bool exchange = auth_step_ != AuthStep::none;  // a SASL response, not a command
  lines_.set_max_len(exchange ? kAuthLineMax : cfg_.max_line_length);
  smtp::LineEvent ev = lines_.next(view);
  size_t start = in_off_;
  in_off_ += ev.consumed;
  switch (ev.type) {
    case smtp::LineEvent::need_more:
      return;
    case smtp::LineEvent::too_long:
      if (exchange) return auth_abort(500, "5.5.6", "Authentication exchange line is too long");
      reply_error(500, "5.5.2", "Error: line too long");
      return;
    case smtp::LineEvent::bare_cr:
    case smtp::LineEvent::bare_lf:
      log::format(log::notice, id_, "", "bare %s in command; closing",
                  ev.type == smtp::LineEvent::bare_cr ? "CR" : "LF");
      ended(log::EndReason::protocol);
      close_after(make_reply(550, "5.5.2", bare_newline_text(ev.type == smtp::LineEvent::bare_cr)));
      return;
    case smtp::LineEvent::line:
      // Credentials do not stay in the input buffer (the line's own copy is wiped after use).
      if (exchange || is_auth_command(ev.text)) explicit_bzero(in_.data() + start, ev.consumed);
      if (exchange) return auth_input(std::move(ev.text));
      dispatch(std::move(ev.text));
      return;
  }
}

// ---- CallHost: input --------------------------------------------------------------------

int Session::watch_input(std::function<void(int)> cb) {
  if (ending()) return -ECANCELED;
  if (input_watch_) return -EBUSY;
  if (in_off_ < in_.size() || eof_ || input_pending()) {
    // Already there: report on the loop, never from inside the caller.
    int result = (in_off_ < in_.size() || !eof_) ? UVS_INPUT_DATA : UVS_INPUT_EOF;
    if (!input_watch_timer_) input_watch_timer_ = std::make_unique<Timer>(ctx_.loop);
    input_watch_ = std::move(cb);
    input_watch_timer_->start(0, [this, result] {
      if (!input_watch_) return;
      auto f = std::move(input_watch_);
      input_watch_ = nullptr;
      f(result);
    });
    return 0;
  }
  input_watch_ = std::move(cb);
  update_reading();
  return 0;
}

void Session::unwatch_input() {
  input_watch_ = nullptr;
  if (input_watch_timer_) input_watch_timer_->stop();
  update_reading();
}

int Session::send_continuation(std::string_view text) {
  if (state_ != State::greeting) return -EPERM;
  send_raw("220-" + std::string(text) + "\r\n");
  flush();
  return 0;
}

// ---- output -----------------------------------------------------------------------------

void Session::send_raw(std::string wire) {
  if (ending()) return;
  out_ += wire;
}

void Session::send(const Reply &r) {
  if (r.empty() || ending()) return;
  counters_.reply(r.code);
  if (log::enabled(log::debug))
    log::format(log::debug, id_, "", "-> %s", log::printable(r.wire(), 300).c_str());
  out_ += r.wire();
}

void Session::reply_error(int code, const char *enh, const std::string &text) {
  send(make_reply(code, enh, text));
  count_error(code);
}

// The message could not be spooled: a full disk (or quota) is 452 4.3.1 (RFC 3463 "mail
// system full"), anything else 451 4.3.0. Both are temporary: the client keeps the message.
void Session::reply_store_failure(int err) {
  if (err == UV_ENOSPC || err == -EDQUOT)
    reply_error(452, "4.3.1", "Insufficient system storage, try again later");
  else
    reply_error(451, "4.3.0", "Temporary failure: cannot store the message, try again later");
}

void Session::count_error(int code) {
  if (code < 400 || cfg_.max_errors == 0 || ending()) return;
  if (++errors_ >= cfg_.max_errors) {
    log::format(log::notice, id_, "", "too many errors (%u); closing", errors_);
    ended(log::EndReason::limit);
    close_after(make_reply(421, "4.7.0", cfg_.hostname + " Error: too many errors"));
  }
}

void Session::flush() {
  if (!out_.empty() && state_ != State::closed) {
    std::string wire;
    wire.swap(out_);
    int rc = conn_->write(std::move(wire));
    if (rc < 0) {
      log::format(log::info, id_, "", "write failed: %s", uv_strerror(rc));
      ended(log::EndReason::lost);
      run_disconnect();
      return hard_close();
    }
  }
  if (state_ == State::closing) conn_->close_gracefully();
}

}  // namespace uvs
