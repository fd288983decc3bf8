// workers/role.hpp: what makes a uvsmtpd process a worker: its number, the channel to its
// supervisor and the listening sockets it inherited, passed on its command line by the
// supervisor as "--worker K,CHANNEL_FD" and one "--worker-listener FD,<listener>" per listener
// (internal options: the supervisor adds them to the command line it was started with).
#pragma once
#include <string>
#include <vector>

#include "config/settings.hpp"

namespace uvs::workers {

struct Role {
  int index = 0;  // 1..N; 0 = not a worker (one process, or the supervisor)
  int channel_fd = -1;
  std::vector<int> fds;                // the inherited listening sockets, in listener order
  std::vector<config::Listen> listen;  // each one's settings as the supervisor bound it
};

// The options for worker `index` (the supervisor's side).
std::vector<std::string> role_args(int index, int channel_fd, const std::vector<int> &fds,
                                   const std::vector<config::Listen> &listen);
// "--worker" with its value, or "--worker-listener" with its value, into role; false if the
// value does not parse (a command line not made by role_args).
bool parse_role_option(const std::string &option, const std::string &value, Role &role);

}  // namespace uvs::workers
