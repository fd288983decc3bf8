// util/write_all.hpp: writing a whole buffer to a descriptor (short writes and EINTR retried),
// shared by the spool's body copies and the queue directory's files.
#pragma once
#include <cstddef>

namespace uvs {

// Writes bytes [p, p + n) to fd at its current offset. 0, or -errno of the write that failed.
int write_all(int fd, const char *p, size_t n);

}  // namespace uvs
