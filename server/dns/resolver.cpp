// dns/resolver.cpp: the c-ares channel, its libuv socket and timer integration, and answer parsing.
#include "dns/resolver.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <ares.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>

#include "util/timer.hpp"

namespace uvs {

std::string reverse_name(const std::string &ip) {
  unsigned char buf[16];
  char part[16];
  std::string out;
  if (inet_pton(AF_INET, ip.c_str(), buf) == 1) {
    for (int i = 3; i >= 0; --i) {
      snprintf(part, sizeof part, "%u.", buf[i]);
      out += part;
    }
    return out + "in-addr.arpa";
  }
  if (inet_pton(AF_INET6, ip.c_str(), buf) == 1) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
      out += hex[buf[i] & 15];
      out += '.';
      out += hex[buf[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  return "";
}

namespace {

int map_status(int st) {
  switch (st) {
    case ARES_SUCCESS: return 0;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME: return -ENOENT;
    case ARES_ETIMEOUT: return -ETIMEDOUT;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return -ECANCELED;
    default: return -EIO;
  }
}

std::vector<std::string> parse(int type, const unsigned char *abuf, int alen, const std::string &qname,
                               int &status) {
  std::vector<std::string> out;
  char ip[INET6_ADDRSTRLEN];
  int rc = ARES_SUCCESS;
  if (type == Resolver::A) {
    ares_addrttl ttls[32];
    int n = 32;
    rc = ares_parse_a_reply(abuf, alen, nullptr, ttls, &n);
    for (int i = 0; rc == ARES_SUCCESS && i < n; ++i)
      out.emplace_back(inet_ntop(AF_INET, &ttls[i].ipaddr, ip, sizeof ip));
  } else if (type == Resolver::AAAA) {
    ares_addr6ttl ttls[32];
    int n = 32;
    rc = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &n);
    for (int i = 0; rc == ARES_SUCCESS && i < n; ++i)
      out.emplace_back(inet_ntop(AF_INET6, &ttls[i].ip6addr, ip, sizeof ip));
  } else if (type == Resolver::MX) {
    ares_mx_reply *mx = nullptr;
    rc = ares_parse_mx_reply(abuf, alen, &mx);
    for (ares_mx_reply *m = mx; rc == ARES_SUCCESS && m; m = m->next)
      out.push_back(std::to_string(m->priority) + " " + m->host);
    if (mx) ares_free_data(mx);
  } else if (type == Resolver::TXT) {
    ares_txt_ext *txt = nullptr;
    rc = ares_parse_txt_reply_ext(abuf, alen, &txt);
    for (ares_txt_ext *t = txt; rc == ARES_SUCCESS && t; t = t->next) {
      if (t->record_start || out.empty()) out.emplace_back();
      out.back().append(reinterpret_cast<const char *>(t->txt), t->length);
    }
    if (txt) ares_free_data(txt);
  } else if (type == Resolver::PTR) {
    hostent *host = nullptr;
    unsigned char addr[16];
    int family = qname.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    inet_pton(family, qname.c_str(), addr);
    rc = ares_parse_ptr_reply(abuf, alen, addr, family == AF_INET ? 4 : 16, family, &host);
    if (rc == ARES_SUCCESS && host) {
      if (host->h_name) out.emplace_back(host->h_name);
      for (char **a = host->h_aliases; a && *a; ++a) out.emplace_back(*a);
    }
    if (host) ares_free_hostent(host);
  }
  status = map_status(rc);
  std::vector<std::string> unique;  // c-ares repeats the PTR name among its aliases
  for (auto &a : out)
    if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(std::move(a));
  out = std::move(unique);
  if (status == 0 && out.empty()) status = -ENOENT;
  return out;
}

}  // namespace

struct Resolver::Impl {
  uv_loop_t *loop;
  ares_channel channel = nullptr;
  std::unique_ptr<Timer> timer;
  struct Query {
    Callback cb;
    std::unique_ptr<Timer> deadline;
    std::string name;
    int type;
  };
  std::map<uint64_t, Query> queries;
  uint64_t next_id = 1;
  bool down = false;
  std::unique_ptr<Timer> defer;  // reports failures outside query()
  std::vector<std::pair<uint64_t, int>> deferred;

  explicit Impl(uv_loop_t *l) : loop(l), timer(std::make_unique<Timer>(l)) {}

  void finish(uint64_t id, int status, std::vector<std::string> answers) {
    auto it = queries.find(id);
    if (it == queries.end()) return;
    Callback cb = std::move(it->second.cb);
    queries.erase(it);
    if (cb) cb(status, std::move(answers));
  }

  void rearm() {
    if (!channel) return;
    timeval tv;
    timeval *t = ares_timeout(channel, nullptr, &tv);
    if (!t) return timer->stop();
    uint64_t ms = static_cast<uint64_t>(t->tv_sec) * 1000 + static_cast<uint64_t>(t->tv_usec) / 1000;
    timer->start(ms ? ms : 1, [this] {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      rearm();
    });
  }

  struct Poll {
    uv_poll_t handle;
    ares_socket_t fd;
    Impl *owner;
  };
  std::map<ares_socket_t, Poll *> polls;

  static void close_poll(Poll *p) {
    uv_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t *>(&p->handle),
             [](uv_handle_t *h) { delete static_cast<Poll *>(h->data); });
  }

  static void on_poll(uv_poll_t *h, int status, int ev) {
    Poll *p = static_cast<Poll *>(h->data);
    Impl *self = p->owner;
    if (!self->channel) return;
    ares_socket_t rfd = (status < 0 || (ev & UV_READABLE)) ? p->fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (status < 0 || (ev & UV_WRITABLE)) ? p->fd : ARES_SOCKET_BAD;
    ares_process_fd(self->channel, rfd, wfd);
    self->rearm();
  }

  // c-ares tells which sockets it wants watched, and for what.
  static void sock_state(void *data, ares_socket_t fd, int readable, int writable) {
    auto *self = static_cast<Impl *>(data);
    auto it = self->polls.find(fd);
    if (!readable && !writable) {
      if (it == self->polls.end()) return;
      close_poll(it->second);
      self->polls.erase(it);
      return;
    }
    Poll *p;
    if (it == self->polls.end()) {
      p = new Poll{{}, fd, self};
      p->handle.data = p;
      uv_poll_init_socket(self->loop, &p->handle, fd);
      self->polls[fd] = p;
    } else {
      p = it->second;
    }
    uv_poll_start(&p->handle, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
  }
};

Resolver::Resolver(uv_loop_t *loop) : impl_(std::make_unique<Impl>(loop)) {}

Resolver::~Resolver() { shutdown(); }

int Resolver::init(const std::vector<std::string> &servers, double timeout_s, std::string &err) {
  static int lib = ares_library_init(ARES_LIB_INIT_ALL);
  (void)lib;
  ares_options opts{};
  opts.sock_state_cb = Impl::sock_state;
  opts.sock_state_cb_data = impl_.get();
  opts.timeout = static_cast<int>(timeout_s * 1000 / 2);
  if (opts.timeout < 100) opts.timeout = 100;
  opts.tries = 2;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  int rc = ares_init_options(&impl_->channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    err = std::string("c-ares: ") + ares_strerror(rc);
    impl_->channel = nullptr;
    return -EIO;
  }
  if (!servers.empty()) {
    std::string csv;
    for (const auto &s : servers) csv += (csv.empty() ? "" : ",") + s;
    rc = ares_set_servers_ports_csv(impl_->channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      err = "c-ares: bad DNS server list '" + csv + "': " + ares_strerror(rc);
      return -EINVAL;
    }
  }
  impl_->defer = std::make_unique<Timer>(impl_->loop);
  return 0;
}

uint64_t Resolver::query(const std::string &name, Type type, double timeout_s, Callback cb) {
  Impl *im = impl_.get();
  uint64_t id = im->next_id++;
  auto &q = im->queries[id];
  q.cb = std::move(cb);
  q.name = name;
  q.type = type;
  std::string qname = type == PTR ? reverse_name(name) : name;
  auto fail_later = [im, id](int status) {
    im->deferred.emplace_back(id, status);
    if (!im->defer) im->defer = std::make_unique<Timer>(im->loop);
    im->defer->start(0, [im] {
      auto list = std::move(im->deferred);
      im->deferred.clear();
      for (auto &[qid, st] : list) im->finish(qid, st, {});
    });
  };
  if (im->down || !im->channel) {
    fail_later(-ECANCELED);
    return id;
  }
  if (qname.empty() || name.size() > 253) {
    fail_later(-EINVAL);
    return id;
  }
  q.deadline = std::make_unique<Timer>(im->loop);
  q.deadline->start(static_cast<uint64_t>(timeout_s * 1000), [im, id] { im->finish(id, -ETIMEDOUT, {}); });
  static const int kTypes[] = {0, 1 /*A*/, 28 /*AAAA*/, 15 /*MX*/, 16 /*TXT*/, 12 /*PTR*/};
  struct Arg {
    Impl *im;
    uint64_t id;
  };
  auto *arg = new Arg{im, id};
  ares_query(im->channel, qname.c_str(), 1 /* C_IN */, kTypes[type],
             [](void *a, int status, int, unsigned char *abuf, int alen) {
               auto *arg = static_cast<Arg *>(a);
               Impl *im = arg->im;
               uint64_t id = arg->id;
               delete arg;
               auto it = im->queries.find(id);
               if (it == im->queries.end()) return;  // timed out or cancelled already
               int st = map_status(status);
               std::vector<std::string> answers;
               if (st == 0) answers = parse(it->second.type, abuf, alen, it->second.name, st);
               if (st == -ECANCELED && !im->down) st = -EIO;
               im->finish(id, st, std::move(answers));
             },
             arg);
  im->rearm();
  return id;
}

void Resolver::cancel(uint64_t id) { impl_->queries.erase(id); }

void Resolver::shutdown() {
  Impl *im = impl_.get();
  if (im->down) return;
  im->down = true;
  auto pending = std::move(im->queries);
  im->queries.clear();
  if (im->channel) {
    ares_destroy(im->channel);  // calls every c-ares callback with ARES_EDESTRUCTION
    im->channel = nullptr;
  }
  im->timer->stop();
  for (auto &[id, q] : pending)
    if (q.cb) q.cb(-ECANCELED, {});
  for (auto &[fd, p] : im->polls) Impl::close_poll(p);
  im->polls.clear();
  im->timer.reset();
  im->defer.reset();
}

}  // namespace uvs
