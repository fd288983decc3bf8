// state/deferred.hpp: answers queued now and delivered on the loop's next turn (a zero timer,
// referenced only while something waits), so no answer ever runs inside the call that asked.
#pragma once
#include <functional>
#include <vector>
#include <uv.h>

namespace uvs::state {

class Deferred {
 public:
  explicit Deferred(uv_loop_t *loop);
  ~Deferred();  // drops what is still queued (without running it) and closes the timer
  Deferred(const Deferred &) = delete;
  Deferred &operator=(const Deferred &) = delete;

  void post(std::function<void()> fn);
  size_t queued() const { return queue_.size(); }

 private:
  static void fire(uv_timer_t *t);
  uv_timer_t *timer_;
  std::vector<std::function<void()>> queue_;
};

}  // namespace uvs::state
