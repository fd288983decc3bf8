// hooks/runner.hpp: the hook chain runner, qpsmtpd's semantics: handlers run in order, the first
// verdict other than DECLINED decides, deny/ok observers fire after each handler, a handler may
// suspend (PENDING) and the chain resumes when it completes or times out. Knows no sockets.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hooks/call.hpp"
#include "hooks/services.hpp"
#include "util/timer.hpp"

namespace uvs {

// Handlers per hook id, in conf/plugins order.
struct HookTable {
  std::vector<Handler> by_hook[UVS_HOOK_AUTH + 1];
};

struct HookResult {
  uvs_verdict verdict = UVS_DECLINED;
  bool has_reply = false;  // the plugin set reply text/code (validated against the verdict)
  Reply reply;             // reply.code 0 = keep the default code
  std::string plugin;      // instance that decided ("" if none)
  bool timed_out = false;  // the deciding plugin did not complete within hook_timeout
  std::vector<std::string> rcpt_replace;  // rcpt: the deciding OK's replacement (empty: none)
};

using HookDone = std::function<void(HookResult)>;

class ChainRun {
 public:
  // Runs hook's chain over table for host. done is called exactly once, synchronously when no
  // handler suspends, else later on the loop; never after cancel(). While the chain waits,
  // *slot points at it (cleared before done runs), so the owner can cancel() it.
  static void start(LoopServices *svc, CallHost &host, const HookTable &table, uvs_hook hook,
                    HookArgs args, HookDone done, ChainRun **slot);
  // The owner goes away: let go of the pending call without calling done.
  void cancel();

  // Called by the completion queue (loop thread).
  void on_complete(int v, int code, const std::string &enh, const std::string &text);
  uvs_call *call() { return &call_; }
  // What the owner logs about a waiting chain: its hook and the plugin whose call is pending.
  uvs_hook hook() const { return hook_; }
  const std::string &pending_plugin() const;
  // The pending plugin has called complete() already (its verdict is on its way to the loop).
  bool answered() const;

 private:
  ChainRun(LoopServices *svc, CallHost &host, const HookTable &table, uvs_hook hook,
           HookArgs args, HookDone done, ChainRun **slot);
  void step();
  // true = the chain is decided; timed_out: v is the core's DENYSOFT for a plugin that did not
  // answer (counted as TIMEOUT in the metrics).
  bool after_verdict(uvs_verdict v, bool timed_out = false);
  void finish();
  void on_timeout();
  void observe(uvs_verdict v);

  LoopServices *svc_;
  CallHost &host_;
  const HookTable &table_;
  uvs_hook hook_;
  HookArgs args_;
  HookDone done_;
  ChainRun **slot_;
  size_t next_ = 0;
  uvs_call call_;
  uvs_pending *pending_ = nullptr;
  Timer timeout_;  // the hook timeout while a handler is suspended (its handle made then)
  HookResult result_;
  uint64_t chain_start_ns_;     // uv_hrtime() at the start: the chain's latency (metrics)
  uint64_t call_start_ns_ = 0;  // ...and at the current plugin's call
};

// Run only the observers of a notification hook (disconnect, reset_transaction, queue_post):
// every handler runs, verdicts are logged but change nothing, suspend() is refused.
void notify_hook(LoopServices *svc, CallHost &host, const HookTable &table, uvs_hook hook,
                 const HookArgs &args);

// Validates the reply a plugin set against its verdict; logs and drops it if it does not fit.
bool reply_fits_verdict(const Reply &r, uvs_verdict v);

}  // namespace uvs
