// tests/integration/fake_mx.cpp: the scriptable fake SMTP/LMTP server: listening socket and
// accept thread, one thread per connection running its script, STARTTLS through OpenSSL.
#include "fake_mx.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <csignal>
#include <sys/socket.h>
#include <unistd.h>

namespace itest {

namespace {

std::string upper(std::string s) {
  for (char &c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The address inside the first <...> of a MAIL/RCPT argument ("TO:<a@b> NOTIFY=NEVER" -> a@b).
std::string path_of(const std::string &arg) {
  size_t lt = arg.find('<');
  size_t gt = arg.find('>', lt == std::string::npos ? 0 : lt);
  if (lt == std::string::npos || gt == std::string::npos) return "";
  return arg.substr(lt + 1, gt - lt - 1);
}

int code_of(const std::string &reply) {
  return reply.size() >= 3 && std::isdigit(static_cast<unsigned char>(reply[0]))
             ? std::atoi(reply.substr(0, 3).c_str())
             : 0;
}

const std::string *match(const std::vector<std::pair<std::string, std::string>> &rules,
                         const std::string &addr) {
  for (const auto &[pattern, reply] : rules)
    if (mx_glob(pattern, addr)) return &reply;
  return nullptr;
}

}  // namespace

bool mx_glob(const std::string &pattern, const std::string &s) {
  // Iterative matching with one backtrack point per '*'.
  size_t p = 0, i = 0, star = std::string::npos, mark = 0;
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pattern.size() && std::tolower(static_cast<unsigned char>(pattern[p])) ==
                                         std::tolower(static_cast<unsigned char>(s[i]))) {
      ++p;
      ++i;
    } else if (star != std::string::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<std::unique_ptr<FakeMx>> start_fake_mxs(const std::vector<std::string> &ips,
                                                    const MxScript &script, int tries) {
  std::vector<std::unique_ptr<FakeMx>> out;
  for (int t = 0; t < tries && !ips.empty(); ++t) {
    out.clear();
    out.push_back(std::make_unique<FakeMx>(ips[0], 0, script));
    if (!out[0]->started()) break;
    for (size_t i = 1; i < ips.size(); ++i) {
      out.push_back(std::make_unique<FakeMx>(ips[i], out[0]->port(), script));
      if (!out.back()->started()) break;
    }
    if (out.back()->started()) return out;
  }
  out.clear();
  return out;
}

// One connection: the socket, TLS once started, the read buffer.
struct FakeMx::Conn {
  int fd = -1;
  int n = 0;
  SSL_CTX *ctx = nullptr;
  SSL *ssl = nullptr;
  std::string buf;
  const std::atomic<bool> *stop = nullptr;

  ~Conn() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
  }

  // One read into buf; false at EOF, on an error or when the server stops.
  bool fill() {
    char tmp[16384];
    for (;;) {
      if (stop->load()) return false;
      if (!ssl || SSL_pending(ssl) == 0) {
        pollfd p{fd, POLLIN, 0};
        int r = poll(&p, 1, 100);
        if (r == 0) continue;
        if (r < 0) return errno == EINTR ? true : false;
      }
      int got =
          ssl ? SSL_read(ssl, tmp, sizeof tmp) : static_cast<int>(recv(fd, tmp, sizeof tmp, 0));
      if (got <= 0) return false;
      buf.append(tmp, static_cast<size_t>(got));
      return true;
    }
  }

  // One line without its CRLF (or LF); false when the connection ended first.
  bool read_line(std::string &line) {
    for (;;) {
      size_t eol = buf.find('\n');
      if (eol != std::string::npos) {
        line = buf.substr(0, eol);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        buf.erase(0, eol + 1);
        return true;
      }
      if (!fill()) return false;
    }
  }

  void send(const std::string &bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      int n =
          ssl ? SSL_write(ssl, bytes.data() + off, static_cast<int>(bytes.size() - off))
              : static_cast<int>(::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL));
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  // Reads (and discards) until the peer closes or the server stops.
  void hang() {
    buf.clear();
    while (fill()) buf.clear();
  }

  bool start_tls(const std::string &cert, const std::string &key) {
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
      return false;
    ssl = SSL_new(ctx);
    if (!ssl) return false;
    SSL_set_fd(ssl, fd);
    buf.clear();  // RFC 3207 4: anything pipelined after STARTTLS is discarded
    if (SSL_accept(ssl) != 1) {
      ERR_clear_error();
      SSL_free(ssl);
      ssl = nullptr;
      return false;
    }
    return true;
  }
};

FakeMx::FakeMx(const std::string &ip, int port, MxScript script)
    : ip_(ip), script_(std::move(script)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
    error_ = "not an IPv4 address: " + ip;
    return;
  }
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  socklen_t len = sizeof a;
  if (fd_ < 0 || setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || listen(fd_, 128) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0 ||
      pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    error_ = "listen on " + ip + ":" + std::to_string(port) + ": " + strerror(errno);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return;
  }
  port_ = ntohs(a.sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

FakeMx::~FakeMx() {
  stop_ = true;
  if (wake_[1] >= 0) {
    char c = 1;
    (void)!write(wake_[1], &c, 1);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto &[n, fd] : open_fds_) shutdown(fd, SHUT_RDWR);  // unblocks reads and writes
    threads.swap(threads_);
  }
  for (auto &t : threads) t.join();
  if (fd_ >= 0) close(fd_);
  for (int fd : wake_)
    if (fd >= 0) close(fd);
}

void FakeMx::set_script(const MxScript &s) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = s;
}

void FakeMx::set_script_for(int n, const MxScript &s) {
  std::lock_guard<std::mutex> lock(mu_);
  per_conn_[n] = s;
}

std::vector<MxMessage> FakeMx::messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

std::vector<std::string> FakeMx::commands() const {
  std::lock_guard<std::mutex> lock(mu_);
  return commands_;
}

bool FakeMx::wait_messages(size_t n, double timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(timeout),
                      [&] { return messages_.size() >= n; });
}

bool FakeMx::wait_connections(int n, double timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(timeout),
                      [&] { return total_.load() >= n; });
}

bool FakeMx::wait_idle(double timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(timeout),
                      [&] { return current_.load() == 0; });
}

void FakeMx::note_command(int n, const std::string &line) {
  std::lock_guard<std::mutex> lock(mu_);
  commands_.push_back(std::to_string(n) + " " + line);
}

void FakeMx::add_message(MxMessage m) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(std::move(m));
  }
  cv_.notify_all();
}

void FakeMx::accept_loop() {
  while (!stop_) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(p, 2, 1000) <= 0 || stop_) continue;
    if (!(p[0].revents & POLLIN)) continue;
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};  // a blocked write or TLS handshake gives up after 10 s
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::lock_guard<std::mutex> lock(mu_);
    int n = ++total_;
    int cur = ++current_;
    int prev = max_concurrent_.load();
    while (cur > prev && !max_concurrent_.compare_exchange_weak(prev, cur)) {
    }
    open_fds_[n] = c;
    threads_.emplace_back([this, c, n] { serve(c, n); });
    cv_.notify_all();
  }
}

void FakeMx::serve(int fd, int n) {
  // A write to a peer that has gone (SSL_write, the close_notify) gives EPIPE, not a SIGPIPE
  // that would end the test process: the signal is blocked in this thread only.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
  MxScript s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = per_conn_.find(n);
    s = it != per_conn_.end() ? it->second : script_;
  }
  {
    Conn c;
    c.fd = fd;
    c.n = n;
    c.stop = &stop_;
    run_script(c, s);
    if (c.ssl) SSL_shutdown(c.ssl);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(n);
    close(fd);
    --current_;
  }
  cv_.notify_all();
}

void FakeMx::run_script(Conn &c, const MxScript &s) {
  auto reply = [&](const std::string &r) {
    if (s.reply_delay > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(s.reply_delay));
    c.send(r + "\r\n");
  };
  // true: the script ends the connection here (drop: return at once; hang: read until closed).
  auto stop_at = [&](MxStep step) {
    if (s.drop_at == step) return true;
    if (s.hang_at == step) {
      c.hang();
      return true;
    }
    return false;
  };
  if (stop_at(MxStep::connect)) return;
  reply(std::to_string(s.greeting_code) + " " + s.greeting_text);
  bool refused = s.greeting_code != 220;
  bool tls_offered = !s.tls_cert.empty() && !s.tls_key.empty();

  MxMessage m;
  m.connection = c.n;
  bool have_helo = false, have_mail = false;
  auto reset = [&] {
    std::string helo = m.helo;
    bool tls = m.tls;
    m = MxMessage{};
    m.connection = c.n;
    m.helo = helo;
    m.tls = tls;
    have_mail = false;
  };

  std::string line;
  while (c.read_line(line)) {
    note_command(c.n, line);
    std::string verb = upper(line.substr(0, line.find(' ')));
    std::string arg = line.size() > verb.size() ? line.substr(verb.size() + 1) : "";
    if (verb == "QUIT") {
      if (stop_at(MxStep::quit)) return;
      reply("221 2.0.0 Bye");
      return;
    }
    if (refused) {
      reply("503 5.5.1 Bad sequence of commands");
      continue;
    }
    if (verb == "EHLO" || verb == "HELO" || verb == "LHLO") {
      if (stop_at(MxStep::ehlo)) return;
      if ((verb == "LHLO") != s.lmtp) {
        reply(s.lmtp ? "500 5.5.1 This is an LMTP server: LHLO" : "502 5.5.1 Use EHLO or HELO");
        continue;
      }
      if (!s.ehlo_reply.empty() && verb != "HELO") {
        reply(s.ehlo_reply);
        continue;
      }
      m.helo = arg;
      have_helo = true;
      reset();
      if (verb == "HELO") {
        reply("250 " + s.ehlo_name);
        continue;
      }
      std::vector<std::string> kw = s.ehlo_keywords;
      if (tls_offered && !m.tls) kw.push_back("STARTTLS");
      std::string r = "250" + std::string(kw.empty() ? " " : "-") + s.ehlo_name;
      for (size_t i = 0; i < kw.size(); ++i)
        r += "\r\n250" + std::string(i + 1 == kw.size() ? " " : "-") + kw[i];
      reply(r);
      continue;
    }
    if (verb == "STARTTLS") {
      if (stop_at(MxStep::starttls)) return;
      if (!tls_offered || m.tls) {
        reply("502 5.5.1 STARTTLS not offered");
        continue;
      }
      if (s.starttls_fails) {
        reply("454 4.7.0 TLS not available");
        continue;
      }
      reply("220 2.0.0 Ready to start TLS");
      if (!c.start_tls(s.tls_cert, s.tls_key)) return;
      have_helo = false;  // RFC 3207 4.2: the client must say EHLO again
      m = MxMessage{};
      m.connection = c.n;
      m.tls = true;
      have_mail = false;
      continue;
    }
    if (verb == "RSET") {
      if (stop_at(MxStep::rset)) return;
      reset();
      reply("250 2.0.0 Ok");
      continue;
    }
    if (verb == "NOOP") {
      reply("250 2.0.0 Ok");
      continue;
    }
    if (verb == "MAIL") {
      if (stop_at(MxStep::mail)) return;
      if (!have_helo || have_mail) {
        reply("503 5.5.1 Bad sequence of commands");
        continue;
      }
      reply(s.mail_reply);
      if (code_of(s.mail_reply) / 100 == 2) {
        have_mail = true;
        m.mail = arg;
        m.from = path_of(arg);
      }
      continue;
    }
    if (verb == "RCPT") {
      if (stop_at(MxStep::rcpt)) return;
      if (!have_mail) {
        reply("503 5.5.1 Need MAIL first");
        continue;
      }
      std::string addr = path_of(arg);
      const std::string *r = match(s.rcpt_replies, addr);
      std::string text = r ? *r : s.rcpt_default;
      reply(text);
      if (code_of(text) / 100 == 2) m.rcpts.push_back(addr);
      continue;
    }
    if (verb == "DATA") {
      if (stop_at(MxStep::data)) return;
      if (!have_mail || m.rcpts.empty()) {
        reply(have_mail ? "554 5.5.1 No valid recipients" : "503 5.5.1 Need MAIL first");
        continue;
      }
      reply(s.data_reply);
      if (code_of(s.data_reply) != 354) {
        reset();
        continue;
      }
      std::string dl;
      bool complete = false;
      while (c.read_line(dl)) {
        if (dl == ".") {
          complete = true;
          break;
        }
        if (!dl.empty() && dl[0] == '.') dl.erase(0, 1);  // RFC 5321 4.5.2
        m.data += dl + "\r\n";
      }
      if (!complete) return;
      if (stop_at(MxStep::dot)) return;
      if (s.lmtp) {
        for (const auto &rcpt : m.rcpts) {
          const std::string *r = match(s.lmtp_replies, rcpt);
          std::string text = r ? *r : s.dot_reply;
          reply(text);
          m.reply += (m.reply.empty() ? "" : "\n") + text;
          m.accepted |= code_of(text) / 100 == 2;
        }
      } else {
        reply(s.dot_reply);
        m.reply = s.dot_reply;
        m.accepted = code_of(s.dot_reply) / 100 == 2;
      }
      add_message(m);
      reset();
      continue;
    }
    reply("502 5.5.2 Command not recognized");
  }
}

}  // namespace itest
