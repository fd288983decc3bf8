// queue/control_notify.hpp: the client side of the delivery engine's control socket
// (<queue dir>/control, AF_UNIX SOCK_DGRAM, docs/queue.md "The control socket"): queue/outbound
// says "new <id>" after each stored entry, `uvsmtpd queue flush` says "flush [id]". Best effort:
// a datagram that cannot be sent (no engine running) is simply not sent; the engine also
// rescans the directory periodically.
#pragma once
#include <string>
#include <string_view>

namespace uvs::queue {

inline constexpr std::string_view kControlName = "control";

// Sends one datagram (msg + "\n") to <root>/control without blocking. 0 or -errno
// (-ENOENT / -ECONNREFUSED: no engine listens).
int control_send(const std::string &root, std::string_view msg);

}  // namespace uvs::queue
