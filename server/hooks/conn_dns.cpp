// hooks/conn_dns.cpp: ConnDns (see conn_dns.hpp).
#include "hooks/conn_dns.hpp"

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "dns/resolver.hpp"

namespace uvs {

namespace {
std::atomic<int64_t> next_id{1};  // unique in the process, whatever the loop
}

int64_t ConnDns::start(const char *name, int type, uint64_t timeout_ms, uvs_dns_conn_fn cb,
                       void *ud) {
  if (!name || !cb || type < UVS_DNS_A || type > UVS_DNS_PTR) return -EINVAL;
  if (closed_) return -ECANCELED;
  if (!resolver_) return -ENOSYS;
  if (open_.size() >= kMaxOpen) return -E2BIG;
  int64_t id = next_id.fetch_add(1);
  double secs = timeout_ms ? static_cast<double>(timeout_ms) / 1000.0 : default_timeout_s_;
  // The resolver never calls back from inside query(); cancel() and close() stop the callback,
  // so `this` is alive whenever it runs.
  uint64_t rid = resolver_->query(name, static_cast<Resolver::Type>(type), secs,
                                  [this, id, cb, ud](int status, std::vector<std::string> answers) {
                                    open_.erase(id);
                                    std::vector<const char *> ptrs;
                                    ptrs.reserve(answers.size() + 1);
                                    for (auto &a : answers) ptrs.push_back(a.c_str());
                                    ptrs.push_back(nullptr);
                                    cb(id, status, static_cast<int>(answers.size()), ptrs.data(),
                                       ud);
                                  });
  open_[id] = rid;
  return id;
}

int ConnDns::cancel(int64_t id) {
  auto it = open_.find(id);
  if (it == open_.end()) return -ENOENT;
  uint64_t rid = it->second;
  open_.erase(it);
  if (resolver_) resolver_->cancel(rid);
  return 0;
}

void ConnDns::close() {
  closed_ = true;
  auto open = std::move(open_);
  open_.clear();
  if (resolver_)
    for (auto &[id, rid] : open) resolver_->cancel(rid);
}

}  // namespace uvs
