// state/redis_uv.hpp: hiredis's event hooks on libuv, our own instead of hiredis's
// adapters/libuv.h: reads are watched with a uv_poll_t as there, but once the connection is up
// the commands of one loop turn are written together in that turn's check phase (one write,
// no epoll_ctl per command), and the socket is watched for writability only when a write
// could not finish.
#pragma once
#include <uv.h>

struct redisAsyncContext;

namespace uvs::state {

// Attaches ac to loop (as redisLibuvAttach does). 0, or -1 (ac then untouched).
int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

}  // namespace uvs::state
