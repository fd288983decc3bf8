// delivery/schedule.cpp: the due-time index, the backoff and attempt bookkeeping (schedule.hpp).
#include "delivery/schedule.hpp"

namespace uvs::delivery {

int64_t retry_delay(int attempts, int64_t retry_min, int64_t retry_max) {
  if (attempts < 1) attempts = 1;
  int64_t d = retry_min;
  for (int i = 1; i < attempts && d < retry_max; ++i) d *= 2;
  return d < retry_max ? d : retry_max;
}

void Schedule::set(const std::string &id, int64_t next_try) {
  remove(id);
  pos_[id] = by_time_.emplace(next_try, id);
}

void Schedule::remove(const std::string &id) {
  auto it = pos_.find(id);
  if (it == pos_.end()) return;
  by_time_.erase(it->second);
  pos_.erase(it);
}

std::vector<std::string> Schedule::take_due(int64_t now, size_t max) {
  std::vector<std::string> out;
  while (out.size() < max && !by_time_.empty() && by_time_.begin()->first <= now) {
    out.push_back(by_time_.begin()->second);
    pos_.erase(out.back());
    by_time_.erase(by_time_.begin());
  }
  return out;
}

int64_t Schedule::next_due() const {
  return by_time_.empty() ? -1 : by_time_.begin()->first;
}

AttemptOutcome apply_attempt(queue::Envelope &env, const std::vector<size_t> &idx,
                             const std::vector<RcptResult> &results, int64_t now, int64_t retry_min,
                             int64_t retry_max, int64_t max_lifetime) {
  AttemptOutcome out;
  std::string last_error;
  for (size_t i = 0; i < idx.size() && i < results.size(); ++i) {
    if (idx[i] >= env.rcpts.size()) continue;
    queue::Recipient &r = env.rcpts[idx[i]];
    if (r.state != queue::RcptState::pending) continue;
    const RcptResult &res = results[i];
    r.status = res.code;
    r.enhanced = res.enhanced;
    r.diagnostic = res.text;
    r.remote_mta = res.mta;
    if (res.code >= 200 && res.code < 300) {
      r.state = queue::RcptState::delivered;
      r.updated = now;
      out.delivered.push_back(idx[i]);
    } else if (res.code >= 500 && res.code < 600) {
      r.state = queue::RcptState::failed;
      r.updated = now;
      out.failed.push_back(idx[i]);
    } else {
      out.deferred.push_back(idx[i]);
      last_error = res.text;
    }
  }
  env.attempts += 1;
  if (!last_error.empty()) env.last_error = last_error;
  if (env.arrival + max_lifetime <= now) {
    // Too old: what is still pending goes back to the sender with the last error.
    for (size_t k = 0; k < env.rcpts.size(); ++k) {
      queue::Recipient &r = env.rcpts[k];
      if (r.state != queue::RcptState::pending) continue;
      r.state = queue::RcptState::failed;
      r.updated = now;
      if (r.status < 400 || r.status >= 500) r.status = 450;  // a DSN says what it was
      if (r.enhanced.empty()) r.enhanced = "4.4.7";
      if (r.diagnostic.empty())
        r.diagnostic = env.last_error.empty() ? "message expired in the queue" : env.last_error;
      r.diagnostic +=
          " (message expired after " + std::to_string(max_lifetime / 3600) + " hours in the queue)";
      out.failed.push_back(k);
    }
    out.deferred.clear();
  }
  out.finished = env.pending_count() == 0;
  if (!out.finished) env.next_try = now + retry_delay(env.attempts, retry_min, retry_max);
  return out;
}

}  // namespace uvs::delivery
