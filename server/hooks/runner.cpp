// hooks/runner.cpp: the hook chain runner (see runner.hpp): ordering, verdict validation,
// deny/ok observers, suspension, completion and the per-hook timeout.
#include "hooks/runner.hpp"

#include <cstdio>

#include "hooks/hook_names.hpp"
#include "log/log.hpp"
#include "metrics/registry.hpp"

namespace uvs {

namespace {
bool is_observer(uvs_hook h) { return h == UVS_HOOK_DENY || h == UVS_HOOK_OK; }

uvs_call make_call(LoopServices *svc, CallHost &host, const Handler &h, uvs_hook hook,
                   const HookArgs *args, bool may_suspend) {
  uvs_call c;
  c.host = &host;
  c.plugin = h.plugin;
  c.hook = hook;
  c.args = args;
  c.may_suspend = may_suspend;
  c.services = svc;
  return c;
}
}  // namespace

bool reply_fits_verdict(const Reply &r, uvs_verdict v) {
  if (r.code == 0) return true;  // text only: the default code stays
  int cls = r.code / 100;
  switch (v) {
    case UVS_OK: return cls == 2;
    case UVS_DONE: return cls >= 2 && cls <= 5;
    case UVS_DENY:
    case UVS_DENY_DISCONNECT: return cls == 5;
    case UVS_DENYSOFT:
    case UVS_DENYSOFT_DISCONNECT: return cls == 4;
    default: return true;
  }
}

void ChainRun::start(LoopServices *svc, CallHost &host, const HookTable &table, uvs_hook hook,
                     HookArgs args, HookDone done, ChainRun **slot) {
  auto *run = new ChainRun(svc, host, table, hook, std::move(args), std::move(done), slot);
  run->step();
}

ChainRun::ChainRun(LoopServices *svc, CallHost &host, const HookTable &table, uvs_hook hook,
                   HookArgs args, HookDone done, ChainRun **slot)
    : svc_(svc),
      host_(host),
      table_(table),
      hook_(hook),
      args_(std::move(args)),
      done_(std::move(done)),
      slot_(slot),
      timeout_(svc ? svc->loop() : nullptr),
      chain_start_ns_(uv_hrtime()) {}

void ChainRun::step() {
  const auto &handlers = table_.by_hook[hook_];
  while (next_ < handlers.size()) {
    const Handler &h = handlers[next_++];
    call_ = make_call(svc_, host_, h, hook_, &args_, true);
    call_start_ns_ = uv_hrtime();
    int v = h.fn(&call_, h.ud);
    if (call_.pending) {
      if (v == UVS_PENDING) {
        pending_ = call_.pending;
        pending_->run = this;
        call_.may_suspend = false;
        if (slot_) *slot_ = this;
        timeout_.start(static_cast<uint64_t>(svc_->hook_timeout() * 1000),
                       [this] { on_timeout(); });
        return;
      }
      log::format(log::err, host_.session_id(), h.plugin->instance,
                  "%s hook called suspend() but returned %s; treated as DENYSOFT",
                  std::string(hook_name(hook_)).c_str(), std::string(verdict_name(v)).c_str());
      pending::abandon(call_.pending);
      call_.pending = nullptr;
      v = UVS_DENYSOFT;
      call_.reply = Reply{};
    } else if (v == UVS_PENDING || !verdict_known(v)) {
      log::format(log::err, host_.session_id(), h.plugin->instance,
                  "%s hook returned %s without suspend(); treated as DENYSOFT",
                  std::string(hook_name(hook_)).c_str(),
                  v == UVS_PENDING ? "PENDING" : ("invalid verdict " + std::to_string(v)).c_str());
      v = UVS_DENYSOFT;
      call_.reply = Reply{};
    }
    if (after_verdict(static_cast<uvs_verdict>(v))) return finish();
  }
  result_ = HookResult{};
  finish();
}

bool ChainRun::after_verdict(uvs_verdict v, bool timed_out) {
  const std::string &name = call_.plugin->instance;
  if (static_cast<size_t>(hook_) < metrics::kHooks && static_cast<size_t>(v) < metrics::kVerdicts) {
    metrics::PluginStats &m = metrics::plugin(call_.plugin);
    ++m.verdicts[hook_][timed_out ? metrics::kVerdictTimeout : static_cast<size_t>(v)];
    m.latency[hook_].observe(uv_hrtime() - call_start_ns_);
  }
  Reply reply = std::move(call_.reply);
  call_.reply = Reply{};
  bool has_reply = reply.code != 0 || !reply.lines.empty();
  if (has_reply && !reply_fits_verdict(reply, v)) {
    log::format(log::err, host_.session_id(), name,
                "reply code %d does not fit verdict %s; default reply used", reply.code,
                std::string(verdict_name(v)).c_str());
    has_reply = false;
    reply = Reply{};
  }
  if (log::enabled(log::debug))
    log::format(log::debug, host_.session_id(), name, "%s -> %s",
                std::string(hook_name(hook_)).c_str(), std::string(verdict_name(v)).c_str());
  observe(v);
  if (v == UVS_DECLINED) return false;
  result_.verdict = v;
  result_.has_reply = has_reply;
  result_.reply = std::move(reply);
  result_.plugin = name;
  if (v == UVS_OK) result_.rcpt_replace = std::move(call_.rcpt_replace);
  return true;
}

void ChainRun::observe(uvs_verdict v) {
  if (is_observer(hook_)) return;
  bool deny = v == UVS_DENY || v == UVS_DENYSOFT || v == UVS_DENY_DISCONNECT ||
              v == UVS_DENYSOFT_DISCONNECT;
  uvs_hook obs = deny ? UVS_HOOK_DENY : UVS_HOOK_OK;
  if (table_.by_hook[obs].empty()) return;
  HookArgs a;
  a.arg = call_.plugin->instance;
  a.address = std::to_string(static_cast<int>(v));
  notify_hook(svc_, host_, table_, obs, a);
}

void ChainRun::on_complete(int v, int code, const std::string &enh, const std::string &text) {
  pending_ = nullptr;
  timeout_.stop();
  if (slot_ && *slot_ == this) *slot_ = nullptr;
  if (!verdict_known(v) || v == UVS_PENDING) {
    log::format(log::err, host_.session_id(), call_.plugin->instance,
                "complete() with invalid verdict %d; treated as DENYSOFT", static_cast<int>(v));
    v = UVS_DENYSOFT;
    call_.reply = Reply{};
  } else if (code != 0 || !text.empty()) {
    Reply r;
    r.code = code;
    r.enhanced = enh;
    if (!text.empty()) r.lines.push_back(text);
    call_.reply = std::move(r);
  }
  if (after_verdict(static_cast<uvs_verdict>(v))) return finish();
  step();
}

void ChainRun::on_timeout() {
  log::format(log::err, host_.session_id(), call_.plugin->instance,
              "%s hook did not complete within %.1fs; answering 451",
              std::string(hook_name(hook_)).c_str(), svc_->hook_timeout());
  pending::abandon(pending_);
  pending_ = nullptr;
  call_.reply = make_reply(451, "4.3.0", "Temporary failure, please try again later");
  after_verdict(UVS_DENYSOFT, true);
  result_.timed_out = true;
  finish();
}

void ChainRun::finish() {
  if (slot_ && *slot_ == this) *slot_ = nullptr;
  if (static_cast<size_t>(hook_) < metrics::kHooks && !table_.by_hook[hook_].empty())
    metrics::core().hooks[hook_].observe(uv_hrtime() - chain_start_ns_);
  HookDone done = std::move(done_);
  HookResult result = std::move(result_);
  delete this;
  if (done) done(std::move(result));
}

const std::string &ChainRun::pending_plugin() const {
  static const std::string none;
  return call_.plugin ? call_.plugin->instance : none;
}

bool ChainRun::answered() const {
  return pending_ && pending_->complete_called.load();
}

void ChainRun::cancel() {
  if (pending_) pending::abandon(pending_);
  pending_ = nullptr;
  if (slot_ && *slot_ == this) *slot_ = nullptr;
  delete this;
}

void notify_hook(LoopServices *svc, CallHost &host, const HookTable &table, uvs_hook hook,
                 const HookArgs &args) {
  if (table.by_hook[hook].empty()) return;
  uint64_t start = uv_hrtime();
  for (const Handler &h : table.by_hook[hook]) {
    uvs_call c = make_call(svc, host, h, hook, &args, false);
    uint64_t t0 = uv_hrtime();
    int v = h.fn(&c, h.ud);
    if (static_cast<size_t>(hook) < metrics::kHooks && v >= UVS_DECLINED && v <= UVS_DONE) {
      metrics::PluginStats &m = metrics::plugin(h.plugin);
      ++m.verdicts[hook][v];
      m.latency[hook].observe(uv_hrtime() - t0);
    }
    if (log::enabled(log::debug))
      log::format(log::debug, host.session_id(), h.plugin->instance, "%s -> %s (ignored)",
                  std::string(hook_name(hook)).c_str(), std::string(verdict_name(v)).c_str());
  }
  if (static_cast<size_t>(hook) < metrics::kHooks)
    metrics::core().hooks[hook].observe(uv_hrtime() - start);
}

}  // namespace uvs
