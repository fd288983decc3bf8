// metrics/http_request.hpp: the metrics endpoint's HTTP without the sockets: a request head
// (request line and headers, RFC 9112) judged, and the response written. Pure functions (the
// unit tests and the fuzz target call them).
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace uvs::metrics {

// What a request head (request line and headers, up to the empty line) gets.
struct HttpAnswer {
  int status = 200;   // 200, 400, 404, 405, 431, 505
  bool head = false;  // HEAD: the headers only
};
// Parses a complete request head (ending in an empty line: CRLF or bare LF line ends).
HttpAnswer judge_request(std::string_view head);

// The whole response for status (body from render() for 200).
std::string http_response(const HttpAnswer &a, const std::function<std::string()> &render);

}  // namespace uvs::metrics
