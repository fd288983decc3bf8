// tests/unit/test_workers.cpp: the pure parts of worker processes: the worker's internal
// command-line options (workers/role.*), and queue ids that differ between workers.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "log/log.hpp"
#include "session/session_util.hpp"
#include "workers/role.hpp"

using namespace uvs;

TEST_CASE("workers: role options carry the worker, its channel and each listener's settings") {
  config::Listen a;
  a.host = "127.0.0.1";
  a.port = 0;
  config::Listen b;
  b.host = "::1";
  b.port = 465;
  b.sync_check = false;
  b.tls = "implicit";
  b.require_tls = true;
  b.auth = "required";
  b.auth_plaintext = true;
  b.auth_relay = false;
  auto args = workers::role_args(3, 5, {3, 4}, {a, b});
  REQUIRE(args.size() == 6);
  workers::Role r;
  for (size_t i = 0; i < args.size(); i += 2)
    REQUIRE(workers::parse_role_option(args[i], args[i + 1], r));
  CHECK(r.index == 3);
  CHECK(r.channel_fd == 5);
  CHECK(r.fds == std::vector<int>{3, 4});
  REQUIRE(r.listen.size() == 2);
  CHECK(r.listen[0].host == "127.0.0.1");
  CHECK(r.listen[0].port == 0);
  CHECK(r.listen[0].sync_check);
  CHECK(r.listen[0].tls == "starttls");
  CHECK(r.listen[0].auth == "optional");
  CHECK(r.listen[1].host == "::1");
  CHECK(r.listen[1].port == 465);
  CHECK(!r.listen[1].sync_check);
  CHECK(r.listen[1].tls == "implicit");
  CHECK(r.listen[1].require_tls);
  CHECK(r.listen[1].auth == "required");
  CHECK(r.listen[1].auth_plaintext);
  CHECK(!r.listen[1].auth_relay);
  // What role_args never makes is refused.
  workers::Role bad;
  CHECK(!workers::parse_role_option("--worker", "0,4", bad));
  CHECK(!workers::parse_role_option("--worker", "x,4", bad));
  CHECK(!workers::parse_role_option("--worker", "1", bad));
  CHECK(
      !workers::parse_role_option("--worker-listener", "3,127.0.0.1,99999,1,none,0,off,0,1", bad));
  CHECK(!workers::parse_role_option("--worker-listener", "3,127.0.0.1,25", bad));
}

TEST_CASE("workers: queue ids of different workers differ in their last digits") {
  // The last four digits, base 31 in the id alphabet, least significant first: the worker's
  // number is their value mod 256.
  auto tail = [](const std::string &id) {
    static const std::string kDigits = "0123456789BCDFGHJKLMNPQRSTVWXYZ";
    uint64_t v = 0;
    for (size_t i = id.size(); i-- > id.size() - 4;) v = v * 31 + kDigits.find(id[i]);
    return v;
  };
  for (int w : {1, 2, 7, 256}) {
    CAPTURE(w);
    log::set_worker(w);
    for (int i = 0; i < 50; ++i) {
      std::string id = make_queue_id();
      REQUIRE(id.size() == 14);
      CHECK(tail(id) % 256 == static_cast<uint64_t>(w - 1));
    }
  }
  log::set_worker(0);
}
