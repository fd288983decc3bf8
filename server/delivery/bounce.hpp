// delivery/bounce.hpp: the engine's notice policy on top of delivery/dsn: who gets a notice for
// failed recipients (the sender, as RFC 3461 NOTIFY asks; for a null-sender message the
// postmaster copy when [delivery] postmaster is set, else nothing), and the notice as a new
// queue entry (null sender).
#pragma once
#include <string>

#include "delivery/engine.hpp"

namespace uvs::delivery {

BounceFn make_dsn_bouncer(std::string reporting_mta, std::string postmaster);

}  // namespace uvs::delivery
