// delivery/bounce.cpp: the notice policy and composition for the engine (bounce.hpp).
#include "delivery/bounce.hpp"

#include "delivery/dsn.hpp"

namespace uvs::delivery {

BounceFn make_dsn_bouncer(std::string reporting_mta, std::string postmaster) {
  return [reporting_mta, postmaster](const queue::Envelope &env, const std::string &original,
                                     const std::vector<size_t> &failed, int64_t now,
                                     int64_t retry_until, const std::string &id, Bounce &out,
                                     std::string &why) {
    bool delay = retry_until > 0;
    const char *action = delay ? "delayed" : "failed";
    bool to_sender = should_bounce(env);
    if (!to_sender && delay) {
      why = "no delay warning for the null sender";
      return false;
    }
    if (!to_sender) {
      if (postmaster.empty()) {
        why = "the sender is null and no delivery.postmaster is set: dropped";
        return false;
      }
      bool all_postmaster = true;
      for (size_t i : failed)
        if (i < env.rcpts.size() && env.rcpts[i].address != postmaster) all_postmaster = false;
      if (all_postmaster) {
        why = "a notice to the postmaster failed: dropped";
        return false;
      }
    }
    DsnInput in{.env = env,
                .reporting_mta = reporting_mta,
                .original_headers = {},
                .original_message = {},
                .rcpts = {},
                .now = now};
    for (size_t i : failed) {
      if (i >= env.rcpts.size()) continue;
      const queue::Recipient &r = env.rcpts[i];
      if (to_sender && !wants_notice(r, action)) continue;
      DsnRecipient d;
      d.address = r.address;
      d.orcpt = r.orcpt;
      d.action = action;
      d.status = r.enhanced;
      d.remote_mta = r.remote_mta;
      if (r.status > 0) {
        d.diagnostic = std::to_string(r.status);
        if (!r.enhanced.empty()) d.diagnostic += " " + r.enhanced;
        if (!r.diagnostic.empty()) d.diagnostic += " " + r.diagnostic;
      } else {
        d.diagnostic = r.diagnostic;
      }
      d.last_attempt = r.updated;
      in.rcpts.push_back(std::move(d));
    }
    if (in.rcpts.empty()) {
      why = "NOTIFY asks for none";
      return false;
    }
    size_t hdr_end = original.find("\r\n\r\n");
    in.original_headers = std::string_view(original).substr(
        0, hdr_end == std::string::npos ? original.size() : hdr_end + 2);
    if (static_cast<int64_t>(original.size()) >= env.size)  // the whole message is here
      in.original_message = original;
    if (!to_sender) in.postmaster = postmaster;
    in.delay_warning = delay;
    in.retry_until = retry_until;
    out.message = compose_dsn(in);
    out.env = dsn_envelope(in, out.message, id);
    return !out.message.empty();
  };
}

}  // namespace uvs::delivery
