// session/session.cpp: the SMTP state machine of one connection (see session.hpp): input
// framing, RFC 2920 ordering and synchronisation, commands and their hooks, and closing.
#include "session/session.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <sys/socket.h>

#include "hooks/hook_names.hpp"
#include "log/log.hpp"
#include "net/server.hpp"
#include "session/session_data.hpp"
#include "smtp/command.hpp"
#include "uvs_build_config.h"

namespace uvs {

namespace {
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxBufferedInput = 256 * 1024;  // stop reading beyond this (back-pressure)
constexpr size_t kMaxBufferedOutput = 256 * 1024;
constexpr uint64_t kLingerMs = 2000;      // after the last reply: read and drop, then close
constexpr uint64_t kCloseDrainMs = 2000;  // closing: time the last replies get to be written

// Commands that may stand anywhere in a pipelining group (RFC 2920 3.1); every other command
// must be the last of its group.
bool may_be_pipelined(const std::string &verb) {
  return verb == "mail" || verb == "rcpt" || verb == "rset";
}

std::string bracket(const std::string &addr) {
  return "<" + addr + ">";
}

// The 550 for a line end that is not CRLF (command or message data).
std::string bare_newline_text(bool cr) {
  return std::string(cr ? "Bare CR" : "Bare LF") +
         " received; lines must end with CRLF (RFC 5321 2.3.8)";
}
}  // namespace

Session::Session(Server &server, std::shared_ptr<const Generation> gen, bool sync_check,
                 uint64_t serial)
    : server_(server),
      gen_(std::move(gen)),
      cfg_(gen_->settings),
      sync_check_(sync_check),
      id_(make_session_id(serial)),
      newline_policy_(smtp::NewlinePolicy::reject),
      lines_(cfg_.max_line_length, smtp::NewlinePolicy::reject),
      idle_timer_(server.loop()) {
  uv_tcp_init(server.loop(), &tcp_);
  tcp_.data = this;
}

Session::~Session() {
  if (dns_query_ && server_.resolver()) server_.resolver()->cancel(dns_query_);
  if (chain_) chain_->cancel();
  if (!disconnected_) run_disconnect();
  log_session_end();
}

int Session::accept_from(uv_stream_t *listener) {
  int rc = uv_accept(listener, reinterpret_cast<uv_stream_t *>(&tcp_));
  if (rc < 0) return rc;
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
    split_address(ss, peer_ip_, peer_port_);
  len = sizeof ss;
  if (uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
    split_address(ss, local_ip_, local_port_);
  if (cfg_.bare_newline == "normalize" || gen_->normalize_networks.contains(peer_ip_))
    newline_policy_ = smtp::NewlinePolicy::normalize;
  return 0;
}

// ---- life cycle -------------------------------------------------------------------------

void Session::refuse(const Reply &r) {
  log::format(log::notice, id_, "", "refused %s:%d: %s", peer_ip_.c_str(), peer_port_,
              r.lines.empty() ? "" : r.lines[0].c_str());
  disconnected_ = true;  // no hooks ran for this connection
  phase_ = Phase::closing;
  send(r);
  closing_after_write_ = true;
  flush();
}

void Session::start() {
  if (log::enabled(log::info)) {
    const log::Field f[] = {{"event", log::json_string("connect")},
                            {"client_ip", log::json_string(peer_ip_)},
                            {"client_port", log::json_number(peer_port_)},
                            {"local_ip", log::json_string(local_ip_)},
                            {"local_port", log::json_number(local_port_)}};
    log::write(log::info, id_, "",
               "connect from " + peer_ip_ + ":" + std::to_string(peer_port_) + " to " + local_ip_ +
                   ":" + std::to_string(local_port_),
               f);
  }
  HookArgs a;
  a.arg = peer_ip_;
  run_hook(UVS_HOOK_PRE_CONNECTION, a, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_PRE_CONNECTION, r);
    if (d.kind == Decision::replace) return close_after(d.reply);
    Resolver *dns = server_.resolver();
    if (!cfg_.reverse_lookup || !dns) return after_reverse_lookup();
    dns_query_ = dns->query(
        peer_ip_, Resolver::PTR, cfg_.reverse_timeout,
        [this](int status, std::vector<std::string> names) {
          dns_query_ = 0;
          if (status == 0 && !names.empty() && names[0].size() < 256 && reply_text_ok(names[0]))
            remote_host_ = names[0];
          else if (status == -ETIMEDOUT)
            log::format(log::info, id_, "", "reverse lookup of %s timed out", peer_ip_.c_str());
          after_reverse_lookup();
        });
  });
}

void Session::after_reverse_lookup() {
  if (phase_ == Phase::closing) return;
  {
    run_hook(UVS_HOOK_CONNECT, HookArgs{}, [this](HookResult r) {
      Decision d = decide(UVS_HOOK_CONNECT, r);
      if (d.kind == Decision::replace) return close_after(d.reply);
      if (phase_ == Phase::closing) return;
      phase_ = Phase::command;
      if (d.kind == Decision::proceed) {
        Reply g = make_reply(220, "", cfg_.hostname + " " + cfg_.greeting);
        if (r.has_reply && !r.reply.lines.empty() && (r.reply.code == 0 || r.reply.code == 220))
          g.lines = r.reply.lines;
        send(g);
      } else if (!d.reply.empty()) {
        send(d.reply);
      }
      if (shutting_down_)
        return close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
      arm_idle_timer();
      process();
    });
  }
}

void Session::shutdown_notice() {
  shutting_down_ = true;
  if (phase_ == Phase::command && !busy_ && !chain_)
    close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
}

void Session::force_close() {
  if (phase_ == Phase::closing) return hard_close();
  if (chain_) chain_->cancel();
  close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
}

void Session::run_disconnect() {
  if (disconnected_) return;
  disconnected_ = true;
  if (txn_.open) reset_transaction();
  notify(UVS_HOOK_DISCONNECT);
}

void Session::close_after(const Reply &r) {
  if (phase_ == Phase::closing && closing_after_write_) return;
  if (!r.empty()) send(r);
  begin_close();
}

void Session::begin_close() {
  if (phase_ == Phase::closing && closing_after_write_) return;
  phase_ = Phase::closing;
  closing_after_write_ = true;
  idle_timer_.stop();
  if (chain_) chain_->cancel();
  input_watch_ = nullptr;
  if (txn_.open) reset_transaction();
  run_disconnect();
  flush();
}

void Session::finish_close() {
  // All replies are written: shut down the write side, then read (and drop) what the client
  // still sends for a moment, so it reads our last reply instead of a TCP reset.
  if (handle_closed_ || write_shut_) return;
  write_shut_ = true;
  shutdown_req_.data = this;
  int rc = uv_shutdown(
      &shutdown_req_, reinterpret_cast<uv_stream_t *>(&tcp_), [](uv_shutdown_t *req, int) {
        auto *s = static_cast<Session *>(req->data);
        if (s->handle_closed_) return;  // UV_ECANCELED: closed meanwhile
        if (s->eof_) return s->hard_close();
        s->close_timer_ = std::make_unique<Timer>(s->server_.loop());
        s->close_timer_->start(kLingerMs, [s] { s->hard_close(); });
        s->in_.clear();
        s->in_off_ = 0;
        if (!s->reading_) {
          s->reading_ = true;
          uv_read_start(reinterpret_cast<uv_stream_t *>(&s->tcp_), on_alloc, on_read);
        }
      });
  if (rc < 0) hard_close();
}

void Session::hard_close() {
  if (handle_closed_) return;
  handle_closed_ = true;
  if (dns_query_ && server_.resolver()) server_.resolver()->cancel(dns_query_);
  dns_query_ = 0;
  idle_timer_.stop();
  close_timer_.reset();
  input_watch_timer_.reset();
  if (chain_) chain_->cancel();
  run_disconnect();
  uv_close(reinterpret_cast<uv_handle_t *>(&tcp_), [](uv_handle_t *h) {
    auto *s = static_cast<Session *>(h->data);
    s->server_.session_closed(s);
  });
}

void Session::arm_idle_timer() {
  if (phase_ == Phase::data) return sync_data_clock();
  idle_timer_.start(static_cast<uint64_t>(cfg_.timeout_command * 1000),
                    [this] { on_idle_timeout(); });
}

void Session::on_idle_timeout() {
  if (phase_ == Phase::closing) return;
  if (chain_ || busy_ || waiting_disk_) return arm_idle_timer();  // not the client's time
  log::format(log::notice, id_, "", "timeout in %s", phase_ == Phase::data ? "DATA" : "command");
  close_after(make_reply(421, "4.4.2", cfg_.hostname + " Error: timeout exceeded"));
}

// The DATA deadline (Postfix's smtpd_per_request_deadline with smtpd_min_data_rate): it starts
// at the 354 with [timeouts] data; each read moves it out by bytes / min_data_rate seconds, but
// never more than `data` seconds ahead. min_data_rate = 0: each read restarts it (idle timer).
// Time the server itself holds the session (a hook, the spool catching up) does not count.

void Session::sync_data_clock() {
  if (phase_ != Phase::data) return;
  if (chain_ || busy_ || waiting_disk_)
    pause_data_clock();
  else
    resume_data_clock();
}

void Session::pause_data_clock() {
  if (!data_clock_) return;
  data_clock_ = false;
  data_left_ = std::max(0.0, data_deadline_ - static_cast<double>(uv_now(server_.loop())));
  idle_timer_.stop();
}

void Session::resume_data_clock() {
  if (data_clock_) return;
  data_clock_ = true;
  data_deadline_ = static_cast<double>(uv_now(server_.loop())) + data_left_;
  idle_timer_.start(static_cast<uint64_t>(std::ceil(data_left_)), [this] { on_idle_timeout(); });
}

void Session::credit_data_read(size_t n) {
  const double full = cfg_.timeout_data * 1000;
  const double now = static_cast<double>(uv_now(server_.loop()));
  double left = data_clock_ ? std::max(0.0, data_deadline_ - now) : data_left_;
  if (cfg_.min_data_rate == 0)
    left = full;
  else
    left = std::min(full, left + static_cast<double>(n) * 1000 / cfg_.min_data_rate);
  if (!data_clock_) {
    data_left_ = left;
    return;
  }
  data_deadline_ = now + left;
  idle_timer_.start(static_cast<uint64_t>(std::ceil(left)), [this] { on_idle_timeout(); });
}

// ---- input ------------------------------------------------------------------------------

void Session::on_alloc(uv_handle_t *, size_t, uv_buf_t *buf) {
  buf->base = static_cast<char *>(malloc(kReadChunk));
  buf->len = buf->base ? kReadChunk : 0;
}

void Session::on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  static_cast<Session *>(s->data)->handle_read(n, buf);
  free(buf->base);
}

void Session::handle_read(ssize_t n, const uv_buf_t *buf) {
  if (n == 0) return;
  if (phase_ == Phase::closing) {
    if (n < 0) {
      eof_ = true;
      if (!closing_after_write_ || writes_in_flight_ == 0) hard_close();
    }
    return;  // lingering: drop input
  }
  if (n < 0) {
    if (n != UV_EOF)
      log::format(log::info, id_, "", "read error: %s", uv_strerror(static_cast<int>(n)));
    eof_ = true;
    if (reading_) {
      uv_read_stop(reinterpret_cast<uv_stream_t *>(&tcp_));
      reading_ = false;
    }
    if (input_watch_) {
      auto cb = std::move(input_watch_);
      input_watch_ = nullptr;
      cb(UVS_INPUT_EOF);
      return;
    }
    process();
    return;
  }
  in_.append(buf->base, static_cast<size_t>(n));
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
  if (phase_ == Phase::data) credit_data_read(static_cast<size_t>(n));
  process();
}

void Session::update_reading() {
  sync_data_clock();
  bool want = false;
  if (!eof_ && phase_ != Phase::closing && phase_ != Phase::greeting) {
    bool paused = chain_ || busy_ || waiting_disk_;
    want = !paused && in_.size() - in_off_ < kMaxBufferedInput &&
           out_.size() < kMaxBufferedOutput && write_bytes_in_flight_ < kMaxBufferedOutput;
  }
  if (input_watch_ && !eof_) want = true;
  if (want && in_.size() - in_off_ >= kMaxBufferedInput && !input_watch_) want = false;
  if (want == reading_) return;
  reading_ = want;
  if (want)
    uv_read_start(reinterpret_cast<uv_stream_t *>(&tcp_), on_alloc, on_read);
  else
    uv_read_stop(reinterpret_cast<uv_stream_t *>(&tcp_));
}

bool Session::sync_violation(const std::string &what) {
  if (!sync_check_ || !input_pending()) return false;
  log::format(log::notice, id_, "", "pipelining violation %s; closing", what.c_str());
  close_after(make_reply(554, "5.5.0", "Error: SMTP protocol synchronization"));
  return true;
}

bool Session::input_pending() {
  if (in_off_ < in_.size()) return true;
  if (eof_) return false;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t *>(&tcp_), &fd) != 0) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0;
}

void Session::process() {
  if (processing_) return;
  processing_ = true;
  while (phase_ == Phase::command || phase_ == Phase::data) {
    if (chain_ || busy_ || waiting_disk_) break;
    if (phase_ == Phase::command && shutting_down_) {
      close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
      break;
    }
    size_t before = in_off_;
    Phase phase_before = phase_;
    if (phase_ == Phase::command)
      process_command_input();
    else
      process_data_input();
    if (in_off_ == before && phase_ == phase_before && !chain_ && !busy_ && !waiting_disk_) break;
  }
  if (in_off_ > 0 && (in_off_ == in_.size() || in_off_ > 64 * 1024)) {
    in_.erase(0, in_off_);
    in_off_ = 0;
  }
  processing_ = false;
  // At EOF nothing more can complete a partial line: whatever is left is dropped.
  if (eof_ && (phase_ == Phase::command || phase_ == Phase::data) && !chain_ && !busy_ &&
      !waiting_disk_) {
    if (phase_ == Phase::data)
      log::format(log::info, id_, "", "client closed during DATA; message discarded");
    log::format(log::info, id_, "", "client closed the connection%s",
                in_off_ < in_.size() ? " (after an incomplete line)" : "");
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
  smtp::LineEvent ev = lines_.next(view);
  in_off_ += ev.consumed;
  switch (ev.type) {
    case smtp::LineEvent::need_more:
      return;
    case smtp::LineEvent::too_long:
      reply_error(500, "5.5.2", "Error: line too long");
      return;
    case smtp::LineEvent::bare_cr:
    case smtp::LineEvent::bare_lf:
      log::format(log::notice, id_, "", "bare %s in command; closing",
                  ev.type == smtp::LineEvent::bare_cr ? "CR" : "LF");
      close_after(make_reply(550, "5.5.2", bare_newline_text(ev.type == smtp::LineEvent::bare_cr)));
      return;
    case smtp::LineEvent::line:
      dispatch(std::move(ev.text));
      return;
  }
}

// ---- commands ---------------------------------------------------------------------------

void Session::dispatch(std::string line) {
  arm_idle_timer();  // the deadline for the next command starts now
  smtp::CommandLine cmd = smtp::split_command(line);
  counters_.command(cmd.valid_verb ? cmd.verb : "unknown");
  if (log::enabled(log::debug))
    log::format(log::debug, id_, "", "<- %s", log::printable(line).c_str());
  if (!smtp::valid_command_text(line)) {
    reply_error(500, "5.5.2", "Error: bad UTF-8 syntax or control character in command");
    return;
  }
  const std::string &v = cmd.verb;
  // After HELO no PIPELINING was offered (RFC 2920 applies to EHLO sessions): every command
  // must end its group.
  bool ends_group = !may_be_pipelined(v) || (helo_ && !esmtp_);
  if (ends_group && sync_check_ &&
      sync_violation("after " + (v.empty() ? std::string("empty line") : log::printable(v))))
    return;
  sync_recheck_ = sync_check_ && ends_group;  // run_hook checks again before an async reply
  run_command(cmd, line);
  sync_recheck_ = false;
}

void Session::run_command(const smtp::CommandLine &cmd, const std::string &line) {
  const std::string &v = cmd.verb;
  if (!cmd.valid_verb) return cmd_unknown(v, cmd.arg, line);
  if (v == "ehlo" || v == "helo") return cmd_helo(v, cmd.arg);
  if (v == "mail") return cmd_mail(cmd.arg);
  if (v == "rcpt") return cmd_rcpt(cmd.arg);
  if (v == "data") return cmd_data();
  // RSET takes no parameters (RFC 5321 4.1.1.5); Postfix answers the same.
  if (v == "rset") return cmd.arg.empty() ? cmd_rset() : reply_error(501, "5.5.4", "Syntax: RSET");
  if (v == "noop") return cmd_simple(UVS_HOOK_NOOP, cmd.arg);
  if (v == "vrfy") return cmd_simple(UVS_HOOK_VRFY, cmd.arg);
  if (v == "help") return cmd_simple(UVS_HOOK_HELP, cmd.arg);
  if (v == "quit") return cmd_quit();
  cmd_unknown(v, cmd.arg, line);
}

std::string Session::ehlo_lines_head() const {
  return cfg_.hostname + " Hello " + (remote_host_.empty() ? "" : remote_host_ + " ") + "[" +
         peer_ip_ + "]";
}

// Commands that move no mail (Postfix's smtpd_junk_command_limit): past max_junk_commands since
// the last accepted message, 421 and close. Returns true if the session is closing.
bool Session::junk_command() {
  if (cfg_.max_junk_commands == 0 || ++junk_ <= cfg_.max_junk_commands) return false;
  log::format(log::notice, id_, "", "too many commands without mail (%u); closing", junk_);
  close_after(make_reply(421, "4.7.0",
                         cfg_.hostname + " Too many commands without mail; closing connection"));
  return true;
}

void Session::cmd_helo(const std::string &verb, const std::string &arg) {
  bool ehlo = verb == "ehlo";
  std::string host = arg.substr(0, arg.find(' '));
  if (host.empty())
    return reply_error(501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
  if (helo_) {
    // RFC 5321 4.1.4: a later HELO/EHLO resets the state exactly like RSET, and the session is
    // greeted anew (the hooks run for the new name; until they accept it there is no greeting).
    if (junk_command()) return;
    reset_transaction();
    helo_.reset();
    esmtp_ = false;
  }
  HookArgs a;
  a.arg = arg;
  a.address = host;
  run_hook(ehlo ? UVS_HOOK_EHLO : UVS_HOOK_HELO, std::move(a), [this, ehlo, host](HookResult r) {
    Decision d = decide(ehlo ? UVS_HOOK_EHLO : UVS_HOOK_HELO, r);
    if (d.kind != Decision::proceed) return (void)apply(d);
    helo_ = host;
    esmtp_ = ehlo;
    if (!ehlo) {
      send(make_reply(250, "", ehlo_lines_head()));
      return;
    }
    Reply rep;
    rep.code = 250;
    rep.lines.push_back(ehlo_lines_head());
    rep.lines.push_back("PIPELINING");
    rep.lines.push_back("SIZE " + std::to_string(cfg_.max_message_size));
    rep.lines.push_back("8BITMIME");
    rep.lines.push_back("ENHANCEDSTATUSCODES");
    rep.lines.push_back("SMTPUTF8");
    for (int scope : {UVS_NOTE_CONNECTION, UVS_NOTE_TRANSACTION}) {
      if (const std::string *caps = notes(scope).get("capabilities")) {
        size_t start = 0;
        while (start < caps->size()) {
          size_t end = caps->find('\n', start);
          if (end == std::string::npos) end = caps->size();
          std::string cap = caps->substr(start, end - start);
          if (!cap.empty() && reply_text_ok(cap)) rep.lines.push_back(cap);
          start = end + 1;
        }
      }
    }
    send(rep);
  });
}

void Session::cmd_mail(const std::string &arg) {
  if (!helo_) return reply_error(503, "5.5.1", "Error: send HELO/EHLO first");
  if (txn_.open) return reply_error(503, "5.5.1", "Error: nested MAIL command");
  smtp::PathParse p = smtp::parse_mail_arg(arg);
  if (!p.ok) return reply_error(p.code, p.enhanced.c_str(), p.message);
  bool smtputf8 = false, body8 = false;
  for (const auto &prm : p.params) {
    if (!esmtp_) return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
    if (prm.key == "SIZE") {
      const std::string &val = prm.value.value_or("");
      if (val.empty() || val.size() > 20 || !std::all_of(val.begin(), val.end(), ::isdigit))
        return reply_error(501, "5.5.4", "Bad SIZE parameter syntax");
      errno = 0;
      unsigned long long size = strtoull(val.c_str(), nullptr, 10);
      if (cfg_.max_message_size && (errno == ERANGE || size > cfg_.max_message_size))
        return reply_error(552, "5.3.4", "Message size exceeds fixed maximum message size");
    } else if (prm.key == "BODY") {
      std::string val = prm.value.value_or("");
      std::transform(val.begin(), val.end(), val.begin(), ::toupper);
      if (val == "8BITMIME")
        body8 = true;
      else if (val != "7BIT")
        return reply_error(501, "5.5.4", "Unsupported BODY parameter");
    } else if (prm.key == "SMTPUTF8") {
      if (prm.value) return reply_error(501, "5.5.4", "SMTPUTF8 takes no value");
      smtputf8 = true;
    } else if (prm.key == "AUTH") {
      // RFC 4954 5: accepted from anyone, trusted from no one (no AUTH here yet).
    } else {
      return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
    }
  }
  if (p.path.has_8bit && !smtputf8)
    return reply_error(550, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
  txn_notes_.clear();  // a transaction starts at MAIL: notes set before it do not carry over
  HookArgs a;
  a.arg = arg;
  a.address = p.path.address;
  auto params = std::make_shared<std::vector<smtp::EsmtpParam>>(std::move(p.params));
  a.params = params.get();
  std::string addr = p.path.address;
  run_hook(UVS_HOOK_MAIL, std::move(a), [this, params, addr, smtputf8, body8](HookResult r) {
    Decision d = decide(UVS_HOOK_MAIL, r, bracket(addr));
    if (d.kind != Decision::proceed) return (void)apply(d);
    txn_.open = true;
    txn_.id = make_queue_id();
    txn_.mail_from = addr;
    txn_.mail_params = std::move(*params);
    txn_.smtputf8 = smtputf8;
    txn_.body_8bit = body8;
    log::format_txn(log::info, id_, txn_.id, "%s: from=<%s>", txn_.id.c_str(),
                    log::printable(addr).c_str());
    send(make_reply(250, "2.1.0", bracket(addr) + ", sender OK"));
  });
}

void Session::cmd_rcpt(const std::string &arg) {
  if (!txn_.open) return reply_error(503, "5.5.1", "Use MAIL before RCPT");
  smtp::PathParse p = smtp::parse_rcpt_arg(arg);
  if (!p.ok) return reply_error(p.code, p.enhanced.c_str(), p.message);
  for (const auto &prm : p.params) {
    if (!esmtp_) return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
    return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
  }
  if (p.path.has_8bit && !txn_.smtputf8)
    return reply_error(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
  if (txn_.rcpts.size() >= cfg_.max_recipients)
    return reply_error(452, "4.5.3", "Error: too many recipients");
  HookArgs a;
  a.arg = arg;
  a.address = p.path.address;
  auto params = std::make_shared<std::vector<smtp::EsmtpParam>>(std::move(p.params));
  a.params = params.get();
  std::string addr = p.path.address;
  run_hook(UVS_HOOK_RCPT, std::move(a), [this, params, addr](HookResult r) {
    Decision d = decide(UVS_HOOK_RCPT, r, bracket(addr));
    if (d.kind != Decision::proceed) return (void)apply(d);
    if (!txn_.open) return reply_error(503, "5.5.1", "Use MAIL before RCPT");
    // The recipient, or what an rcpt_replace (ABI 1.3) put instead of it, without duplicates of
    // recipients already there (local part exact, domain case-insensitive; duplicates are
    // answered 250 but stored once, as Postfix's cleanup removes them): all or none within
    // max_recipients.
    bool replaced = !r.rcpt_replace.empty();
    const std::vector<std::string> one{addr};
    const std::vector<std::string> &targets = replaced ? r.rcpt_replace : one;
    auto same = [](const std::string &a, const std::string &b) {
      auto ci = [](unsigned char x, unsigned char y) { return tolower(x) == tolower(y); };
      size_t at = a.rfind('@');
      if (at == std::string::npos)  // <postmaster>, in any case
        return b.find('@') == std::string::npos && a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), ci);
      return a.size() == b.size() && b.rfind('@') == at && a.compare(0, at, b, 0, at) == 0 &&
             std::equal(a.begin() + at, a.end(), b.begin() + at, ci);
    };
    std::vector<std::string> added;
    for (const std::string &t : targets) {
      auto dup = [&](const std::string &o) { return same(o, t); };
      if (std::none_of(txn_.rcpts.begin(), txn_.rcpts.end(), dup) &&
          std::none_of(added.begin(), added.end(), dup))
        added.push_back(t);
    }
    if (txn_.rcpts.size() + added.size() > cfg_.max_recipients)
      return reply_error(452, "4.5.3", "Error: too many recipients");
    if (added.empty())
      log::format_txn(log::info, id_, txn_.id, "%s: to=<%s> duplicate, stored once",
                      txn_.id.c_str(), log::printable(addr).c_str());
    for (std::string &t : added) {
      if (replaced)
        log::format_txn(log::info, id_, txn_.id, "%s: to=<%s> orig_to=<%s> by %s", txn_.id.c_str(),
                        log::printable(t).c_str(), log::printable(addr).c_str(), r.plugin.c_str());
      else
        log::format_txn(log::info, id_, txn_.id, "%s: to=<%s>", txn_.id.c_str(),
                        log::printable(t).c_str());
      txn_.rcpts.push_back(std::move(t));
    }
    send(with_plugin_text(r, 250, "2.1.5", bracket(addr) + ", recipient ok"));
  });
}

void Session::cmd_data() {
  run_hook(UVS_HOOK_DATA, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_DATA, r);
    if (d.kind != Decision::proceed) return (void)apply(d);
    if (!txn_.open) return reply_error(503, "5.5.1", "MAIL first");
    if (txn_.rcpts.empty()) return reply_error(503, "5.5.1", "RCPT first");
    if (sync_violation("before 354")) return;
    begin_data();
  });
}

void Session::cmd_rset() {
  if (junk_command()) return;
  reset_transaction();
  send(make_reply(250, "2.0.0", "OK"));
}

void Session::cmd_simple(uvs_hook hook, const std::string &arg) {
  if (junk_command()) return;
  HookArgs a;
  a.arg = arg;
  run_hook(hook, std::move(a), [this, hook](HookResult r) {
    Decision d = decide(hook, r);
    if (d.kind != Decision::proceed) return (void)apply(d);
    // Plugin text goes with OK only: a DENYSOFT that proceeds must not put its words on a 2xx.
    bool ok = r.verdict == UVS_OK && r.has_reply;
    if (hook == UVS_HOOK_NOOP)
      return send(ok ? with_plugin_text(r, 250, "2.0.0", "OK") : make_reply(250, "2.0.0", "OK"));
    if (hook == UVS_HOOK_VRFY) {
      if (r.verdict == UVS_OK) return send(with_plugin_text(r, 250, "2.1.5", "User OK"));
      return send(make_reply(252, "2.1.5",
                             "Cannot VRFY user, but will accept message and attempt delivery"));
    }
    Reply help;
    help.code = 214;
    help.enhanced = "2.0.0";
    help.lines = {"This is uvsmtpd " UVS_VERSION,
                  "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
                  "End of HELP info"};
    send(ok ? with_plugin_text(r, 214, "2.0.0", "") : help);
  });
}

void Session::cmd_quit() {
  run_hook(UVS_HOOK_QUIT, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_QUIT, r);
    if (d.kind == Decision::silent) return close_after(d.reply.code / 100 == 2 ? d.reply : Reply{});
    // QUIT is always answered 221 (RFC 5321 4.1.1.10); a plugin may only change the words.
    Reply bye = make_reply(221, "2.0.0", cfg_.hostname + " Service closing transmission channel");
    if (r.has_reply && !r.timed_out && !r.reply.lines.empty()) bye.lines = r.reply.lines;
    close_after(bye);
  });
}

void Session::cmd_unknown(const std::string &verb, const std::string &arg,
                          const std::string &line) {
  HookArgs a;
  a.arg = arg;
  a.address = verb;
  bool non_smtp = verb == "get" || verb == "post" || verb == "connect" ||
                  (!verb.empty() && verb.back() == ':' && line.find(' ') != std::string::npos);
  run_hook(UVS_HOOK_UNRECOGNIZED_COMMAND, std::move(a), [this, non_smtp](HookResult r) {
    Decision d = decide(UVS_HOOK_UNRECOGNIZED_COMMAND, r);
    if (d.kind != Decision::proceed) return (void)apply(d);
    if (non_smtp) {
      log::format(log::notice, id_, "", "non-SMTP command; closing");
      return close_after(
          make_reply(221, "2.7.0", "Error: not an SMTP command; closing connection"));
    }
    reply_error(500, "5.5.1", "Unrecognized command");
  });
}

// ---- DATA -------------------------------------------------------------------------------

void Session::begin_data() {
  txn_.spool = std::make_unique<SpoolFile>(server_.loop(), cfg_.spool_dir);
  int rc = txn_.spool->open();
  if (rc < 0) {
    log::format(log::err, id_, "", "cannot create spool file in %s: %s", cfg_.spool_dir.c_str(),
                strerror(-rc));
    txn_.spool.reset();
    return reply_store_failure(rc);
  }
  txn_.spool->append(received_header());
  txn_.headers.clear();
  txn_.hops = HopCounter{};
  data_.emplace(cfg_.max_message_size, newline_policy());
  phase_ = Phase::data;
  send(make_reply(354, "", "go ahead"));
  data_clock_ = false;
  data_left_ = cfg_.timeout_data * 1000;  // the DATA deadline starts with the 354
  sync_data_clock();
}

std::string Session::received_header() const {
  // qpsmtpd's shape, RFC 3848 protocol words (ESMTPS/ESMTPA/ESMTPSA once TLS/AUTH exist).
  std::string proto = txn_.smtputf8 ? "UTF8SMTP" : esmtp_ ? "ESMTP" : "SMTP";
  std::string from = remote_host_.empty() ? "Unknown" : remote_host_;
  return "Received: from " + from + " (HELO " + log::printable(helo_.value_or("unknown"), 255) +
         ") ([" + peer_ip_ + "])\r\n\tby " + cfg_.hostname + " (uvsmtpd/" UVS_VERSION ") with " +
         proto + " id " + txn_.id + "; " + rfc5322_date() + "\r\n";
}

void Session::process_data_input() {
  std::string_view view(in_.data() + in_off_, in_.size() - in_off_);
  std::string chunk;
  smtp::DataEvent ev = data_->feed(view, chunk);
  in_off_ += ev.consumed;
  if (!chunk.empty()) {
    if (!data_->headers_seen() || ev.type == smtp::DataEvent::headers_end) {
      size_t room =
          kMaxHeaderCapture > txn_.headers.size() ? kMaxHeaderCapture - txn_.headers.size() : 0;
      if (chunk.size() > room) txn_.headers_truncated = true;
      txn_.headers.append(chunk, 0, std::min(room, chunk.size()));
      txn_.hops.feed(chunk);  // the whole header section, however long
    }
    txn_.spool->append(chunk);
  }
  switch (ev.type) {
    case smtp::DataEvent::need_more:
      break;
    case smtp::DataEvent::headers_end: {
      busy_ = true;
      run_hook(UVS_HOOK_DATA_HEADERS_END, HookArgs{}, [this](HookResult r) {
        busy_ = false;
        if (r.timed_out) txn_.deferred_failure = r.reply;
        Decision d = decide(UVS_HOOK_DATA_HEADERS_END, r);
        if (d.kind == Decision::replace) apply(d);
        if (phase_ != Phase::closing && !processing_) process();
      });
      return;
    }
    case smtp::DataEvent::bare_cr:
    case smtp::DataEvent::bare_lf:
      log::format_txn(log::notice, id_, txn_.id, "%s: bare %s in message data; closing",
                      txn_.id.c_str(), ev.type == smtp::DataEvent::bare_cr ? "CR" : "LF");
      data_.reset();
      close_after(make_reply(550, "5.5.2", bare_newline_text(ev.type == smtp::DataEvent::bare_cr)));
      return;
    case smtp::DataEvent::done:
      end_of_data();
      return;
  }
  if (txn_.spool && txn_.spool->backlogged()) {
    waiting_disk_ = true;
    txn_.spool->on_drained([this] {
      waiting_disk_ = false;
      if (!processing_) process();
    });
  }
}

void Session::end_of_data() {
  phase_ = Phase::command;
  busy_ = true;
  data_clock_ = false;
  arm_idle_timer();  // the command deadline again (held while the end of data is processed)
  bool headers_fired = data_->headers_seen();
  auto next = [this] {
    if (phase_ == Phase::closing) return;
    if (data_->too_big()) {
      log::format_txn(log::notice, id_, txn_.id, "%s: message too big (%" PRIu64 " bytes)",
                      txn_.id.c_str(), data_->size());
      data_.reset();
      busy_ = false;
      reset_transaction();
      reply_error(552, "5.3.4", "Message size exceeds fixed maximum message size");
      if (!processing_) process();
      return;
    }
    data_.reset();
    if (txn_.hops.count() > cfg_.max_hops) {
      // RFC 5321 6.3: a loop must be detected; 554 5.4.6 as Postfix, nothing is queued.
      log::format_txn(log::notice, id_, txn_.id,
                      "%s: %u Received: header fields (max_hops %u); refused", txn_.id.c_str(),
                      txn_.hops.count(), cfg_.max_hops);
      busy_ = false;
      reset_transaction();
      reply_error(554, "5.4.6", "Too many hops (mail loop detected)");
      if (!processing_) process();
      return;
    }
    if (!txn_.deferred_failure.empty()) {
      Reply fail = txn_.deferred_failure;
      busy_ = false;
      reset_transaction();
      send(fail);
      count_error(fail.code);
      if (!processing_) process();
      return;
    }
    txn_.spool->flush([this](int err) { after_spool_flush(err); });
  };
  if (headers_fired) return next();
  run_hook(UVS_HOOK_DATA_HEADERS_END, HookArgs{}, [this, next](HookResult r) {
    if (r.timed_out) txn_.deferred_failure = r.reply;
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

// The message could not be spooled: a full disk (or quota) is 452 4.3.1 (RFC 3463 "mail
// system full"), anything else 451 4.3.0. Both are temporary: the client keeps the message.
void Session::reply_store_failure(int err) {
  if (err == UV_ENOSPC || err == -EDQUOT)
    reply_error(452, "4.3.1", "Insufficient system storage, try again later");
  else
    reply_error(451, "4.3.0", "Temporary failure: cannot store the message, try again later");
}

void Session::after_spool_flush(int err) {
  if (phase_ == Phase::closing) return;
  if (err < 0) {
    log::format_txn(log::err, id_, txn_.id, "%s: spool write failed: %s", txn_.id.c_str(),
                    uv_strerror(err));
    busy_ = false;
    reset_transaction();
    reply_store_failure(err);
    if (!processing_) process();
    return;
  }
  run_data_post();
}

void Session::run_data_post() {
  run_hook(UVS_HOOK_DATA_POST, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_DATA_POST, r);
    if (d.kind != Decision::proceed) {
      busy_ = false;
      if (d.kind == Decision::silent && d.reply.code / 100 == 2) junk_ = 0;  // accepted
      d.reset = true;  // the message is finished whatever the verdict: apply() resets once
      apply(d);
      if (phase_ != Phase::closing && !processing_) process();
      return;
    }
    run_queue();
  });
}

void Session::run_queue() {
  run_hook(UVS_HOOK_QUEUE, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_QUEUE, r);
    std::string id = txn_.id;
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
    if (phase_ != Phase::closing && !processing_) process();
  });
}

// ---- hooks ------------------------------------------------------------------------------

void Session::run_hook(uvs_hook hook, HookArgs args, HookDone done) {
  // The hook of a command that must end its group: input that arrives while it is pending is
  // a synchronisation violation too, so check again before its reply (RFC 2920 3.1). A verdict
  // that closes the connection answers instead: its reply is the last one either way (so
  // earlytalker's own 554 at DATA stands).
  bool recheck = sync_recheck_;
  sync_recheck_ = false;
  if (phase_ == Phase::data)
    pause_data_clock();
  else
    idle_timer_.stop();
  ChainRun::start(
      &server_.services(), *this, gen_->plugins->table, hook, std::move(args),
      [this, hook, recheck, done = std::move(done)](HookResult r) {
        bool was_async = !processing_;
        if (recheck && was_async && phase_ == Phase::command && !decide(hook, r).close &&
            sync_violation("while the " + std::string(hook_name(hook)) + " hook ran"))
          return;
        if (phase_ != Phase::closing) arm_idle_timer();
        done(std::move(r));
        if (was_async && phase_ != Phase::closing) process();
      },
      &chain_);
  if (chain_) {
    flush();
    update_reading();
  }
}

void Session::notify(uvs_hook hook) {
  if (gen_->plugins->table.by_hook[hook].empty()) return;
  notify_hook(&server_.services(), *this, gen_->plugins->table, hook, HookArgs{});
}

bool Session::apply(const Decision &d) {
  if (d.reset) reset_transaction();
  if (d.kind == Decision::replace) {
    if (d.close) {
      close_after(d.reply);
      return false;
    }
    send(d.reply);
    count_error(d.reply.code);
    return phase_ != Phase::closing;
  }
  if (!d.reply.empty()) send(d.reply);
  if (d.close) {
    begin_close();
    return false;
  }
  return true;
}

void Session::reset_transaction() {
  bool had = txn_.open || txn_.spool;
  txn_.open = false;
  txn_.mail_from.clear();
  txn_.mail_params.clear();
  txn_.rcpts.clear();
  txn_.spool.reset();
  txn_.headers.clear();
  txn_.headers_truncated = false;
  txn_.smtputf8 = txn_.body_8bit = false;
  txn_.deferred_failure = Reply{};
  data_.reset();
  if (had) notify(UVS_HOOK_RESET_TRANSACTION);
  txn_notes_.clear();
  txn_.id.clear();
}

// ---- CallHost: message and input --------------------------------------------------------

int64_t Session::message_size() const {
  return txn_.spool ? txn_.spool->size() : -1;
}

int64_t Session::message_read(int64_t offset, void *buf, size_t len) const {
  if (!txn_.spool) return -ENOENT;
  return txn_.spool->read(offset, buf, len);
}

const std::string *Session::header(std::string_view name, int i) const {
  static thread_local std::string value;
  if (!find_header(txn_.headers, name, i, value)) return nullptr;
  return &value;
}

int Session::message_fd() const {
  if (!txn_.spool) return -ENOENT;
  return const_cast<SpoolFile &>(*txn_.spool).dup_fd();
}

int Session::watch_input(std::function<void(int)> cb) {
  if (phase_ == Phase::closing) return -ECANCELED;
  if (input_watch_) return -EBUSY;
  if (in_off_ < in_.size() || eof_ || input_pending()) {
    // Already there: report on the loop, never from inside the caller.
    int result = (in_off_ < in_.size() || !eof_) ? UVS_INPUT_DATA : UVS_INPUT_EOF;
    if (!input_watch_timer_) input_watch_timer_ = std::make_unique<Timer>(server_.loop());
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
  if (phase_ != Phase::greeting || handle_closed_) return -EPERM;
  send_raw("220-" + std::string(text) + "\r\n");
  flush();
  return 0;
}

// ---- output -----------------------------------------------------------------------------

void Session::send_raw(std::string wire) {
  if (handle_closed_ || closing_after_write_) return;
  out_ += wire;
}

void Session::send(const Reply &r) {
  if (r.empty() || handle_closed_ || closing_after_write_) return;
  counters_.reply(r.code);
  if (log::enabled(log::debug))
    log::format(log::debug, id_, "", "-> %s", log::printable(r.wire(), 300).c_str());
  out_ += r.wire();
}

void Session::reply_error(int code, const char *enh, const std::string &text) {
  send(make_reply(code, enh, text));
  count_error(code);
}

void Session::count_error(int code) {
  if (code < 400 || cfg_.max_errors == 0 || phase_ == Phase::closing) return;
  if (++errors_ >= cfg_.max_errors) {
    log::format(log::notice, id_, "", "too many errors (%u); closing", errors_);
    close_after(make_reply(421, "4.7.0", cfg_.hostname + " Error: too many errors"));
  }
}

struct WriteReq {
  uv_write_t req;
  std::string data;
};

void Session::flush() {
  if (!out_.empty() && !handle_closed_) {
    auto *w = new WriteReq;
    w->data.swap(out_);
    w->req.data = this;
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t *>(&tcp_), &b, 1, on_write);
    if (rc < 0) {
      delete w;
      log::format(log::info, id_, "", "write failed: %s", uv_strerror(rc));
      closing_after_write_ = true;
      phase_ = Phase::closing;
      run_disconnect();
      return hard_close();
    }
    ++writes_in_flight_;
    write_bytes_in_flight_ += b.len;
  }
  if (!closing_after_write_) return;
  if (writes_in_flight_ == 0) return finish_close();
  // A client that does not read would hold the session (and its per-IP slot) forever: the last
  // replies get kCloseDrainMs, then the handle is closed (pending writes end with ECANCELED).
  if (!close_timer_) {
    close_timer_ = std::make_unique<Timer>(server_.loop());
    close_timer_->start(kCloseDrainMs, [this] {
      log::format(log::info, id_, "", "client does not read its replies; dropping the connection");
      hard_close();
    });
  }
}

void Session::on_write(uv_write_t *req, int status) {
  auto *w = reinterpret_cast<WriteReq *>(req);
  auto *s = static_cast<Session *>(req->data);
  --s->writes_in_flight_;
  s->write_bytes_in_flight_ -= w->data.size();
  delete w;
  if (s->handle_closed_) return;
  if (status < 0) {
    s->phase_ = Phase::closing;
    s->closing_after_write_ = true;
    return s->hard_close();
  }
  if (s->closing_after_write_) {
    if (s->writes_in_flight_ == 0) s->finish_close();
    return;
  }
  s->update_reading();
}

}  // namespace uvs
