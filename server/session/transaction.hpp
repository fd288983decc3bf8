// session/transaction.hpp: one mail transaction, opened at MAIL: the envelope (queue id,
// sender, parameters, recipients), the spooled body and what DATA learned of its header
// section (kept for header_get, hop count), plugins' edits of the message (ABI 1.3: an edited
// header section kept apart and a replacement body, spliced in when the message is read; the
// spooled body is never rewritten), and the failure to answer at the end of DATA.
// Rolled back by RSET, a new HELO/EHLO, the end of a message, or the end of the session.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <uv.h>

#include "hooks/reply.hpp"
#include "session/hop_counter.hpp"
#include "smtp/header_fields.hpp"
#include "spool/body_copy.hpp"
#include "smtp/address.hpp"
#include "spool/spool_file.hpp"

namespace uvs {

inline constexpr size_t kMaxHeaderCapture = 256 * 1024;  // header bytes kept for header_get

// Two recipients are the same when their local parts are equal as written and their domains
// without regard to case (a bare postmaster: in any case).
bool same_rcpt(std::string_view a, std::string_view b);

class Transaction {
 public:
  Transaction() = default;
  ~Transaction();
  Transaction(const Transaction &) = delete;
  Transaction &operator=(const Transaction &) = delete;

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
  // Envelope edits (ABI 1.5): a new sender; the recipient equal to addr (same_rcpt) found or
  // removed (false: there is none).
  void set_mail_from(std::string from) { mail_from_ = std::move(from); }
  bool has_rcpt(std::string_view addr) const;
  bool remove_rcpt(std::string_view addr);

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

  // ---- the message as plugins see it, edits included (ABI 1.3) ----
  using HeaderOp = smtp::HeaderOp;
  // One header edit. at/i: the i-th field named `at` (insert_before, erase, replace); name and
  // value: the new field (replace keeps `at` as the name). 0, -EINVAL (bad name or value),
  // -ENOENT (no spool, or no such field), -E2BIG (the header section is beyond what is kept).
  int edit_header(HeaderOp op, std::string_view at, int i, std::string_view name,
                  std::string_view value);
  // Replaces the body with fd's content, max_size bounding the whole message. Cheap, on the
  // loop: only what fstat tells is checked (BodyCopy::open_source); the body is read from the
  // plugin's file (a duplicate descriptor) until check_body() has copied it.
  int replace_body(int fd, uint64_t max_size);
  // A replacement body not copied yet: check_body() must run before the message is used whole.
  bool body_unchecked() const { return msg_ && msg_->body && msg_->body->is_source(); }
  // Copies and checks that body on libuv's thread pool (BodyCopy::load); done(0) on the loop
  // once the copy replaced the source, else done(-errno): -EINVAL (a bare CR or LF, no final
  // CRLF), -EFBIG (beyond max_size), a read or spool error, -ECANCELED (the edits were dropped
  // meanwhile). Not called once the transaction is gone.
  void check_body(uint64_t max_size, std::function<void(int)> done);
  bool edited() const { return msg_ && msg_->fields.has_value(); }
  // The header section as plugins see it (edited or as stored), ending with its empty line.
  const std::string &header_text() const { return edited() ? msg_->edited_headers : headers_; }
  int64_t message_size() const;                                   // -1 without a spool
  int64_t message_read(int64_t offset, void *buf, size_t len) const;  // bytes, 0 at end, -errno
  int message_fd() const;  // a new read-only descriptor on the message as message_read() sees it
  // Before the queue hook: an edited message beyond kMemoryLimit is written out whole on libuv's
  // thread pool, so that message_fd() at queue time hands out that copy instead of writing it on
  // the loop. done(n) runs on the loop: n bytes written, 0 when there was nothing to write (at
  // once), or -errno (message_fd() then tries again itself). Not called once the transaction
  // is gone.
  void prepare_message_fd(std::function<void(int64_t)> done);

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
  // Where the parts are in the spool: [0, received_len_) the Received: field the server wrote,
  // then header_bytes_ of the client's header section (its empty line included), then the body.
  int64_t received_len_ = 0;
  int64_t header_bytes_ = 0;
  // Made by begin_data (an idle session or one before DATA carries only the pointer): where the
  // spool lives, and plugins' edits: fields is set by the first one; edited_headers is its text
  // plus the separator.
  struct Message {
    std::string spool_dir;
    uv_loop_t *loop = nullptr;
    std::optional<smtp::HeaderFields> fields;
    bool separator = false;  // the stored section ended with an empty line
    std::string edited_headers;
    std::shared_ptr<BodyCopy> body;  // a replacement body (shared with a copy in progress)
    int composed_fd = -1;            // message_fd() of an edited message: the whole message
    uint64_t composed_gen = 0;
    int64_t composed_size = -1;
    Message() = default;
    Message(const Message &) = delete;
    Message &operator=(const Message &) = delete;
    ~Message();
  };
  std::unique_ptr<Message> msg_;
  uint64_t edit_gen_ = 0;       // counts edits (and dropped ones), for the composed file
  std::shared_ptr<int> alive_;  // for callbacks from the thread pool (made with the first job)
  int start_edit();       // parses headers_ into msg_->fields on the first edit
  void refresh_edited();  // msg_->edited_headers from the fields and the body
  void drop_edits();
  Reply deferred_failure_;
};

}  // namespace uvs
