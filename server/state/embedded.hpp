// state/embedded.hpp: the embedded back end: a MemTable in this process, answered on the next
// loop turn, with a periodic sweep of expired entries. It lives as long as the process's
// state service, so a SIGHUP reload (new plugin instances) keeps every table.
#pragma once
#include <uv.h>

#include "state/deferred.hpp"
#include "state/mem_table.hpp"
#include "state/request.hpp"

namespace uvs::state {

class EmbeddedBackend : public Backend {
 public:
  EmbeddedBackend(uv_loop_t *loop, size_t max_entries, Deferred &deferred);
  ~EmbeddedBackend() override;
  void submit(Request r) override;
  void stop() override;
  const char *name() const override { return "embedded"; }
  MemTable &table() { return table_; }

  static constexpr uint64_t kSweepMs = 10000;

 private:
  uint64_t now() const;
  void sweep();
  uv_loop_t *loop_;
  Deferred &deferred_;
  MemTable table_;
  uv_timer_t *sweep_timer_;
  uint64_t evictions_logged_ = 0;
};

}  // namespace uvs::state
