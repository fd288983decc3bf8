// delivery/control.hpp: the engine's control socket, <queue dir>/control (AF_UNIX SOCK_DGRAM,
// mode 0600): "new <id> [<id>...]" from queue/outbound after it stored entries, "flush" or "flush
// <id>" from `uvsmtpd queue flush`. Read on the loop with uv_poll; unknown datagrams are logged and
// ignored (the socket is the owner's only: mode 0600 in a 0700 directory).
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>
#include <uv.h>

namespace uvs::delivery {

struct ControlCommand {
  enum Kind { invalid, new_entry, flush } kind = invalid;
  std::string id;  // new_entry: the entry; flush: one entry, "" = all
};

ControlCommand parse_control(std::string_view datagram);
// A datagram may name several new entries at once ("new ID1 ID2 ...": queue/outbound batches
// what it could not send one by one): one command per id; any other datagram is one command.
std::vector<ControlCommand> parse_controls(std::string_view datagram);

class ControlSocket {
 public:
  using Handler = std::function<void(const ControlCommand &, std::string_view raw)>;
  explicit ControlSocket(uv_loop_t *loop) : loop_(loop) {}
  ~ControlSocket();
  ControlSocket(const ControlSocket &) = delete;
  ControlSocket &operator=(const ControlSocket &) = delete;
  // Binds path (a stale socket file is replaced), mode 0600. 0 or -errno with err.
  int open(const std::string &path, Handler h, std::string &err);
  void close();  // unlinks the socket file

 private:
  static void on_readable(uv_poll_t *p, int status, int events);
  uv_loop_t *loop_;
  uv_poll_t *poll_ = nullptr;
  int fd_ = -1;
  std::string path_;
  Handler handler_;
};

}  // namespace uvs::delivery
