// session/data_clock.hpp: the DATA deadline (Postfix's smtpd_per_request_deadline with
// smtpd_min_data_rate). It starts at the 354 with [timeouts] data; each read moves it out by
// bytes / min_data_rate seconds, but never more than `data` seconds ahead; min_data_rate = 0:
// each read restarts it (an idle timer). It stops while the server holds the session (a hook,
// the spool catching up): only the client's time counts. Runs on the session's timer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <uv.h>

#include "util/timer.hpp"

namespace uvs {

class DataClock {
 public:
  // timer: the session's deadline timer (shared with the command deadline); expired: what
  // runs when the deadline passes.
  DataClock(uv_loop_t *loop, Timer &timer, std::function<void()> expired)
      : loop_(loop), timer_(timer), expired_(std::move(expired)) {}

  // The 354: full_ms left, clock stopped (resume() starts it).
  void reset(double full_ms);
  // Stop the clock, keeping what is left / restart it with what was left.
  void pause();
  void resume();
  // A read of n bytes: more time, at rate bytes per second (0: back to full_ms).
  void credit(size_t n, double full_ms, double rate);
  // DATA is over: the timer belongs to the command deadline again.
  void end() { running_ = false; }
  bool running() const { return running_; }

 private:
  void arm(double ms);
  uv_loop_t *loop_;
  Timer &timer_;
  std::function<void()> expired_;
  bool running_ = false;  // the deadline is running (the timer is armed for it)
  double deadline_ = 0;   // running: loop time (ms) when it runs out
  double left_ = 0;       // stopped: ms left
};

}  // namespace uvs
