// tests/unit/test_tcp_connection.cpp: what an idle connection allocates and how its memory goes
// away: a Timer makes its libuv handle only when first started, and a TcpConnection (which holds
// its uv_tcp_t) is freed at once when deleted after its close callback, or detached (no more
// events) and freed by the close callback when deleted while open or closing. Real sockets on
// 127.0.0.1 and a private libuv loop.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "conn/tcp_connection.hpp"
#include "util/timer.hpp"

using namespace uvs;

namespace {

int count_handles(uv_loop_t *loop) {
  int n = 0;
  uv_walk(
      loop, [](uv_handle_t *, void *arg) { ++*static_cast<int *>(arg); }, &n);
  return n;
}

struct Recorder final : ConnectionEvents {
  std::string data;
  int eofs = 0, closes = 0, other = 0;
  std::unique_ptr<Connection> *owner = nullptr;  // on_closed deletes it (as the server does)
  void on_data(const char *p, size_t n) override { data.append(p, n); }
  void on_eof(int) override { ++eofs; }
  void on_write_done() override {}
  void on_write_error(int) override { ++other; }
  void on_drain_timeout() override { ++other; }
  void on_closed() override {
    ++closes;
    if (owner) owner->reset();
  }
  void on_tls_ready() override { ++other; }
  void on_tls_failed(const std::string &) override { ++other; }
};

// A listener on 127.0.0.1 and one accepted TcpConnection with a connected client socket.
struct Pair {
  uv_loop_t loop;
  uv_tcp_t listener;
  int client = -1;
  std::unique_ptr<Connection> conn;
  TcpConnection *tcp = nullptr;

  Pair() {
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in a{};
    uv_ip4_addr("127.0.0.1", 0, &a);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr *>(&a), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t *>(&listener), 8,
                      [](uv_stream_t *l, int status) {
                        REQUIRE(status == 0);
                        auto *p = static_cast<Pair *>(l->data);
                        auto c = std::make_unique<TcpConnection>(l->loop);
                        REQUIRE(c->accept(l) == 0);
                        p->tcp = c.get();
                        p->conn = std::move(c);
                      }) == 0);
    int len = sizeof a;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr *>(&a), &len);
    client = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(client, reinterpret_cast<const sockaddr *>(&a), sizeof a) == 0);
    while (!conn) uv_run(&loop, UV_RUN_ONCE);
  }
  void spin() {  // a few loop iterations (the listener keeps the loop alive)
    for (int i = 0; i < 5; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  }
  ~Pair() {
    conn.reset();
    if (client >= 0) ::close(client);
    uv_close(reinterpret_cast<uv_handle_t *>(&listener), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);  // every handle closed and freed
  }
};

}  // namespace

TEST_CASE("Timer: the libuv handle is made by the first start(), not by the constructor") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Timer t(&loop);
    CHECK(count_handles(&loop) == 0);
    CHECK_FALSE(t.active());
    t.stop();  // harmless without a handle
    int fired = 0;
    t.start(1, [&] { ++fired; });
    CHECK(count_handles(&loop) == 1);
    CHECK(t.active());
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(fired == 1);
    CHECK_FALSE(t.active());
  }
  {
    Timer never(&loop);  // destroyed without ever starting: nothing to close
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("TcpConnection: reads, then close(); the owner deletes it in on_closed") {
  Pair p;
  Recorder ev;
  ev.owner = &p.conn;
  p.conn->set_events(&ev);
  p.conn->set_reading(true);
  REQUIRE(::write(p.client, "hello", 5) == 5);
  while (ev.data.size() < 5) uv_run(&p.loop, UV_RUN_ONCE);
  CHECK(ev.data == "hello");
  p.conn->close();
  CHECK(p.conn->closed());
  while (ev.closes == 0) uv_run(&p.loop, UV_RUN_ONCE);
  CHECK(ev.closes == 1);
  CHECK(p.conn == nullptr);  // deleted inside the close callback, freed at once
  CHECK(ev.other == 0);
}

TEST_CASE("TcpConnection: deleted while open, it detaches and the close callback frees it") {
  Pair p;
  Recorder ev;
  p.conn->set_events(&ev);
  p.conn->set_reading(true);
  CHECK(p.conn->write("220 ready\r\n") == 0);  // a write in flight when it goes
  REQUIRE(::write(p.client, "data", 4) == 4);
  p.conn.reset();  // open, reading, a write queued
  p.spin();         // the close callback runs; nothing reaches the recorder
  CHECK(count_handles(&p.loop) == 1);  // the listener only
  CHECK(ev.data.empty());
  CHECK(ev.closes == 0);
  CHECK(ev.eofs == 0);
  CHECK(ev.other == 0);
  char buf[64];
  ssize_t n;
  std::string got;
  while ((n = ::read(p.client, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  CHECK(n <= 0);  // the server side is closed
}

TEST_CASE("TcpConnection: deleted between close() and its close callback, freed by the callback") {
  Pair p;
  Recorder ev;
  p.conn->set_events(&ev);
  p.conn->close();
  p.conn.reset();  // closing: the callback is still to come
  p.spin();
  CHECK(count_handles(&p.loop) == 1);  // the listener only
  CHECK(ev.closes == 0);  // detached: no on_closed for a deleted owner
}
