// session/session.hpp: one SMTP session over a Connection: input framing, the command state
// machine (one table of commands, session_commands.cpp), the Transaction, DATA streaming to the
// spool, replies in order, and its life cycle (greeting to graceful close). One loop thread owns
// it; hooks run through ChainRun and may suspend it. Files: session.cpp (life cycle, hooks),
// session_io.cpp (input, output, connection events), session_commands.cpp (commands),
// session_data.cpp (DATA, end of data, queue, message access), session_log.cpp (log lines),
// session_auth.cpp (SMTP AUTH and its SASL exchange).
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/generation.hpp"
#include "conn/connection.hpp"
#include "hooks/call.hpp"
#include "hooks/conn_dns.hpp"
#include "hooks/replies.hpp"
#include "hooks/runner.hpp"
#include "log/events.hpp"
#include "session/data_clock.hpp"
#include "session/session_context.hpp"
#include "session/transaction.hpp"
#include "smtp/command.hpp"
#include "smtp/data_reader.hpp"
#include "smtp/line_reader.hpp"
#include "util/timer.hpp"

namespace uvs {

class Session final : public CallHost, private ConnectionEvents {
 public:
  // conn: accepted, not reading yet. listener: its RFC 2920 check and its TLS mode.
  Session(const SessionContext &ctx, std::shared_ptr<const Generation> gen,
          std::unique_ptr<Connection> conn, const config::Listen &listener, uint64_t serial);
  ~Session() override;
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Closes at once with this reply (limits hit before any hook ran); why: limit or shutdown.
  void refuse(const Reply &r, log::EndReason why);
  // Runs pre-connection and connect, then greets (on an implicit-TLS listener: after the
  // handshake).
  void start();
  // SIGTERM: idle sessions get 421 now, busy ones after their current transaction step.
  void shutdown_notice();
  // Grace period over: 421 and close whatever the state.
  void force_close();

  // CallHost
  const std::string &session_id() const override { return id_; }
  const std::string &peer_ip() const override { return conn_->peer_ip(); }
  int peer_port() const override { return conn_->peer_port(); }
  const std::string &local_ip() const override { return conn_->local_ip(); }
  int local_port() const override { return conn_->local_port(); }
  const std::string *helo() const override { return helo_ ? &*helo_ : nullptr; }
  bool esmtp() const override { return esmtp_; }
  const std::string *mail_from() const override {
    return txn_.is_open() ? &txn_.mail_from() : nullptr;
  }
  const std::vector<std::string> &rcpts() const override { return txn_.rcpts(); }
  Notes &notes(int scope) override {
    return scope == UVS_NOTE_CONNECTION ? conn_notes_ : txn_notes_;
  }
  bool relay_client() const override { return relay_client_; }
  void set_relay_client(bool on) override { relay_client_ = on; }
  int64_t message_size() const override;
  int64_t message_read(int64_t offset, void *buf, size_t len) const override;
  const std::string *header(std::string_view name, int i) const override;
  int message_fd() const override;  // may move an in-memory message into a memfd
  int header_edit(smtp::HeaderOp op, std::string_view at, int i, std::string_view name,
                  std::string_view value) override;
  int body_replace(int fd) override;
  int watch_input(std::function<void(int)> cb) override;
  void unwatch_input() override;
  int send_continuation(std::string_view text) override;
  std::shared_ptr<const void> keepalive() const override { return gen_; }
  const std::string *queue_id() const override { return txn_.id().empty() ? nullptr : &txn_.id(); }
  const std::string *remote_host() const override {
    return remote_host_.empty() ? nullptr : &remote_host_;
  }
  const tls::TlsDetails *tls_details() const override { return conn_->tls(); }
  const std::string *auth_user() const override { return authenticated() ? &*auth_->user : nullptr; }
  const std::string *auth_mechanism() const override {
    return authenticated() ? &auth_->mech : nullptr;
  }
  ConnDns *conn_dns() override;  // made on first use

 private:
  // Where the session stands. greeting: pre-connection/connect hooks, no banner yet;
  // command: reading commands; data: reading message content after 354; closing: the last
  // replies are being written and the connection closes gracefully; closed: the connection is
  // (being) closed, nothing more is written.
  enum class State { greeting, command, data, closing, closed };
  bool ending() const { return state_ >= State::closing; }
  // The server holds the session (a hook chain, the end of a message, the spool catching up):
  // no input is processed and the client's deadlines stop.
  bool held() const { return chain_ || busy_ || waiting_disk_ || handshaking_ || auth_delaying_; }

  // ---- session.cpp: life cycle and hooks
  void greet();  // pre-connection, reverse lookup, connect, banner
  void after_reverse_lookup();
  void run_disconnect();
  void close_after(const Reply &r);  // reply, then close gracefully
  void begin_close();
  void hard_close();
  void release();         // stops timers, lookups and hooks (closing, closed, destroyed)
  void arm_idle_timer();  // command: a fresh deadline; DATA: runs the DATA clock
  void on_idle_timeout();
  void sync_data_clock();  // DATA: the clock runs exactly while the session is not held
  void run_hook(uvs_hook hook, HookArgs args, HookDone done);
  void notify(uvs_hook hook);
  // Sends d's reply / handles close and reset; returns true if the session continues normally.
  bool apply(const Decision &d);
  void reset_transaction();

  // ---- session_io.cpp: ConnectionEvents, input, output
  void on_data(const char *p, size_t n) override;
  void on_eof(int status) override;
  void lost_while_pending(int status);  // EOF or a read error while a plugin call is pending
  void on_write_done() override;
  void on_write_error(int status) override;
  void on_drain_timeout() override;
  void on_closed() override;
  void on_tls_ready() override;
  void on_tls_failed(const std::string &reason) override;
  void update_reading();
  void process();
  void process_command_input();
  bool input_pending();  // bytes after the current command (buffered or in the kernel)
  // The bare CR/LF policy now: the listener's and networks' choice, or normalize for a relay
  // client ([bare_newline] normalize_relay_clients).
  smtp::NewlinePolicy newline_policy() const;
  // RFC 2920: more input behind a command that must end its group: 554 5.5.0 and close.
  bool sync_violation(const std::string &what);
  void send(const Reply &r);
  void send_raw(std::string wire);
  void flush();
  void reply_error(int code, const char *enh, const std::string &text);
  void reply_store_failure(int err);  // 452 4.3.1 for a full disk, else 451 4.3.0
  void count_error(int code);

  // ---- session_commands.cpp: the command table, dispatch and the handlers
  // Where the SMTP dialogue stands (derived from the greeting and the transaction): a command
  // row lists the ones it is allowed in (a bit mask).
  enum Dialogue : unsigned { fresh = 1, greeted = 2, in_mail = 4, anywhere = 7 };
  Dialogue dialogue() const;
  struct CommandSpec;  // one row of the command table (session_commands.cpp)
  struct Command {     // one command line as dispatched
    const CommandSpec &spec;
    const std::string &verb;  // lower case
    const std::string &arg;
    const std::string &line;
  };
  static const CommandSpec kCommands[];
  static const CommandSpec kUnknownCommand;
  static const CommandSpec *find_command(const std::string &verb);
  void dispatch(std::string line);
  void cmd_helo(const Command &c);  // HELO and EHLO
  void cmd_mail(const Command &c);
  void cmd_rcpt(const Command &c);
  void cmd_data(const Command &c);
  void cmd_rset(const Command &c);
  void cmd_simple(const Command &c);  // NOOP, VRFY, HELP
  void cmd_quit(const Command &c);
  void cmd_starttls(const Command &c);
  void cmd_unknown(const Command &c);
  void cmd_auth(const Command &c);  // session_auth.cpp
  std::string ehlo_lines_head() const;
  bool junk_command();  // counts a command that moves no mail; true if the limit closed

  // ---- session_data.cpp: DATA
  void begin_data();
  void process_data_input();
  void end_of_data();
  void after_spool_flush(int err);
  // Before data_post and before queue: a replacement body still read from the plugin's file
  // is copied and checked, an edited message written out, both on the thread pool; then next()
  // (not if the session ends; a body that fails answers 451 4.3.0 and drops the message).
  void settle_message(std::function<void()> next);
  void run_data_post();
  void run_queue();
  std::string received_header() const;

  // ---- session_tls.cpp: STARTTLS (RFC 3207) and implicit TLS
  bool tls_offered() const;  // STARTTLS is advertised and accepted now
  void begin_handshake(std::shared_ptr<const tls::TlsContext> ctx);
  void on_handshake_timeout();
  void abandon_handshake();  // no TLS after all: close without a word (implicit: no hooks)

  // ---- session_auth.cpp: SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN
  // Where a SASL exchange stands: none (lines are commands), or waiting for the client's
  // response to a 334 (lines go to auth_input, never to dispatch).
  enum class AuthStep : uint8_t { none, plain, login_user, login_password };
  enum class AuthMode : uint8_t { off, optional, required };
  bool auth_usable() const;   // AUTH is a command on this session (listener, an auth plugin)
  bool auth_offered() const;  // ...and may run now (TLS, or auth_plaintext): EHLO lists it
  void auth_input(std::string line);              // one continuation line (wiped after)
  void auth_plain(std::string &decoded);          // a decoded PLAIN message
  void auth_run(std::string user, std::string authzid);  // the password is in auth_->password
  void auth_verdict(const HookResult &r, const std::string &user, const std::string &mech);
  void auth_failure(Reply rep, const std::string &user, const std::string &mech,
                    const std::string &why);
  void auth_abort(int code, const char *enh, const std::string &text);  // ends the exchange
  void auth_forget();  // STARTTLS: the dialogue restarts without the authentication
  void auth_wipe();    // the exchange's secrets

  // ---- session_log.cpp: the accepted-message line (reads the transaction: call before the
  // reset) and the session-end summary.
  void log_accepted(const std::string &plugin, const Reply &reply);
  void log_session_end();
  // Records how the session ends (the first cause wins); plugin: a verdict's plugin closed it.
  void ended(log::EndReason why) {
    if (end_ == log::EndReason::unknown) end_ = why;
  }
  void ended_by_plugin();    // the deciding plugin of the last verdict (verdict_plugin_)
  void refused_by_plugin();  // ...before the greeting: also counted as a refused connection

  const SessionContext &ctx_;
  std::shared_ptr<const Generation> gen_;
  const config::Settings &cfg_;
  std::unique_ptr<Connection> conn_;
  bool sync_check_;
  enum class TlsMode : uint8_t { none, starttls, implicit };
  TlsMode tls_mode_;          // the listener's
  bool require_tls_;          // the listener's: MAIL before TLS gets 530 5.7.0
  bool handshaking_ = false;  // a TLS handshake is under way (the session waits for it)
  std::string id_;
  std::string remote_host_;  // reverse DNS name ("" if none)
  uint64_t dns_query_ = 0;   // the connect-time PTR lookup in flight
  std::unique_ptr<ConnDns> conn_dns_;  // plugins' lookups (dns_query_conn): closed by release()
  State state_ = State::greeting;

  std::string in_;  // received, not yet consumed
  size_t in_off_ = 0;
  bool eof_ = false;
  bool processing_ = false;             // inside process(): completions must not re-enter it
  smtp::NewlinePolicy newline_policy_;  // from [bare_newline] policy and normalize_networks
  smtp::LineReader lines_;
  std::unique_ptr<smtp::DataReader> data_;  // from the 354 to the end of the message
  std::string out_;  // replies not yet handed to the connection

  ChainRun *chain_ = nullptr;  // a suspended hook chain
  bool busy_ = false;          // a command's hooks or the end of DATA are in progress
  bool waiting_disk_ = false;  // DATA: the spool is catching up
  bool sync_recheck_ = false;  // the command being dispatched must end its group
  std::function<void(int)> input_watch_;
  std::unique_ptr<Timer> input_watch_timer_;

  std::optional<std::string> helo_;
  bool esmtp_ = false;
  bool relay_client_ = false;
  AuthMode auth_mode_;    // the listener's
  bool auth_plaintext_;   // the listener's: AUTH before TLS
  bool auth_relay_;       // the listener's: AUTH success makes a relay client
  AuthStep auth_step_ = AuthStep::none;
  bool auth_delaying_ = false;   // a failed AUTH's reply waits for auth_->timer
  bool auth_set_relay_ = false;  // relay_client_ came from AUTH (STARTTLS takes it back)
  struct AuthState {             // made by the first AUTH command: an idle session has none
    std::string try_mech;        // the mechanism of the exchange in progress
    std::string login_user;      // LOGIN: the user, until the password comes
    std::string password;        // lent to the auth hook; wiped after its verdict
    std::optional<std::string> user;  // after a successful AUTH
    std::string mech;                 // ...and its mechanism
    uint32_t failures = 0;            // failed AUTH attempts in this session
    std::unique_ptr<Timer> timer;     // the failure delay (made on first use)
  };
  std::unique_ptr<AuthState> auth_;
  bool authenticated() const { return auth_ && auth_->user; }
  Notes conn_notes_;
  Notes txn_notes_;
  Transaction txn_;
  uint32_t errors_ = 0;
  uint32_t junk_ = 0;  // junk commands since the session began or the last accepted message
  bool shutting_down_ = false;
  bool disconnected_ = false;  // the disconnect hook ran (or never will: refused)
  // greet() began (pre-connection ran): only then does disconnect fire. On an implicit-TLS
  // listener greet() waits for the handshake, so a handshake that times out, fails or meets
  // EOF (or a shutdown) ends a session whose plugins never saw it.
  bool hooks_started_ = false;

  // header() results lent to the current hook (a list: stable addresses, nothing allocated
  // while empty, which is what an idle session pays)
  mutable std::list<std::string> header_values_;
  Timer idle_timer_;  // the command deadline, or the DATA deadline (data_clock_)
  DataClock data_clock_;
  log::SessionCounters counters_;  // commands and accepted messages, for log_session_end()
  log::EndReason end_ = log::EndReason::unknown;
  std::string end_plugin_;      // end_ == plugin: whose verdict closed the session
  std::string verdict_plugin_;  // the plugin of the last verdict other than OK/DECLINED
};

}  // namespace uvs
