// tls/store.cpp: the current TLS context, its reload, and the file watcher. Files are watched
// with uv_fs_poll (stat every poll interval): it follows symlinks and compares inode, size and
// times, so a file replaced by rename (certbot's live/ symlinks, acme.sh, Kubernetes secret
// volumes swapping a ..data link) is seen as well as one rewritten in place, and a file that
// is missing for a moment does not lose the watch.
#include "tls/store.hpp"

#include <algorithm>
#include <ctime>

#include "log/log.hpp"
#include "tls/context.hpp"

namespace uvs::tls {

struct TlsStore::Poll {
  uv_fs_poll_t handle;
  TlsStore *store;
};

TlsStore::TlsStore(uv_loop_t *loop) : loop_(loop), debounce_(loop) {}

TlsStore::~TlsStore() {
  stop();
}

std::shared_ptr<const TlsContext> TlsStore::current() const {
  std::lock_guard<std::mutex> g(mu_);
  return current_;
}

// A certificate past its notAfter is still served (clients decide), but the admin must hear
// of it, and of one that ends within kExpiryWarnDays, at every load.
void TlsStore::warn_expiry(const TlsContext &ctx) {
  constexpr time_t kExpiryWarnDays = 14;
  const time_t now = time(nullptr);
  for (const auto &[file, not_after] : ctx.expiries()) {
    char when[32];
    std::tm tm{};
    gmtime_r(&not_after, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    if (not_after <= now)
      UVS_LOG(log::err, "", "tls: %s: certificate expired on %s", file.c_str(), when);
    else if (not_after - now < kExpiryWarnDays * 86400)
      UVS_LOG(log::warning, "", "tls: %s: certificate expires on %s (in %ld day(s))", file.c_str(),
              when, static_cast<long>((not_after - now) / 86400));
  }
}

bool TlsStore::reload(const config::TlsSettings &settings, bool log_failure) {
  bool ok = true;
  if (!settings.enabled()) {
    std::lock_guard<std::mutex> g(mu_);
    current_.reset();
    last_error_.clear();
    ++reloads_;
  } else {
    std::shared_ptr<const TlsContext> old = current();
    std::string err;
    auto ctx = TlsContext::load(settings, err, old ? old->ticket_keys() : nullptr);
    if (ctx) {
      std::lock_guard<std::mutex> g(mu_);
      current_ = std::move(ctx);
      last_error_.clear();
      ++reloads_;
      if (old) UVS_LOG(log::info, "", "tls: reloaded %s", settings.certificate.c_str());
      warn_expiry(*current_);
    } else {
      ok = false;
      last_error_ = err;
      if (log_failure)
        UVS_LOG(log::err, "", "%s (%s)", err.c_str(),
                old ? "keeping the previous certificates" : "TLS is not available");
    }
  }
  watch(settings);
  return ok;
}

void TlsStore::set_watch_timing(unsigned poll_ms, unsigned debounce_ms) {
  poll_ms_ = poll_ms ? poll_ms : 1;
  debounce_ms_ = debounce_ms;
}

void TlsStore::watch(const config::TlsSettings &settings) {
  watched_settings_ = settings;
  std::vector<std::string> files;
  if (!stopped_ && settings.watch && settings.enabled()) {
    auto add = [&](const std::string &f) {
      if (!f.empty() && std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
    };
    add(settings.certificate);
    add(settings.key);
    for (const config::SniPair &p : settings.sni) {
      add(p.certificate);
      add(p.key);
    }
    if (settings.client_certificates == "request") add(settings.client_ca);
  }
  if (files == watched_files_) return;
  unwatch();
  watched_files_ = files;
  for (const std::string &f : files) {
    auto *p = new Poll;
    p->store = this;
    uv_fs_poll_init(loop_, &p->handle);
    p->handle.data = p;
    int rc = uv_fs_poll_start(
        &p->handle,
        [](uv_fs_poll_t *h, int, const uv_stat_t *, const uv_stat_t *) {
          auto *p = static_cast<Poll *>(h->data);
          if (p->store) p->store->on_change();
        },
        f.c_str(), poll_ms_);
    if (rc != 0) UVS_LOG(log::warning, "", "tls: cannot watch %s: %s", f.c_str(), uv_strerror(rc));
    polls_.push_back(p);
  }
}

void TlsStore::unwatch() {
  for (Poll *p : polls_) {
    p->store = nullptr;
    uv_fs_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t *>(&p->handle),
             [](uv_handle_t *h) { delete static_cast<Poll *>(h->data); });
  }
  polls_.clear();
  watched_files_.clear();
}

void TlsStore::on_change() {
  if (stopped_) return;
  // Renewal tools write the certificate and the key one after the other: wait until the
  // files have been quiet for the debounce time, then reload once.
  debounce_.start(debounce_ms_, [this] {
    if (stopped_) return;
    UVS_LOG(log::notice, "", "tls: %s changed on disk, reloading",
            watched_settings_.certificate.c_str());
    config::TlsSettings s = watched_settings_;
    reload(s);
  });
}

void TlsStore::stop() {
  stopped_ = true;
  debounce_.stop();
  unwatch();
}

}  // namespace uvs::tls
