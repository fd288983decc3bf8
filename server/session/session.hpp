// session/session.hpp: one SMTP connection: its socket, input framing, the command state machine,
// the transaction, DATA streaming to the spool, replies in order, and its life cycle (greeting to
// graceful close). One loop thread owns it; hooks run through ChainRun and may suspend it.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <uv.h>

#include "hooks/call.hpp"
#include "hooks/replies.hpp"
#include "hooks/runner.hpp"
#include "log/events.hpp"
#include "config/generation.hpp"
#include "session/hop_counter.hpp"
#include "smtp/command.hpp"
#include "smtp/data_reader.hpp"
#include "smtp/line_reader.hpp"
#include "spool/spool_file.hpp"
#include "util/timer.hpp"

namespace uvs {

class Server;

struct Transaction {
  bool open = false;      // MAIL accepted
  std::string id;         // queue id, made at MAIL
  std::string mail_from;  // "" for <>
  std::vector<smtp::EsmtpParam> mail_params;
  bool smtputf8 = false;
  bool body_8bit = false;
  std::vector<std::string> rcpts;
  std::unique_ptr<SpoolFile> spool;
  std::string headers;  // the header section as stored (bounded), for header_get
  bool headers_truncated = false;
  HopCounter hops;         // Received: fields of the whole header section, not just `headers`
  Reply deferred_failure;  // answer at the end of DATA instead of queueing
};

class Session final : public CallHost {
 public:
  Session(Server &server, std::shared_ptr<const Generation> gen, bool sync_check, uint64_t serial);
  ~Session() override;
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Takes the accepted connection from the listener; returns 0 or -errno.
  int accept_from(uv_stream_t *listener);
  // Closes at once with this reply (limits hit before any hook ran).
  void refuse(const Reply &r);
  // Runs pre-connection and connect, then greets.
  void start();
  void after_reverse_lookup();
  // SIGTERM: idle sessions get 421 now, busy ones after their current transaction step.
  void shutdown_notice();
  // Grace period over: 421 and close whatever the state.
  void force_close();

  // CallHost
  const std::string &session_id() const override { return id_; }
  const std::string &peer_ip() const override { return peer_ip_; }
  int peer_port() const override { return peer_port_; }
  const std::string &local_ip() const override { return local_ip_; }
  int local_port() const override { return local_port_; }
  const std::string *helo() const override { return helo_ ? &*helo_ : nullptr; }
  bool esmtp() const override { return esmtp_; }
  const std::string *mail_from() const override { return txn_.open ? &txn_.mail_from : nullptr; }
  const std::vector<std::string> &rcpts() const override { return txn_.rcpts; }
  Notes &notes(int scope) override {
    return scope == UVS_NOTE_CONNECTION ? conn_notes_ : txn_notes_;
  }
  bool relay_client() const override { return relay_client_; }
  void set_relay_client(bool on) override { relay_client_ = on; }
  int64_t message_size() const override;
  int64_t message_read(int64_t offset, void *buf, size_t len) const override;
  const std::string *header(std::string_view name, int i) const override;
  int message_fd() const override;  // may move an in-memory message into a memfd
  int watch_input(std::function<void(int)> cb) override;
  void unwatch_input() override;
  int send_continuation(std::string_view text) override;
  std::shared_ptr<const void> keepalive() const override { return gen_; }
  const std::string *queue_id() const override { return txn_.id.empty() ? nullptr : &txn_.id; }
  const std::string *remote_host() const override {
    return remote_host_.empty() ? nullptr : &remote_host_;
  }

 private:
  enum class Phase { greeting, command, data, closing };

  // input
  static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
  static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
  void handle_read(ssize_t n, const uv_buf_t *buf);
  void update_reading();
  void process();
  void process_command_input();
  void process_data_input();
  bool input_pending();  // bytes after the current command (buffered or in the kernel)
  // The bare CR/LF policy now: the listener's and networks' choice, or normalize for a relay
  // client ([bare_newline] normalize_relay_clients).
  smtp::NewlinePolicy newline_policy() const;
  // RFC 2920: more input behind a command that must end its group: 554 5.5.0 and close.
  bool sync_violation(const std::string &what);

  // commands
  void dispatch(std::string line);
  void run_command(const smtp::CommandLine &cmd, const std::string &line);
  void cmd_helo(const std::string &verb, const std::string &arg);
  void cmd_mail(const std::string &arg);
  void cmd_rcpt(const std::string &arg);
  void cmd_data();
  void cmd_rset();
  void cmd_simple(uvs_hook hook, const std::string &arg);
  void cmd_quit();
  void cmd_unknown(const std::string &verb, const std::string &arg, const std::string &line);
  std::string ehlo_lines_head() const;
  bool junk_command();  // counts a command that moves no mail; true if the limit closed

  // DATA
  void begin_data();
  void end_of_data();
  void after_spool_flush(int err);
  void run_data_post();
  void run_queue();
  std::string received_header() const;

  // hooks
  void run_hook(uvs_hook hook, HookArgs args, HookDone done);
  void notify(uvs_hook hook);
  // Sends d's reply / handles close and reset; returns true if the session continues normally.
  bool apply(const Decision &d);
  void reset_transaction();

  // output and life cycle
  void send(const Reply &r);
  void send_raw(std::string wire);
  void flush();
  static void on_write(uv_write_t *req, int status);
  void reply_error(int code, const char *enh, const std::string &text);
  void reply_store_failure(int err);  // 452 4.3.1 for a full disk, else 451 4.3.0
  void count_error(int code);
  void close_after(const Reply &r);  // reply, then close gracefully
  void begin_close();
  void finish_close();  // writes done: shutdown, linger, close
  void hard_close();
  void arm_idle_timer();  // command: a fresh deadline; DATA: runs the DATA clock (below)
  void on_idle_timeout();
  // The DATA deadline runs only while the session waits for the client: it stops while a hook
  // or the spool holds the session, and each read adds bytes / min_data_rate (capped).
  void sync_data_clock();
  void pause_data_clock();
  void resume_data_clock();
  void credit_data_read(size_t n);
  void run_disconnect();

  // session_log.cpp: the accepted-message line (reads the transaction: call before the reset)
  // and the session-end summary.
  void log_accepted(const std::string &plugin, const Reply &reply);
  void log_session_end();

  Server &server_;
  std::shared_ptr<const Generation> gen_;
  const config::Settings &cfg_;
  bool sync_check_;
  uv_tcp_t tcp_;
  std::string id_;
  std::string peer_ip_, local_ip_;
  std::string remote_host_;  // reverse DNS name ("" if none)
  uint64_t dns_query_ = 0;   // the connect-time PTR lookup in flight
  int peer_port_ = 0, local_port_ = 0;
  Phase phase_ = Phase::greeting;

  std::string in_;  // received, not yet consumed
  size_t in_off_ = 0;
  bool reading_ = false;
  bool eof_ = false;
  bool processing_ = false;
  smtp::NewlinePolicy newline_policy_;  // from [bare_newline] policy and normalize_networks
  smtp::LineReader lines_;
  std::optional<smtp::DataReader> data_;

  std::string out_;  // replies not yet handed to the socket
  size_t writes_in_flight_ = 0;
  size_t write_bytes_in_flight_ = 0;

  ChainRun *chain_ = nullptr;  // a suspended hook chain
  bool busy_ = false;          // a command's hooks or the end of DATA are in progress
  std::function<void(int)> input_watch_;
  std::unique_ptr<Timer> input_watch_timer_;

  std::optional<std::string> helo_;
  bool esmtp_ = false;
  bool relay_client_ = false;
  Notes conn_notes_;
  Notes txn_notes_;
  Transaction txn_;
  uint32_t errors_ = 0;
  uint32_t junk_ = 0;  // junk commands since the session began or the last accepted message
  bool shutting_down_ = false;
  bool disconnected_ = false;
  bool closing_after_write_ = false;
  bool handle_closed_ = false;
  bool write_shut_ = false;  // finish_close() started the shutdown
  bool waiting_disk_ = false;
  bool sync_recheck_ = false;  // the command being dispatched must end its group

  Timer idle_timer_;                    // the command deadline, or the DATA deadline
  bool data_clock_ = false;             // DATA: the deadline is running (idle_timer_ armed for it)
  double data_deadline_ = 0;            // DATA, clock running: loop time (ms) when it runs out
  double data_left_ = 0;                // DATA, clock stopped: ms left
  std::unique_ptr<Timer> close_timer_;  // closing: bounds the last write, then the linger
  uv_shutdown_t shutdown_req_;
  log::SessionCounters counters_;  // commands and accepted messages, for log_session_end()
};

}  // namespace uvs
