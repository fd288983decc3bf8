// sendmail/options.cpp: parses sendmail(1)-style options: -t -i -f -F -v, -o/-b/-B/-N/-R/-V...
// accepted where ignoring them is harmless, modes other than -bm refused.
#include "options.hpp"

#include <cstring>
#include <sysexits.h>

namespace sm {

const char *const kUsage =
    "usage: uvsmtpd-sendmail [-t] [-i] [-f sender] [-F name] [-S host:port] [-C config] [-v]\n"
    "                        [--] [recipient ...]   (message on standard input)\n";

namespace {

// Modes (-bX) other than -bm: what they would do elsewhere, for the error line.
const char *mode_name(char c) {
  switch (c) {
    case 's':
      return "SMTP on standard input";
    case 'p':
      return "list the mail queue";
    case 'd':
    case 'D':
      return "run as a daemon";
    case 'i':
      return "rebuild the aliases";
    case 'v':
      return "verify addresses";
    case 't':
      return "address test mode";
    case 'h':
    case 'H':
      return "host status";
    case 'P':
      return "print queue counts";
    default:
      return nullptr;
  }
}

}  // namespace

int parse_options(int argc, char **argv, Options &o, std::string &err) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--help") {
      o.help = true;
      return 0;
    }
    if (a.size() < 2 || a[0] != '-') break;  // the recipients start here
    char c = a[1];
    // Options with a value, attached (-fuser) or as the next argument (-f user).
    if (strchr("frFSCBNRVhLO", c)) {
      std::string v;
      if (a.size() > 2) {
        v = a.substr(2);
      } else if (i + 1 < argc) {
        v = argv[++i];
      } else {
        err = std::string("option -") + c + " needs a value";
        return EX_USAGE;
      }
      switch (c) {
        case 'f':
        case 'r':
          o.sender = v;
          o.sender_set = true;
          break;
        case 'F':
          o.full_name = v;
          break;
        case 'S':
          o.server = v;
          break;
        case 'C':
          o.config = v;
          break;
        default:
          break;  // -B body type, -N/-R/-V DSN, -h hop count, -L tag, -O option: ignored
      }
      continue;
    }
    if (c == 'b') {
      if (a == "-bm") continue;
      const char *what = a.size() == 3 ? mode_name(a[2]) : nullptr;
      err = "mode " + a + (what ? std::string(" (") + what + ")" : std::string()) +
            " is not supported: uvsmtpd-sendmail only submits a message (-bm)";
      return EX_USAGE;
    }
    if (c == 'o') {
      if (a.size() < 3) {
        err = "option -o needs a letter (-oi, -oem, ...)";
        return EX_USAGE;
      }
      if (a == "-oi") o.dot_ends = false;
      continue;  // -oem, -odb, -oQ... : no meaning here
    }
    if (c == 'q' || c == 'I') {
      err = "option " + a + " is not supported: uvsmtpd-sendmail has no queue of its own";
      return EX_USAGE;
    }
    if (a.size() == 2) {
      switch (c) {
        case 't':
          o.from_headers = true;
          continue;
        case 'i':
          o.dot_ends = false;
          continue;
        case 'v':
          o.verbose = true;
          continue;
        case 'm':
        case 'n':
        case 'U':
        case 'G':
          continue;  // historic, harmless
        default:
          break;
      }
    }
    if (c == 'A' || c == 'e') continue;  // -Am/-Ac, -em/-ep/-eq: harmless
    err = "unknown option " + a;
    return EX_USAGE;
  }
  for (; i < argc; ++i) o.recipients.push_back(argv[i]);
  return 0;
}

}  // namespace sm
