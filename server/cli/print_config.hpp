// cli/print_config.hpp: --print-config / --print-defaults: settings written back as TOML that
// uvsmtpd.toml accepts, every key, in the order of the shipped conf/uvsmtpd.toml.
#pragma once
#include <cstdio>
#include <string>

#include "config/settings.hpp"

namespace uvs::cli {

// Writes s as a complete uvsmtpd.toml; `origin` goes into the first comment line.
void print_settings(FILE *out, const config::Settings &s, const std::string &origin);

}  // namespace uvs::cli
