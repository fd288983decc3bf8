// util/sockaddr.hpp: a socket address as text (IPv4-mapped IPv6 shown as plain IPv4) and port.
#pragma once
#include <string>
#include <sys/socket.h>

namespace uvs {

void split_address(const sockaddr_storage &ss, std::string &ip, int &port);

}  // namespace uvs
