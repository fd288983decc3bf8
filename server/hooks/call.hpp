// hooks/call.hpp: what a hook invocation sees: the CallHost interface (implemented by Session,
// faked in unit tests), the hook arguments, and the C ABI's uvs_call / uvs_plugin structs.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hooks/notes.hpp"
#include "hooks/plugin_timers.hpp"
#include "hooks/reply.hpp"
#include "smtp/address.hpp"
#include "smtp/header_fields.hpp"
#include "uvsmtpd/plugin.h"

namespace uvs::tls {
struct TlsDetails;  // tls/details.hpp
}

namespace uvs::metrics {
struct PluginStats;  // metrics/registry.hpp
}

namespace uvs {

class ConnDns;  // hooks/conn_dns.hpp

class CallHost {
 public:
  virtual ~CallHost() = default;
  virtual const std::string &session_id() const = 0;
  virtual const std::string &peer_ip() const = 0;
  virtual int peer_port() const = 0;
  virtual const std::string &local_ip() const = 0;
  virtual int local_port() const = 0;
  virtual const std::string *helo() const = 0;
  virtual bool esmtp() const = 0;
  virtual const std::string *mail_from() const = 0;
  virtual const std::vector<std::string> &rcpts() const = 0;
  virtual Notes &notes(int scope) = 0;
  virtual bool relay_client() const = 0;
  virtual void set_relay_client(bool on) = 0;
  // The session's TLS parameters once its handshake is done; nullptr while it is plain.
  virtual const tls::TlsDetails *tls_details() const { return nullptr; }
  bool tls_active() const { return tls_details() != nullptr; }
  virtual const std::string *auth_user() const { return nullptr; }
  virtual const std::string *auth_mechanism() const { return nullptr; }  // after AUTH success
  virtual const std::string *remote_host() const { return nullptr; }
  virtual const std::string *queue_id() const { return nullptr; }  // open transaction's id
  virtual int64_t message_size() const { return -1; }
  virtual int64_t message_read(int64_t, void *, size_t) const { return -2; /* -ENOENT */ }
  virtual const std::string *header(std::string_view, int) const { return nullptr; }
  virtual int message_fd() const { return -2; /* -ENOENT */ }
  // Watch for client input while a call is pending: cb(UVS_INPUT_*) once, on the loop, never
  // from inside this call. Returns 0 or a negative errno.
  virtual int watch_input(std::function<void(int)> cb) = 0;
  virtual void unwatch_input() = 0;
  // What must outlive a pending call of this session (its generation: plugin instances).
  virtual std::shared_ptr<const void> keepalive() const { return nullptr; }
  // Sends one greeting continuation line now; -EPERM outside the greeting.
  virtual int send_continuation(std::string_view) { return -1; }
  // Plugins' message edits (1.3). 0 or -errno.
  virtual int header_edit(smtp::HeaderOp /*op*/, std::string_view /*at*/, int /*i*/, std::string_view /*name*/,
                          std::string_view /*value*/) {
    return -2; /* -ENOENT */
  }
  virtual int body_replace(int /*fd*/) { return -2; /* -ENOENT */ }
  // The session's own DNS lookups (dns_query_conn, 1.3); nullptr: none here.
  virtual ConnDns *conn_dns() { return nullptr; }
};

struct HookArgs {
  std::string arg;
  std::string address;
  const std::vector<smtp::EsmtpParam> *params = nullptr;
  const char *password = nullptr;  // auth hook only: wiped by the session after the verdict
};

struct Handler;
struct HookTable;
class ChainRun;
class LoopServices;

}  // namespace uvs

// One loaded plugin instance.
struct uvs_plugin {
  std::string instance;                // "earlytalker:1"
  std::string module;                  // "earlytalker"
  std::vector<std::string> args;
  std::string config_dir;
  std::string me;
  void *loop = nullptr;                // the server's uv_loop_t
  std::string error;                   // set_error
  void *data = nullptr;                // plugin_set_data
  const uvs_plugin_info *info = nullptr;
  uvs::HookTable *registering = nullptr;  // the table being built, only during init
  bool initialised = false;
  int64_t hook_timeout_ms = 0;         // the loading configuration's hook_timeout (1.3)
  uvs::PluginTimers timers;            // timer_start (1.3): retired before fini
  uvs::metrics::PluginStats *stats = nullptr;  // its counters (made by metrics::plugin())
};

// One hook invocation.
struct uvs_call {
  uvs::CallHost *host = nullptr;
  uvs_plugin *plugin = nullptr;
  uvs_hook hook = UVS_HOOK_CONNECT;
  const uvs::HookArgs *args = nullptr;
  uvs::Reply reply;                    // what the plugin set with reply()/reply_line()
  uvs_pending *pending = nullptr;      // set by suspend()
  bool may_suspend = false;
  uvs::LoopServices *services = nullptr;
  std::vector<std::string> rcpt_replace;  // rcpt_replace() (1.3): used if the verdict is OK
};

namespace uvs {
struct Handler {
  uvs_plugin *plugin;
  uvs_hook_fn fn;
  void *ud;
};
}  // namespace uvs
