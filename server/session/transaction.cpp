// session/transaction.cpp: Transaction (see transaction.hpp).
#include "session/transaction.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

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
  spool_dir_ = spool_dir;
  received_len_ = static_cast<int64_t>(received.size());
  header_bytes_ = 0;
  headers_.clear();
  headers_truncated_ = false;
  drop_edits();
  hops_ = HopCounter{};
  return 0;
}

void Transaction::append(const std::string &chunk, bool in_headers) {
  if (in_headers) {
    size_t room = kMaxHeaderCapture > headers_.size() ? kMaxHeaderCapture - headers_.size() : 0;
    if (chunk.size() > room) headers_truncated_ = true;
    headers_.append(chunk, 0, std::min(room, chunk.size()));
    hops_.feed(chunk);  // the whole header section, however long
    header_bytes_ += static_cast<int64_t>(chunk.size());
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
  header_bytes_ = 0;
  drop_edits();
  smtputf8_ = body_8bit_ = false;
  deferred_failure_ = Reply{};
  return had;
}

Transaction::~Transaction() { drop_edits(); }

// ---- plugins' edits (ABI 1.3) ---------------------------------------------------------------

void Transaction::drop_edits() {
  fields_.reset();
  separator_ = false;
  edited_headers_.clear();
  body_.reset();
  if (composed_fd_ >= 0) ::close(composed_fd_);
  composed_fd_ = -1;
  composed_size_ = -1;
}

int Transaction::start_edit() {
  if (!spool_) return -ENOENT;
  if (headers_truncated_) return -E2BIG;  // the whole section is needed to rewrite it
  if (!fields_) {
    fields_ = smtp::HeaderFields::parse(headers_, separator_);
    refresh_edited();
  }
  return 0;
}

void Transaction::refresh_edited() {
  edited_headers_ = fields_->text();
  // The empty line stays where it was; a replacement body on a message that had none needs one.
  if (separator_ || (body_ && body_->size() > 0)) edited_headers_ += "\r\n";
  ++edit_gen_;
}

int Transaction::edit_header(HeaderOp op, std::string_view at, int i, std::string_view name,
                             std::string_view value) {
  bool insert = op != HeaderOp::erase;
  if (op != HeaderOp::add_top && op != HeaderOp::add_bottom && (!smtp::header_name_ok(at) || i < 0))
    return -EINVAL;
  if (insert && (!smtp::header_name_ok(name) || !smtp::header_value_ok(name, value, smtputf8_)))
    return -EINVAL;
  int rc = start_edit();
  if (rc < 0) return rc;
  std::string field = insert ? smtp::make_field(name, value) : std::string();
  if (edited_headers_.size() + field.size() > kMaxHeaderCapture) return -E2BIG;
  bool found = true;
  switch (op) {
    case HeaderOp::add_top: fields_->add_top(std::move(field)); break;
    case HeaderOp::add_bottom: fields_->add_bottom(std::move(field)); break;
    case HeaderOp::insert_before: found = fields_->insert_before(at, i, std::move(field)); break;
    case HeaderOp::erase: found = fields_->erase(at, i); break;
    case HeaderOp::replace: found = fields_->replace(at, i, std::move(field)); break;
  }
  if (!found) return -ENOENT;
  refresh_edited();
  return 0;
}

int Transaction::replace_body(int fd, uint64_t max_size) {
  int rc = start_edit();
  if (rc < 0) return rc;
  uint64_t head = static_cast<uint64_t>(received_len_) + edited_headers_.size() + 2;
  if (max_size && head >= max_size) return -EFBIG;
  auto b = std::make_unique<BodyCopy>();
  rc = b->load(fd, spool_dir_, max_size ? max_size - head : 0);
  if (rc < 0) return rc;
  body_ = std::move(b);
  refresh_edited();
  return 0;
}

int64_t Transaction::message_size() const {
  if (!spool_) return -1;
  if (!fields_) return spool_->size();
  int64_t body = body_ ? body_->size()
                       : std::max<int64_t>(0, spool_->size() - received_len_ - header_bytes_);
  return received_len_ + static_cast<int64_t>(edited_headers_.size()) + body;
}

int64_t Transaction::message_read(int64_t off, void *buf, size_t len) const {
  if (!spool_) return -ENOENT;
  if (!fields_) return spool_->read(off, buf, len);
  // Three parts: the Received: field (spool), the edited header section, the body (the spool
  // past the stored header section, or the replacement).
  char *out = static_cast<char *>(buf);
  size_t done = 0;
  const int64_t h_end = received_len_ + static_cast<int64_t>(edited_headers_.size());
  while (done < len) {
    int64_t pos = off + static_cast<int64_t>(done);
    size_t want = len - done;
    int64_t n;
    if (pos < received_len_) {
      n = spool_->read(pos, out + done, std::min<size_t>(want, static_cast<size_t>(received_len_ - pos)));
    } else if (pos < h_end) {
      size_t k = static_cast<size_t>(pos - received_len_);
      n = static_cast<int64_t>(std::min(want, edited_headers_.size() - k));
      memcpy(out + done, edited_headers_.data() + k, static_cast<size_t>(n));
    } else if (body_) {
      n = body_->read(pos - h_end, out + done, want);
    } else {
      n = spool_->read(pos - h_end + received_len_ + header_bytes_, out + done, want);
    }
    if (n < 0) return done ? static_cast<int64_t>(done) : n;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(done);
}

int Transaction::message_fd() const {
  if (!spool_) return -ENOENT;
  if (!fields_) return spool_->dup_fd();
  // An edited message is written out whole once per state of the edits (and of the spool, which
  // may still grow at data_headers_end): memory for a small one, the spool directory otherwise.
  int64_t total = message_size();
  if (composed_fd_ < 0 || composed_gen_ != edit_gen_ || composed_size_ != total) {
    if (composed_fd_ >= 0) ::close(composed_fd_);
    composed_fd_ = -1;
    int fd = total <= static_cast<int64_t>(SpoolFile::kMemoryLimit)
                 ? memfd_create("uvsmtpd-message", MFD_CLOEXEC)
                 : spool_tmpfile(spool_dir_);
    if (fd < 0) return fd == -1 ? -errno : fd;
    std::string chunk(64 * 1024, '\0');
    int64_t off = 0;
    for (;;) {
      int64_t n = message_read(off, chunk.data(), chunk.size());
      if (n < 0) {
        ::close(fd);
        return static_cast<int>(n);
      }
      if (n == 0) break;
      for (int64_t w = 0; w < n;) {
        ssize_t k = ::pwrite(fd, chunk.data() + w, static_cast<size_t>(n - w), off + w);
        if (k < 0) {
          int e = errno;
          if (e == EINTR) continue;
          ::close(fd);
          return -e;
        }
        w += k;
      }
      off += n;
    }
    composed_fd_ = fd;
    composed_gen_ = edit_gen_;
    composed_size_ = total;
  }
  return reopen_read_only(composed_fd_);
}

}  // namespace uvs
