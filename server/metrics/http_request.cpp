// metrics/http_request.cpp: judging a request head and writing the response (see
// http_request.hpp).
#include "metrics/http_request.hpp"

#include <cstring>
#include <vector>

#include "metrics/exposition.hpp"

namespace uvs::metrics {

namespace {

constexpr size_t kMaxHeaders = 100;

bool tchar(char c) {  // RFC 9110 5.6.2 token characters
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!tchar(c)) return false;
  return true;
}

const char *reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

}  // namespace

HttpAnswer judge_request(std::string_view head) {
  HttpAnswer a;
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view l = head.substr(0, nl);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty()) {
      if (lines.empty()) continue;  // empty lines before the request line (RFC 9112 2.2)
      break;                        // the end of the head
    }
    lines.push_back(l);
  }
  a.status = 400;
  if (lines.empty()) return a;
  // request-line = method SP request-target SP HTTP-version (RFC 9112 3)
  std::string_view rl = lines[0];
  size_t sp1 = rl.find(' ');
  if (sp1 == std::string_view::npos) return a;
  size_t sp2 = rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) return a;
  std::string_view method = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = rl.substr(sp2 + 1);
  if (!token(method) || target.empty()) return a;
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return a;
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return a;
  if (lines.size() - 1 > kMaxHeaders) {
    a.status = 431;
    return a;
  }
  for (size_t i = 1; i < lines.size(); ++i) {  // field-name ":" ... (no obsolete folding)
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !token(lines[i].substr(0, colon))) return a;
    for (char c : lines[i])
      if (c == '\0' || c == '\r') return a;
  }
  if (version != "HTTP/1.0" && version != "HTTP/1.1") {
    a.status = 505;
    return a;
  }
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    a.status = 404;
    return a;
  }
  if (method != "GET" && method != "HEAD") {
    a.status = 405;
    return a;
  }
  a.status = 200;
  a.head = method == "HEAD";
  return a;
}

std::string http_response(const HttpAnswer &a, const std::function<std::string()> &render) {
  std::string body;
  std::string_view type = "text/plain; charset=utf-8";
  if (a.status == 200) {
    body = render ? render() : std::string();
    type = kContentType;
  } else {
    body = std::string(reason(a.status)) + "\n";
  }
  std::string r = "HTTP/1.1 " + std::to_string(a.status) + " " + reason(a.status) + "\r\n";
  r += "Content-Type: ";
  r += type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (a.status == 405) r += "Allow: GET, HEAD\r\n";
  r += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!a.head) r += body;
  return r;
}

}  // namespace uvs::metrics
