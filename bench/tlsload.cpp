// bench/tlsload.cpp: the SMTP load generator of bench/run for TLS (and, for comparison, plain)
// sessions. Non-blocking sockets on one epoll loop per thread; each session: connect, banner,
// EHLO, STARTTLS, TLS handshake (or TLS first with --mode implicit), EHLO, then its share of
// messages (MAIL, RCPT, DATA, body, one command at a time like Postfix's smtp-source), QUIT,
// and the next connection while messages are left. --idle K instead opens K sessions, takes
// each through the handshake and the second EHLO, and holds them idle (for the server's RSS
// per idle TLS connection). --auth USER:PASSWORD logs each session in with AUTH PLAIN (RFC 4954)
// after the EHLO under TLS, before its first MAIL (the "AUTH over TLS" rows). Prints one JSON
// object (in --idle mode first a "ready" line).
//
// Build: g++ -std=c++20 -O2 -Wall -Wextra bench/tlsload.cpp -lssl -lcrypto -lpthread
// (bench/run does this). Usage: tlsload --help.
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum class Mode { starttls, implicit, plain };

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int sessions = 50;
  long messages = 1000;
  int per_session = 1;
  size_t size = 1024;
  Mode mode = Mode::starttls;
  std::string ciphers;       // TLS 1.2 cipher list ("" = OpenSSL default)
  std::string ciphersuites;  // TLS 1.3 suites ("" = OpenSSL default)
  std::string groups;        // key exchange groups ("" = OpenSSL default)
  std::string protocol;      // "" | "TLSv1.2" | "TLSv1.3": pin the version
  std::string servername;    // SNI ("" = none)
  int threads = 1;
  std::string helo = "bench.test";
  std::string from = "bench@bench.test";
  std::string to = "rcpt@bench.test";
  double timeout = 30;
  long idle = 0;      // > 0: idle mode with this many connections
  double hold = 600;  // idle mode: seconds to hold after "ready" (SIGTERM ends it sooner)
  int inflight = 64;  // idle mode: sessions per thread still connecting/handshaking
  std::string auth;   // "" or the AUTH PLAIN initial response (base64 of "\0user\0password")
};

Options opt;
SSL_CTX *g_ctx = nullptr;
std::string
    g_body;  // message content, dot-stuffing not needed (no line starts with '.'), ends ".\r\n"
std::atomic<bool> g_stop{false};
std::atomic<long> g_to_claim{0};  // messages not yet given to a session
std::atomic<long> g_idle_to_open{0};

void on_signal(int) {
  g_stop.store(true);
}

struct Counters {
  long ok = 0, failed = 0, connections = 0, handshakes = 0, handshake_failures = 0,
       connect_errors = 0, protocol_errors = 0, timeouts = 0, server_closed = 0, no_starttls = 0,
       io_errors = 0, idle_ready = 0, auths = 0, auth_failures = 0;
};

std::mutex g_mu;  // guards the fields below
std::string g_first_error, g_protocol, g_cipher;
std::atomic<long> g_idle_ready{0}, g_idle_failed{0}, g_no_starttls{0};

void note_error(const std::string &e) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_first_error.empty()) g_first_error = e;
}

std::string ssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "(no OpenSSL error: " + std::string(errno ? strerror(errno) : "peer closed") + ")";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

enum class St {
  connecting,
  handshake,
  banner,
  ehlo1,
  starttls,
  ehlo2,
  auth,
  mail,
  rcpt,
  data,
  body,
  quit,
  idle,
  done
};

struct Session {
  int fd = -1;
  SSL *ssl = nullptr;
  St st = St::done;
  bool tls = false;
  uint32_t events = 0;  // registered epoll mask
  bool hs_want_write = false, rd_want_write = false;
  std::string in, out;
  size_t out_off = 0;
  int msgs_left = 0;
  Clock::time_point deadline;
};

class Worker {
 public:
  Worker(int nsessions, Counters &c) : sessions_(nsessions), c_(c) {}
  void run();

 private:
  bool start(Session &s);
  void drive(Session &s, uint32_t ev);
  void fail(Session &s, long &counter, const std::string &why);
  void finish(Session &s);
  void close_session(Session &s);
  void set_events(Session &s);
  void send(Session &s, std::string text);
  bool flush(Session &s);  // false on error (session closed)
  bool read_in(Session &s);
  bool on_reply(Session &s, int code, const std::string &text);
  bool begin_handshake(Session &s);
  long claim();

  std::vector<Session> sessions_;
  Counters &c_;
  int ep_ = -1;
  long active_ = 0;
};

long Worker::claim() {
  long want = opt.per_session, cur = g_to_claim.load();
  while (cur > 0) {
    long take = std::min(want, cur);
    if (g_to_claim.compare_exchange_weak(cur, cur - take)) return take;
  }
  return 0;
}

void Worker::set_events(Session &s) {
  uint32_t ev = EPOLLIN;
  if (s.st == St::connecting || s.out_off < s.out.size() || s.hs_want_write || s.rd_want_write)
    ev |= EPOLLOUT;
  if (ev == s.events) return;
  epoll_event e{};
  e.events = ev;
  e.data.ptr = &s;
  epoll_ctl(ep_, EPOLL_CTL_MOD, s.fd, &e);
  s.events = ev;
}

bool Worker::start(Session &s) {
  if (g_stop.load()) return false;
  if (opt.idle > 0) {
    long cur = g_idle_to_open.load();
    do {
      if (cur <= 0) return false;
    } while (!g_idle_to_open.compare_exchange_weak(cur, cur - 1));
    s.msgs_left = 0;
  } else {
    s.msgs_left = static_cast<int>(claim());
    if (s.msgs_left == 0) return false;
  }
  int msgs = s.msgs_left;
  s = Session();
  s.msgs_left = msgs;
  s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.fd < 0) {
    fail(s, c_.connect_errors, std::string("socket: ") + strerror(errno));
    return false;
  }
  int one = 1;
  setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(opt.port));
  inet_pton(AF_INET, opt.host.c_str(), &sa.sin_addr);
  c_.connections++;
  active_++;
  s.st = St::connecting;
  // one deadline for the whole connection (--timeout)
  s.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(opt.timeout));
  int r = connect(s.fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
  if (r < 0 && errno != EINPROGRESS) {
    fail(s, c_.connect_errors, std::string("connect: ") + strerror(errno));
    return true;
  }
  s.events = EPOLLIN | EPOLLOUT;
  epoll_event e{};
  e.events = s.events;
  e.data.ptr = &s;
  epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &e);
  return true;
}

void Worker::close_session(Session &s) {
  if (s.ssl) {
    SSL_free(s.ssl);
    s.ssl = nullptr;
  }
  if (s.fd >= 0) {
    close(s.fd);  // also removes it from the epoll set
    s.fd = -1;
  }
  if (s.st != St::done) active_--;
  s.st = St::done;
  s.in.clear();
  s.out.clear();
  s.out_off = 0;
}

void Worker::fail(Session &s, long &counter, const std::string &why) {
  counter++;
  note_error(why);
  c_.failed += s.msgs_left;
  if (opt.idle > 0) g_idle_failed++;
  s.msgs_left = 0;
  if (s.fd >= 0) close_session(s);
}

void Worker::finish(Session &s) {
  if (s.ssl) {
    SSL_shutdown(s.ssl);  // close_notify, best effort
    ERR_clear_error();
  }
  close_session(s);
}

void Worker::send(Session &s, std::string text) {
  s.out = std::move(text);
  s.out_off = 0;
}

bool Worker::flush(Session &s) {
  while (s.out_off < s.out.size()) {
    const char *p = s.out.data() + s.out_off;
    size_t n = s.out.size() - s.out_off;
    if (s.tls) {
      size_t w = 0;
      if (SSL_write_ex(s.ssl, p, n, &w) == 1) {
        s.out_off += w;
        continue;
      }
      int e = SSL_get_error(s.ssl, 0);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return true;
      fail(s, c_.io_errors, "TLS write: " + ssl_reason());
      return false;
    }
    ssize_t w = ::send(s.fd, p, n, MSG_NOSIGNAL);
    if (w >= 0) {
      s.out_off += static_cast<size_t>(w);
      continue;
    }
    if (errno == EAGAIN || errno == EINTR) return true;
    fail(s, c_.io_errors, std::string("write: ") + strerror(errno));
    return false;
  }
  s.out.clear();
  s.out_off = 0;
  return true;
}

// Appends what can be read now to s.in; false when the session ended (closed or error).
bool Worker::read_in(Session &s) {
  char buf[16384];
  s.rd_want_write = false;
  for (;;) {
    if (s.tls) {
      size_t n = 0;
      if (SSL_read_ex(s.ssl, buf, sizeof buf, &n) == 1) {
        s.in.append(buf, n);
        continue;
      }
      int e = SSL_get_error(s.ssl, 0);
      if (e == SSL_ERROR_WANT_READ) return true;
      if (e == SSL_ERROR_WANT_WRITE) {
        s.rd_want_write = true;
        return true;
      }
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        ERR_clear_error();
        if (s.st == St::quit) {
          finish(s);
          return false;
        }
        fail(s, c_.server_closed,
             "server closed the TLS session in state " + std::to_string(static_cast<int>(s.st)));
        return false;
      }
      fail(s, c_.io_errors, "TLS read: " + ssl_reason());
      return false;
    }
    ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n > 0) {
      s.in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n == 0 && s.st == St::quit) {
      finish(s);
      return false;
    }
    if (n == 0)
      fail(s, c_.server_closed,
           "server closed the connection in state " + std::to_string(static_cast<int>(s.st)));
    else
      fail(s, c_.io_errors, std::string("read: ") + strerror(errno));
    return false;
  }
}

bool Worker::begin_handshake(Session &s) {
  s.ssl = SSL_new(g_ctx);
  if (!s.ssl || SSL_set_fd(s.ssl, s.fd) != 1) {
    fail(s, c_.handshake_failures, "SSL_new: " + ssl_reason());
    return false;
  }
  if (!opt.servername.empty()) SSL_set_tlsext_host_name(s.ssl, opt.servername.c_str());
  SSL_set_connect_state(s.ssl);
  s.tls = true;
  s.st = St::handshake;
  return true;
}

std::string mail_cmds_mail() {
  return "MAIL FROM:<" + opt.from + ">\r\n";
}

// After the EHLO that precedes the first MAIL: AUTH PLAIN when --auth is given, else MAIL.
void first_command(Session &s, std::string &out) {
  if (!opt.auth.empty()) {
    s.st = St::auth;
    out = "AUTH PLAIN " + opt.auth + "\r\n";
  } else {
    s.st = St::mail;
    out = mail_cmds_mail();
  }
}

std::string base64(const std::string &in) {
  static const char *k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

// One complete reply. False when the session ended.
bool Worker::on_reply(Session &s, int code, const std::string &text) {
  auto bad = [&](const char *what) {
    std::string t = text.substr(0, 120);
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    fail(s, c_.protocol_errors, std::string("unexpected reply to ") + what + ": " + t);
    return false;
  };
  switch (s.st) {
    case St::banner:
      if (code != 220) return bad("the connection (banner)");
      s.st = St::ehlo1;
      if (s.tls) s.st = St::ehlo2;
      send(s, "EHLO " + opt.helo + "\r\n");
      return true;
    case St::ehlo1: {
      if (code != 250) return bad("EHLO");
      if (opt.mode == Mode::plain) {
        std::string cmd;
        first_command(s, cmd);
        send(s, cmd);
        return true;
      }
      bool has = false;
      for (size_t p = 0; p < text.size();) {
        size_t e = text.find('\n', p);
        if (e == std::string::npos) e = text.size();
        if (e - p >= 12 && strncasecmp(text.c_str() + p + 4, "STARTTLS", 8) == 0) has = true;
        p = e + 1;
      }
      if (!has) {
        g_no_starttls++;
        g_stop.store(true);
        fail(s, c_.no_starttls,
             "the server does not offer STARTTLS (no STARTTLS in the EHLO reply)");
        return false;
      }
      s.st = St::starttls;
      send(s, "STARTTLS\r\n");
      return true;
    }
    case St::starttls:
      if (code != 220) return bad("STARTTLS");
      s.in.clear();  // nothing may follow the 220 in plain text
      return begin_handshake(s);
    case St::ehlo2:
      if (code != 250) return bad("EHLO after the handshake");
      if (opt.idle > 0) {
        s.st = St::idle;
        c_.idle_ready++;
        g_idle_ready++;
        return true;
      } else {
        std::string cmd;
        first_command(s, cmd);
        send(s, cmd);
      }
      return true;
    case St::auth:
      if (code != 235) {
        c_.auth_failures++;
        return bad("AUTH PLAIN");
      }
      c_.auths++;
      s.st = St::mail;
      send(s, mail_cmds_mail());
      return true;
    case St::mail:
      if (code != 250) return bad("MAIL");
      s.st = St::rcpt;
      send(s, "RCPT TO:<" + opt.to + ">\r\n");
      return true;
    case St::rcpt:
      if (code != 250) return bad("RCPT");
      s.st = St::data;
      send(s, "DATA\r\n");
      return true;
    case St::data:
      if (code != 354) return bad("DATA");
      s.st = St::body;
      send(s, g_body);
      return true;
    case St::body:
      if (code != 250) {
        c_.failed++;
        s.msgs_left--;
        return bad("the end of the message");
      }
      c_.ok++;
      s.msgs_left--;
      if (s.msgs_left > 0 && !g_stop.load()) {
        s.st = St::mail;
        send(s, mail_cmds_mail());
      } else {
        c_.failed += s.msgs_left;
        s.msgs_left = 0;
        s.st = St::quit;
        send(s, "QUIT\r\n");
      }
      return true;
    case St::quit:
      finish(s);  // 221 (or anything): done with this connection
      return false;
    case St::idle:
      return bad("nothing (idle session)");
    default:
      return bad("an unexpected state");
  }
}

void Worker::drive(Session &s, uint32_t ev) {
  if (s.st == St::connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0 && !(ev & (EPOLLOUT | EPOLLIN)) && (ev & (EPOLLERR | EPOLLHUP))) err = ECONNRESET;
    if (err) {
      fail(s, c_.connect_errors, std::string("connect: ") + strerror(err));
      return;
    }
    if (!(ev & (EPOLLOUT | EPOLLIN))) return;
    s.st = St::banner;
    if (opt.mode == Mode::implicit && !begin_handshake(s)) return;
  }
  for (;;) {
    if (s.st == St::handshake) {
      s.hs_want_write = false;
      int r = SSL_do_handshake(s.ssl);
      if (r != 1) {
        int e = SSL_get_error(s.ssl, r);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_WANT_WRITE) {
          s.hs_want_write = true;
          break;
        }
        fail(s, c_.handshake_failures, "TLS handshake: " + ssl_reason());
        return;
      }
      c_.handshakes++;
      {
        std::lock_guard<std::mutex> l(g_mu);
        if (g_protocol.empty()) {
          g_protocol = SSL_get_version(s.ssl);
          g_cipher = SSL_get_cipher_name(s.ssl);
        }
      }
      if (opt.mode == Mode::implicit) {
        s.st = St::banner;
      } else {
        s.st = St::ehlo2;
        send(s, "EHLO " + opt.helo + "\r\n");
      }
    }
    if (!flush(s)) return;
    if (!read_in(s)) return;
    // Complete replies in s.in.
    bool progressed = false;
    for (;;) {
      size_t pos = 0, end = std::string::npos;
      int code = 0;
      while (pos < s.in.size()) {
        size_t nl = s.in.find('\n', pos);
        if (nl == std::string::npos) break;
        if (nl - pos >= 3) code = atoi(s.in.substr(pos, 3).c_str());
        bool last = nl - pos < 5 || s.in[pos + 3] != '-';
        pos = nl + 1;
        if (last) {
          end = pos;
          break;
        }
      }
      if (end == std::string::npos) break;
      std::string text = s.in.substr(0, end);
      s.in.erase(0, end);
      St before = s.st;
      if (!on_reply(s, code, text)) return;
      progressed = true;
      if (s.st == St::handshake || before == St::starttls) break;
    }
    if (s.st == St::handshake) continue;
    if (!progressed || s.out.empty()) break;
    // A new command was queued: send it at once, then look for its reply on the next event.
    if (!flush(s)) return;
    break;
  }
  if (s.fd >= 0) set_events(s);
}

void Worker::run() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  const int n = static_cast<int>(sessions_.size());
  int next = 0;  // idle mode: sessions started so far
  if (opt.idle == 0) {
    for (auto &s : sessions_) start(s);
  }
  std::vector<epoll_event> evs(256);
  auto last_scan = Clock::now();
  for (;;) {
    if (opt.idle > 0) {
      // keep at most opt.inflight sessions on their way to idle
      long pending = active_ - c_.idle_ready;
      while (next < n && pending < opt.inflight && !g_stop.load()) {
        if (!start(sessions_[next])) {
          next = n;
          break;
        }
        next++;
        pending++;
      }
    } else if (active_ == 0) {
      // sessions whose start failed outright may retry while messages are left
      bool any = false;
      for (auto &s : sessions_)
        if (s.st == St::done && start(s)) any = true;
      if (!any) break;
    }
    if (g_stop.load() && (opt.idle > 0 || active_ == 0)) break;
    int k = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 100);
    for (int i = 0; i < k; i++) {
      Session &s = *static_cast<Session *>(evs[i].data.ptr);
      if (s.st == St::done) continue;
      drive(s, evs[i].events);
      if (s.st == St::done && opt.idle == 0) start(s);  // the next connection of this slot
    }
    auto now = Clock::now();
    if (now - last_scan > std::chrono::milliseconds(200)) {
      last_scan = now;
      for (auto &s : sessions_) {
        if (s.st == St::done || s.st == St::idle || now < s.deadline) continue;
        fail(s, c_.timeouts,
             "timeout (" + std::to_string(opt.timeout) + " s) in state " +
                 std::to_string(static_cast<int>(s.st)));
        if (opt.idle == 0) start(s);
      }
    }
  }
  for (auto &s : sessions_)
    if (s.st != St::done) {
      if (s.st != St::idle) c_.failed += s.msgs_left;
      close_session(s);
    }
  close(ep_);
}

[[noreturn]] void usage(int rc) {
  fprintf(
      rc ? stderr : stdout,
      "usage: tlsload --port P [options]\n"
      "  --host A            server address (IPv4, default 127.0.0.1)\n"
      "  --port P            server port\n"
      "  --mode M            starttls (default) | implicit (TLS from the first byte) | plain\n"
      "  --implicit          the same as --mode implicit\n"
      "  --sessions N        concurrent sessions (default 50)\n"
      "  --messages T        messages in total (default 1000)\n"
      "  --per-session M     messages per connection (default 1)\n"
      "  --size S            message size in bytes, headers included (default 1024)\n"
      "  --threads N         event-loop threads (default 1)\n"
      "  --ciphers L         TLS 1.2 cipher list offered (OpenSSL syntax)\n"
      "  --ciphersuites L    TLS 1.3 suites offered\n"
      "  --groups L          key exchange groups offered (e.g. X25519)\n"
      "  --protocol V        TLSv1.2 or TLSv1.3: offer only this version\n"
      "  --servername N      SNI name to send (default: none)\n"
      "  --helo N --from A --to A   EHLO name, envelope sender and recipient\n"
      "  --timeout S         seconds one connection may take (default 30)\n"
      "  --idle K            idle mode: K sessions taken through STARTTLS and EHLO, then held;\n"
      "                      prints {\"event\":\"ready\",...} once all are idle (or failed)\n"
      "  --hold S            idle mode: seconds to hold them (default 600; SIGTERM ends it)\n"
      "  --inflight N        idle mode: sessions per thread opening at once (default 64)\n"
      "  --auth U:P          log each session in with AUTH PLAIN as user U, password P, after\n"
      "                      the EHLO under TLS (plain mode: after the first EHLO)\n"
      "Exit: 0 all messages accepted (idle: all sessions idle), 1 some failed, 2 usage,\n"
      "3 the server does not offer STARTTLS.\n");
  exit(rc);
}

void parse(int argc, char **argv) {
  enum {
    o_host = 1000,
    o_port,
    o_mode,
    o_implicit,
    o_sessions,
    o_messages,
    o_per,
    o_size,
    o_threads,
    o_ciphers,
    o_suites,
    o_groups,
    o_protocol,
    o_sni,
    o_helo,
    o_from,
    o_to,
    o_timeout,
    o_idle,
    o_hold,
    o_inflight,
    o_auth,
    o_help
  };
  static const option longs[] = {{"host", 1, nullptr, o_host},
                                 {"port", 1, nullptr, o_port},
                                 {"mode", 1, nullptr, o_mode},
                                 {"implicit", 0, nullptr, o_implicit},
                                 {"sessions", 1, nullptr, o_sessions},
                                 {"messages", 1, nullptr, o_messages},
                                 {"per-session", 1, nullptr, o_per},
                                 {"size", 1, nullptr, o_size},
                                 {"threads", 1, nullptr, o_threads},
                                 {"ciphers", 1, nullptr, o_ciphers},
                                 {"ciphersuites", 1, nullptr, o_suites},
                                 {"groups", 1, nullptr, o_groups},
                                 {"protocol", 1, nullptr, o_protocol},
                                 {"servername", 1, nullptr, o_sni},
                                 {"helo", 1, nullptr, o_helo},
                                 {"from", 1, nullptr, o_from},
                                 {"to", 1, nullptr, o_to},
                                 {"timeout", 1, nullptr, o_timeout},
                                 {"idle", 1, nullptr, o_idle},
                                 {"hold", 1, nullptr, o_hold},
                                 {"inflight", 1, nullptr, o_inflight},
                                 {"auth", 1, nullptr, o_auth},
                                 {"help", 0, nullptr, o_help},
                                 {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", longs, nullptr)) != -1) {
    std::string a = optarg ? optarg : "";
    switch (c) {
      case o_host:
        opt.host = a;
        break;
      case o_port:
        opt.port = atoi(a.c_str());
        break;
      case o_mode:
        if (a == "starttls")
          opt.mode = Mode::starttls;
        else if (a == "implicit")
          opt.mode = Mode::implicit;
        else if (a == "plain")
          opt.mode = Mode::plain;
        else
          usage(2);
        break;
      case o_implicit:
        opt.mode = Mode::implicit;
        break;
      case o_sessions:
        opt.sessions = atoi(a.c_str());
        break;
      case o_messages:
        opt.messages = atol(a.c_str());
        break;
      case o_per:
        opt.per_session = atoi(a.c_str());
        break;
      case o_size:
        opt.size = strtoul(a.c_str(), nullptr, 10);
        break;
      case o_threads:
        opt.threads = atoi(a.c_str());
        break;
      case o_ciphers:
        opt.ciphers = a;
        break;
      case o_suites:
        opt.ciphersuites = a;
        break;
      case o_groups:
        opt.groups = a;
        break;
      case o_protocol:
        opt.protocol = a;
        break;
      case o_sni:
        opt.servername = a;
        break;
      case o_helo:
        opt.helo = a;
        break;
      case o_from:
        opt.from = a;
        break;
      case o_to:
        opt.to = a;
        break;
      case o_timeout:
        opt.timeout = atof(a.c_str());
        break;
      case o_idle:
        opt.idle = atol(a.c_str());
        break;
      case o_hold:
        opt.hold = atof(a.c_str());
        break;
      case o_inflight:
        opt.inflight = atoi(a.c_str());
        break;
      case o_auth: {
        size_t colon = a.find(':');
        if (colon == std::string::npos || colon == 0) usage(2);
        opt.auth = base64(std::string(1, '\0') + a.substr(0, colon) + std::string(1, '\0') +
                          a.substr(colon + 1));
        break;
      }
      case o_help:
      case 'h':
        usage(0);
      default:
        usage(2);
    }
  }
  if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.sessions < 1 ||
      opt.per_session < 1 || opt.threads < 1 || opt.messages < 0 || opt.timeout <= 0 ||
      opt.inflight < 1)
    usage(2);
  if (opt.idle > 0 && opt.mode == Mode::plain) {
    fprintf(stderr, "tlsload: --idle needs TLS (--mode starttls or implicit)\n");
    exit(2);
  }
  in_addr tmp{};
  if (inet_pton(AF_INET, opt.host.c_str(), &tmp) != 1) {
    fprintf(stderr, "tlsload: --host must be a numeric IPv4 address\n");
    exit(2);
  }
}

bool make_ctx() {
  g_ctx = SSL_CTX_new(TLS_client_method());
  if (!g_ctx) return false;
  SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, nullptr);  // bench certificates are self-signed
  // Not even a chain check: with SSL_VERIFY_NONE OpenSSL still builds the chain and checks the
  // self-signed certificate's signature, an extra signature verification per handshake that
  // would only load the client. The handshake's own CertificateVerify is still checked.
  SSL_CTX_set_cert_verify_callback(
      g_ctx, [](X509_STORE_CTX *, void *) { return 1; }, nullptr);
  SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);  // every connection: full handshake
  SSL_CTX_set_mode(g_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
  if (opt.protocol == "TLSv1.2") {
    SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(g_ctx, TLS1_2_VERSION);
  } else if (opt.protocol == "TLSv1.3") {
    SSL_CTX_set_min_proto_version(g_ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(g_ctx, TLS1_3_VERSION);
  } else if (!opt.protocol.empty()) {
    fprintf(stderr, "tlsload: --protocol must be TLSv1.2 or TLSv1.3\n");
    return false;
  }
  if (!opt.ciphers.empty() && SSL_CTX_set_cipher_list(g_ctx, opt.ciphers.c_str()) != 1) {
    fprintf(stderr, "tlsload: bad --ciphers: %s\n", ssl_reason().c_str());
    return false;
  }
  if (!opt.ciphersuites.empty() && SSL_CTX_set_ciphersuites(g_ctx, opt.ciphersuites.c_str()) != 1) {
    fprintf(stderr, "tlsload: bad --ciphersuites: %s\n", ssl_reason().c_str());
    return false;
  }
  if (!opt.groups.empty() && SSL_CTX_set1_groups_list(g_ctx, opt.groups.c_str()) != 1) {
    fprintf(stderr, "tlsload: bad --groups: %s\n", ssl_reason().c_str());
    return false;
  }
  return true;
}

void make_body() {
  std::string h = "From: <" + opt.from + ">\r\nTo: <" + opt.to +
                  ">\r\nSubject: tlsload\r\nMessage-ID: <tlsload@bench.test>\r\n\r\n";
  g_body = h;
  while (g_body.size() < opt.size) {
    size_t room = opt.size - g_body.size();
    size_t line = std::min<size_t>(78, room >= 3 ? room - 2 : 1);
    g_body.append(line, 'x');
    g_body += "\r\n";
  }
  g_body += ".\r\n";
}

double cpu_seconds(bool user) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const timeval &t = user ? ru.ru_utime : ru.ru_stime;
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

std::string json_str(const std::string &s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20)
      o += ' ';
    else
      o += c;
  }
  return o + "\"";
}

const char *mode_name() {
  return opt.mode == Mode::starttls   ? "starttls"
         : opt.mode == Mode::implicit ? "implicit"
                                      : "plain";
}

}  // namespace

int main(int argc, char **argv) {
  parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (opt.mode != Mode::plain && !make_ctx()) return 2;
  make_body();

  long slots = opt.idle > 0 ? opt.idle : std::min<long>(opt.sessions, std::max(1L, opt.messages));
  int nthreads = static_cast<int>(std::min<long>(opt.threads, slots));
  g_to_claim = opt.messages;
  g_idle_to_open = opt.idle;
  std::vector<Counters> counters(static_cast<size_t>(nthreads));
  std::vector<Worker *> workers;
  for (int i = 0; i < nthreads; i++) {
    long share = slots / nthreads + (i < slots % nthreads ? 1 : 0);
    workers.push_back(new Worker(static_cast<int>(share), counters[static_cast<size_t>(i)]));
  }
  double u0 = cpu_seconds(true), s0 = cpu_seconds(false);
  auto t0 = Clock::now();
  std::vector<std::thread> th;
  for (auto *w : workers) th.emplace_back([w] { w->run(); });

  double ready_s = 0;
  if (opt.idle > 0) {
    while (!g_stop.load() && g_idle_ready.load() + g_idle_failed.load() < opt.idle)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ready_s = std::chrono::duration<double>(Clock::now() - t0).count();
    {
      std::lock_guard<std::mutex> l(g_mu);
      printf(
          "{\"event\":\"ready\",\"idle\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"protocol\":%s,"
          "\"cipher\":%s}\n",
          g_idle_ready.load(), g_idle_failed.load(), ready_s, json_str(g_protocol).c_str(),
          json_str(g_cipher).c_str());
      fflush(stdout);
    }
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(opt.hold));
    while (!g_stop.load() && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    g_stop.store(true);
  }
  for (auto &t : th) t.join();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double cu = cpu_seconds(true) - u0, cs = cpu_seconds(false) - s0;
  Counters c;
  for (auto &x : counters) {
    c.ok += x.ok, c.failed += x.failed, c.connections += x.connections;
    c.handshakes += x.handshakes, c.handshake_failures += x.handshake_failures;
    c.connect_errors += x.connect_errors, c.protocol_errors += x.protocol_errors;
    c.timeouts += x.timeouts, c.server_closed += x.server_closed;
    c.no_starttls += x.no_starttls, c.io_errors += x.io_errors, c.idle_ready += x.idle_ready;
    c.auths += x.auths, c.auth_failures += x.auth_failures;
  }
  if (opt.idle == 0) c.failed += g_to_claim.load();  // never handed out (stopped early)
  double busy = opt.idle > 0 ? ready_s : wall;       // idle mode: CPU is spent before "ready"
  printf(
      "{\"mode\":\"%s\",\"host\":%s,\"port\":%d,\"threads\":%d,\"sessions\":%ld,"
      "\"per_session\":%d,\"size\":%zu,\"messages\":%ld,\"ok\":%ld,\"failed\":%ld,"
      "\"connections\":%ld,\"handshakes\":%ld,\"handshake_failures\":%ld,"
      "\"connect_errors\":%ld,\"protocol_errors\":%ld,\"timeouts\":%ld,\"server_closed\":%ld,"
      "\"io_errors\":%ld,\"no_starttls\":%ld,\"idle\":%ld,\"auths\":%ld,\"auth_failures\":%ld,"
      "\"wall_s\":%.3f,\"msg_per_s\":%.1f,"
      "\"handshakes_per_s\":%.1f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_pct\":%.1f,"
      "\"protocol\":%s,\"cipher\":%s,\"first_error\":%s}\n",
      mode_name(), json_str(opt.host).c_str(), opt.port, nthreads, slots, opt.per_session, opt.size,
      opt.idle > 0 ? 0 : opt.messages, c.ok, c.failed, c.connections, c.handshakes,
      c.handshake_failures, c.connect_errors, c.protocol_errors, c.timeouts, c.server_closed,
      c.io_errors, c.no_starttls, c.idle_ready, c.auths, c.auth_failures, wall, wall > 0 ? c.ok / wall : 0.0,
      busy > 0 ? c.handshakes / busy : 0.0, cu, cs, busy > 0 ? 100 * (cu + cs) / busy : 0.0,
      json_str(g_protocol).c_str(), json_str(g_cipher).c_str(), json_str(g_first_error).c_str());
  fflush(stdout);
  if (c.no_starttls) {
    fprintf(stderr, "tlsload: %s:%d does not offer STARTTLS\n", opt.host.c_str(), opt.port);
    return 3;
  }
  if (opt.idle > 0) return c.idle_ready == opt.idle ? 0 : 1;
  return c.ok == opt.messages ? 0 : 1;
}
