// delivery/smtpc_transport.cpp: the engine's Transport on server/smtpc (smtpc_transport.hpp):
// a connection per group of recipients (smtpc_connect over the destination's addresses in
// order, smtpc_send), the replies mapped to per-recipient results. A connection whose
// transaction ended cleanly is kept for the same destination for kIdleSeconds and taken by the
// next send there (as Postfix's connection cache, smtp_connection_cache_time_limit = 2 s): the
// engine's per-destination cap counts connections, and a reused one is never a new one.
#include "delivery/smtpc_transport.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <openssl/ssl.h>
#include <map>
#include <set>
#include <sys/un.h>

#include "log/log.hpp"
#include "smtpc.h"
#include "util/timer.hpp"

namespace uvs::delivery {

namespace {

class SmtpcTransport : public Transport {
 public:
  SmtpcTransport(uv_loop_t *loop, const config::Settings &s) : loop_(loop), sweep_(loop) {
    configure(s);
  }

  void configure(const config::Settings &s) override {
    helo_ = s.delivery.hostname.empty() ? s.hostname : s.delivery.hostname;
    starttls_ = s.delivery.starttls == "none" ? 0 : s.delivery.starttls == "encrypt" ? 2 : 1;
    connect_ms_ = static_cast<uint64_t>(s.delivery.timeout_connect * 1000);
    command_ms_ = static_cast<uint64_t>(s.delivery.timeout_command * 1000);
    if (starttls_ && !ctx_) {
      // Opportunistic TLS (RFC 7435): encrypted when offered, the certificate not verified,
      // as Postfix's smtp_tls_security_level "may" and "encrypt" do.
      ctx_ = SSL_CTX_new(TLS_client_method());
      if (ctx_) {
        SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
      }
    }
  }
  ~SmtpcTransport() override {
    abort_all();
    if (ctx_) SSL_CTX_free(ctx_);
  }

  void send(const SendRequest &r, std::function<void(SendResult)> done) override {
    auto *j = new Job;
    j->t = this;
    j->req = r;
    j->done = std::move(done);
    for (const auto &a : j->req.rcpts) j->rcpt_ptrs.push_back(a.c_str());
    jobs_.insert(j);
    // A connection to this destination kept from the last transaction: reused.
    auto it = idle_.find(r.dest.key);
    while (it != idle_.end() && !it->second.empty()) {
      smtpc_conn *c = it->second.back().first;
      it->second.pop_back();
      if (it->second.empty()) idle_.erase(it);
      j->conn = c;
      if (start_send(j, c) == 0) return;
      smtpc_close(c);  // lost while idle: a new connection
      j->conn = nullptr;
      it = idle_.find(r.dest.key);
    }
    j->addrs = r.dest.addresses();
    if (!r.dest.unix_path.empty()) {
      sockaddr_storage ss{};
      auto *un = reinterpret_cast<sockaddr_un *>(&ss);
      un->sun_family = AF_UNIX;
      strncpy(un->sun_path, r.dest.unix_path.c_str(), sizeof un->sun_path - 1);
      j->addrs = {ss};
      j->names.push_back(r.dest.unix_path);
    } else {
      for (const auto &h : r.dest.hops)
        for (size_t k = 0; k < h.addrs.size(); ++k) j->names.push_back(h.host);
    }
    // An address literal names nothing more than its address: the peer shows as "ip:port".
    for (const auto &n : j->names) {
      unsigned char buf[16];
      bool literal =
          inet_pton(AF_INET, n.c_str(), buf) == 1 || inet_pton(AF_INET6, n.c_str(), buf) == 1;
      j->name_ptrs.push_back(literal ? nullptr : n.c_str());
    }
    smtpc_opts o{};
    o.loop = loop_;
    o.helo = helo_.c_str();
    o.lmtp = r.dest.lmtp ? 1 : 0;
    o.starttls = ctx_ ? starttls_ : 0;
    o.ssl_ctx = ctx_;
    o.tls_servername = r.dest.hops.empty() ? nullptr : r.dest.hops[0].host.c_str();
    o.connect_ms = connect_ms_;
    o.greeting_ms = o.helo_ms = o.mail_ms = o.rcpt_ms = command_ms_;
    o.host_names = j->name_ptrs.data();
    int rc = smtpc_connect(&o, j->addrs.data(), static_cast<int>(j->addrs.size()), on_ready, j,
                           &j->conn);
    if (rc < 0) {
      j->conn = nullptr;
      // Never inside send(): report on the next loop turn.
      auto *t = new uv_timer_t;
      uv_timer_init(loop_, t);
      j->fail_code = rc;
      t->data = j;
      uv_timer_start(
          t,
          [](uv_timer_t *h) {
            Job *jj = static_cast<Job *>(h->data);
            uv_close(reinterpret_cast<uv_handle_t *>(h),
                     [](uv_handle_t *x) { delete reinterpret_cast<uv_timer_t *>(x); });
            jj->t->all(jj, 451, "4.3.0",
                       std::string("cannot start the connection: ") + strerror(-jj->fail_code), "");
          },
          0, 0);
    }
  }

  void abort_all() override {
    for (Job *j : jobs_) {
      if (j->conn) smtpc_close(j->conn);
      delete j;
    }
    jobs_.clear();
    for (auto &[key, list] : idle_)
      for (auto &[c, since] : list) smtpc_close(c);
    idle_.clear();
    sweep_.stop();
  }

 private:
  struct Job {
    SmtpcTransport *t = nullptr;
    SendRequest req;
    std::function<void(SendResult)> done;
    std::vector<sockaddr_storage> addrs;
    std::vector<std::string> names;
    std::vector<const char *> name_ptrs, rcpt_ptrs;
    smtpc_conn *conn = nullptr;
    int fail_code = 0;
  };

  // Every recipient gets the same result (no session, or the connection failed).
  void all(Job *j, int code, const char *enh, const std::string &text, const std::string &mta) {
    SendResult res;
    res.rcpts.assign(j->req.rcpts.size(), RcptResult{code, enh, text, mta});
    finish(j, std::move(res));
  }

  void finish(Job *j, SendResult res, bool reusable = false) {
    if (!jobs_.erase(j)) return;
    if (j->conn && reusable) {
      idle_[j->req.dest.key].emplace_back(j->conn, uv_now(loop_));
      if (!sweep_.active()) sweep_.start(500, [this] { sweep(); });
    } else if (j->conn) {
      smtpc_close(j->conn);
    }
    auto done = std::move(j->done);
    delete j;
    done(std::move(res));
  }

  static void on_ready(smtpc_conn *c, int status, const smtpc_reply *why, void *ud) {
    Job *j = static_cast<Job *>(ud);
    SmtpcTransport *t = j->t;
    if (!c) {
      j->conn = nullptr;  // gone with the failure
      int code = status >= 400 && status < 600 ? status : 451;
      std::string enh = why && why->enh[0] ? why->enh : (code >= 500 ? "5.0.0" : "4.4.1");
      std::string text = why ? why->text : "connection failed";
      std::string mta = why ? why->peer : "";
      if (why && why->origin != SMTPC_SERVER && why->peer[0])
        text = std::string("connect to ") + why->peer + ": " + text;
      return t->all(j, code, enh.c_str(), text, mta);
    }
    int rc = t->start_send(j, c);
    if (rc < 0)
      t->all(j, 451, "4.4.2", std::string("cannot start the transaction: ") + strerror(-rc),
             smtpc_peer(c));
  }

  int start_send(Job *j, smtpc_conn *c) {
    unsigned flags = 0;
    if (j->req.eightbit) flags |= SMTPC_F_8BIT;  // to a server without 8BITMIME: sent as is
    if (j->req.smtputf8) flags |= SMTPC_F_SMTPUTF8;
    if (j->req.body)
      return smtpc_send_mem(c, j->req.from.c_str(), j->rcpt_ptrs.data(),
                            static_cast<int>(j->rcpt_ptrs.size()), j->req.body->data(),
                            j->req.body->size(), flags, on_sent, j);
    return smtpc_send(c, j->req.from.c_str(), j->rcpt_ptrs.data(),
                      static_cast<int>(j->rcpt_ptrs.size()), j->req.fd, j->req.size, flags, on_sent,
                      j);
  }

  // Closes the connections idle longer than kIdleSeconds.
  void sweep() {
    uint64_t now = uv_now(loop_);
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto &list = it->second;
      for (size_t i = 0; i < list.size();) {
        if (now - list[i].second >= kIdleSeconds * 1000) {
          smtpc_close(list[i].first);
          list.erase(list.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
      it = list.empty() ? idle_.erase(it) : std::next(it);
    }
    if (!idle_.empty()) sweep_.start(500, [this] { sweep(); });
  }

  static void on_sent(smtpc_conn *c, int status, const smtpc_reply *final,
                      const smtpc_reply *replies, int n, void *ud) {
    Job *j = static_cast<Job *>(ud);
    SendResult res;
    res.relay = smtpc_peer(c) ? smtpc_peer(c) : "";
    res.tls = smtpc_tls(c) ? smtpc_tls(c) : "";
    for (size_t i = 0; i < j->req.rcpts.size(); ++i) {
      const smtpc_reply *r = static_cast<int>(i) < n ? &replies[i] : final;
      RcptResult rr;
      rr.code = r ? r->code : 451;
      rr.enhanced = r ? r->enh : "4.3.0";
      rr.text = r ? r->text : "no reply";
      if (r && r->origin != SMTPC_SERVER) {  // a local failure: never a permanent one by itself
        if (r->origin != SMTPC_E_POLICY && rr.code >= 500) rr.code = 451;
        if (r->stage != SMTPC_S_IDLE)
          rr.text += std::string(" (in reply to ") + smtpc_stage_name(r->stage) + " command)";
      } else if (r) {
        rr.text += std::string(" (in reply to ") + smtpc_stage_name(r->stage) + " command)";
      }
      rr.mta = r && r->peer[0] ? r->peer : res.relay;
      res.rcpts.push_back(std::move(rr));
    }
    j->t->finish(j, std::move(res), status == 0);
  }

  uv_loop_t *loop_;
  std::string helo_;
  int starttls_ = 1;
  uint64_t connect_ms_ = 0, command_ms_ = 0;
  SSL_CTX *ctx_ = nullptr;
  std::set<Job *> jobs_;
  static constexpr uint64_t kIdleSeconds = 2;
  std::map<std::string, std::vector<std::pair<smtpc_conn *, uint64_t>>>
      idle_;  // key -> (conn, since)
  Timer sweep_;
};

}  // namespace

std::unique_ptr<Transport> make_smtpc_transport(uv_loop_t *loop, const config::Settings &s) {
  return std::make_unique<SmtpcTransport>(loop, s);
}

}  // namespace uvs::delivery
