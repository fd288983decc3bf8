// sendmail/main.cpp: uvsmtpd-sendmail: reads a message on standard input and submits it over
// SMTP to the local uvsmtpd, with sendmail(1)'s options and sysexits.h exit codes. Every
// recipient must be accepted or nothing is sent (there is no local queue to bounce from).
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <pwd.h>
#include <string>
#include <sysexits.h>
#include <unistd.h>
#include <vector>

#include "addresses.hpp"
#include "message.hpp"
#include "options.hpp"
#include "server_config.hpp"
#include "smtp_client.hpp"
#include "util/self_exe.hpp"
#include "uvs_build_config.h"

namespace {

constexpr int kTimeout = 300;      // seconds for the greeting and each reply (RFC 5321 4.5.3.2)
constexpr int kDataTimeout = 600;  // for the reply to the final "." (RFC 5321 4.5.3.2.6)

int fail(int code, const std::string &msg) {
  fprintf(stderr, "uvsmtpd-sendmail: %s\n", msg.c_str());
  return code;
}

// The exit code for a refusal: 4xx -> EX_TEMPFAIL, 5xx -> the given permanent code.
int refusal(const sm::Reply &r, int permanent) {
  return r.code >= 500 ? permanent : EX_TEMPFAIL;
}

std::string login_name() {
  if (const passwd *pw = getpwuid(getuid())) return pw->pw_name;
  if (const char *l = getenv("LOGNAME")) return l;
  if (const char *u = getenv("USER")) return u;
  return "uid" + std::to_string(getuid());
}

std::string system_hostname() {
  char h[HOST_NAME_MAX + 1] = {0};
  if (gethostname(h, sizeof h - 1) != 0 || !h[0]) return "localhost";
  return h;
}

}  // namespace

int main(int argc, char **argv) {
  sm::Options opt;
  std::string err;
  if (int rc = sm::parse_options(argc, argv, opt, err)) {
    fprintf(stderr, "uvsmtpd-sendmail: %s\n%s", err.c_str(), sm::kUsage);
    return rc;
  }
  if (opt.help) {
    fputs(sm::kUsage, stdout);
    return 0;
  }

  // Which uvsmtpd.toml: -C, else the default config dir (./conf for the build tree's binary).
  sm::ServerConfig cfg;
  std::string config = opt.config;
  if (config.empty())
    config = uvs::self_exe_is(UVS_BUILD_SENDMAIL_EXE) ? "conf" : UVS_INSTALL_CONFIG_DIR;
  if (int rc = sm::read_server_config(config, !opt.config.empty(), cfg, err)) return fail(rc, err);
  const std::string domain = cfg.hostname.empty() ? system_hostname() : cfg.hostname;

  // Where to submit: -S, $UVSMTPD_SENDMAIL_SERVER, the config's first listener, 127.0.0.1:25.
  std::string where = opt.server;
  const char *env = getenv("UVSMTPD_SENDMAIL_SERVER");
  if (where.empty() && env && *env) where = env;
  if (where.empty()) where = cfg.found ? cfg.listen : "127.0.0.1:25";
  sm::Target target;
  if (!sm::parse_target(where, target))
    return fail(opt.server.empty() && !(env && *env) ? EX_CONFIG : EX_USAGE,
                "bad server address '" + where + "' (host:port or [IPv6]:port)");

  // The envelope sender.
  std::string sender;
  if (opt.sender_set) {
    sender = opt.sender;
    if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>')
      sender = sender.substr(1, sender.size() - 2);
    if (!sender.empty()) sender = sm::qualify(sender, domain);
  } else {
    sender = login_name() + "@" + domain;
  }
  if (!sender.empty() && !sm::address_ok(sender))
    return fail(EX_USAGE, "bad sender address '" + sender + "'");

  // The message.
  std::string raw;
  if (!sm::read_message(0, opt.dot_ends, raw, err)) return fail(EX_IOERR, err);
  std::string msg = sm::to_crlf(raw);
  raw.clear();

  // Recipients: the arguments, and with -t the To:, Cc: and Bcc: fields.
  std::vector<std::string> rcpts;
  auto add = [&](const std::string &list) -> bool {
    if (list.find_first_of("\r\n") != std::string::npos) {
      err = "bad recipient address '" + list.substr(0, list.find_first_of("\r\n")) + "...'";
      return false;
    }
    for (auto &a : sm::parse_address_list(list)) {
      std::string q = sm::qualify(a, domain);
      if (!sm::address_ok(q)) {
        err = "bad recipient address '" + q + "'";
        return false;
      }
      bool dup = false;
      for (auto &r : rcpts) dup = dup || r == q;
      if (!dup) rcpts.push_back(q);
    }
    return true;
  };
  for (auto &arg : opt.recipients)
    if (!add(arg)) return fail(EX_USAGE, err);
  if (opt.from_headers)
    for (auto &f : sm::header_fields(msg))
      if (f.name == "to" || f.name == "cc" || f.name == "bcc")
        if (!add(f.value)) return fail(EX_DATAERR, err);
  if (rcpts.empty())
    return opt.from_headers
               ? fail(EX_DATAERR,
                      "no recipients: none given and no To:, Cc: or Bcc: in the message")
               : fail(EX_USAGE, "no recipients given (use -t to read them from the message)");
  sm::remove_fields(msg, "bcc");  // blind copies stay blind

  // The SMTP dialogue.
  sm::SmtpClient c;
  c.verbose = opt.verbose;
  sm::Reply r;
  auto lost = [&](const std::string &e) {
    return fail(c.protocol_error() ? EX_PROTOCOL : EX_TEMPFAIL, target.shown() + ": " + e);
  };
  if (!c.connect(target, kTimeout, err)) return fail(EX_TEMPFAIL, err);
  if (!c.reply(r, kTimeout, err)) return lost(err);
  if (r.code != 220)
    return fail(refusal(r, EX_UNAVAILABLE),
                target.shown() + " refused the connection: " + r.text());
  if (!c.command("EHLO " + domain, r, kTimeout, err)) return lost(err);
  bool esmtp = r.code == 250;
  if (!esmtp && r.code >= 500 && r.code != 554 && !c.command("HELO " + domain, r, kTimeout, err))
    return lost(err);
  if (r.code != 250) return fail(refusal(r, EX_UNAVAILABLE), "EHLO refused: " + r.text());
  bool has_8bitmime = false;
  if (esmtp)
    for (size_t i = 1; i < r.lines.size(); ++i) has_8bitmime |= r.lines[i] == "8BITMIME";
  bool eight_bit = false;
  for (unsigned char ch : msg) eight_bit |= ch >= 0x80;

  std::string mail = "MAIL FROM:<" + sender + ">";
  if (eight_bit && has_8bitmime) mail += " BODY=8BITMIME";
  if (!c.command(mail, r, kTimeout, err)) return lost(err);
  if (r.code != 250)
    return fail(refusal(r, EX_DATAERR), "sender <" + sender + "> refused: " + r.text());

  int rc = 0;
  for (auto &rcpt : rcpts) {
    if (!c.command("RCPT TO:<" + rcpt + ">", r, kTimeout, err)) return lost(err);
    if (r.code == 250 || r.code == 251) continue;
    // One line per refused recipient; every recipient must be accepted or nothing is sent.
    fail(0, "recipient <" + rcpt + "> refused: " + r.text() + " (message not sent)");
    int code = refusal(r, EX_NOUSER);
    if (rc == 0 || code == EX_NOUSER) rc = code;
  }
  if (rc != 0) {
    c.command("QUIT", r, kTimeout, err);
    return rc;
  }
  if (!c.command("DATA", r, kTimeout, err)) return lost(err);
  if (r.code != 354) return fail(refusal(r, EX_UNAVAILABLE), "DATA refused: " + r.text());
  if (!c.send(sm::dot_stuff(msg) + ".\r\n", kDataTimeout, err)) return lost(err);
  if (c.verbose) fprintf(stderr, ">>> (message, %zu bytes)\n>>> .\n", msg.size());
  if (!c.reply(r, kDataTimeout, err)) return lost(err);
  if (r.code != 250) return fail(refusal(r, EX_DATAERR), "message refused: " + r.text());
  c.command("QUIT", r, kTimeout, err);
  return 0;
}
