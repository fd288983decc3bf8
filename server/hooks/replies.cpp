// hooks/replies.cpp: the data of the (hook, verdict) reply table and how plugin text merges in.
#include "hooks/replies.hpp"

#include <string>

namespace uvs {
namespace {

struct Row {
  int code;
  const char *enh;
  const char *text;
  bool close;
  bool reset;
};

enum Slot { kDeny, kDenySoft, kDenyDisc, kDenySoftDisc, kDeclined, kSlots };

// A row with code 0 means "proceed"; code -1 means "silent".
struct HookRows {
  uvs_hook hook;
  Row rows[kSlots];
};

constexpr Row P{0, "", "", false, false};

const HookRows kTable[] = {
    {UVS_HOOK_PRE_CONNECTION,
     {{550, "5.7.1", "Sorry, service not available for you", true, false},
      {451, "4.7.1", "Sorry, try again later", true, false},
      {550, "5.7.1", "Sorry, service not available for you", true, false},
      {451, "4.7.1", "Sorry, try again later", true, false},
      P}},
    {UVS_HOOK_CONNECT,
     {{550, "5.7.1", "Connection denied", true, false},
      {450, "4.7.1", "Connection temporarily denied", true, false},
      {550, "5.7.1", "Connection denied", true, false},
      {450, "4.7.1", "Connection temporarily denied", true, false},
      P}},
    {UVS_HOOK_HELO,
     {{550, "5.7.1", "Access denied", false, false},
      {450, "4.7.1", "Access temporarily denied", false, false},
      {550, "5.7.1", "Access denied", true, false},
      {450, "4.7.1", "Access temporarily denied", true, false},
      P}},
    {UVS_HOOK_EHLO,
     {{550, "5.7.1", "Access denied", false, false},
      {450, "4.7.1", "Access temporarily denied", false, false},
      {550, "5.7.1", "Access denied", true, false},
      {450, "4.7.1", "Access temporarily denied", true, false},
      P}},
    {UVS_HOOK_MAIL,
     {{550, "5.7.1", "<addr>, denied", false, false},
      {450, "4.7.1", "<addr>, temporarily denied", false, false},
      {550, "5.7.1", "<addr>, denied", true, false},
      {421, "4.7.1", "<addr>, temporarily denied", true, false},
      P}},
    {UVS_HOOK_RCPT,
     {{550, "5.7.1", "relaying denied", false, false},
      {450, "4.7.1", "relaying denied", false, false},
      {550, "5.7.1", "delivery denied", true, false},
      {421, "4.7.1", "relaying denied", true, false},
      {450, "4.7.1", "No plugin decided if relaying is allowed", false, false}}},
    {UVS_HOOK_DATA,
     {{554, "5.7.1", "Message denied", false, true},
      {451, "4.7.1", "Message denied temporarily", false, true},
      {554, "5.7.1", "Message denied", true, true},
      {451, "4.7.1", "Message denied temporarily", true, true},
      P}},
    {UVS_HOOK_DATA_HEADERS_END,
     {P, P,
      {554, "5.7.1", "Message denied", true, true},
      {421, "4.7.1", "Message denied temporarily", true, true},
      P}},
    {UVS_HOOK_DATA_POST,
     {{552, "5.7.1", "Message denied", false, true},
      {452, "4.7.1", "Message denied temporarily", false, true},
      {552, "5.7.1", "Message denied", true, true},
      {452, "4.7.1", "Message denied temporarily", true, true},
      P}},
    {UVS_HOOK_QUEUE,
     {{552, "5.7.1", "Message denied", false, true},
      {452, "4.3.0", "Message denied temporarily", false, true},
      {552, "5.7.1", "Message denied", true, true},
      {452, "4.3.0", "Message denied temporarily", true, true},
      {451, "4.3.0", "Queuing declined or disabled; try again later", false, true}}},
    {UVS_HOOK_VRFY,
     {{554, "5.7.1", "Access Denied", false, true},
      P,
      {554, "5.7.1", "Access Denied", true, true},
      P, P}},
    {UVS_HOOK_NOOP,
     {{500, "5.5.1", "Command refused", false, false},
      P,
      {500, "5.5.1", "Command refused", true, false},
      P, P}},
    {UVS_HOOK_HELP,
     {{500, "5.5.1", "Syntax error, command not recognized", false, false},
      P,
      {500, "5.5.1", "Syntax error, command not recognized", true, false},
      P, P}},
    {UVS_HOOK_UNRECOGNIZED_COMMAND,
     {{500, "5.5.1", "Unrecognized command", false, false},
      P,
      {521, "5.5.1", "Unrecognized command", true, false},
      {421, "4.7.0", "Unrecognized command", true, false},
      P}},
    // RFC 4954 6: 535 5.7.8 bad credentials, 454 4.7.0 temporary failure. Nobody said OK:
    // the credentials are not accepted. (OK is 235 2.7.0 and DONE a failure with the plugin's
    // reply: session_auth.cpp.)
    {UVS_HOOK_AUTH,
     {{535, "5.7.8", "Authentication credentials invalid", false, false},
      {454, "4.7.0", "Temporary authentication failure", false, false},
      {535, "5.7.8", "Authentication credentials invalid", true, false},
      {421, "4.7.0", "Temporary authentication failure", true, false},
      {535, "5.7.8", "Authentication credentials invalid", false, false}}},
};

const HookRows *rows_for(uvs_hook hook) {
  for (const auto &r : kTable)
    if (r.hook == hook) return &r;
  return nullptr;
}

std::string substitute(std::string_view text, std::string_view addr) {
  std::string out(text);
  auto pos = out.find("<addr>");
  if (pos != std::string::npos) out.replace(pos, 6, addr);
  return out;
}

char class_digit(int code) { return static_cast<char>('0' + code / 100); }

}  // namespace

Reply with_plugin_text(const HookResult &r, int code, std::string_view enh, std::string_view text) {
  Reply out = make_reply(code, enh, text);
  if (!r.has_reply) return out;
  if (r.reply.code != 0 && r.reply.code != code) {
    out.code = r.reply.code;
    out.enhanced = std::string(1, class_digit(r.reply.code)) + ".0.0";
  }
  if (!r.reply.enhanced.empty()) out.enhanced = r.reply.enhanced;
  if (!r.reply.lines.empty()) out.lines = r.reply.lines;
  if (!out.enhanced.empty() && out.enhanced[0] != class_digit(out.code))
    out.enhanced[0] = class_digit(out.code);
  return out;
}

Decision decide(uvs_hook hook, const HookResult &r, std::string_view addr) {
  Decision d;
  if (r.timed_out && hook != UVS_HOOK_QUIT && hook != UVS_HOOK_DATA_HEADERS_END) {
    // A plugin that never answered: 451 whatever the hook (the session decides for QUIT,
    // which is always 221, and for data_headers_end, which fails the message at its end).
    d.kind = Decision::replace;
    d.reply = r.reply;
    d.close = hook == UVS_HOOK_PRE_CONNECTION || hook == UVS_HOOK_CONNECT;
    d.reset = hook == UVS_HOOK_DATA || hook == UVS_HOOK_DATA_POST || hook == UVS_HOOK_QUEUE;
    return d;
  }
  if (r.verdict == UVS_DONE) {
    d.kind = Decision::silent;
    if (r.has_reply && r.reply.code != 0) d.reply = r.reply;
    if (hook == UVS_HOOK_QUIT) d.close = true;
    if (hook == UVS_HOOK_QUEUE || hook == UVS_HOOK_DATA_POST) d.reset = true;
    return d;
  }
  const HookRows *rows = rows_for(hook);
  if (!rows) return d;  // proceed
  Slot slot;
  switch (r.verdict) {
    case UVS_DENY: slot = kDeny; break;
    case UVS_DENYSOFT: slot = kDenySoft; break;
    case UVS_DENY_DISCONNECT: slot = kDenyDisc; break;
    case UVS_DENYSOFT_DISCONNECT: slot = kDenySoftDisc; break;
    case UVS_DECLINED: slot = kDeclined; break;
    default: return d;  // OK: proceed
  }
  const Row &row = rows->rows[slot];
  if (row.code == 0) return d;
  d.kind = Decision::replace;
  d.close = row.close;
  d.reset = row.reset;
  d.reply = with_plugin_text(r, row.code, row.enh, substitute(row.text, addr));
  return d;
}

}  // namespace uvs
