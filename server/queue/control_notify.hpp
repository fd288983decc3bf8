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
// The longest datagram the engine reads; senders keep below it ("new ID1 ID2 ..." batches).
inline constexpr size_t kControlMaxDatagram = 4096;

// Sends one datagram (msg + "\n") to <root>/control without blocking. 0 or -errno
// (-ENOENT / -ECONNREFUSED: no engine listens; -EAGAIN: the socket's queue is full, which
// Linux reaches at net.unix.max_dgram_qlen datagrams, 10 by default, while the engine's loop
// has not read them yet: the caller tries again later).
int control_send(const std::string &root, std::string_view msg);

}  // namespace uvs::queue
