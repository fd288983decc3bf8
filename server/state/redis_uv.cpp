// state/redis_uv.cpp: see redis_uv.hpp. hiredis calls the hooks; cleanup() comes when it frees
// the context, after which the handles close and the glue is freed in their close callbacks.
#include "state/redis_uv.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <new>

namespace uvs::state {

namespace {

struct Glue {
  redisAsyncContext *ac = nullptr;  // nullptr after cleanup()
  uv_poll_t poll;
  uv_check_t check;
  int events = 0;           // what poll watches
  bool want_write = false;  // hiredis has output to send
  int open_handles = 2;
};

void update_poll(Glue *g) {
  if (g->events)
    uv_poll_start(&g->poll, g->events, [](uv_poll_t *h, int status, int ev) {
      auto *gl = static_cast<Glue *>(h->data);
      if (status < 0) ev = UV_READABLE | UV_WRITABLE;  // let hiredis find the error
      if (gl->ac && (ev & UV_READABLE)) redisAsyncHandleRead(gl->ac);
      if (gl->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(gl->ac);
    });
  else
    uv_poll_stop(&g->poll);
}

// The check phase: what this loop turn queued goes out now.
void flush(uv_check_t *h) {
  auto *g = static_cast<Glue *>(h->data);
  uv_check_stop(&g->check);
  if (!g->ac || !g->want_write) return;
  redisAsyncHandleWrite(g->ac);  // may free the context (an error): cleanup() then ran
  if (g->ac && g->want_write && !(g->events & UV_WRITABLE)) {  // the socket is full: wait
    g->events |= UV_WRITABLE;
    update_poll(g);
  }
}

void add_read(void *d) {
  auto *g = static_cast<Glue *>(d);
  g->events |= UV_READABLE;
  update_poll(g);
}
void del_read(void *d) {
  auto *g = static_cast<Glue *>(d);
  g->events &= ~UV_READABLE;
  update_poll(g);
}
void add_write(void *d) {
  auto *g = static_cast<Glue *>(d);
  g->want_write = true;
  if (g->ac && (g->ac->c.flags & REDIS_CONNECTED)) {
    if (!uv_is_active(reinterpret_cast<uv_handle_t *>(&g->check))) uv_check_start(&g->check, flush);
  } else if (!(g->events & UV_WRITABLE)) {  // connecting: writability says it is done
    g->events |= UV_WRITABLE;
    update_poll(g);
  }
}
void del_write(void *d) {
  auto *g = static_cast<Glue *>(d);
  g->want_write = false;
  uv_check_stop(&g->check);
  if (g->events & UV_WRITABLE) {
    g->events &= ~UV_WRITABLE;
    update_poll(g);
  }
}
void closed(uv_handle_t *h) {
  auto *g = static_cast<Glue *>(h->data);
  if (--g->open_handles == 0) delete g;
}
void cleanup(void *d) {
  auto *g = static_cast<Glue *>(d);
  g->ac = nullptr;
  uv_check_stop(&g->check);
  uv_close(reinterpret_cast<uv_handle_t *>(&g->poll), closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&g->check), closed);
}

}  // namespace

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data != nullptr) return -1;
  auto *g = new (std::nothrow) Glue;
  if (!g) return -1;
  if (uv_poll_init(loop, &g->poll, ac->c.fd) != 0) {
    delete g;
    return -1;
  }
  uv_check_init(loop, &g->check);
  g->poll.data = g->check.data = g;
  g->ac = ac;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = g;
  return 0;
}

}  // namespace uvs::state
