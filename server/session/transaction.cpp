// session/transaction.cpp: Transaction (see transaction.hpp).
#include "session/transaction.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

#include "session/session_util.hpp"

namespace uvs {

namespace {
int pwrite_all(int fd, const char *p, size_t n, int64_t off) {
  while (n > 0) {
    ssize_t k = ::pwrite(fd, p, n, off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += k;
    n -= static_cast<size_t>(k);
    off += k;
  }
  return 0;
}

// An edited message written out on the thread pool: everything it reads is its own (a
// descriptor on the spool, a copy of the header section, a share of the replacement body).
struct ComposeJob {
  uv_work_t req{};
  int spool_fd = -1;
  int64_t received_len = 0, body_off = 0, body_len = 0;
  std::string headers;
  std::shared_ptr<BodyCopy> body;
  std::string dir;
  int out = -1;
  int err = 0;
  std::weak_ptr<int> alive;
  Transaction *txn = nullptr;
  uint64_t gen = 0;
  int64_t total = 0;
  std::function<void(int64_t)> done;
  ~ComposeJob() {
    if (spool_fd >= 0) ::close(spool_fd);
    if (out >= 0) ::close(out);
  }
  void run() {
    out = spool_tmpfile(dir);
    if (out < 0) {
      err = out;
      return;
    }
    std::string chunk(64 * 1024, '\0');
    int64_t pos = 0;
    // from(off, buf, len): bytes, 0 at the end, -errno
    auto copy = [&](auto from, int64_t len) -> int {
      for (int64_t off = 0; off < len;) {
        int64_t room = static_cast<int64_t>(chunk.size());
        size_t want = static_cast<size_t>(std::min<int64_t>(len - off, room));
        int64_t n = from(off, chunk.data(), want);
        if (n < 0) return static_cast<int>(n);
        if (n == 0) return -EIO;  // shorter than it was
        int rc = pwrite_all(out, chunk.data(), static_cast<size_t>(n), pos);
        if (rc < 0) return rc;
        pos += n;
        off += n;
      }
      return 0;
    };
    auto spool_at = [&](int64_t base) {
      return [&, base](int64_t off, void *buf, size_t len) -> int64_t {
        for (;;) {
          ssize_t n = ::pread(spool_fd, buf, len, base + off);
          if (n < 0 && errno == EINTR) continue;
          return n < 0 ? -errno : n;
        }
      };
    };
    auto mem = [&](int64_t off, void *buf, size_t len) -> int64_t {
      memcpy(buf, headers.data() + off, len);
      return static_cast<int64_t>(len);
    };
    auto repl = [&](int64_t off, void *buf, size_t len) -> int64_t {
      return body->read(off, buf, len);
    };
    int rc = copy(spool_at(0), received_len);
    if (rc == 0) rc = copy(mem, static_cast<int64_t>(headers.size()));
    if (rc == 0) rc = body ? copy(repl, body->size()) : copy(spool_at(body_off), body_len);
    if (rc < 0) err = rc;
  }
};

// A replacement body copied and checked on the thread pool: it reads its own share of the
// source (whose descriptor stays open while the job runs) and fills a BodyCopy of its own.
struct BodyCheckJob {
  uv_work_t req{};
  std::shared_ptr<BodyCopy> src;
  std::shared_ptr<BodyCopy> out = std::make_shared<BodyCopy>();
  std::string dir;
  uint64_t max = 0;
  int err = 0;
  std::weak_ptr<int> alive;
  Transaction *txn = nullptr;
  std::function<void(int)> done;
};
}  // namespace

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
  drop_edits();
  msg_ = std::make_unique<Message>();
  msg_->spool_dir = spool_dir;
  msg_->loop = loop;
  received_len_ = static_cast<int64_t>(received.size());
  header_bytes_ = 0;
  headers_.clear();
  headers_truncated_ = false;
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

bool same_rcpt(std::string_view a, std::string_view b) {
  auto ci = [](unsigned char x, unsigned char y) { return tolower(x) == tolower(y); };
  size_t at = a.rfind('@');
  if (at == std::string_view::npos)  // <postmaster>, in any case
    return b.find('@') == std::string_view::npos && a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), ci);
  return a.size() == b.size() && b.rfind('@') == at && a.substr(0, at) == b.substr(0, at) &&
         std::equal(a.begin() + at, a.end(), b.begin() + at, ci);
}

bool Transaction::has_rcpt(std::string_view addr) const {
  return std::any_of(rcpts_.begin(), rcpts_.end(),
                     [&](const std::string &r) { return same_rcpt(r, addr); });
}

bool Transaction::remove_rcpt(std::string_view addr) {
  auto it = std::find_if(rcpts_.begin(), rcpts_.end(),
                         [&](const std::string &r) { return same_rcpt(r, addr); });
  if (it == rcpts_.end()) return false;
  rcpts_.erase(it);
  return true;
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

Transaction::Message::~Message() {
  if (composed_fd >= 0) ::close(composed_fd);
}

void Transaction::drop_edits() {
  msg_.reset();
  ++edit_gen_;  // a copy in progress belongs to edits that are gone
}

int Transaction::start_edit() {
  if (!spool_) return -ENOENT;
  if (headers_truncated_) return -E2BIG;  // the whole section is needed to rewrite it
  if (!msg_->fields) {
    msg_->fields = smtp::HeaderFields::parse(headers_, msg_->separator);
    refresh_edited();
  }
  return 0;
}

void Transaction::refresh_edited() {
  Message &m = *msg_;
  m.edited_headers = m.fields->text();
  // The empty line stays where it was; a replacement body on a message that had none needs one.
  if (m.separator || (m.body && m.body->size() > 0)) m.edited_headers += "\r\n";
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
  if (msg_->edited_headers.size() + field.size() > kMaxHeaderCapture) return -E2BIG;
  smtp::HeaderFields &f = *msg_->fields;
  bool found = true;
  switch (op) {
    case HeaderOp::add_top: f.add_top(std::move(field)); break;
    case HeaderOp::add_bottom: f.add_bottom(std::move(field)); break;
    case HeaderOp::insert_before: found = f.insert_before(at, i, std::move(field)); break;
    case HeaderOp::erase: found = f.erase(at, i); break;
    case HeaderOp::replace: found = f.replace(at, i, std::move(field)); break;
  }
  if (!found) return -ENOENT;
  refresh_edited();
  return 0;
}

int Transaction::replace_body(int fd, uint64_t max_size) {
  int rc = start_edit();
  if (rc < 0) return rc;
  uint64_t head = static_cast<uint64_t>(received_len_) + msg_->edited_headers.size() + 2;
  if (max_size && head >= max_size) return -EFBIG;
  auto b = std::make_shared<BodyCopy>();
  rc = b->open_source(fd, max_size ? max_size - head : 0);
  if (rc < 0) return rc;
  msg_->body = std::move(b);
  refresh_edited();
  return 0;
}

void Transaction::check_body(uint64_t max_size, std::function<void(int)> done) {
  if (!body_unchecked() || !msg_->loop) return done(0);
  uint64_t head = static_cast<uint64_t>(received_len_) + msg_->edited_headers.size() + 2;
  if (max_size && head >= max_size) return done(-EFBIG);
  auto job = std::make_unique<BodyCheckJob>();
  job->src = msg_->body;
  job->dir = msg_->spool_dir;
  job->max = max_size ? max_size - head : 0;
  if (!alive_) alive_ = std::make_shared<int>(0);
  job->alive = alive_;
  job->txn = this;
  job->done = std::move(done);
  job->req.data = job.get();
  int rc = uv_queue_work(
      msg_->loop, &job->req,
      [](uv_work_t *w) {
        auto *j = static_cast<BodyCheckJob *>(w->data);
        j->err = j->out->load(j->src->source_fd(), j->dir, j->max);
      },
      [](uv_work_t *w, int status) {
        std::unique_ptr<BodyCheckJob> j(static_cast<BodyCheckJob *>(w->data));
        if (j->alive.expired()) return;  // the transaction (and its session) is gone
        Transaction *t = j->txn;
        int result = status < 0 ? status : j->err;
        if (!t->msg_ || t->msg_->body != j->src) {
          result = -ECANCELED;  // dropped or replaced meanwhile
        } else if (result == 0) {
          t->msg_->body = std::move(j->out);
          t->refresh_edited();  // its size is what was read, not what fstat said
        }
        j->done(result);
      });
  if (rc < 0) return job->done(rc);
  (void)job.release();
}

int64_t Transaction::message_size() const {
  if (!spool_) return -1;
  if (!edited()) return spool_->size();
  const Message &m = *msg_;
  int64_t body = m.body ? m.body->size()
                        : std::max<int64_t>(0, spool_->size() - received_len_ - header_bytes_);
  return received_len_ + static_cast<int64_t>(m.edited_headers.size()) + body;
}

int64_t Transaction::message_read(int64_t off, void *buf, size_t len) const {
  if (!spool_) return -ENOENT;
  if (!edited()) return spool_->read(off, buf, len);
  const std::string &edited_headers = msg_->edited_headers;
  const BodyCopy *body = msg_->body.get();
  // Three parts: the Received: field (spool), the edited header section, the body (the spool
  // past the stored header section, or the replacement).
  char *out = static_cast<char *>(buf);
  size_t done = 0;
  const int64_t h_end = received_len_ + static_cast<int64_t>(edited_headers.size());
  while (done < len) {
    int64_t pos = off + static_cast<int64_t>(done);
    size_t want = len - done;
    int64_t n;
    if (pos < received_len_) {
      n = spool_->read(pos, out + done, std::min<size_t>(want, static_cast<size_t>(received_len_ - pos)));
    } else if (pos < h_end) {
      size_t k = static_cast<size_t>(pos - received_len_);
      n = static_cast<int64_t>(std::min(want, edited_headers.size() - k));
      memcpy(out + done, edited_headers.data() + k, static_cast<size_t>(n));
    } else if (body) {
      n = body->read(pos - h_end, out + done, want);
    } else {
      n = spool_->read(pos - h_end + received_len_ + header_bytes_, out + done, want);
    }
    if (n < 0) return done ? static_cast<int64_t>(done) : n;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(done);
}

void Transaction::prepare_message_fd(std::function<void(int64_t)> done) {
  int64_t total = message_size();
  if (!edited() || !msg_->loop || total <= static_cast<int64_t>(SpoolFile::kMemoryLimit) ||
      (msg_->composed_fd >= 0 && msg_->composed_gen == edit_gen_ && msg_->composed_size == total))
    return done(0);
  Message &m = *msg_;
  auto job = std::make_unique<ComposeJob>();
  job->spool_fd = spool_->dup_fd();
  if (job->spool_fd < 0) return done(job->spool_fd);
  job->received_len = received_len_;
  job->headers = m.edited_headers;
  job->body = m.body;
  job->body_off = received_len_ + header_bytes_;
  job->body_len = std::max<int64_t>(0, spool_->size() - job->body_off);
  job->dir = m.spool_dir;
  if (!alive_) alive_ = std::make_shared<int>(0);  // made only when a copy job needs it
  job->alive = alive_;
  job->txn = this;
  job->gen = edit_gen_;
  job->total = total;
  job->done = std::move(done);
  job->req.data = job.get();
  int rc = uv_queue_work(
      m.loop, &job->req, [](uv_work_t *w) { static_cast<ComposeJob *>(w->data)->run(); },
      [](uv_work_t *w, int status) {
        std::unique_ptr<ComposeJob> j(static_cast<ComposeJob *>(w->data));
        if (j->alive.expired()) return;  // the transaction (and its session) is gone
        Transaction *t = j->txn;
        int64_t result = status < 0 ? status : j->err < 0 ? j->err : j->total;
        if (result > 0 && t->msg_ && t->edit_gen_ == j->gen && t->message_size() == j->total) {
          Message &tm = *t->msg_;
          if (tm.composed_fd >= 0) ::close(tm.composed_fd);
          tm.composed_fd = j->out;
          j->out = -1;
          tm.composed_gen = j->gen;
          tm.composed_size = j->total;
        } else if (result > 0) {
          result = -ESTALE;  // edited meanwhile
        }
        j->done(result);
      });
  if (rc < 0) return job->done(rc);
  (void)job.release();
}

int Transaction::message_fd() const {
  if (!spool_) return -ENOENT;
  if (!edited()) return spool_->dup_fd();
  Message &m = *msg_;
  // An edited message is written out whole once per state of the edits (and of the spool, which
  // may still grow at data_headers_end): memory for a small one, the spool directory otherwise.
  int64_t total = message_size();
  if (m.composed_fd < 0 || m.composed_gen != edit_gen_ || m.composed_size != total) {
    if (m.composed_fd >= 0) ::close(m.composed_fd);
    m.composed_fd = -1;
    int fd = total <= static_cast<int64_t>(SpoolFile::kMemoryLimit)
                 ? memfd_create("uvsmtpd-message", MFD_CLOEXEC)
                 : spool_tmpfile(m.spool_dir);
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
    m.composed_fd = fd;
    m.composed_gen = edit_gen_;
    m.composed_size = total;
  }
  return reopen_read_only(m.composed_fd);
}

}  // namespace uvs
