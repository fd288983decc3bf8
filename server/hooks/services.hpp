// hooks/services.hpp: per-loop services behind async plugin calls: the completion queue that
// uvs_api.complete() feeds from any thread (drained on the loop by one uv_async_t), and the
// uvs_pending handle with its timers, input watch and thread-pool work.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <uv.h>

#include "hooks/call.hpp"
#include "util/timer.hpp"

namespace uvs {

class LoopServices {
 public:
  LoopServices(uv_loop_t *loop, double hook_timeout_s);
  ~LoopServices();  // closes the async handle (run the loop once more to finish closing)
  LoopServices(const LoopServices &) = delete;
  LoopServices &operator=(const LoopServices &) = delete;

  uv_loop_t *loop() const { return loop_; }
  double hook_timeout() const { return hook_timeout_s_; }
  void set_hook_timeout(double s) { hook_timeout_s_ = s; }

  struct Completion {
    uvs_pending *pending;
    int verdict;  // as the plugin passed it: may be invalid (checked on the loop)
    int code;
    std::string enhanced;
    std::string text;
  };
  void post(Completion c);  // any thread; dropped after close()
  void close();             // stop serving completions so the loop can end (shutdown)
  size_t live_pending() const { return live_pending_; }
  class Resolver *resolver = nullptr;  // set by the server; may be null (no DNS)
  double dns_timeout = 5;
  void pending_created() { ++live_pending_; }
  void pending_destroyed() { --live_pending_; }

 private:
  void drain();
  uv_loop_t *loop_;
  double hook_timeout_s_;
  uv_async_t *async_;
  bool closed_ = false;
  std::mutex mutex_;
  std::vector<Completion> queue_;
  std::atomic<size_t> live_pending_{0};
};

}  // namespace uvs

namespace uvs {
// A note set with pending_note_set() (1.3), from any thread; applied on the loop at completion.
struct PendingNote {
  int scope;
  std::string key;
  bool erase;  // value NULL: delete the key
  std::string value;
};
constexpr size_t kMaxPendingNotes = 256;
}  // namespace uvs

struct uvs_pending {
  explicit uvs_pending(uvs::LoopServices *s) : svc(s), input_timer(s->loop()) {}
  uvs::LoopServices *svc = nullptr;
  uvs::ChainRun *run = nullptr;        // the waiting chain (null inside the hook, and once
                                       // nobody waits: client gone, timeout)
  uvs_call *call = nullptr;            // the suspended call, while somebody waits
  uvs::CallHost *host = nullptr;       // its session, while somebody waits
  std::atomic<bool> waiting{true};     // mirrors run != nullptr, for complete() on any thread
  std::atomic<bool> complete_called{false};
  bool completed = false;              // the completion was processed on the loop
  int work_in_flight = 0;
  std::vector<std::unique_ptr<uvs::Timer>> timers;
  uvs::Timer input_timer;              // wait_for_input's deadline (its handle made by start)
  uvs_input_fn input_cb = nullptr;
  void *input_ud = nullptr;
  bool input_active = false;
  std::shared_ptr<const void> keep;    // the plugin's generation: no fini while this lives
  std::mutex notes_mutex;              // pending_note_set() comes from any thread
  std::vector<uvs::PendingNote> notes;
  uvs_pending_fn cancel_cb = nullptr;  // pending_on_cancel() (1.3): runs once, at abandon()
  void *cancel_ud = nullptr;
};

namespace uvs::pending {
uvs_pending *create(LoopServices *svc, uvs_call *call);
// The waiting chain lets go (timeout or session end); plugin callbacks still fire, input
// watches end with UVS_INPUT_EOF, and the plugin's cancel callback (if any) runs, here.
void abandon(uvs_pending *p);
// Loop thread: the plugin's completion arrived; frees p when nothing is in flight.
void finish(uvs_pending *p);
int note_set(uvs_pending *p, int scope, const char *key, const char *value);  // any thread
int on_cancel(uvs_pending *p, uvs_pending_fn cb, void *ud);
int timer(uvs_pending *p, uint64_t ms, uvs_pending_fn cb, void *ud);
int wait_for_input(uvs_pending *p, uint64_t ms, uvs_input_fn cb, void *ud);
int run_blocking(uvs_pending *p, uvs_work_fn work, uvs_pending_fn done, void *ud);
int dns_query(uvs_pending *p, const char *name, int type, uint64_t timeout_ms, uvs_dns_fn cb,
              void *ud);
}  // namespace uvs::pending
