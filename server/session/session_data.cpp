// session/session_data.cpp: the DATA phase: the spool and the Received: field at the 354,
// streaming content (header capture, back-pressure from the spool), the end of data (size, hop
// and deferred checks, data_post, queue), and the message as plugins read it (CallHost).
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "hooks/hook_names.hpp"
#include "log/log.hpp"
#include "session/session.hpp"
#include "session/session_util.hpp"
#include "tls/details.hpp"
#include "uvs_build_config.h"

namespace uvs {

namespace {
// The 550 for a line end that is not CRLF in message data.
std::string bare_newline_text(bool cr) {
  return std::string(cr ? "Bare CR" : "Bare LF") +
         " received; lines must end with CRLF (RFC 5321 2.3.8)";
}
}  // namespace

void Session::begin_data() {
  int rc = txn_.begin_data(ctx_.loop, cfg_.spool_dir, received_header());
  if (rc < 0) {
    log::format(log::err, id_, "", "cannot create spool file in %s: %s", cfg_.spool_dir.c_str(),
                strerror(-rc));
    return reply_store_failure(rc);
  }
  data_ = std::make_unique<smtp::DataReader>(cfg_.max_message_size, newline_policy());
  state_ = State::data;
  send(make_reply(354, "", "go ahead"));
  data_clock_.reset(cfg_.timeout_data * 1000);  // the DATA deadline starts with the 354
  sync_data_clock();
}

std::string Session::received_header() const {
  // qpsmtpd's shape; the protocol word of RFC 3848 (ESMTPS over TLS, ESMTPA/ESMTPSA after AUTH)
  // or RFC 6531 (UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA); over TLS a comment with the
  // protocol and cipher, after AUTH one with the user, as Postfix writes them.
  const tls::TlsDetails *t = conn_->tls();
  std::string proto = txn_.smtputf8() ? "UTF8SMTP" : esmtp_ ? "ESMTP" : "SMTP";
  if (t && proto != "SMTP") proto += "S";
  std::string auth_comment;
  if (authenticated()) {  // RFC 3848 ESMTPA/ESMTPSA, RFC 6531 UTF8SMTPA/UTF8SMTPSA
    if (proto != "SMTP") proto += "A";
    std::string user;
    for (char ch : log::printable(*auth_->user, 255)) {
      if (ch == '(' || ch == ')' || ch == '\\') user += '\\';  // RFC 5322 quoted-pair
      user += ch;
    }
    auth_comment = "\r\n\t(Authenticated sender: " + user + ")";
  }
  std::string from = remote_host_.empty() ? "Unknown" : remote_host_;
  std::string tls_comment;
  if (t)
    tls_comment = "\r\n\t(using " + t->protocol + " with cipher " + t->cipher + " (" +
                  std::to_string(t->bits) + "/" + std::to_string(t->bits) + " bits))";
  return "Received: from " + from + " (HELO " + log::printable(helo_.value_or("unknown"), 255) +
         ") ([" + peer_ip() + "])" + tls_comment + auth_comment + "\r\n\tby " + cfg_.hostname +
         " (uvsmtpd/" UVS_VERSION ") with " + proto + " id " + txn_.id() + "; " + rfc5322_date() +
         "\r\n";
}

void Session::process_data_input() {
  std::string_view view(in_.data() + in_off_, in_.size() - in_off_);
  std::string chunk;
  smtp::DataEvent ev = data_->feed(view, chunk);
  in_off_ += ev.consumed;
  if (!chunk.empty())
    txn_.append(chunk, !data_->headers_seen() || ev.type == smtp::DataEvent::headers_end);
  switch (ev.type) {
    case smtp::DataEvent::need_more:
      break;
    case smtp::DataEvent::headers_end: {
      busy_ = true;
      run_hook(UVS_HOOK_DATA_HEADERS_END, HookArgs{}, [this](HookResult r) {
        busy_ = false;
        if (r.timed_out) txn_.defer_failure(r.reply);
        Decision d = decide(UVS_HOOK_DATA_HEADERS_END, r);
        if (d.kind == Decision::replace) apply(d);
        if (!ending() && !processing_) process();
      });
      return;
    }
    case smtp::DataEvent::bare_cr:
    case smtp::DataEvent::bare_lf:
      log::format_txn(log::notice, id_, txn_.id(), "%s: bare %s in message data; closing",
                      txn_.id().c_str(), ev.type == smtp::DataEvent::bare_cr ? "CR" : "LF");
      data_.reset();
      ended(log::EndReason::protocol);
      close_after(make_reply(550, "5.5.2", bare_newline_text(ev.type == smtp::DataEvent::bare_cr)));
      return;
    case smtp::DataEvent::done:
      end_of_data();
      return;
  }
  if (txn_.spool() && txn_.spool()->backlogged()) {
    waiting_disk_ = true;
    txn_.spool()->on_drained([this] {
      waiting_disk_ = false;
      if (!processing_) process();
    });
  }
}

void Session::end_of_data() {
  state_ = State::command;
  busy_ = true;
  data_clock_.end();
  arm_idle_timer();  // the command deadline again (held while the end of data is processed)
  bool headers_fired = data_->headers_seen();
  auto next = [this] {
    if (ending()) return;
    if (data_->too_big()) {
      log::format_txn(log::notice, id_, txn_.id(), "%s: message too big (%" PRIu64 " bytes)",
                      txn_.id().c_str(), data_->size());
      data_.reset();
      busy_ = false;
      reset_transaction();
      reply_error(552, "5.3.4", "Message size exceeds fixed maximum message size");
      if (!processing_) process();
      return;
    }
    data_.reset();
    if (txn_.hops().count() > cfg_.max_hops) {
      // RFC 5321 6.3: a loop must be detected; 554 5.4.6 as Postfix, nothing is queued.
      log::format_txn(log::notice, id_, txn_.id(),
                      "%s: %u Received: header fields (max_hops %u); refused", txn_.id().c_str(),
                      txn_.hops().count(), cfg_.max_hops);
      busy_ = false;
      reset_transaction();
      reply_error(554, "5.4.6", "Too many hops (mail loop detected)");
      if (!processing_) process();
      return;
    }
    if (!txn_.deferred_failure().empty()) {
      Reply fail = txn_.deferred_failure();
      busy_ = false;
      reset_transaction();
      send(fail);
      count_error(fail.code);
      if (!processing_) process();
      return;
    }
    txn_.commit([this](int err) { after_spool_flush(err); });
  };
  if (headers_fired) return next();
  run_hook(UVS_HOOK_DATA_HEADERS_END, HookArgs{}, [this, next](HookResult r) {
    if (r.timed_out) txn_.defer_failure(r.reply);
    Decision d = decide(UVS_HOOK_DATA_HEADERS_END, r);
    if (d.kind == Decision::replace) {
      busy_ = false;
      data_.reset();
      apply(d);
      return;
    }
    next();
  });
}

void Session::after_spool_flush(int err) {
  if (ending()) return;
  if (err < 0) {
    log::format_txn(log::err, id_, txn_.id(), "%s: spool write failed: %s", txn_.id().c_str(),
                    uv_strerror(err));
    busy_ = false;
    reset_transaction();
    reply_store_failure(err);
    if (!processing_) process();
    return;
  }
  // A body replaced at data_headers_end is copied, and an edited message written out, on the
  // thread pool before data_post, so that its plugins read the message without a copy on the loop.
  settle_message([this] { run_data_post(); });
}

void Session::settle_message(std::function<void()> next) {
  auto compose = [this, next] {
    // An edited message is written out on the thread pool now, not by message_fd() on the loop.
    txn_.prepare_message_fd([this, next](int64_t n) {
      if (ending()) return;
      if (n > 0)
        log::format_txn(log::debug, id_, txn_.id(),
                        "%s: edited message (%lld bytes) written out on the thread pool",
                        txn_.id().c_str(), static_cast<long long>(n));
      else if (n < 0)
        log::format_txn(log::warning, id_, txn_.id(),
                        "%s: edited message not written out in advance: %s", txn_.id().c_str(),
                        uv_strerror(static_cast<int>(n)));
      next();
    });
  };
  if (!txn_.body_unchecked()) return compose();
  // body_replace_fd() took only a duplicate of the plugin's descriptor: copy and check it now.
  txn_.check_body(cfg_.max_message_size, [this, compose](int err) {
    if (ending()) return;
    if (err == 0) return compose();
    const char *why = err == -EINVAL  ? "a bare CR or LF, or no CRLF at its end"
                      : err == -EFBIG ? "the message would exceed max_message_size"
                                      : nullptr;
    log::format_txn(log::err, id_, txn_.id(),
                    "%s: the replacement body a plugin supplied cannot be used (%s); not accepted",
                    txn_.id().c_str(), why ? why : uv_strerror(err));
    busy_ = false;
    reset_transaction();
    reply_store_failure(err == -EINVAL || err == -EFBIG ? -EIO : err);
    if (!processing_) process();
  });
}

void Session::run_data_post() {
  run_hook(UVS_HOOK_DATA_POST, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_DATA_POST, r);
    if (d.kind != Decision::proceed) {
      busy_ = false;
      if (d.kind == Decision::silent && d.reply.code / 100 == 2) junk_ = 0;  // accepted
      d.reset = true;  // the message is finished whatever the verdict: apply() resets once
      apply(d);
      if (!ending() && !processing_) process();
      return;
    }
    // The replacement body copied and the edited message written out (thread pool), then queue.
    settle_message([this] { run_queue(); });
  });
}

void Session::run_queue() {
  run_hook(UVS_HOOK_QUEUE, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_QUEUE, r);
    std::string id = txn_.id();
    Reply queued = with_plugin_text(r, 250, "2.0.0", "Queued as " + id);
    if (d.kind == Decision::proceed) log_accepted(r.plugin, queued);  // reads the transaction
    busy_ = false;
    reset_transaction();  // the message is finished whatever the verdict
    d.reset = false;      // so apply() must not reset again
    if (d.kind == Decision::proceed || (d.kind == Decision::silent && d.reply.code / 100 == 2))
      junk_ = 0;  // a message was accepted: the junk count starts again
    if (d.kind == Decision::proceed) {
      send(queued);
    } else {
      log::format_txn(log::info, id_, id, "%s: not queued (%s from %s)", id.c_str(),
                      std::string(verdict_name(r.verdict)).c_str(),
                      r.plugin.empty() ? "no queue plugin" : r.plugin.c_str());
      if (!apply(d)) return;
    }
    notify(UVS_HOOK_QUEUE_POST);
    if (!ending() && !processing_) process();
  });
}

// ---- CallHost: the message ---------------------------------------------------------------

// Plugins see the message with their edits (ABI 1.3): the Transaction splices them in.
int64_t Session::message_size() const { return txn_.message_size(); }

int64_t Session::message_read(int64_t offset, void *buf, size_t len) const {
  return txn_.message_read(offset, buf, len);
}

const std::string *Session::header(std::string_view name, int i) const {
  // Each value stays valid until the next hook starts (the ABI lends it until the hook
  // returns), however many the plugin asks for meanwhile.
  std::string value;
  if (!find_header(txn_.header_text(), name, i, value)) return nullptr;
  header_values_.push_back(std::move(value));
  return &header_values_.back();
}

int Session::message_fd() const {
  return txn_.message_fd();  // an edited message is written out on demand
}

int Session::header_edit(smtp::HeaderOp op, std::string_view at, int i, std::string_view name,
                         std::string_view value) {
  return txn_.edit_header(op, at, i, name, value);
}

int Session::body_replace(int fd) { return txn_.replace_body(fd, cfg_.max_message_size); }

}  // namespace uvs
