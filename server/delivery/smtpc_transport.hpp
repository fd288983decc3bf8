// delivery/smtpc_transport.hpp: the engine's Transport on server/smtpc (the SMTP/LMTP client
// shared with smtp-forward).
#pragma once
#include <memory>
#include <uv.h>

#include "config/settings.hpp"
#include "delivery/engine.hpp"
#include "delivery/transport.hpp"

namespace uvs::delivery {

// EHLO name, STARTTLS policy ([delivery] starttls: may = opportunistic, encrypt = required,
// none) and timeouts from s.delivery; a client SSL_CTX of its own.
std::unique_ptr<Transport> make_smtpc_transport(uv_loop_t *loop, const config::Settings &s);

}  // namespace uvs::delivery
