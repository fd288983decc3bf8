// cli/queue_tool.hpp: `uvsmtpd queue ...`: list and manage the outbound queue directory
// (list, show, delete, hold, release, flush), safe while a server writes to it.
#pragma once
#include <string>

namespace uvs::cli {

// args: what follows "queue" on the command line. Returns the exit status: 0 done, 1 an unknown
// id, a damaged entry or a failed operation, 2 a usage or configuration error.
int queue_main(int argc, char **argv, const std::string &default_config_dir);

}  // namespace uvs::cli
