// session/session_context.hpp: what a session needs from the process around it: the loop, the
// hook services, the resolver, and whom to tell when it has closed (the server, or a test).
#pragma once
#include <functional>
#include <uv.h>

namespace uvs {

class LoopServices;
class Resolver;
class Session;

struct SessionContext {
  uv_loop_t *loop = nullptr;
  LoopServices *services = nullptr;
  Resolver *resolver = nullptr;  // null: no DNS (reverse lookups off)
  // The connection is closed and the session finished: the owner deletes it now.
  std::function<void(Session *)> closed;
};

}  // namespace uvs
