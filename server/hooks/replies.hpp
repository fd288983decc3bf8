// hooks/replies.hpp: the (hook, verdict) -> reply table: qpsmtpd's codes and default texts,
// with its known bugs fixed (a DENY without text gets the default text, never silence).
// docs/hooks.md is this table in prose; tests/integration check every row.
#pragma once
#include <string>
#include <string_view>

#include "hooks/reply.hpp"
#include "hooks/runner.hpp"

namespace uvs {

struct Decision {
  enum Kind {
    proceed,  // the core does its normal thing for the command (250, 354, 220, ...)
    replace,  // send `reply` instead of the normal answer
    silent,   // the plugin answered (DONE): send only the plugin's own reply, if it set one
  } kind = proceed;
  Reply reply;
  bool close = false;  // close the connection after the reply
  bool reset = false;  // reset the transaction
};

// addr is substituted for "<addr>" in default texts (e.g. "<a@b.example>, denied").
Decision decide(uvs_hook hook, const HookResult &r, std::string_view addr = "");

// The reply for a "proceed" decision where plugins may supply the text (queue OK, vrfy OK,
// rcpt OK, quit): the plugin's reply when it set one, else code/enhanced/text.
Reply with_plugin_text(const HookResult &r, int code, std::string_view enhanced,
                       std::string_view text);

}  // namespace uvs
