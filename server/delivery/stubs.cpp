// delivery/stubs.cpp: TEMPORARY until server/smtpc and delivery/dsn are merged.
#include "delivery/smtpc_transport.hpp"
namespace uvs::delivery {
std::unique_ptr<Transport> make_smtpc_transport(uv_loop_t *, const config::Settings &) { return nullptr; }
}  // namespace uvs::delivery
