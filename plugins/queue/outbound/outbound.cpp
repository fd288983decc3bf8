// plugins/queue/outbound/outbound.cpp: the queue/outbound plugin: every accepted message is
// written durably into the server's outbound queue directory (server/queue, docs/queue.md)
// before the 250; the startup scan cleans what a crash left there.
//
// conf/plugins:  queue/outbound <queue dir>
//
// init: opens (creates) the queue directory; when no other process uses it (its lock is free),
// scans it and removes the leftovers of a crash; then holds the lock shared for its life.
// mail hook: notes BODY=8BITMIME for the envelope (DECLINED).
// queue hook: suspends; on the thread pool QueueDir::store() copies the message and writes the
// envelope (temp files, fsync, rename, directory fsync); then OK with "250 2.0.0 Ok: queued as
// <id>", or DENYSOFT 451 4.3.0 with nothing left behind. After a store, "new <id>" goes to the
// delivery engine's control socket (<queue dir>/control, best effort). The id is the transaction's queue id
// (queue_id(), 1.4), so the Received: field, the 250, the log lines and the files all carry
// the same one. A transaction with the note "quarantine" (a milter's SMFIR_QUARANTINE) is stored
// held (<id>.hold) and the engine is not told.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <string>
#include <vector>
#include <strings.h>
#include <unistd.h>

#include "uvsmtpd/plugin.h"
#include "queue/control_notify.hpp"
#include "queue/queue_dir.hpp"

namespace {

const uvs_api *api;

const char kNote8bit[] = "queue/outbound:8bitmime";
const char kNoteUtf8[] = "queue/outbound:smtputf8";
// A milter (or any plugin) that quarantines the message sets this transaction note (the reason):
// the entry is stored held, as Postfix puts such a message in its hold queue.
const char kNoteQuarantine[] = "quarantine";
const char kSoftText[] = "Cannot queue the message now; try again later";

struct Outbound {
  uvs_plugin *self = nullptr;
  std::unique_ptr<uvs::queue::QueueDir> q;
  // Entries the delivery engine has not been told of yet (loop thread only): a burst can fill
  // the control socket's queue (-EAGAIN), and what did not go out is sent again, batched
  // ("new ID1 ID2 ..."), from a short timer.
  std::vector<std::string> unsent;
  uvs_timer *retry = nullptr;
};

void notify_engine(Outbound *st);

void notify_retry(uvs_timer *, void *ud) {
  Outbound *st = static_cast<Outbound *>(ud);
  st->retry = nullptr;  // a one-shot timer's handle ends with its callback
  notify_engine(st);
}

// Tells the delivery engine of every unsent entry, in as few datagrams as fit. Best effort: with
// no engine listening (-ENOENT, -ECONNREFUSED) the ids are dropped, as the engine scans the queue
// when it starts and every rescan_interval.
void notify_engine(Outbound *st) {
  size_t sent = 0;
  while (sent < st->unsent.size()) {
    std::string msg = "new";
    size_t n = sent;
    while (n < st->unsent.size() &&
           msg.size() + 1 + st->unsent[n].size() + 1 < uvs::queue::kControlMaxDatagram)
      msg += " " + st->unsent[n++];
    int rc = uvs::queue::control_send(st->q->root(), msg);
    if (rc == -EAGAIN || rc == -ENOBUFS) {
      if (!st->retry) st->retry = api->timer_start(st->self, 2, 0, notify_retry, st);
      if (st->retry) break;  // keep the rest for the timer
    }
    sent = n;  // sent, or dropped (no engine, or no timer to try again)
  }
  st->unsent.erase(st->unsent.begin(), st->unsent.begin() + static_cast<std::ptrdiff_t>(sent));
}

struct Job {
  Outbound *st = nullptr;
  uvs_pending *p = nullptr;
  uvs::queue::Envelope env;
  int msg_fd = -1;
  int rc = 0;
  std::string err;
  bool undo = false;  // the entry was stored but nobody waits for the answer: removed again
  std::string quarantine;  // transaction note "quarantine" (a milter's): the entry is held
  int hold_rc = 0;
  std::string hold_err;
  ~Job() {
    if (msg_fd >= 0) close(msg_fd);
  }
};

std::string str(const char *s) {
  return s ? s : "";
}

// The protocol word of the server's Received: field (RFC 3848, RFC 6531): SMTP, ESMTP or
// UTF8SMTP (an SMTPUTF8 transaction), then S under TLS, A after AUTH.
std::string protocol_of(uvs_call *call, bool smtputf8) {
  std::string p = smtputf8 ? "UTF8SMTP" : api->is_esmtp(call) > 0 ? "ESMTP" : "SMTP";
  if (api->tls_active(call) > 0) p += "S";
  if (api->auth_user(call)) p += "A";
  return p;
}

void store_work(void *ud) {
  Job *j = static_cast<Job *>(ud);
  if (j->undo) {
    std::string ignored;
    j->rc = j->st->q->remove(j->env.id, ignored);
    return;
  }
  uvs::queue::Envelope &e = j->env;
  j->rc = j->st->q->store(e, j->msg_fd, e.size, j->err);
  if (j->rc == 0 && !j->quarantine.empty())
    j->hold_rc = j->st->q->set_hold(e.id, true, j->hold_err);
}

void undo_done(uvs_pending *p, void *ud) {
  Job *j = static_cast<Job *>(ud);
  api->log(j->st->self, nullptr, j->rc == 0 ? UVS_LOG_NOTICE : UVS_LOG_ERR,
           "%s: the session ended before the reply: entry removed again%s", j->env.id.c_str(),
           j->rc == 0 ? "" : " (failed; it stays queued)");
  api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  delete j;
}

void store_done(uvs_pending *p, void *ud) {
  Job *j = static_cast<Job *>(ud);
  uvs_call *call = api->pending_call(p);
  if (j->rc < 0) {
    api->log(j->st->self, call, UVS_LOG_ERR, "not queued: %s", j->err.c_str());
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
    delete j;
    return;
  }
  if (!call) {  // timed out or gone: no 250 will be sent, so the entry must not stay
    j->undo = true;
    if (api->run_blocking(p, store_work, undo_done, j) == 0) return;
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
    delete j;
    return;
  }
  api->log(j->st->self, call, UVS_LOG_INFO, "%s: queued in %s: %lld bytes, %zu recipient(s)",
           j->env.id.c_str(), j->st->q->root().c_str(), static_cast<long long>(j->env.size),
           j->env.rcpts.size());
  if (!j->quarantine.empty()) {
    if (j->hold_rc == 0) {
      api->log(j->st->self, call, UVS_LOG_NOTICE,
               "%s: held (quarantine: %s); `uvsmtpd queue release %s` lets it go",
               j->env.id.c_str(), j->quarantine.c_str(), j->env.id.c_str());
      std::string text = "Ok: queued as " + j->env.id;
      api->complete(p, UVS_OK, 250, "2.0.0", text.c_str());
      delete j;
      return;  // the delivery engine is not told: it skips held entries
    }
    api->log(j->st->self, call, UVS_LOG_WARNING, "%s: cannot hold it (quarantine: %s): %s",
             j->env.id.c_str(), j->quarantine.c_str(), j->hold_err.c_str());
  }
  // Tell the delivery engine (best effort: it also rescans the directory every minute).
  try {
    j->st->unsent.push_back(j->env.id);
    notify_engine(j->st);
  } catch (const std::bad_alloc &) {
  }
  std::string text = "Ok: queued as " + j->env.id;
  api->complete(p, UVS_OK, 250, "2.0.0", text.c_str());
  delete j;
}

uvs_verdict soft_fail(Outbound *st, uvs_call *call, const char *what) {
  api->log(st->self, call, UVS_LOG_ERR, "not queued: %s", what);
  api->reply(call, 451, "4.3.0", kSoftText);
  return UVS_DENYSOFT;
}

uvs_verdict on_queue(uvs_call *call, void *ud) noexcept {
  Outbound *st = static_cast<Outbound *>(ud);
  int n = api->rcpt_count(call);
  if (n <= 0) return UVS_DECLINED;
  Job *j = new (std::nothrow) Job;
  if (!j) return soft_fail(st, call, "out of memory");
  try {
    j->st = st;
    uvs::queue::Envelope &e = j->env;
    e.arrival = time(nullptr);
    e.next_try = e.arrival;
    e.sender = str(api->mail_from(call));
    e.client_ip = str(api->peer_ip(call));
    e.client_name = str(api->remote_host(call));
    e.helo = str(api->helo_name(call));
    e.auth_user = str(api->auth_user(call));
    e.id = str(api->queue_id(call));  // the transaction's: the Received: field's and the logs'
    const char *u8 = api->note_get(call, UVS_NOTE_TRANSACTION, kNoteUtf8);
    e.smtputf8 = u8 && u8[0] == '1';
    e.protocol = protocol_of(call, e.smtputf8);
    const char *b8 = api->note_get(call, UVS_NOTE_TRANSACTION, kNote8bit);
    e.body_8bitmime = b8 && b8[0] == '1';
    for (int i = 0; i < n; ++i) {
      uvs::queue::Recipient r;
      r.address = str(api->rcpt_at(call, i));
      e.rcpts.push_back(std::move(r));
    }
    e.size = api->message_size(call);
    const char *quarantine = api->note_get(call, UVS_NOTE_TRANSACTION, kNoteQuarantine);
    if (quarantine && *quarantine) j->quarantine = quarantine;
  } catch (const std::bad_alloc &) {
    delete j;
    return soft_fail(st, call, "out of memory");
  }
  if (!uvs::queue::valid_id(j->env.id)) {
    delete j;
    return soft_fail(st, call, "the transaction has no queue id");
  }
  int fd = j->env.size >= 0 ? api->message_fd(call) : -ENOENT;
  if (fd < 0) {
    delete j;
    std::string why = std::string("cannot open the spooled message: ") + strerror(-fd);
    return soft_fail(st, call, why.c_str());
  }
  j->msg_fd = fd;
  uvs_pending *p = api->suspend(call);
  if (!p) {
    delete j;
    return soft_fail(st, call, "cannot suspend the queue hook");
  }
  j->p = p;
  int rc = api->run_blocking(p, store_work, store_done, j);
  if (rc < 0) {
    api->log(st->self, call, UVS_LOG_ERR, "not queued: cannot start the write: %s", strerror(-rc));
    delete j;
    api->complete(p, UVS_DENYSOFT, 451, "4.3.0", kSoftText);
  }
  return UVS_PENDING;
}

// MAIL: BODY=8BITMIME and SMTPUTF8 go into the envelope (the queue hook cannot see MAIL's parameters).
uvs_verdict on_mail(uvs_call *call, void *) noexcept {
  const char *body = api->call_param(call, "BODY");
  if (body && strcasecmp(body, "8BITMIME") == 0)
    api->note_set(call, UVS_NOTE_TRANSACTION, kNote8bit, "1");
  if (api->call_param(call, "SMTPUTF8")) api->note_set(call, UVS_NOTE_TRANSACTION, kNoteUtf8, "1");
  return UVS_DECLINED;
}

int ob_init(uvs_plugin *self, const uvs_api *a) noexcept {
  api = a;
  if (a->plugin_argc(self) != 1 || !a->plugin_argv(self, 0)[0]) {
    a->set_error(self, "usage: queue/outbound <queue dir>");
    return -EINVAL;
  }
  Outbound *st = new (std::nothrow) Outbound;
  if (!st) return -ENOMEM;
  st->self = self;
  try {
    st->q = std::make_unique<uvs::queue::QueueDir>(a->plugin_argv(self, 0));
    std::string err;
    if (!st->q->open(true, err)) {
      a->set_errorf(self, "%s (the user uvsmtpd runs as must be able to create and write it)",
                    err.c_str());
      delete st;
      return -EIO;
    }
    if (st->q->try_lock_exclusive()) {
      // Nobody else uses the queue: what tmp/ holds and unfinished entries are a crash's.
      auto t0 = std::chrono::steady_clock::now();
      uvs::queue::ScanResult r = st->q->scan(true);
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      a->log(self, nullptr, UVS_LOG_INFO,
             "queue %s: %zu waiting, %zu held (scan %.0f ms); removed %zu temp file(s) and %zu "
             "unfinished message(s), %zu envelope(s) without a message moved to corrupt/",
             st->q->root().c_str(), r.waiting, r.held, ms, r.temp_files, r.orphan_messages,
             r.lone_envelopes);
      for (const auto &pr : r.problems) a->log(self, nullptr, UVS_LOG_WARNING, "%s", pr.c_str());
      if (r.problem_count > r.problems.size())
        a->log(self, nullptr, UVS_LOG_WARNING, "... and %zu more",
               r.problem_count - r.problems.size());
    } else {
      a->log(self, nullptr, UVS_LOG_INFO,
             "queue %s is in use by another instance or process: no startup cleaning",
             st->q->root().c_str());
    }
    if (!st->q->lock_shared(err)) {
      a->set_errorf(self, "%s", err.c_str());
      delete st;
      return -EIO;
    }
  } catch (const std::bad_alloc &) {
    delete st;
    return -ENOMEM;
  }
  int rc = a->register_hook(self, UVS_HOOK_QUEUE, on_queue, st);
  if (rc == 0) rc = a->register_hook(self, UVS_HOOK_MAIL, on_mail, st);
  if (rc < 0) {
    a->set_error(self, "cannot register the queue and mail hooks");
    delete st;
    return rc;
  }
  a->plugin_set_data(self, st);
  return 0;
}

void ob_fini(uvs_plugin *self) noexcept {
  delete static_cast<Outbound *>(api ? api->plugin_data(self) : nullptr);
}

}  // namespace

UVS_PLUGIN("queue/outbound", "1.0", ob_init, ob_fini);
