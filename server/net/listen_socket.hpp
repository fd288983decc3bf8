// net/listen_socket.hpp: one configured listener as a socket, and the texts every bind reports
// (the error naming the address, the "listening on" label). The single-process server binds
// through libuv; the supervisor of worker processes binds plain sockets once with
// bind_listen_socket() and its workers adopt them (server/workers/).
#pragma once
#include <string>
#include <sys/socket.h>

#include "config/settings.hpp"

namespace uvs::net {

// The address of l as written in messages: "127.0.0.1:25", "[::1]:25".
std::string listen_address(const config::Listen &l);
// "cannot listen on ADDR: <reason> (<what to do>)" for a libuv error code (-errno).
std::string listen_error(const config::Listen &l, int rc);
// The same for any endpoint: "cannot listen on <shown><purpose>: <reason> (another process
// listens there: stop it, or <change>)" and the like (the metrics endpoint's purpose is " for
// the metrics", its change "change [metrics] listen").
std::string bind_error(const std::string &shown, uint16_t port, int rc, const std::string &purpose,
                       const std::string &change);
// What "listening on" shows for a bound listener: the address the socket got (port 0
// resolved), then its TLS and AUTH modes: "127.0.0.1:2525 (STARTTLS) (AUTH required)".
std::string listen_label(const config::Listen &l, const sockaddr_storage &bound, bool tls_enabled);
// "ip:port" / "[ip]:port" of the bound address (the delivery engine's loop check).
std::string bound_endpoint(const config::Listen &l, const sockaddr_storage &bound);

// Binds l as libuv's uv_tcp_bind does (SO_REUSEADDR; IPV6_V6ONLY for IPv6) and listens
// (backlog 1024). The descriptor (close-on-exec, nonblocking) or a libuv error code (-errno).
int bind_listen_socket(const config::Listen &l);

}  // namespace uvs::net
