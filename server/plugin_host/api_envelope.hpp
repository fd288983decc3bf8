// plugin_host/api_envelope.hpp: the uvs_api entries of the envelope edits (ABI 1.5), defined in
// api_envelope.cpp and put in the table by api.cpp.
#pragma once
#include "uvsmtpd/plugin.h"

namespace uvs {
int api_mail_from_replace(uvs_call *c, const char *addr) noexcept;
int api_rcpt_add(uvs_call *c, const char *addr) noexcept;
int api_rcpt_delete(uvs_call *c, const char *addr) noexcept;
}  // namespace uvs
