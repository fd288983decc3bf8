// util/timer.hpp: an owning one-shot/repeating libuv timer whose handle is freed in its close callback.
// The handle is allocated by the first start(): a timer that never runs (an idle session's
// deadline while its greeting is held) costs only this object.
#pragma once
#include <cstdint>
#include <functional>
#include <uv.h>

namespace uvs {

class Timer {
 public:
  explicit Timer(uv_loop_t *loop) : loop_(loop) {}
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
  uv_loop_t *loop_;
  Handle *h_ = nullptr;  // made by the first start()
};

}  // namespace uvs
