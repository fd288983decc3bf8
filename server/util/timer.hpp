// util/timer.hpp: an owning one-shot/repeating libuv timer whose handle is freed in its close callback.
#pragma once
#include <cstdint>
#include <functional>
#include <uv.h>

namespace uvs {

class Timer {
 public:
  explicit Timer(uv_loop_t *loop);
  ~Timer();
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;

  void start(uint64_t ms, std::function<void()> cb);
  void stop();
  bool active() const;

 private:
  struct Handle {
    uv_timer_t timer;
    std::function<void()> cb;
  };
  Handle *h_;
};

}  // namespace uvs
