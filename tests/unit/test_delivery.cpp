// tests/unit/test_delivery.cpp: the delivery engine's pure parts: [delivery] settings, the retry
// backoff and the due-time schedule, an attempt's bookkeeping (delivered / deferred / failed /
// expired), routes and MX selection against a fake resolver, the control socket's commands.
#include <doctest/doctest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <map>
#include <netinet/in.h>
#include <random>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "config/settings.hpp"
#include "delivery/control.hpp"
#include "delivery/route.hpp"
#include "delivery/schedule.hpp"
#include "queue/control_notify.hpp"
#include "tmp_dir.hpp"

using namespace uvs::delivery;
using uvs::Resolver;
using uvs::queue::Envelope;
using uvs::queue::RcptState;
using uvs::queue::Recipient;

namespace {

bool load(const std::string &text, uvs::config::Settings &s, std::string &err) {
  unit::TmpDir d;
  return uvs::config::load_settings(d.write("uvsmtpd.toml", text), s, err, false);
}

// A fake resolver: answers from a table, -ENOENT for what is not in it, or a given status.
struct FakeDns {
  std::map<std::pair<std::string, int>, std::vector<std::string>> answers;
  std::map<std::pair<std::string, int>, int> status;
  std::vector<std::string> asked;  // "name/type"
  DnsFn fn() {
    return [this](const std::string &name, Resolver::Type t, Resolver::Callback cb) {
      asked.push_back(name + "/" + std::to_string(t));
      auto st = status.find({name, t});
      if (st != status.end()) return cb(st->second, {});
      auto it = answers.find({name, t});
      if (it == answers.end()) return cb(-ENOENT, {});
      cb(0, it->second);
    };
  }
};

Destination run(FakeDns &dns, const std::string &domain, const Self &self = {}, unsigned seed = 1,
                const std::string &to = "mx") {
  RouteTarget t;
  REQUIRE(parse_target(to, t));
  std::mt19937 rng(seed);
  Destination out;
  bool called = false;
  resolve(dns.fn(), t, domain, 25, self, rng, [&](Destination d) {
    out = std::move(d);
    called = true;
  });
  REQUIRE(called);
  return out;
}

std::vector<std::string> hosts(const Destination &d) {
  std::vector<std::string> out;
  for (const auto &h : d.hops) out.push_back(h.host);
  return out;
}

Envelope envelope(int nrcpt) {
  Envelope e;
  e.id = "ABC";
  e.arrival = 1000;
  e.next_try = 1000;
  e.sender = "s@a.test";
  for (int i = 0; i < nrcpt; ++i) {
    Recipient r;
    r.address = "r" + std::to_string(i) + "@b.test";
    e.rcpts.push_back(r);
  }
  return e;
}

}  // namespace

TEST_CASE("delivery settings: defaults, every key, routes, errors with file:line") {
  uvs::config::Settings s;
  std::string err;
  REQUIRE(load("", s, err));
  CHECK(s.delivery.enabled);
  CHECK(s.delivery.concurrency == 100);
  CHECK(s.delivery.destination_concurrency == 20);
  CHECK(s.delivery.retry_min == 300);
  CHECK(s.delivery.retry_max == 14400);
  CHECK(s.delivery.max_queue_lifetime == 432000);
  CHECK(s.delivery.delay_warning == 0);
  CHECK(s.delivery.smtp_port == 25);
  CHECK(s.delivery.starttls == "may");
  REQUIRE(
      load("[delivery]\nenabled = false\nqueue_dir = \"/q\"\nhostname = \"out.test\"\n"
           "concurrency = 5\ndestination_concurrency = 2\nretry_min = 1\nretry_max = 8\n"
           "max_queue_lifetime = 60\ndelay_warning = 30\npostmaster = \"pm@x.test\"\n"
           "smtp_port = 2525\nstarttls = \"encrypt\"\ntimeout_connect = 3\n"
           "timeout_command = 4\nrescan_interval = 2\n"
           "[[delivery.route]]\ndomain = \"x.test\"\nto = \"smtp:[127.0.0.1]:2526\"\n"
           "[[delivery.route]]\ndomain = \".lmtp.test\"\nto = \"lmtp:unix:/run/lmtp\"\n",
           s, err));
  CHECK(!s.delivery.enabled);
  CHECK(s.delivery.queue_dir == "/q");
  CHECK(s.delivery.hostname == "out.test");
  CHECK(s.delivery.concurrency == 5);
  CHECK(s.delivery.destination_concurrency == 2);
  CHECK(s.delivery.retry_min == 1);
  CHECK(s.delivery.retry_max == 8);
  CHECK(s.delivery.max_queue_lifetime == 60);
  CHECK(s.delivery.delay_warning == 30);
  CHECK(s.delivery.postmaster == "pm@x.test");
  CHECK(s.delivery.smtp_port == 2525);
  CHECK(s.delivery.starttls == "encrypt");
  CHECK(s.delivery.rescan_interval == 2);
  REQUIRE(s.delivery.routes.size() == 2);
  CHECK(s.delivery.routes[0].domain == "x.test");
  CHECK(s.delivery.routes[1].to == "lmtp:unix:/run/lmtp");

  CHECK(!load("[delivery]\nstarttls = \"maybe\"\n", s, err));
  CHECK(err.find(":2: 'delivery.starttls' must be one of may, encrypt, none") != std::string::npos);
  CHECK(!load("[delivery]\nconcurrency = 0\n", s, err));
  CHECK(err.find(":2: 'delivery.concurrency' must be between 1") != std::string::npos);
  CHECK(!load("[delivery]\nfoo = 1\n", s, err));
  CHECK(err.find(":2: unknown key 'delivery.foo'") != std::string::npos);
  CHECK(!load("[delivery]\nretry_min = 10\nretry_max = 5\n", s, err));
  CHECK_MESSAGE(
      err.find(":3: 'delivery.retry_max' (5) is smaller than 'delivery.retry_min' (10)") !=
          std::string::npos,
      err);
  CHECK(!load("[[delivery.route]]\ndomain = \"x.test\"\nto = \"pigeon:x\"\n", s, err));
  CHECK_MESSAGE(
      err.find(":1: 'delivery.route.to' \"pigeon:x\": must be mx, smtp:") != std::string::npos,
      err);
  CHECK(!load("[[delivery.route]]\ndomain = \"x.test\"\n", s, err));
  CHECK(err.find("needs 'domain' and 'to'") != std::string::npos);
  CHECK(!load("[[delivery.route]]\ndomain = \"x.test\"\nto = \"lmtp:[h]\"\n", s, err));
  CHECK(err.find("lmtp needs a port") != std::string::npos);
  CHECK(!load("[[delivery.route]]\ndomain = \"x.test\"\nto = \"smtp:[h]:99999\"\n", s, err));
  CHECK(err.find("the port must be 1 to 65535") != std::string::npos);
}

TEST_CASE("delivery: retry backoff doubles from retry_min up to retry_max") {
  CHECK(retry_delay(1, 300, 14400) == 300);
  CHECK(retry_delay(2, 300, 14400) == 600);
  CHECK(retry_delay(3, 300, 14400) == 1200);
  CHECK(retry_delay(6, 300, 14400) == 9600);
  CHECK(retry_delay(7, 300, 14400) == 14400);
  CHECK(retry_delay(1000, 300, 14400) == 14400);
  CHECK(retry_delay(0, 1, 8) == 1);
}

TEST_CASE("delivery: the schedule gives due entries earliest first and moves re-set ones") {
  Schedule s;
  s.set("c", 30);
  s.set("a", 10);
  s.set("b", 20);
  CHECK(s.next_due() == 10);
  CHECK(s.take_due(5, 10).empty());
  s.set("c", 5);  // flushed: moved, not duplicated
  CHECK(s.size() == 3);
  CHECK(s.take_due(15, 10) == std::vector<std::string>{"c", "a"});
  CHECK(!s.contains("a"));
  CHECK(s.contains("b"));
  CHECK(s.take_due(100, 0).empty());
  s.remove("b");
  CHECK(s.next_due() == -1);
  for (int i = 0; i < 10; ++i) s.set("e" + std::to_string(i), 1);
  CHECK(s.take_due(1, 4).size() == 4);  // at most `max` at once
  CHECK(s.size() == 6);
}

TEST_CASE("delivery: an attempt's results: delivered, deferred with backoff, failed, expired") {
  Envelope e = envelope(3);
  std::vector<RcptResult> res = {{250, "2.0.0", "ok", "mx[1.2.3.4]:25"},
                                 {451, "4.7.1", "try later", "mx[1.2.3.4]:25"},
                                 {550, "5.1.1", "no such user", "mx[1.2.3.4]:25"}};
  AttemptOutcome o = apply_attempt(e, {0, 1, 2}, res, 2000, 300, 14400, 432000);
  CHECK(e.rcpts[0].state == RcptState::delivered);
  CHECK(e.rcpts[1].state == RcptState::pending);
  CHECK(e.rcpts[2].state == RcptState::failed);
  CHECK(e.rcpts[2].status == 550);
  CHECK(e.rcpts[2].enhanced == "5.1.1");
  CHECK(e.rcpts[2].remote_mta == "mx[1.2.3.4]:25");
  CHECK(e.rcpts[2].updated == 2000);
  CHECK(o.delivered == std::vector<size_t>{0});
  CHECK(o.deferred == std::vector<size_t>{1});
  CHECK(o.failed == std::vector<size_t>{2});
  CHECK(!o.finished);
  CHECK(e.attempts == 1);
  CHECK(e.next_try == 2300);
  CHECK(e.last_error == "try later");
  // Second deferral: twice as long.
  o = apply_attempt(e, {1}, {{421, "4.4.2", "timeout", ""}}, 3000, 300, 14400, 432000);
  CHECK(e.next_try == 3600);
  CHECK(e.attempts == 2);
  // Delivered at last: finished.
  o = apply_attempt(e, {1}, {{250, "2.0.0", "ok", ""}}, 4000, 300, 14400, 432000);
  CHECK(o.finished);
  // Past the lifetime, a deferral fails with the last error.
  Envelope old = envelope(1);
  o = apply_attempt(old, {0}, {{451, "4.3.0", "busy", "mx"}}, 1000 + 432000, 300, 14400, 432000);
  CHECK(o.failed == std::vector<size_t>{0});
  CHECK(o.deferred.empty());
  CHECK(o.finished);
  CHECK(old.rcpts[0].state == RcptState::failed);
  CHECK(old.rcpts[0].status == 451);
  CHECK(old.rcpts[0].diagnostic.find("busy") == 0);
  CHECK(old.rcpts[0].diagnostic.find("expired") != std::string::npos);
  // Recipients already done are not touched again.
  Envelope done = envelope(1);
  done.rcpts[0].state = RcptState::delivered;
  o = apply_attempt(done, {0}, {{550, "5.0.0", "x", ""}}, 2000, 300, 14400, 432000);
  CHECK(done.rcpts[0].state == RcptState::delivered);
}

TEST_CASE("delivery: route table: exact, subdomains, '*', default mx") {
  RouteTable t;
  std::string err;
  REQUIRE(t.load({{"x.test", "smtp:[10.0.0.1]:2525", 1},
                  {".sub.test", "lmtp:[10.0.0.2]:24", 2},
                  {"*", "smtp:relay.test", 3}},
                 err));
  CHECK(t.lookup("X.Test").kind == RouteTarget::smtp);
  CHECK(t.lookup("x.test").host == "10.0.0.1");
  CHECK(t.lookup("x.test").port == 2525);
  CHECK(t.lookup("a.sub.test").kind == RouteTarget::lmtp);
  CHECK(t.lookup("a.sub.test").port == 24);
  CHECK(t.lookup("sub.test").host == "relay.test");  // ".sub.test" is its subdomains only
  CHECK(t.lookup("sub.test").port == 0);
  RouteTable none;
  REQUIRE(none.load({}, err));
  CHECK(none.lookup("any.test").kind == RouteTarget::mx);
  RouteTarget u;
  REQUIRE(parse_target("lmtp:unix:/run/dovecot/lmtp", u));
  CHECK(u.kind == RouteTarget::lmtp_unix);
  CHECK(u.path == "/run/dovecot/lmtp");
  CHECK(!parse_target("smtp:", u));
}

TEST_CASE("delivery: MX by preference, random among equal ones, AAAA before A") {
  FakeDns dns;
  dns.answers[{"d.test", Resolver::MX}] = {"20 b.d.test", "10 a1.d.test", "10 a2.d.test",
                                           "30 c.d.test"};
  for (auto h : {"a1.d.test", "a2.d.test", "b.d.test", "c.d.test"})
    dns.answers[{h, Resolver::A}] = {"192.0.2.1"};
  dns.answers[{"b.d.test", Resolver::AAAA}] = {"2001:db8::1"};
  std::set<std::string> firsts;
  for (unsigned seed = 1; seed < 40; ++seed) {
    Destination d = run(dns, "D.test", {}, seed);
    REQUIRE(d.code == 0);
    auto h = hosts(d);
    REQUIRE(h.size() == 4);
    CHECK((h[0] == "a1.d.test" || h[0] == "a2.d.test"));
    CHECK((h[1] == "a1.d.test" || h[1] == "a2.d.test"));
    CHECK(h[2] == "b.d.test");
    CHECK(h[3] == "c.d.test");
    firsts.insert(h[0]);
    CHECK(d.key == "d.test");
  }
  CHECK(firsts.size() == 2);  // both orders of the equal preferences occur
  Destination d = run(dns, "d.test");
  REQUIRE(d.hops.size() == 4);
  REQUIRE(d.hops[2].addrs.size() == 2);
  CHECK(endpoint_text(d.hops[2].addrs[0]) == "[2001:db8::1]:25");
  CHECK(endpoint_text(d.hops[2].addrs[1]) == "192.0.2.1:25");
  CHECK(d.addresses().size() == 5);
}

TEST_CASE("delivery: implicit MX, null MX, no such domain, temporary DNS failure") {
  FakeDns dns;
  dns.answers[{"plain.test", Resolver::A}] = {"192.0.2.9"};
  Destination d = run(dns, "plain.test");
  REQUIRE(d.code == 0);
  CHECK(hosts(d) == std::vector<std::string>{"plain.test"});

  dns.answers[{"null.test", Resolver::MX}] = {"0 "};
  d = run(dns, "null.test");
  CHECK(d.code == 556);
  CHECK(d.enhanced == "5.1.10");
  CHECK(d.text.find("null MX") != std::string::npos);
  dns.answers[{"null2.test", Resolver::MX}] = {"0 ."};
  CHECK(run(dns, "null2.test").code == 556);

  d = run(dns, "nowhere.test");
  CHECK(d.code == 550);
  CHECK(d.enhanced == "5.4.4");
  CHECK(d.text.find("Host or domain name not found") == 0);

  dns.status[{"slow.test", Resolver::MX}] = -ETIMEDOUT;
  d = run(dns, "slow.test");
  CHECK(d.code == 451);
  CHECK(d.enhanced == "4.4.3");

  dns.answers[{"tmp.test", Resolver::MX}] = {"10 mx.tmp.test"};
  dns.status[{"mx.tmp.test", Resolver::A}] = -EIO;
  d = run(dns, "tmp.test");
  CHECK(d.code == 451);
}

TEST_CASE("delivery: an MX that is this server: it and worse ones skipped; only us: loop") {
  FakeDns dns;
  dns.answers[{"d.test", Resolver::MX}] = {"10 other.test", "20 me.test", "30 worse.test"};
  dns.answers[{"other.test", Resolver::A}] = {"192.0.2.1"};
  dns.answers[{"me.test", Resolver::A}] = {"192.0.2.2"};
  dns.answers[{"worse.test", Resolver::A}] = {"192.0.2.3"};
  Self self;
  self.endpoints = {"192.0.2.2:25"};
  Destination d = run(dns, "d.test", self);
  REQUIRE(d.code == 0);
  CHECK(hosts(d) == std::vector<std::string>{"other.test"});
  // By name.
  Self named;
  named.hostname = "ME.test";
  d = run(dns, "d.test", named);
  CHECK(hosts(d) == std::vector<std::string>{"other.test"});
  // The best MX is us.
  dns.answers[{"loop.test", Resolver::MX}] = {"10 me.test", "20 worse.test"};
  d = run(dns, "loop.test", self);
  CHECK(d.code == 451);
  CHECK(d.enhanced == "4.4.6");
  CHECK(d.text == "mail for loop.test loops back to myself");
  // Same address on another port is not us.
  Self other_port;
  other_port.endpoints = {"192.0.2.2:2525"};
  CHECK(run(dns, "loop.test", other_port).hops.size() == 2);
}

TEST_CASE("delivery: fixed routes: no MX lookup; address literal; LMTP over a UNIX socket") {
  FakeDns dns;
  Destination d = run(dns, "x.test", {}, 1, "smtp:[127.0.0.1]:2526");
  REQUIRE(d.code == 0);
  CHECK(dns.asked.empty());
  REQUIRE(d.hops.size() == 1);
  CHECK(endpoint_text(d.hops[0].addrs[0]) == "127.0.0.1:2526");
  CHECK(d.key == "smtp:[127.0.0.1]:2526");
  CHECK(!d.lmtp);
  dns.answers[{"relay.test", Resolver::A}] = {"192.0.2.7"};
  d = run(dns, "x.test", {}, 1, "lmtp:relay.test:24");
  CHECK(d.lmtp);
  CHECK(endpoint_text(d.hops[0].addrs[0]) == "192.0.2.7:24");
  CHECK(dns.asked == std::vector<std::string>{"relay.test/2", "relay.test/1"});
  d = run(dns, "x.test", {}, 1, "lmtp:unix:/run/lmtp");
  CHECK(d.lmtp);
  CHECK(d.unix_path == "/run/lmtp");
  // Port 0 of a route without one: the engine's smtp_port.
  d = run(dns, "x.test", {}, 1, "smtp:[192.0.2.8]");
  CHECK(endpoint_text(d.hops[0].addrs[0]) == "192.0.2.8:25");
}

TEST_CASE("delivery: own endpoints from the listeners, wildcards expanded to local addresses") {
  Self s = self_from_listeners("me.test", {"127.0.0.1:2525", "[::1]:25", "0.0.0.0:26"});
  CHECK(s.hostname == "me.test");
  auto has = [&](const std::string &ep) {
    return std::find(s.endpoints.begin(), s.endpoints.end(), ep) != s.endpoints.end();
  };
  CHECK(has("127.0.0.1:2525"));
  CHECK(has("[::1]:25"));
  CHECK(has("127.0.0.1:26"));  // the loopback interface is one of the host's
  CHECK(!has("127.0.0.1:25"));
}

TEST_CASE("delivery: control socket commands, and a datagram from control_send arrives") {
  CHECK(parse_control("new ABC123\n").kind == ControlCommand::new_entry);
  CHECK(parse_control("new ABC123\n").id == "ABC123");
  CHECK(parse_control("flush\n").kind == ControlCommand::flush);
  CHECK(parse_control("flush\n").id.empty());
  CHECK(parse_control("flush X1").id == "X1");
  CHECK(parse_control("new").kind == ControlCommand::invalid);
  CHECK(parse_control("new ../etc").kind == ControlCommand::invalid);
  CHECK(parse_control("delete X").kind == ControlCommand::invalid);
  CHECK(parse_control("").kind == ControlCommand::invalid);
  // a batch from queue/outbound: one command per id; a bad id among them is one invalid command
  auto batch = parse_controls("new A1 B2 C3\n");
  REQUIRE(batch.size() == 3);
  CHECK(batch[0].id == "A1");
  CHECK(batch[2].id == "C3");
  CHECK(batch[2].kind == ControlCommand::new_entry);
  auto mixed = parse_controls("new A1 ../x");
  REQUIRE(mixed.size() == 2);
  CHECK(mixed[1].kind == ControlCommand::invalid);
  CHECK(parse_controls("flush X1").size() == 1);
  CHECK(parse_controls("new ").size() == 1);
  CHECK(parse_controls("new ")[0].kind == ControlCommand::invalid);

  unit::TmpDir d;
  CHECK(uvs::queue::control_send(d.dir, "new X") == -ENOENT);  // nobody listens: no error
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<std::string> got;
  {
    ControlSocket sock(&loop);
    std::string err;
    REQUIRE(sock.open(
                d.dir + "/control",
                [&](const ControlCommand &c, std::string_view) {
                  got.push_back(c.kind == ControlCommand::new_entry ? "new " + c.id
                                                                    : "flush " + c.id);
                  if (got.size() == 2) uv_stop(&loop);
                },
                err) == 0);
    struct stat sb {};
    REQUIRE(stat((d.dir + "/control").c_str(), &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0600);
    CHECK(uvs::queue::control_send(d.dir, "new ABC") == 0);
    CHECK(uvs::queue::control_send(d.dir, "flush") == 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    sock.close();
    CHECK(access((d.dir + "/control").c_str(), F_OK) != 0);  // removed when closed
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  CHECK(got == std::vector<std::string>{"new ABC", "flush "});
}
