// session/session_auth.cpp: SMTP AUTH (RFC 4954) in the session: the AUTH command, the SASL
// exchange of PLAIN (RFC 4616) and LOGIN (continuation lines read here, never dispatched as
// commands), the auth hook and its verdicts, the brute-force limits (per-session failures with
// a growing delay on a timer, the per-IP lockout in AuthLockout), and forgetting AUTH at
// STARTTLS. Secrets (the password, decoded and base64 lines) are wiped as soon as the verdict
// is in and are never logged. docs/auth.md describes the behaviour.
#include <algorithm>
#include <cmath>

#include "log/log.hpp"
#include "metrics/registry.hpp"
#include "session/auth_lockout.hpp"
#include "session/session.hpp"
#include "smtp/sasl.hpp"

namespace uvs {

namespace {
constexpr double kMaxFailureDelay = 8;  // seconds: the cap of base * 2^(n-1)

const char *const kUsernameChallenge = "VXNlcm5hbWU6";  // base64("Username:")
const char *const kPasswordChallenge = "UGFzc3dvcmQ6";  // base64("Password:")

// Wipes a string when it goes out of scope (every way out of a function).
struct WipeOnExit {
  std::string &s;
  ~WipeOnExit() { smtp::wipe(s); }
};
}  // namespace

bool Session::auth_usable() const {
  return auth_mode_ != AuthMode::off && !gen_->plugins->table.by_hook[UVS_HOOK_AUTH].empty();
}

bool Session::auth_offered() const {
  return auth_usable() && (conn_->tls() || auth_plaintext_);
}

void Session::auth_wipe() {
  if (!auth_) return;
  smtp::wipe(auth_->password);
  smtp::wipe(auth_->login_user);
}

void Session::auth_abort(int code, const char *enh, const std::string &text) {
  auth_step_ = AuthStep::none;
  auth_wipe();
  reply_error(code, enh, text);
}

void Session::auth_forget() {
  auth_step_ = AuthStep::none;
  if (!auth_) return;
  auth_wipe();
  if (auth_->user)
    log::format(log::info, id_, "", "auth: user=<%s> forgotten at STARTTLS",
                log::printable(*auth_->user).c_str());
  auth_->user.reset();
  auth_->mech.clear();
  if (auth_set_relay_) relay_client_ = false;
  auth_set_relay_ = false;
}

void Session::cmd_auth(const Command &c) {
  // dispatch() sends AUTH here only where it is usable (else it is an unrecognized command)
  // and only once greeted, outside a transaction (the command table's 503s).
  if (!auth_) auth_ = std::make_unique<AuthState>();
  if (auth_->user) return reply_error(503, "5.5.1", "Already authenticated");
  if (!esmtp_) return reply_error(503, "5.5.1", "Error: send EHLO first");
  if (!conn_->tls() && !auth_plaintext_)
    return reply_error(538, "5.7.11", "Encryption required for requested authentication mechanism");
  const std::string &arg = c.arg;
  size_t sp = arg.find(' ');
  std::string mech = arg.substr(0, sp);
  std::string initial = sp == std::string::npos ? std::string() : arg.substr(sp + 1);
  WipeOnExit wipe_initial{initial};
  if (mech.empty() ||
      (sp != std::string::npos && (initial.empty() || initial.find(' ') != std::string::npos)))
    return reply_error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
  std::transform(mech.begin(), mech.end(), mech.begin(), ::toupper);
  if (mech != "PLAIN" && mech != "LOGIN")
    return reply_error(504, "5.5.4", "Unrecognized authentication type");
  if (ctx_.auth_lockout &&
      ctx_.auth_lockout->locked(peer_ip(), uv_now(ctx_.loop), cfg_.auth_lockout_failures,
                                static_cast<uint64_t>(cfg_.auth_lockout_window * 1000))) {
    log::format(log::notice, id_, "", "auth: client %s is locked out (too many failures)",
                peer_ip().c_str());
    return reply_error(454, "4.7.0", "Too many authentication failures, try again later");
  }
  auth_->try_mech = mech;
  if (sp == std::string::npos) {  // no initial response: ask for it
    auth_step_ = mech == "PLAIN" ? AuthStep::plain : AuthStep::login_user;
    send(make_reply(334, "", mech == "PLAIN" ? "" : kUsernameChallenge));
    return;
  }
  std::string decoded;
  WipeOnExit wipe_decoded{decoded};
  // RFC 4954 4: "=" is an empty initial response.
  if (initial != "=" && !smtp::base64_decode(initial, decoded))
    return reply_error(501, "5.5.2", "Invalid base64 data");
  if (mech == "PLAIN") return auth_plain(decoded);
  // LOGIN with an initial response (not in any RFC, but common): it is the user name.
  if (!smtp::valid_sasl_user(decoded))
    return reply_error(501, "5.5.2", "Malformed authentication data");
  auth_->login_user = decoded;
  auth_step_ = AuthStep::login_password;
  send(make_reply(334, "", kPasswordChallenge));
}

void Session::auth_input(std::string line) {
  WipeOnExit wipe_line{line};
  if (log::enabled(log::debug)) log::format(log::debug, id_, "", "<- (AUTH response, not logged)");
  // RFC 4954 4: the client waits for each 334 before it answers; more input behind a response
  // is a synchronisation violation like any other (RFC 2920).
  if (sync_violation("after an AUTH response")) return;
  if (line == "*") return auth_abort(501, "5.0.0", "Authentication cancelled");
  std::string decoded;
  WipeOnExit wipe_decoded{decoded};
  if (!smtp::base64_decode(line, decoded)) return auth_abort(501, "5.5.2", "Invalid base64 data");
  switch (auth_step_) {
    case AuthStep::plain:
      auth_step_ = AuthStep::none;
      return auth_plain(decoded);
    case AuthStep::login_user:
      if (!smtp::valid_sasl_user(decoded))
        return auth_abort(501, "5.5.2", "Malformed authentication data");
      auth_->login_user = decoded;
      auth_step_ = AuthStep::login_password;
      return send(make_reply(334, "", kPasswordChallenge));
    case AuthStep::login_password: {
      auth_step_ = AuthStep::none;
      if (decoded.empty()) return auth_abort(501, "5.5.2", "Malformed authentication data");
      std::string user = auth_->login_user;
      smtp::wipe(auth_->login_user);
      auth_->password.assign(decoded);  // a copy (decoded is wiped on return), no temporary
      return auth_run(std::move(user), "");
    }
    case AuthStep::none:
      return;
  }
}

void Session::auth_plain(std::string &decoded) {
  auth_step_ = AuthStep::none;
  smtp::PlainMessage m;
  bool ok = smtp::parse_plain(decoded, m) && smtp::valid_sasl_user(m.authcid) &&
            (m.authzid.empty() || smtp::valid_sasl_user(m.authzid));
  if (!ok) {
    smtp::wipe(m);
    return auth_abort(501, "5.5.2", "Malformed authentication data");
  }
  auth_->password.assign(m.passwd);  // m is wiped below
  std::string authzid = m.authzid == m.authcid ? std::string() : m.authzid;
  std::string user = m.authcid;
  smtp::wipe(m);
  auth_run(std::move(user), std::move(authzid));
}

void Session::auth_run(std::string user, std::string authzid) {
  auth_step_ = AuthStep::none;
  auto params = std::make_shared<std::vector<smtp::EsmtpParam>>();
  if (!authzid.empty()) params->push_back(smtp::EsmtpParam{"AUTHZID", authzid});
  std::string mech = auth_->try_mech;
  HookArgs a;
  a.arg = mech;
  a.address = user;
  a.params = params.get();
  a.password = auth_->password.c_str();  // stable: auth_->password is not touched until the verdict
  run_hook(UVS_HOOK_AUTH, std::move(a), [this, params, user, mech](HookResult r) {
    smtp::wipe(auth_->password);
    auth_verdict(r, user, mech);
  });
}

void Session::auth_verdict(const HookResult &r, const std::string &user, const std::string &mech) {
  const std::string who = "auth: user=<" + log::printable(user) + "> mechanism=" + mech;
  std::string by = r.plugin.empty() ? std::string() : " by " + r.plugin;
  if (r.timed_out) {  // 451 4.3.0: temporary, not a brute-force failure
    log::format(log::notice, id_, "", "%s failed (plugin timeout%s)", who.c_str(), by.c_str());
    ++metrics::core().auth_tempfail;
    return (void)apply(decide(UVS_HOOK_AUTH, r));
  }
  if (r.verdict == UVS_OK) {
    auth_->user = user;
    auth_->mech = mech;
    if (auth_relay_ && !relay_client_) {
      relay_client_ = true;
      auth_set_relay_ = true;
    }
    log::format(log::info, id_, "", "%s ok%s", who.c_str(), by.c_str());
    ++metrics::core().auth_success;
    return send(make_reply(235, "2.7.0", "Authentication successful"));
  }
  Decision d = decide(UVS_HOOK_AUTH, r);
  switch (r.verdict) {
    case UVS_DENYSOFT:
    case UVS_DENYSOFT_DISCONNECT:
      log::format(log::notice, id_, "", "%s failed (temporary failure%s)", who.c_str(), by.c_str());
      ++metrics::core().auth_tempfail;
      return (void)apply(d);
    case UVS_DENY_DISCONNECT:
      if (ctx_.auth_lockout)
        ctx_.auth_lockout->record_failure(peer_ip(), uv_now(ctx_.loop),
                                          static_cast<uint64_t>(cfg_.auth_lockout_window * 1000));
      ++auth_->failures;
      ++metrics::core().auth_failure;
      log::format(log::notice, id_, "", "%s failed (denied%s) client=%s", who.c_str(), by.c_str(),
                  peer_ip().c_str());
      return (void)apply(d);
    case UVS_DONE: {
      // The plugin's own reply, but always as a failure: a DONE cannot authenticate.
      Reply rep = d.reply;
      if (rep.empty() || rep.code < 400)
        rep = make_reply(535, "5.7.8", "Authentication credentials invalid");
      return auth_failure(rep, user, mech, "denied" + by);
    }
    case UVS_DENY:
      return auth_failure(d.reply, user, mech, "denied" + by);
    default:  // DECLINED by every plugin
      return auth_failure(d.reply, user, mech, "no plugin accepted the credentials");
  }
}

void Session::auth_failure(Reply rep, const std::string &user, const std::string &mech,
                           const std::string &why) {
  ++auth_->failures;
  ++metrics::core().auth_failure;
  if (ctx_.auth_lockout)
    ctx_.auth_lockout->record_failure(peer_ip(), uv_now(ctx_.loop),
                                      static_cast<uint64_t>(cfg_.auth_lockout_window * 1000));
  log::format(log::notice, id_, "", "auth: user=<%s> mechanism=%s failed (%s) client=%s",
              log::printable(user).c_str(), mech.c_str(), why.c_str(), peer_ip().c_str());
  bool last = cfg_.auth_max_failures != 0 && auth_->failures >= cfg_.auth_max_failures;
  if (last) {
    log::format(log::notice, id_, "", "too many authentication failures (%u); closing",
                auth_->failures);
    ended(log::EndReason::limit);
    rep = make_reply(421, "4.7.0", cfg_.hostname + " Too many authentication failures");
  }
  // The n-th failure is answered after base * 2^(n-1) seconds (at most 8): on a timer, so the
  // loop serves everyone else meanwhile; the session reads nothing until the reply is out.
  double delay = std::min(
      kMaxFailureDelay, cfg_.auth_failure_delay *
                            std::ldexp(1.0, static_cast<int>(std::min(auth_->failures, 16u)) - 1));
  auto answer = [this, rep, last] {
    if (last) return close_after(rep);
    send(rep);
  };
  if (delay <= 0) return answer();
  if (!auth_->timer) auth_->timer = std::make_unique<Timer>(ctx_.loop);
  auth_delaying_ = true;
  update_reading();
  auth_->timer->start(static_cast<uint64_t>(delay * 1000), [this, answer] {
    auth_delaying_ = false;
    if (ending()) return;
    answer();
    if (ending()) return;
    arm_idle_timer();
    process();
  });
}

}  // namespace uvs
