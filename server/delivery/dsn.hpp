// delivery/dsn.hpp: delivery status notifications: the RFC 3464 bounce / delay warning / success
// report composer and the policy of who gets one (docs/queue.md, "Bounces"). Pure: no I/O, no
// clock (the caller passes `now`), no configuration.
//
// The API is the shared design's, with these additions (all defaulted, after the design's fields,
// so designated initializers written for the design still compile):
//   DsnInput::retry_until  the Will-Retry-Until date of a delay warning (0 = no such field);
//   DsnInput::postmaster   "" = the notice goes to the original sender; else it is the postmaster
//                          copy of an undeliverable null-sender message, sent to that address;
//   wants_notice()         RFC 3461 NOTIFY: whether a recipient's outcome gets a notice;
//   dsn_envelope()         the queue envelope of the notice (null sender, one recipient), ready
//                          for QueueDir::store.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "queue/queue_entry.hpp"

namespace uvs::delivery {

struct DsnRecipient {
  std::string address;     // as accepted at RCPT
  std::string orcpt;       // the RFC 3461 ORCPT parameter ("rfc822;a+40b.example"), "" = none
  std::string action;      // "failed", "delayed", "delivered" (also "relayed", "expanded")
  std::string status;      // enhanced status "5.1.1"; "" = 5.0.0 / 4.0.0 / 2.0.0 by action
  std::string remote_mta;  // "mx.example.net[192.0.2.1]:25", "mx.example.net" or "" = none
  // "smtp; 550 5.1.1 <a@b>: unknown user" (an RFC 3464 diagnostic-type; given), a bare SMTP
  // reply "550 5.1.1 ..." (smtp; added), or another text ("X-Uvsmtpd; " added); "" = none.
  std::string diagnostic;
  int64_t last_attempt = 0;  // unix seconds; 0 = no Last-Attempt-Date field
};

struct DsnInput {
  const queue::Envelope &env;           // the original message's envelope
  std::string_view reporting_mta = {};  // our host name (Reporting-MTA, From: MAILER-DAEMON@...)
  // The original's header section (CRLF lines); "" = take it from original_message.
  std::string_view original_headers = {};
  std::string_view original_message = {};  // the whole original (headers and body); may be empty
  size_t max_return = 100 * 1024;          // return the whole original only up to this many bytes
  std::vector<DsnRecipient> rcpts = {};    // the recipients the notice is about (at least one)
  bool delay_warning = false;              // a delay warning (Action: delayed) instead of a bounce
  int64_t now = 0;                         // unix seconds: Date:, Message-ID
  int64_t retry_until = 0;                 // delay warnings: Will-Retry-Until (0 = omitted)
  std::string_view postmaster = {};        // "" = to env.sender; else the postmaster copy's address
};

// The notice: an RFC 5322 message with CRLF lines of at most 998 octets, a multipart/report
// (RFC 6522) of report-type delivery-status: a human-readable text/plain part, the RFC 3464
// message/delivery-status part (message/global-delivery-status, RFC 6533, when an address or
// the original is UTF-8), and the original: message/rfc822 (message/global, RFC 6532, for an
// SMTPUTF8 original) when under max_return, RET is not HDRS, it is not a delay warning and its
// lines fit; else its header section as text/rfc822-headers (text/global-headers).
// Headers: Date, From: MAILER-DAEMON@<reporting_mta> (Mail Delivery System), To: the sender
// (or postmaster), Subject, Message-ID, In-Reply-To/References (the original's Message-ID),
// Auto-Submitted: auto-replied (RFC 3834), MIME-Version, Content-Type.
// The caller must not compose one for a null-sender message to its sender (should_bounce).
// DsnInput holds views: the strings they point at must outlive the call (no temporaries).
std::string compose_dsn(const DsnInput &in);

// False for a null-sender message (RFC 5321 4.5.5, RFC 3464 2: never a bounce of a bounce).
bool should_bounce(const queue::Envelope &env);

// RFC 3461 4.1 NOTIFY: `action` is "failed", "delayed" or "delivered". An empty NOTIFY (not
// given) means FAILURE,DELAY; NEVER means no notice at all.
bool wants_notice(const queue::Recipient &r, std::string_view action);

// The queue envelope for a composed notice: id as given, arrival and next try `now`, null
// sender, one pending recipient (postmaster if given, else the original sender), size of
// `message`, smtputf8 when that recipient or the notice's header section is UTF-8, 8bitmime
// when the notice has 8-bit bytes; protocol "local".
queue::Envelope dsn_envelope(const DsnInput &in, std::string_view message, std::string id);

}  // namespace uvs::delivery
