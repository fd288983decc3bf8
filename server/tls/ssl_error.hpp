// tls/ssl_error.hpp: OpenSSL's error queue as one short line ("wrong version number").
#pragma once
#include <string>

namespace uvs::tls {

// The reason of the earliest error in this thread's OpenSSL queue, and empties the queue;
// `fallback` when the queue holds no reason.
std::string take_ssl_error(const char *fallback);

}  // namespace uvs::tls
