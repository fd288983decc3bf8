// workers/link.cpp: the worker's channel to the supervisor (link.hpp).
#include "workers/link.hpp"

#include <cstring>

namespace uvs::workers {

Link::~Link() {
  close();
}

bool Link::open(int fd, std::function<void()> on_gone,
                std::function<void(std::string_view)> on_line, std::string &err) {
  pipe_ = new uv_pipe_t;
  uv_pipe_init(loop_, pipe_, 0);
  pipe_->data = this;
  on_gone_ = std::move(on_gone);
  on_line_ = std::move(on_line);
  int rc = uv_pipe_open(pipe_, fd);
  if (rc == 0)
    rc = uv_read_start(
        reinterpret_cast<uv_stream_t *>(pipe_),
        [](uv_handle_t *, size_t, uv_buf_t *b) {
          static char buf[4096];  // read callbacks run one at a time, on the loop
          *b = uv_buf_init(buf, sizeof buf);
        },
        [](uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
          auto *self = static_cast<Link *>(s->data);
          if (n < 0) {
            auto gone = std::move(self->on_gone_);
            self->close();
            if (gone) gone();
            return;
          }
          self->in_.append(b->base, static_cast<size_t>(n));
          for (size_t nl; (nl = self->in_.find('\n')) != std::string::npos;) {
            std::string line = self->in_.substr(0, nl);
            self->in_.erase(0, nl + 1);
            if (self->on_line_) self->on_line_(line);
            if (!self->pipe_) return;
          }
        });
  if (rc < 0) {
    err = std::string("worker: the supervisor's channel: ") + uv_strerror(rc);
    close();
    return false;
  }
  return true;
}

void Link::send(std::string_view line) {
  if (!pipe_) return;
  std::string text(line);
  text += '\n';
  uv_buf_t b = uv_buf_init(text.data(), static_cast<unsigned>(text.size()));
  // Small lines on a fresh socket: written at once (a full buffer drops the line).
  uv_try_write(reinterpret_cast<uv_stream_t *>(pipe_), &b, 1);
}

void Link::send_block(std::string_view word, std::string body) {
  if (!pipe_) return;
  struct Req {
    uv_write_t w;
    std::string data;
  };
  auto *r = new Req;
  r->w.data = r;
  r->data = std::string(word) + " " + std::to_string(body.size()) + "\n" + body;
  uv_buf_t b = uv_buf_init(r->data.data(), static_cast<unsigned>(r->data.size()));
  if (uv_write(&r->w, reinterpret_cast<uv_stream_t *>(pipe_), &b, 1,
               [](uv_write_t *w, int) { delete static_cast<Req *>(w->data); }) < 0)
    delete r;
}

void Link::close() {
  if (!pipe_) return;
  uv_close(reinterpret_cast<uv_handle_t *>(pipe_),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_pipe_t *>(h); });
  pipe_ = nullptr;
}

}  // namespace uvs::workers
