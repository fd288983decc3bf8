// session/transaction.cpp: Transaction (see transaction.hpp).
#include "session/transaction.hpp"

#include <algorithm>

#include "session/session_util.hpp"

namespace uvs {

void Transaction::open(std::string mail_from, std::vector<smtp::EsmtpParam> params, bool smtputf8,
                       bool body_8bit) {
  open_ = true;
  id_ = make_queue_id();
  mail_from_ = std::move(mail_from);
  mail_params_ = std::move(params);
  smtputf8_ = smtputf8;
  body_8bit_ = body_8bit;
}

int Transaction::begin_data(uv_loop_t *loop, const std::string &spool_dir,
                            const std::string &received) {
  spool_ = std::make_unique<SpoolFile>(loop, spool_dir);
  int rc = spool_->open();
  if (rc < 0) {
    spool_.reset();
    return rc;
  }
  spool_->append(received);
  headers_.clear();
  hops_ = HopCounter{};
  return 0;
}

void Transaction::append(const std::string &chunk, bool in_headers) {
  if (in_headers) {
    size_t room = kMaxHeaderCapture > headers_.size() ? kMaxHeaderCapture - headers_.size() : 0;
    if (chunk.size() > room) headers_truncated_ = true;
    headers_.append(chunk, 0, std::min(room, chunk.size()));
    hops_.feed(chunk);  // the whole header section, however long
  }
  spool_->append(chunk);
}

void Transaction::commit(std::function<void(int)> done) {
  spool_->flush(std::move(done));
}

bool Transaction::rollback() {
  bool had = open_ || spool_;
  open_ = false;
  mail_from_.clear();
  mail_params_.clear();
  rcpts_.clear();
  spool_.reset();
  headers_.clear();
  headers_truncated_ = false;
  smtputf8_ = body_8bit_ = false;
  deferred_failure_ = Reply{};
  return had;
}

}  // namespace uvs
