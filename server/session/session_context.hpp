// session/session_context.hpp: what a session needs from the process around it: the loop, the
// hook services, the resolver, the TLS context in force, and whom to tell when it has closed
// (the server, or a test).
#pragma once
#include <functional>
#include <memory>
#include <uv.h>

namespace uvs {

class AuthLockout;
class LoopServices;
class Resolver;
class Session;
namespace tls {
class TlsContext;
}

struct SessionContext {
  uv_loop_t *loop = nullptr;
  LoopServices *services = nullptr;
  Resolver *resolver = nullptr;  // null: no DNS (reverse lookups off)
  // The context new handshakes use (it changes on reload); unset or null: no TLS.
  std::function<std::shared_ptr<const tls::TlsContext>()> tls;
  // Failed AUTH attempts per client IP, shared by all sessions; null: no lockout.
  AuthLockout *auth_lockout = nullptr;
  // The connection is closed and the session finished: the owner deletes it now.
  std::function<void(Session *)> closed;
};

}  // namespace uvs
