// delivery/smtpc_transport.hpp: the engine's Transport on server/smtpc (the SMTP/LMTP client
// shared with smtp-forward), and the engine's default bounce composer on delivery/dsn.
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
// Bounces composed by delivery/dsn (RFC 3464), reporting MTA = the delivery hostname.
void set_default_bouncer(Engine &e, const config::Settings &s);

}  // namespace uvs::delivery
