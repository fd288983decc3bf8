// session/session.cpp: the session's life cycle (construction, greeting, shutdown notice,
// closing) and how it runs hooks: run_hook (deadlines, the RFC 2920 recheck), verdicts applied.
#include "session/session.hpp"

#include <cerrno>

#include "dns/resolver.hpp"
#include "hooks/hook_names.hpp"
#include "log/log.hpp"
#include "metrics/registry.hpp"
#include "session/session_util.hpp"

namespace uvs {

Session::Session(const SessionContext &ctx, std::shared_ptr<const Generation> gen,
                 std::unique_ptr<Connection> conn, const config::Listen &listener, uint64_t serial)
    : ctx_(ctx),
      gen_(std::move(gen)),
      cfg_(gen_->settings),
      conn_(std::move(conn)),
      sync_check_(listener.sync_check),
      tls_mode_(listener.tls == "implicit"   ? TlsMode::implicit
                : listener.tls == "starttls" ? TlsMode::starttls
                                             : TlsMode::none),
      require_tls_(listener.require_tls),
      id_(make_session_id(serial)),
      newline_policy_(smtp::NewlinePolicy::reject),
      lines_(cfg_.max_line_length, smtp::NewlinePolicy::reject),
      idle_timer_(ctx.loop),
      data_clock_(ctx.loop, idle_timer_, [this] { on_idle_timeout(); }) {
  conn_->set_events(this);
  auth_mode_ = listener.auth == "off"        ? AuthMode::off
               : listener.auth == "required" ? AuthMode::required
                                             : AuthMode::optional;
  auth_plaintext_ = listener.auth_plaintext;
  auth_relay_ = listener.auth_relay;
  if (cfg_.bare_newline == "normalize" || gen_->normalize_networks.contains(peer_ip()))
    newline_policy_ = smtp::NewlinePolicy::normalize;
}

Session::~Session() {
  if (conn_dns_) conn_dns_->close();  // before the notes a lookup's ud may live in
  if (dns_query_ && ctx_.resolver) ctx_.resolver->cancel(dns_query_);
  if (chain_) chain_->cancel();
  auth_wipe();
  if (!disconnected_) run_disconnect();
  ++metrics::core().sessions[static_cast<size_t>(end_)];
  log_session_end();
}

// ---- life cycle -------------------------------------------------------------------------

void Session::refuse(const Reply &r, log::EndReason why) {
  ended(why);
  log::format(log::notice, id_, "", "refused %s:%d: %s", peer_ip().c_str(), peer_port(),
              r.lines.empty() ? "" : r.lines[0].c_str());
  disconnected_ = true;                  // no hooks ran for this connection
  if (tls_mode_ != TlsMode::implicit) send(r);  // the client expects TLS there: no plaintext reply
  state_ = State::closing;
  flush();
}

void Session::start() {
  if (log::enabled(log::info)) {
    const log::Field f[] = {{"event", log::json_string("connect")},
                            {"client_ip", log::json_string(peer_ip())},
                            {"client_port", log::json_number(peer_port())},
                            {"local_ip", log::json_string(local_ip())},
                            {"local_port", log::json_number(local_port())}};
    log::write(log::info, id_, "",
               "connect from " + peer_ip() + ":" + std::to_string(peer_port()) + " to " +
                   local_ip() + ":" + std::to_string(local_port()),
               f);
  }
  if (tls_mode_ == TlsMode::implicit) {  // RFC 8314: TLS first, then the SMTP dialogue inside it
    auto ctx = ctx_.tls ? ctx_.tls() : nullptr;
    if (!ctx) {
      log::format(log::err, id_, "", "implicit TLS listener without a certificate; closing");
      ended(log::EndReason::error);
      disconnected_ = true;
      return hard_close();
    }
    return begin_handshake(std::move(ctx));
  }
  greet();
}

void Session::greet() {
  hooks_started_ = true;
  HookArgs a;
  a.arg = peer_ip();
  run_hook(UVS_HOOK_PRE_CONNECTION, a, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_PRE_CONNECTION, r);
    if (d.kind == Decision::replace) {
      refused_by_plugin();
      return close_after(d.reply);
    }
    Resolver *dns = ctx_.resolver;
    if (!cfg_.reverse_lookup || !dns) return after_reverse_lookup();
    arm_idle_timer();  // the command deadline runs during the lookup
    dns_query_ = dns->query(
        peer_ip(), Resolver::PTR, cfg_.reverse_timeout,
        [this](int status, std::vector<std::string> names) {
          dns_query_ = 0;
          if (status == 0 && !names.empty() && names[0].size() < 256 && reply_text_ok(names[0]))
            remote_host_ = names[0];
          else if (status == -ETIMEDOUT)
            log::format(log::info, id_, "", "reverse lookup of %s timed out", peer_ip().c_str());
          after_reverse_lookup();
        });
  });
}

void Session::after_reverse_lookup() {
  if (ending()) return;
  run_hook(UVS_HOOK_CONNECT, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_CONNECT, r);
    if (d.kind == Decision::replace) {
      refused_by_plugin();
      return close_after(d.reply);
    }
    if (ending()) return;
    state_ = State::command;
    if (d.kind == Decision::proceed) {
      Reply g = make_reply(220, "", cfg_.hostname + " " + cfg_.greeting);
      if (r.has_reply && !r.reply.lines.empty() && (r.reply.code == 0 || r.reply.code == 220))
        g.lines = r.reply.lines;
      send(g);
    } else if (!d.reply.empty()) {
      send(d.reply);
    }
    if (shutting_down_) {
      ended(log::EndReason::shutdown);
      return close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
    }
    arm_idle_timer();
    process();
  });
}

void Session::shutdown_notice() {
  shutting_down_ = true;
  if (handshaking_) {
    // Implicit TLS, no dialogue yet: close now. STARTTLS: the 421 goes out inside TLS once the
    // handshake is done (process() sees shutting_down_); force_close covers a stalled one.
    if (state_ == State::greeting) {
      ended(log::EndReason::shutdown);
      abandon_handshake();
    }
    return;
  }
  if (state_ == State::command && !busy_ && !chain_) {
    ended(log::EndReason::shutdown);
    close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
  }
}

void Session::force_close() {
  ended(log::EndReason::shutdown);
  if (ending()) return hard_close();
  if (chain_) chain_->cancel();
  close_after(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down"));
}

void Session::run_disconnect() {
  if (disconnected_) return;
  disconnected_ = true;
  if (!hooks_started_) return;  // refused, or an implicit-TLS handshake that never completed
  if (txn_.is_open()) reset_transaction();
  notify(UVS_HOOK_DISCONNECT);
}

void Session::close_after(const Reply &r) {
  if (ending()) return;
  if (!r.empty()) send(r);
  begin_close();
}

void Session::begin_close() {
  if (ending()) return;
  state_ = State::closing;
  idle_timer_.stop();
  if (chain_) chain_->cancel();
  input_watch_ = nullptr;
  if (txn_.is_open()) reset_transaction();
  run_disconnect();
  flush();  // the last replies; then the connection closes gracefully
}

void Session::release() {
  if (conn_dns_) conn_dns_->close();
  if (dns_query_ && ctx_.resolver) ctx_.resolver->cancel(dns_query_);
  dns_query_ = 0;
  idle_timer_.stop();
  input_watch_timer_.reset();
  if (chain_) chain_->cancel();
  if (auth_ && auth_->timer) auth_->timer->stop();
  auth_delaying_ = false;
  auth_wipe();
}

void Session::hard_close() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  release();
  run_disconnect();
  conn_->close();  // on_closed() follows
}

void Session::arm_idle_timer() {
  if (state_ == State::data) return sync_data_clock();
  idle_timer_.start(static_cast<uint64_t>(cfg_.timeout_command * 1000),
                    [this] { on_idle_timeout(); });
}

void Session::on_idle_timeout() {
  if (ending()) return;
  if (handshaking_) return on_handshake_timeout();
  if (held()) return arm_idle_timer();  // not the client's time
  log::format(log::notice, id_, "", "timeout in %s", state_ == State::data ? "DATA" : "command");
  ended(log::EndReason::timeout);
  close_after(make_reply(421, "4.4.2", cfg_.hostname + " Error: timeout exceeded"));
}

void Session::sync_data_clock() {
  if (state_ != State::data) return;
  if (held())
    data_clock_.pause();
  else
    data_clock_.resume();
}

// ---- hooks ------------------------------------------------------------------------------

void Session::run_hook(uvs_hook hook, HookArgs args, HookDone done) {
  // The hook of a command that must end its group: input that arrives while it is pending is
  // a synchronisation violation too, so check again before its reply (RFC 2920 3.1). A verdict
  // that closes the connection answers instead: its reply is the last one either way (so
  // earlytalker's own 554 at DATA stands).
  bool recheck = sync_recheck_;
  sync_recheck_ = false;
  header_values_.clear();  // what header() lent to the previous hook
  if (state_ == State::data)
    data_clock_.pause();
  else
    idle_timer_.stop();
  ChainRun::start(
      ctx_.services, *this, gen_->plugins->table, hook, std::move(args),
      [this, hook, recheck, done = std::move(done)](HookResult r) {
        bool was_async = !processing_;
        if (recheck && was_async && state_ == State::command && !decide(hook, r).close &&
            sync_violation("while the " + std::string(hook_name(hook)) + " hook ran"))
          return;
        // Before the banner the deadline is armed by whoever needs it (the reverse lookup, the
        // banner itself), not here: the connect hook that usually follows would stop it at once,
        // and a parked connection would carry the timer's handle for nothing.
        if (!ending() && state_ != State::greeting) arm_idle_timer();
        if (r.verdict != UVS_DECLINED && r.verdict != UVS_OK) verdict_plugin_ = r.plugin;
        done(std::move(r));
        if (was_async && !ending()) process();
      },
      &chain_);
  if (chain_) {
    flush();
    update_reading();
  }
}

void Session::notify(uvs_hook hook) {
  if (gen_->plugins->table.by_hook[hook].empty()) return;
  header_values_.clear();
  notify_hook(ctx_.services, *this, gen_->plugins->table, hook, HookArgs{});
}

bool Session::apply(const Decision &d) {
  if (d.reset) reset_transaction();
  if (d.kind == Decision::replace) {
    if (d.close) {
      ended_by_plugin();
      close_after(d.reply);
      return false;
    }
    send(d.reply);
    count_error(d.reply.code);
    return !ending();
  }
  if (!d.reply.empty()) send(d.reply);
  if (d.close) {
    ended_by_plugin();
    begin_close();
    return false;
  }
  return true;
}

void Session::refused_by_plugin() {
  ended_by_plugin();
  if (end_ == log::EndReason::plugin && !end_plugin_.empty())
    ++metrics::plugin_named(end_plugin_).refused;
}

void Session::ended_by_plugin() {
  if (end_ != log::EndReason::unknown) return;
  end_ = log::EndReason::plugin;
  end_plugin_ = verdict_plugin_;
}

void Session::reset_transaction() {
  bool had = txn_.rollback();
  data_.reset();
  if (had) notify(UVS_HOOK_RESET_TRANSACTION);
  txn_notes_.clear();
  txn_.clear_id();
}

ConnDns *Session::conn_dns() {
  if (!conn_dns_) {
    conn_dns_ = std::make_unique<ConnDns>();
    conn_dns_->set_resolver(ctx_.resolver, ctx_.services ? ctx_.services->dns_timeout : 5);
    if (ending()) conn_dns_->close();  // a session on its way out starts no lookups
  }
  return conn_dns_.get();
}

}  // namespace uvs
