// workers/link.hpp: the worker's end of its channel to the supervisor (a socketpair the
// supervisor made when it started the worker): the worker says "ready" once it serves, and the
// channel's end (EOF) tells it the supervisor is gone, so it shuts down instead of lingering.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <uv.h>

namespace uvs::workers {

class Link {
 public:
  explicit Link(uv_loop_t *loop) : loop_(loop) {}
  ~Link();
  Link(const Link &) = delete;
  Link &operator=(const Link &) = delete;

  // Reads fd on the loop; on_gone runs once when the supervisor's end closes. Lines the
  // supervisor sends go to on_line (without the '\n').
  bool open(int fd, std::function<void()> on_gone, std::function<void(std::string_view)> on_line,
            std::string &err);
  // One line to the supervisor ("ready"); best effort.
  void send(std::string_view line);
  // "<word> <length>\n" then body, written in full (the answer to "metrics").
  void send_block(std::string_view word, std::string body);
  void close();

 private:
  uv_loop_t *loop_;
  uv_pipe_t *pipe_ = nullptr;
  std::string in_;
  std::function<void()> on_gone_;
  std::function<void(std::string_view)> on_line_;
};

}  // namespace uvs::workers
