// queue/queue_entry.hpp: one outbound queue entry's envelope (sender, recipients and their
// delivery state, client details, schedule) and its versioned text file format (docs/queue.md).
// Pure: no file I/O here (queue_dir.* reads and writes the files).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace uvs::queue {

// The first line of every envelope file: magic word and format version.
inline constexpr std::string_view kEnvelopeMagic = "uvsmtpd-queue-envelope";
inline constexpr int kEnvelopeVersion = 1;
// An envelope file larger than this is refused as damaged (a 10,000-recipient envelope is
// about 1 MiB).
inline constexpr size_t kMaxEnvelopeBytes = 16u << 20;
// Queue ids: 1..kMaxIdLen characters from [0-9A-Za-z].
inline constexpr size_t kMaxIdLen = 31;

enum class RcptState : uint8_t { pending, delivered, failed };

std::string_view rcpt_state_name(RcptState s);

struct Recipient {
  std::string address;  // as accepted at RCPT ("postmaster" has no domain)
  std::string orcpt;    // RFC 3461 ORCPT value ("rfc822;addr"), "" when not given
  std::string notify;   // RFC 3461 NOTIFY value, "" when not given
  RcptState state = RcptState::pending;
  int status = 0;          // the last SMTP reply code for it, 0 = none yet
  std::string enhanced;    // its enhanced status code ("4.4.1"), "" = none
  std::string remote_mta;  // the host that answered ("mx.example.org[192.0.2.1]")
  std::string diagnostic;  // the reply text (one line)
  int64_t updated = 0;     // unix seconds of the last state change, 0 = never
};

struct Envelope {
  std::string id;              // the queue id: the 250 reply's, the log lines' and the files' name
  int64_t arrival = 0;         // unix seconds when the message was queued
  int64_t size = 0;            // bytes of the message file
  std::string sender;          // reverse path without <>, "" for the null sender
  std::string client_ip;       // the sending client, for DSNs and logs
  std::string client_name;     // its verified reverse name, "" if none
  std::string helo;            // its HELO/EHLO name, "" if none
  std::string auth_user;       // the AUTH user, "" if none
  std::string protocol;        // the Received: protocol word (ESMTP, ESMTPS, UTF8SMTP...)
  bool smtputf8 = false;       // MAIL ... SMTPUTF8 (RFC 6531)
  bool body_8bitmime = false;  // MAIL ... BODY=8BITMIME (RFC 6152)
  std::string dsn_ret;         // RFC 3461 RET (FULL/HDRS), "" when not given
  std::string dsn_envid;       // RFC 3461 ENVID, "" when not given
  int attempts = 0;            // delivery attempts so far
  int64_t next_try = 0;        // unix seconds of the next attempt
  std::string last_error;      // the last temporary failure, one line, "" if none
  std::vector<Recipient> rcpts;

  size_t pending_count() const;
};

// RFC 3461 xtext: printable ASCII except '+', '=' and SP as is, every other byte as "+HH".
std::string xtext_encode(std::string_view s);
bool xtext_decode(std::string_view s, std::string &out);

bool valid_id(std::string_view id);

// The file's text: the magic line, one record per line ("name value", values xtext), one
// "rcpt" line per recipient, "end".
std::string serialize(const Envelope &e);
// Parses a whole file's text. false with err = "line N: reason" (or a reason for the whole
// file: missing magic, unknown version, truncated: no "end").
bool parse(std::string_view text, Envelope &e, std::string &err);

}  // namespace uvs::queue
