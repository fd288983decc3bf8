// sendmail/options.hpp: uvsmtpd-sendmail's command line (the sendmail(1) interface that local
// programs and cron use).
#pragma once
#include <string>
#include <vector>

namespace sm {

struct Options {
  std::vector<std::string> recipients;  // the arguments after the options, address lists
  bool from_headers = false;            // -t: also take recipients from To:, Cc:, Bcc:
  bool dot_ends = true;                 // a line "." ends the input (off with -i / -oi)
  bool sender_set = false;              // -f / -r given
  std::string sender;                   //   its value ("" or "<>" = the null sender)
  std::string full_name;                // -F (accepted, not used)
  std::string server;                   // -S host[:port]
  std::string config;                   // -C uvsmtpd config dir or uvsmtpd.toml
  bool verbose = false;                 // -v: the SMTP dialogue on stderr
  bool help = false;                    // --help
};

// 0, or EX_USAGE with err set (unknown option, missing value, an unsupported mode such as -bp).
int parse_options(int argc, char **argv, Options &o, std::string &err);
extern const char *const kUsage;

}  // namespace sm
