// session/transaction.hpp: one mail transaction, opened at MAIL: the envelope (queue id,
// sender, parameters, recipients), the spooled body and what DATA learned of its header
// section (kept for header_get, hop count), and the failure to answer at the end of DATA.
// Rolled back by RSET, a new HELO/EHLO, the end of a message, or the end of the session.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <uv.h>

#include "hooks/reply.hpp"
#include "session/hop_counter.hpp"
#include "smtp/address.hpp"
#include "spool/spool_file.hpp"

namespace uvs {

inline constexpr size_t kMaxHeaderCapture = 256 * 1024;  // header bytes kept for header_get

class Transaction {
 public:
  // MAIL accepted: a new queue id and the envelope sender ("" for <>).
  void open(std::string mail_from, std::vector<smtp::EsmtpParam> params, bool smtputf8,
            bool body_8bit);
  bool is_open() const { return open_; }
  const std::string &id() const { return id_; }
  const std::string &mail_from() const { return mail_from_; }
  const std::vector<smtp::EsmtpParam> &mail_params() const { return mail_params_; }
  bool smtputf8() const { return smtputf8_; }
  bool body_8bit() const { return body_8bit_; }
  const std::vector<std::string> &rcpts() const { return rcpts_; }
  void add_rcpt(std::string rcpt) { rcpts_.push_back(std::move(rcpt)); }

  // DATA: a spool for the body, starting with the Received: field; 0 or -errno (no spool).
  int begin_data(uv_loop_t *loop, const std::string &spool_dir, const std::string &received);
  // Stored message bytes; in_headers: the chunk belongs to the header section (captured,
  // bounded, and counted for hops).
  void append(const std::string &chunk, bool in_headers);
  SpoolFile *spool() const { return spool_.get(); }
  const std::string &headers() const { return headers_; }
  const HopCounter &hops() const { return hops_; }
  // Everything is stored: writes the body out; done(0) or done(-errno) on the loop.
  void commit(std::function<void(int)> done);

  // The reply for the end of DATA instead of queueing (a hook timed out at data_headers_end).
  void defer_failure(const Reply &r) { deferred_failure_ = r; }
  const Reply &deferred_failure() const { return deferred_failure_; }

  // Forgets everything (the spool is dropped). True if there was anything to roll back (an
  // open transaction or a spool), which is when reset_transaction observers are told.
  bool rollback();
  // The queue id goes last, after the reset_transaction observers ran (they still see it).
  void clear_id() { id_.clear(); }

 private:
  bool open_ = false;
  std::string id_;
  std::string mail_from_;
  std::vector<smtp::EsmtpParam> mail_params_;
  bool smtputf8_ = false;
  bool body_8bit_ = false;
  std::vector<std::string> rcpts_;
  std::unique_ptr<SpoolFile> spool_;
  std::string headers_;  // the header section as stored (bounded), for header_get
  bool headers_truncated_ = false;
  HopCounter hops_;  // Received: fields of the whole header section, not just headers_
  Reply deferred_failure_;
};

}  // namespace uvs
