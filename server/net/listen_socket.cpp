// net/listen_socket.cpp: binding a listener and its messages (listen_socket.hpp).
#include "net/listen_socket.hpp"

#include <cerrno>
#include <netinet/in.h>
#include <unistd.h>
#include <uv.h>

#include "util/sockaddr.hpp"

namespace uvs::net {

namespace {
bool is_v6(const config::Listen &l) {
  return l.host.find(':') != std::string::npos;
}
}  // namespace

std::string listen_address(const config::Listen &l) {
  return is_v6(l) ? "[" + l.host + "]:" + std::to_string(l.port)
                  : l.host + ":" + std::to_string(l.port);
}

std::string listen_error(const config::Listen &l, int rc) {
  return bind_error(listen_address(l), l.port, rc, "", "change the address");
}

std::string bind_error(const std::string &shown, uint16_t port, int rc, const std::string &purpose,
                       const std::string &change) {
  std::string err = "cannot listen on " + shown + purpose + ": " + uv_strerror(rc);
  if (rc == UV_EADDRINUSE)
    err += " (another process listens there: stop it, or " + change + ")";
  else if (rc == UV_EACCES && port < 1024)
    err += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
  else if (rc == UV_EADDRNOTAVAIL)
    err += " (no interface of this host has that address)";
  return err;
}

std::string bound_endpoint(const config::Listen &l, const sockaddr_storage &bound) {
  std::string ip;
  int port = 0;
  split_address(bound, ip, port);
  return (is_v6(l) ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

std::string listen_label(const config::Listen &l, const sockaddr_storage &bound, bool tls_enabled) {
  return bound_endpoint(l, bound) + (l.sync_check ? "" : " (sync_check off)") +
         (l.tls == "implicit"                  ? " (implicit TLS)"
          : l.tls == "starttls" && tls_enabled ? " (STARTTLS)"
                                               : "") +
         (l.require_tls ? " (TLS required)" : "") +
         (l.auth == "required" ? " (AUTH required)" : "") +
         (l.auth != "off" && l.auth_plaintext ? " (AUTH before TLS)" : "");
}

int bind_listen_socket(const config::Listen &l) {
  sockaddr_storage ss{};
  bool v6 = is_v6(l);
  int rc = v6 ? uv_ip6_addr(l.host.c_str(), l.port, reinterpret_cast<sockaddr_in6 *>(&ss))
              : uv_ip4_addr(l.host.c_str(), l.port, reinterpret_cast<sockaddr_in *>(&ss));
  if (rc < 0) return rc;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      bind(fd, reinterpret_cast<sockaddr *>(&ss),
           v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)) != 0 ||
      listen(fd, 1024) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

}  // namespace uvs::net
