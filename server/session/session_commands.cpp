// session/session_commands.cpp: the SMTP commands: one table (verb, hook, whether it ends its
// pipelining group, where in the dialogue it is allowed, handler), dispatch (RFC 2920 order and
// synchronisation), and the handlers. Replies for verdicts come from hooks/replies (the (hook,
// verdict) table); the texts here are the protocol's own.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log/log.hpp"
#include "metrics/registry.hpp"
#include "session/session.hpp"
#include "smtp/sasl.hpp"
#include "uvs_build_config.h"

namespace uvs {

namespace {
constexpr uvs_hook kNoHook = static_cast<uvs_hook>(0);  // RSET runs no hook of its own

std::string bracket(const std::string &addr) {
  return "<" + addr + ">";
}

// The hook arguments of MAIL and RCPT: the command's argument, the address, and its ESMTP
// parameters (kept alive by the caller's shared_ptr until the hook is done).
HookArgs path_args(const std::string &arg, const std::string &addr,
                   const std::shared_ptr<std::vector<smtp::EsmtpParam>> &params) {
  HookArgs a;
  a.arg = arg;
  a.address = addr;
  a.params = params.get();
  return a;
}
}  // namespace

struct Session::CommandSpec {
  const char *verb;  // lower case; nullptr: an unrecognized command
  uvs_hook hook;     // the hook it runs (kNoHook: none)
  // RFC 2920 3.1: MAIL, RCPT and RSET may stand anywhere in a pipelining group; every other
  // command must end it (after HELO, every command does: no PIPELINING was offered).
  bool ends_group;
  unsigned allowed;       // Dialogue bits where it may run; elsewhere 503 5.5.1 with:
  const char *too_early;  // ...this text before the dialogue got there
  const char *too_late;   // ...this text after it
  void (Session::*handler)(const Command &);
};

// The order matters only for reading; lookup is by verb. DATA is allowed anywhere because its
// hook decides first (earlytalker's 554 at DATA); its MAIL/RCPT checks follow the hook.
const Session::CommandSpec Session::kCommands[] = {
    {"ehlo", UVS_HOOK_EHLO, true, anywhere, nullptr, nullptr, &Session::cmd_helo},
    {"helo", UVS_HOOK_HELO, true, anywhere, nullptr, nullptr, &Session::cmd_helo},
    {"mail", UVS_HOOK_MAIL, false, greeted, "Error: send HELO/EHLO first",
     "Error: nested MAIL command", &Session::cmd_mail},
    {"rcpt", UVS_HOOK_RCPT, false, in_mail, "Use MAIL before RCPT", nullptr, &Session::cmd_rcpt},
    {"data", UVS_HOOK_DATA, true, anywhere, nullptr, nullptr, &Session::cmd_data},
    {"rset", kNoHook, false, anywhere, nullptr, nullptr, &Session::cmd_rset},
    {"noop", UVS_HOOK_NOOP, true, anywhere, nullptr, nullptr, &Session::cmd_simple},
    {"vrfy", UVS_HOOK_VRFY, true, anywhere, nullptr, nullptr, &Session::cmd_simple},
    {"help", UVS_HOOK_HELP, true, anywhere, nullptr, nullptr, &Session::cmd_simple},
    {"quit", UVS_HOOK_QUIT, true, anywhere, nullptr, nullptr, &Session::cmd_quit},
    // RFC 3207: offered in the EHLO reply, accepted once greeted (HELO or EHLO); the handshake
    // resets the dialogue, so a transaction in progress is dropped with it. Where it is not
    // offered it is an unrecognized command (dispatch; session_tls.cpp).
    {"starttls", kNoHook, true, greeted | in_mail, "Error: send EHLO first", nullptr,
     &Session::cmd_starttls},
    // RFC 4954: after EHLO, outside a transaction; it ends its group (the client waits for the
    // 334 or 235). Where AUTH is not usable it is an unrecognized command (dispatch;
    // session_auth.cpp).
    {"auth", UVS_HOOK_AUTH, true, greeted, "Error: send EHLO first",
     "Error: MAIL transaction in progress", &Session::cmd_auth},
};

const Session::CommandSpec Session::kUnknownCommand = {
    nullptr, UVS_HOOK_UNRECOGNIZED_COMMAND, true, anywhere, nullptr,
    nullptr, &Session::cmd_unknown};

const Session::CommandSpec *Session::find_command(const std::string &verb) {
  for (const CommandSpec &c : kCommands)
    if (verb == c.verb) return &c;
  return nullptr;
}

Session::Dialogue Session::dialogue() const {
  if (!helo_) return fresh;
  return txn_.is_open() ? in_mail : greeted;
}

void Session::dispatch(std::string line) {
  arm_idle_timer();  // the deadline for the next command starts now
  smtp::CommandLine cmd = smtp::split_command(line);
  ++metrics::core().commands[counters_.command(cmd.valid_verb ? cmd.verb : "unknown")];
  if (log::enabled(log::debug)) {
    // An AUTH initial response carries credentials: never logged (RFC 4954 is base64, not
    // encryption).
    size_t sp = cmd.verb == "auth" ? cmd.arg.find(' ') : std::string::npos;
    log::format(log::debug, id_, "", "<- %s",
                sp == std::string::npos
                    ? log::printable(line).c_str()
                    : ("AUTH " + log::printable(cmd.arg.substr(0, sp)) + " ****").c_str());
  }
  if (!smtp::valid_command_text(line)) {
    reply_error(500, "5.5.2", "Error: bad UTF-8 syntax or control character in command");
    return;
  }
  const std::string &v = cmd.verb;
  const CommandSpec *found = cmd.valid_verb ? find_command(v) : nullptr;
  // Without TLS on this listener STARTTLS is not a command here (nor advertised).
  if (found && found->handler == &Session::cmd_starttls && !conn_->tls() && !tls_offered())
    found = nullptr;
  // AUTH is a command only where it can be used: the listener allows it and an auth plugin is
  // loaded (else a server without auth plugins answers exactly as before).
  if (found && found->handler == &Session::cmd_auth && !auth_usable()) found = nullptr;
  const CommandSpec &spec = found ? *found : kUnknownCommand;
  bool ends_group = spec.ends_group || (helo_ && !esmtp_);
  if (ends_group && sync_check_ &&
      sync_violation("after " + (v.empty() ? std::string("empty line") : log::printable(v))))
    return;
  sync_recheck_ = sync_check_ && ends_group;  // run_hook checks again before an async reply
  Dialogue now = dialogue();
  if (!(spec.allowed & now)) {
    bool early = now < (spec.allowed & -spec.allowed);  // before the first state allowed
    reply_error(503, "5.5.1", early ? spec.too_early : spec.too_late);
  } else {
    (this->*spec.handler)(Command{spec, cmd.verb, cmd.arg, line});
  }
  sync_recheck_ = false;
  if (v == "auth") {  // an initial response carries credentials: no copy outlives the command
    smtp::wipe(cmd.arg);
    smtp::wipe(line);
  }
}

std::string Session::ehlo_lines_head() const {
  return cfg_.hostname + " Hello " + (remote_host_.empty() ? "" : remote_host_ + " ") + "[" +
         peer_ip() + "]";
}

// Commands that move no mail (Postfix's smtpd_junk_command_limit): past max_junk_commands since
// the last accepted message, 421 and close. Returns true if the session is closing.
bool Session::junk_command() {
  if (cfg_.max_junk_commands == 0 || ++junk_ <= cfg_.max_junk_commands) return false;
  log::format(log::notice, id_, "", "too many commands without mail (%u); closing", junk_);
  ended(log::EndReason::limit);
  close_after(make_reply(421, "4.7.0",
                         cfg_.hostname + " Too many commands without mail; closing connection"));
  return true;
}

void Session::cmd_helo(const Command &c) {
  const std::string &arg = c.arg;
  bool ehlo = c.verb == "ehlo";
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
  uvs_hook hook = c.spec.hook;
  run_hook(hook, std::move(a), [this, hook, ehlo, host](HookResult r) {
    Decision d = decide(hook, r);
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
    if (tls_offered()) rep.lines.push_back("STARTTLS");
    if (auth_offered()) rep.lines.push_back("AUTH PLAIN LOGIN");
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

void Session::cmd_mail(const Command &c) {
  const std::string &arg = c.arg;
  if (require_tls_ && !conn_->tls())
    return reply_error(530, "5.7.0", "Must issue a STARTTLS command first");
  if (auth_mode_ == AuthMode::required && !authenticated())
    return reply_error(530, "5.7.0", "Authentication required");
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
      // RFC 4954 5: AUTH=<> or AUTH=xtext. Accepted from anyone and kept for the plugins
      // (call_param "AUTH"); the core does not trust it for anything.
      if (!prm.value || prm.value->empty())
        return reply_error(501, "5.5.4", "Bad AUTH parameter syntax");
    } else {
      return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
    }
  }
  if (p.path.has_8bit && !smtputf8)
    return reply_error(550, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
  txn_notes_.clear();  // a transaction starts at MAIL: notes set before it do not carry over
  auto params = std::make_shared<std::vector<smtp::EsmtpParam>>(std::move(p.params));
  std::string addr = p.path.address;
  run_hook(UVS_HOOK_MAIL, path_args(arg, addr, params),
           [this, params, addr, smtputf8, body8](HookResult r) {
             Decision d = decide(UVS_HOOK_MAIL, r, bracket(addr));
             if (d.kind != Decision::proceed) return (void)apply(d);
             txn_.open(addr, std::move(*params), smtputf8, body8);
             log::format_txn(log::info, id_, txn_.id(), "%s: from=<%s>", txn_.id().c_str(),
                             log::printable(addr).c_str());
             send(make_reply(250, "2.1.0", bracket(addr) + ", sender OK"));
           });
}

void Session::cmd_rcpt(const Command &c) {
  const std::string &arg = c.arg;
  smtp::PathParse p = smtp::parse_rcpt_arg(arg);
  if (!p.ok) return reply_error(p.code, p.enhanced.c_str(), p.message);
  for (const auto &prm : p.params) {
    if (!esmtp_) return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
    return reply_error(555, "5.5.4", "Unsupported option: " + prm.key);
  }
  if (p.path.has_8bit && !txn_.smtputf8())
    return reply_error(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
  if (txn_.rcpts().size() >= cfg_.max_recipients)
    return reply_error(452, "4.5.3", "Error: too many recipients");
  auto params = std::make_shared<std::vector<smtp::EsmtpParam>>(std::move(p.params));
  std::string addr = p.path.address;
  run_hook(UVS_HOOK_RCPT, path_args(arg, addr, params), [this, params, addr](HookResult r) {
    Decision d = decide(UVS_HOOK_RCPT, r, bracket(addr));
    if (d.kind != Decision::proceed) return (void)apply(d);
    if (!txn_.is_open()) return reply_error(503, "5.5.1", "Use MAIL before RCPT");
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
      if (std::none_of(txn_.rcpts().begin(), txn_.rcpts().end(), dup) &&
          std::none_of(added.begin(), added.end(), dup))
        added.push_back(t);
    }
    if (txn_.rcpts().size() + added.size() > cfg_.max_recipients)
      return reply_error(452, "4.5.3", "Error: too many recipients");
    if (added.empty())
      log::format_txn(log::info, id_, txn_.id(), "%s: to=<%s> duplicate, stored once",
                      txn_.id().c_str(), log::printable(addr).c_str());
    for (std::string &t : added) {
      if (replaced)
        log::format_txn(log::info, id_, txn_.id(), "%s: to=<%s> orig_to=<%s> by %s",
                        txn_.id().c_str(), log::printable(t).c_str(), log::printable(addr).c_str(),
                        r.plugin.c_str());
      else
        log::format_txn(log::info, id_, txn_.id(), "%s: to=<%s>", txn_.id().c_str(),
                        log::printable(t).c_str());
      txn_.add_rcpt(std::move(t));
    }
    send(with_plugin_text(r, 250, "2.1.5", bracket(addr) + ", recipient ok"));
  });
}

void Session::cmd_data(const Command &) {
  run_hook(UVS_HOOK_DATA, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_DATA, r);
    if (d.kind != Decision::proceed) return (void)apply(d);
    if (!txn_.is_open()) return reply_error(503, "5.5.1", "MAIL first");
    if (txn_.rcpts().empty()) return reply_error(503, "5.5.1", "RCPT first");
    if (sync_violation("before 354")) return;
    begin_data();
  });
}

void Session::cmd_rset(const Command &c) {
  // RSET takes no parameters (RFC 5321 4.1.1.5); Postfix answers the same.
  if (!c.arg.empty()) return reply_error(501, "5.5.4", "Syntax: RSET");
  if (junk_command()) return;
  reset_transaction();
  send(make_reply(250, "2.0.0", "OK"));
}

void Session::cmd_simple(const Command &c) {
  uvs_hook hook = c.spec.hook;
  if (junk_command()) return;
  HookArgs a;
  a.arg = c.arg;
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

void Session::cmd_quit(const Command &) {
  run_hook(UVS_HOOK_QUIT, HookArgs{}, [this](HookResult r) {
    Decision d = decide(UVS_HOOK_QUIT, r);
    ended(log::EndReason::quit);
    if (d.kind == Decision::silent) return close_after(d.reply.code / 100 == 2 ? d.reply : Reply{});
    // QUIT is always answered 221 (RFC 5321 4.1.1.10); a plugin may only change the words.
    Reply bye = make_reply(221, "2.0.0", cfg_.hostname + " Service closing transmission channel");
    if (r.has_reply && !r.timed_out && !r.reply.lines.empty()) bye.lines = r.reply.lines;
    close_after(bye);
  });
}

void Session::cmd_unknown(const Command &c) {
  const std::string &verb = c.verb, &line = c.line;
  HookArgs a;
  a.arg = c.arg;
  a.address = verb;
  bool non_smtp = verb == "get" || verb == "post" || verb == "connect" ||
                  (!verb.empty() && verb.back() == ':' && line.find(' ') != std::string::npos);
  run_hook(UVS_HOOK_UNRECOGNIZED_COMMAND, std::move(a), [this, non_smtp](HookResult r) {
    Decision d = decide(UVS_HOOK_UNRECOGNIZED_COMMAND, r);
    if (d.kind != Decision::proceed) return (void)apply(d);
    if (non_smtp) {
      log::format(log::notice, id_, "", "non-SMTP command; closing");
      ended(log::EndReason::protocol);
      return close_after(
          make_reply(221, "2.7.0", "Error: not an SMTP command; closing connection"));
    }
    reply_error(500, "5.5.1", "Unrecognized command");
  });
}

}  // namespace uvs
