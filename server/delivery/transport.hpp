// delivery/transport.hpp: what the engine needs from an SMTP/LMTP client: send one message to
// one destination for some recipients, and report one result per recipient. The real one is
// smtpc_transport.* (server/smtpc); the engine's tests may give it another.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "delivery/route.hpp"
#include "delivery/schedule.hpp"

namespace uvs::delivery {

struct SendRequest {
  std::string id;    // the queue id, for log lines
  Destination dest;  // where (hops in order)
  std::string from;  // reverse path, "" = null sender
  std::vector<std::string> rcpts;
  int fd = -1;  // the message file (pread from 0)
  int64_t size = 0;
  // The whole message when it is small (read with the envelope): sent from memory, no file read.
  std::shared_ptr<const std::string> body;
  bool eightbit = false, smtputf8 = false;
};

struct SendResult {
  std::vector<RcptResult> rcpts;  // one per request recipient, same order
  std::string relay;              // "host[ip]:port" that took the transaction, "" if none
  std::string tls;                // "TLSv1.3 TLS_AES_256_GCM_SHA384", "" when plain
};

class Transport {
 public:
  virtual ~Transport() = default;
  // done runs once, on the loop, never inside send().
  virtual void send(const SendRequest &r, std::function<void(SendResult)> done) = 0;
  // Shutdown: close every connection; no callback runs afterwards.
  virtual void abort_all() = 0;
  // SIGHUP: new [delivery] settings for the connections made from now on.
  virtual void configure(const config::Settings &) {}
};

}  // namespace uvs::delivery
