// sendmail/smtp_client.hpp: a blocking SMTP client over one TCP connection: connect, send a
// command, read a (multiline) reply, all with timeouts.
#pragma once
#include <string>
#include <vector>

#include "server_config.hpp"

namespace sm {

struct Reply {
  int code = 0;                    // 0: no reply (err says why)
  std::vector<std::string> lines;  // the text after "NNN-" / "NNN ", one per line
  std::string text() const;        // "NNN first line" for error messages
};

class SmtpClient {
 public:
  ~SmtpClient();
  bool connect(const Target &t, int timeout_s, std::string &err);
  bool send(const std::string &bytes, int timeout_s, std::string &err);
  // Reads one reply. false with err on timeout, EOF or a malformed reply (then protocol()).
  bool reply(Reply &r, int timeout_s, std::string &err);
  // send(line + CRLF) then reply().
  bool command(const std::string &line, Reply &r, int timeout_s, std::string &err);
  bool protocol_error() const { return protocol_; }
  bool verbose = false;  // the dialogue on stderr ("<<< " sent, ">>> " received)

 private:
  bool read_line(std::string &line, int timeout_s, std::string &err);
  int fd_ = -1;
  std::string buf_;
  bool protocol_ = false;
};

}  // namespace sm
