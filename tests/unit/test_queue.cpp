// tests/unit/test_queue.cpp: the outbound queue's format and directory (server/queue): envelope
// round trip, damaged and truncated envelopes, crash-safe store, atomic updates, hold/release/
// delete, the scan's index and its cleaning of what a crash leaves.
#include <doctest/doctest.h>

#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue_dir.hpp"
#include "queue/queue_entry.hpp"
#include "tmp_dir.hpp"

using namespace uvs::queue;
namespace fs = std::filesystem;

namespace {

Envelope sample(const std::string &id = "0MB3V9X7QF0001") {
  Envelope e;
  e.id = id;
  e.arrival = 1765090000;
  e.size = 0;
  e.sender = "s+x=y@example.org";
  e.client_ip = "192.0.2.7";
  e.client_name = "mail.example.org";
  e.helo = "helo name with spaces";
  e.auth_user = "bob";
  e.protocol = "UTF8SMTPS";
  e.smtputf8 = true;
  e.body_8bitmime = true;
  e.attempts = 3;
  e.next_try = 1765093600;
  e.last_error = "451 4.4.1 mx.example.net: Connection timed out\r\nsecond";
  Recipient a;
  a.address = "alice@example.net";
  Recipient b;
  b.address = "b\xC3\xBC@example.com";
  b.orcpt = "rfc822;b@example.com";
  b.notify = "FAILURE,DELAY";
  b.state = RcptState::failed;
  b.status = 550;
  b.enhanced = "5.1.1";
  b.remote_mta = "mx.example.com[198.51.100.1]";
  b.diagnostic = "User unknown";
  b.updated = 1765091000;
  Recipient c;
  c.address = "postmaster";
  c.state = RcptState::delivered;
  c.status = 250;
  e.rcpts = {a, b, c};
  return e;
}

// A file holding `data`, opened for reading (the message a queue plugin gets from message_fd).
int message_fd(const unit::TmpDir &t, const std::string &data) {
  std::string p = t.write("spooled", data);
  return ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
}

std::string slurp(const std::string &p) {
  std::string out;
  FILE *f = fopen(p.c_str(), "rb");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

size_t files_in(const std::string &dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

struct Queue {
  unit::TmpDir t;
  QueueDir q{t.dir + "/queue"};
  Queue() {
    std::string err;
    REQUIRE_MESSAGE(q.open(true, err), err);
  }
  std::string store(const Envelope &e0, const std::string &msg) {
    Envelope e = e0;
    e.size = static_cast<int64_t>(msg.size());
    int fd = message_fd(t, msg);
    REQUIRE(fd >= 0);
    std::string err;
    int rc = q.store(e, fd, e.size, err);
    close(fd);
    REQUIRE_MESSAGE(rc == 0, err);
    return e.id;
  }
};

}  // namespace

TEST_CASE("queue: xtext encodes every byte outside printable ASCII, '+' and '='") {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  std::string enc = xtext_encode(all);
  CHECK(enc.find(' ') == std::string::npos);
  CHECK(enc.find('=') == std::string::npos);
  std::string back;
  REQUIRE(xtext_decode(enc, back));
  CHECK(back == all);
  CHECK(xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d");
  CHECK_FALSE(xtext_decode("a+2", back));
  CHECK_FALSE(xtext_decode("a+2b", back));  // RFC 3461: upper-case hex
  CHECK_FALSE(xtext_decode("a=b", back));
  CHECK_FALSE(xtext_decode("a b", back));
}

TEST_CASE("queue: an envelope survives serialize and parse unchanged") {
  Envelope e = sample();
  std::string text = serialize(e);
  CHECK(text.rfind("uvsmtpd-queue-envelope 1\n", 0) == 0);
  CHECK(text.size() >= 5);
  CHECK(text.substr(text.size() - 4) == "end\n");
  Envelope back;
  std::string err;
  REQUIRE_MESSAGE(parse(text, back, err), err);
  CHECK(serialize(back) == text);
  CHECK(back.id == e.id);
  CHECK(back.sender == e.sender);
  CHECK(back.helo == e.helo);
  CHECK(back.last_error == e.last_error);
  CHECK(back.smtputf8);
  CHECK(back.body_8bitmime);
  CHECK(back.attempts == 3);
  CHECK(back.next_try == e.next_try);
  REQUIRE(back.rcpts.size() == 3);
  CHECK(back.rcpts[1].address == e.rcpts[1].address);
  CHECK(back.rcpts[1].orcpt == "rfc822;b@example.com");
  CHECK(back.rcpts[1].state == RcptState::failed);
  CHECK(back.rcpts[1].status == 550);
  CHECK(back.rcpts[1].diagnostic == "User unknown");
  CHECK(back.rcpts[2].state == RcptState::delivered);
  CHECK(back.pending_count() == 1);
  // Empty values (the null sender) stay empty.
  e.sender = "";
  e.helo = "";
  REQUIRE(parse(serialize(e), back, err));
  CHECK(back.sender.empty());
  CHECK(back.helo.empty());
}

TEST_CASE("queue: a damaged or truncated envelope is a clear error, never a crash") {
  std::string text = serialize(sample());
  Envelope e;
  std::string err;
  // Every truncation short of the whole file is refused.
  for (size_t n = 0; n < text.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(parse(std::string_view(text).substr(0, n), e, err));
    CHECK(!err.empty());
  }
  CHECK_FALSE(parse("", e, err));
  CHECK(err.find("empty") != std::string::npos);
  CHECK_FALSE(parse("From: someone\n", e, err));
  CHECK(err.find("line 1: not an uvsmtpd queue envelope") == 0);
  CHECK_FALSE(parse("uvsmtpd-queue-envelope 2\nend\n", e, err));
  CHECK(err.find("version") != std::string::npos);
  std::string bad = text;
  bad.replace(bad.find("helo "), 5, "hello ");
  CHECK_FALSE(parse(bad, e, err));
  CHECK_MESSAGE(err.find("unknown record 'hello'") != std::string::npos, err);
  CHECK(err.rfind("line ", 0) == 0);
  bad = text;
  bad.replace(bad.find("state=pending"), 13, "state=unsure");
  CHECK_FALSE(parse(bad, e, err));
  CHECK(err.find("unknown recipient state") != std::string::npos);
  bad = text;
  bad.replace(bad.find("size 0"), 6, "size x");
  CHECK_FALSE(parse(bad, e, err));
  CHECK(err.find("'size' is not a number") != std::string::npos);
  CHECK_FALSE(parse(text + "junk\n", e, err));
  CHECK(err.find("after \"end\"") != std::string::npos);
  // No recipient at all.
  Envelope none = sample();
  none.rcpts.clear();
  CHECK_FALSE(parse(serialize(none), e, err));
  CHECK(err == "no recipients");
  // Random byte damage: parse returns (true or false), it does not crash.
  for (size_t i = 0; i < text.size(); i += 7) {
    std::string d = text;
    d[i] = static_cast<char>(d[i] ^ 0x5A);
    (void)parse(d, e, err);
  }
}

TEST_CASE("queue: store writes the message byte-exact and the envelope, nothing left in tmp/") {
  Queue qq;
  std::string msg = "Received: from x\r\n\tby y; date\r\nSubject: hi\r\n\r\nbody \x01\xff\r\n.\r\n";
  std::string id = qq.store(sample(), msg);
  CHECK(slurp(qq.q.msg_path(id)) == msg);
  Envelope e;
  bool held = true;
  std::string err;
  REQUIRE(qq.q.load(id, e, held, err) == 0);
  CHECK_FALSE(held);
  CHECK(e.size == static_cast<int64_t>(msg.size()));
  CHECK(e.rcpts.size() == 3);
  struct stat sb {};
  REQUIRE(stat(qq.q.env_path(id).c_str(), &sb) == 0);
  CHECK(sb.st_mtim.tv_sec == sample().next_try);  // the scan's schedule
  CHECK((sb.st_mode & 0777) == 0600);
  REQUIRE(stat(qq.q.msg_path(id).c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0600);
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
  CHECK(qq.q.bucket_dir(id).find("/q/") != std::string::npos);
  // The same id again: refused, the first entry untouched, nothing left behind.
  int fd = message_fd(qq.t, "other");
  Envelope again = sample();
  again.size = 5;
  CHECK(qq.q.store(again, fd, 5, err) == -EEXIST);
  close(fd);
  CHECK(slurp(qq.q.msg_path(id)) == msg);
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
}

TEST_CASE("queue: a failed store leaves nothing (message shorter than announced)") {
  Queue qq;
  int fd = message_fd(qq.t, "short");
  Envelope e = sample("0MB3V9X7QF0002");
  e.size = 1000;
  std::string err;
  CHECK(qq.q.store(e, fd, 1000, err) == -EIO);
  close(fd);
  CHECK(err.find("tmp/") != std::string::npos);
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
  CHECK_FALSE(fs::exists(qq.q.msg_path(e.id)));
  CHECK_FALSE(fs::exists(qq.q.env_path(e.id)));
  CHECK(qq.q.scan(false).entries.empty());
}

TEST_CASE("queue: an update replaces the envelope atomically and never touches the message") {
  Queue qq;
  std::string id = qq.store(sample(), "message bytes\r\n");
  struct stat before {
  }, after{};
  REQUIRE(stat(qq.q.msg_path(id).c_str(), &before) == 0);
  std::string err;
  int rc = qq.q.update(
      id,
      [](Envelope &e) {
        e.attempts = 4;
        e.next_try = 1765100000;
        e.last_error = "421 4.4.2 timeout";
        e.rcpts[0].state = RcptState::delivered;
        e.rcpts[0].status = 250;
        e.rcpts[0].remote_mta = "mx.example.net[203.0.113.5]";
      },
      err);
  REQUIRE_MESSAGE(rc == 0, err);
  REQUIRE(stat(qq.q.msg_path(id).c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(slurp(qq.q.msg_path(id)) == "message bytes\r\n");
  Envelope e;
  bool held = false;
  REQUIRE(qq.q.load(id, e, held, err) == 0);
  CHECK(e.attempts == 4);
  CHECK(e.rcpts[0].state == RcptState::delivered);
  CHECK(e.rcpts[0].remote_mta == "mx.example.net[203.0.113.5]");
  CHECK(e.pending_count() == 0);
  ScanResult r = qq.q.scan(false);
  REQUIRE(r.entries.size() == 1);
  CHECK(r.entries[0].next_try == 1765100000);
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
  CHECK(qq.q.update(
            "0NOSUCHID00000", [](Envelope &) {}, err) == -ENOENT);
}

TEST_CASE("queue: hold, release and delete; unknown ids are -ENOENT") {
  Queue qq;
  std::string a = qq.store(sample("0MB3V9X7QF000A"), "a\r\n");
  std::string b = qq.store(sample("0MB3V9X7QF000B"), "b\r\n");
  std::string err;
  REQUIRE(qq.q.set_hold(a, true, err) == 0);
  CHECK(fs::exists(qq.q.env_path(a, true)));
  CHECK_FALSE(fs::exists(qq.q.env_path(a, false)));
  CHECK(qq.q.set_hold(a, true, err) == 0);  // already held
  ScanResult r = qq.q.scan(false);
  CHECK(r.waiting == 1);
  CHECK(r.held == 1);
  Envelope e;
  bool held = false;
  REQUIRE(qq.q.load(a, e, held, err) == 0);
  CHECK(held);
  // An update of a held entry keeps it held.
  REQUIRE(qq.q.update(
              a, [](Envelope &x) { x.next_try = 5; }, err) == 0);
  CHECK(fs::exists(qq.q.env_path(a, true)));
  REQUIRE(qq.q.set_hold(a, false, err) == 0);
  CHECK(fs::exists(qq.q.env_path(a, false)));
  CHECK(qq.q.scan(false).held == 0);
  REQUIRE(qq.q.remove(b, err) == 0);
  CHECK_FALSE(fs::exists(qq.q.msg_path(b)));
  CHECK_FALSE(fs::exists(qq.q.env_path(b)));
  CHECK(qq.q.remove(b, err) == -ENOENT);
  CHECK(qq.q.set_hold("0NOSUCHID00000", true, err) == -ENOENT);
  CHECK(qq.q.load("0NOSUCHID00000", e, held, err) == -ENOENT);
  CHECK(qq.q.load("../../etc/passwd", e, held, err) == -ENOENT);
  CHECK(qq.q.scan(false).entries.size() == 1);
}

TEST_CASE("queue: a damaged envelope file on disk: load names the file and line") {
  Queue qq;
  std::string id = qq.store(sample(), "m\r\n");
  std::string p = qq.q.env_path(id);
  std::string text = slurp(p);
  {
    FILE *f = fopen(p.c_str(), "wb");
    fwrite(text.data(), 1, text.size() / 2, f);
    fclose(f);
  }
  Envelope e;
  bool held = false;
  std::string err;
  CHECK(qq.q.load(id, e, held, err) == -EBADMSG);
  CHECK_MESSAGE(err.find(p + ": ") == 0, err);
  CHECK(err.find("truncated") != std::string::npos);
  // An envelope that names another id.
  Envelope other = sample("0OTHER00000000");
  {
    FILE *f = fopen(p.c_str(), "wb");
    std::string t = serialize(other);
    fwrite(t.data(), 1, t.size(), f);
    fclose(f);
  }
  CHECK(qq.q.load(id, e, held, err) == -EBADMSG);
  CHECK(err.find("names id 0OTHER00000000") != std::string::npos);
}

TEST_CASE("queue: the scan lists entries and cleans only when asked: temp files, orphans") {
  Queue qq;
  std::string a = qq.store(sample("0MB3V9X7QF00A1"), "a\r\n");
  std::string b = qq.store(sample("0MB3V9X7QF00B1"), "b\r\n");
  std::string err;
  REQUIRE(qq.q.set_hold(b, true, err) == 0);
  // What a kill -9 leaves: temp files; a message renamed in without its envelope; and (power
  // loss, damage) an envelope without its message. Plus a stranger.
  qq.t.write("queue/tmp/0MB3V9X7QF00C1.123.0.msg", "half");
  qq.t.write("queue/tmp/0MB3V9X7QF00C1.123.1.env", "uvsmtpd-queue-envelope 1\nid 0M");
  std::string orphan = "0MB3V9X7QF00D1";
  qq.t.write(qq.q.msg_path(orphan).substr(qq.t.dir.size() + 1), "orphan");
  std::string lone = "0MB3V9X7QF00E1";
  qq.t.write(qq.q.env_path(lone).substr(qq.t.dir.size() + 1), serialize(sample(lone)));
  qq.t.write(qq.q.bucket_dir(a).substr(qq.t.dir.size() + 1) + "/README", "x");

  ScanResult r = qq.q.scan(false);
  CHECK(r.entries.size() == 2);
  CHECK(r.waiting == 1);
  CHECK(r.held == 1);
  CHECK(r.temp_files == 2);
  CHECK(r.orphan_messages == 1);
  CHECK(r.lone_envelopes == 1);
  CHECK(r.problem_count == 1);                 // README
  CHECK(files_in(qq.q.root() + "/tmp") == 2);  // not cleaned
  CHECK(fs::exists(qq.q.msg_path(orphan)));

  r = qq.q.scan(true);
  CHECK(r.entries.size() == 2);
  CHECK(r.temp_files == 2);
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
  CHECK_FALSE(fs::exists(qq.q.msg_path(orphan)));
  CHECK_FALSE(fs::exists(qq.q.env_path(lone)));
  CHECK(fs::exists(qq.q.root() + "/corrupt/" + lone + ".env"));
  CHECK(fs::exists(qq.q.bucket_dir(a) + "/README"));  // left alone
  r = qq.q.scan(true);
  CHECK(r.temp_files == 0);
  CHECK(r.orphan_messages == 0);
  CHECK(r.lone_envelopes == 0);
  for (const auto &ent : r.entries) {
    std::string id = ent.id;
    CHECK((id == a || id == b));
    CHECK(ent.state == (id == b ? EntryState::held : EntryState::waiting));
    CHECK(ent.next_try == sample().next_try);
  }
}

TEST_CASE("queue: the queue lock: the cleaning scan needs everyone else gone") {
  Queue qq;
  std::string err;
  QueueDir other(qq.q.root());
  REQUIRE(other.open(false, err));
  REQUIRE(other.lock_shared(err));
  CHECK_FALSE(qq.q.try_lock_exclusive());  // a tool (or another server) uses it
  other.unlock();
  CHECK(qq.q.try_lock_exclusive());
  qq.q.unlock();
}

TEST_CASE("queue: open refuses what is not a queue directory") {
  unit::TmpDir t;
  std::string err;
  QueueDir missing(t.dir + "/none");
  CHECK_FALSE(missing.open(false, err));
  t.write("maildir/new/1", "x");
  QueueDir notq(t.dir + "/maildir");
  CHECK_FALSE(notq.open(true, err));
  CHECK(err.find("not an uvsmtpd queue directory") != std::string::npos);
  t.write("file", "x");
  QueueDir file(t.dir + "/file");
  CHECK_FALSE(file.open(true, err));
  CHECK(err.find("not a directory") != std::string::npos);
  t.write("other/format", "something else\n");
  QueueDir wrong(t.dir + "/other");
  CHECK_FALSE(wrong.open(true, err));
  CHECK(err.find("format") != std::string::npos);
  QueueDir fresh(t.dir + "/a/b/queue");
  REQUIRE_MESSAGE(fresh.open(true, err), err);
  CHECK(fs::is_directory(t.dir + "/a/b/queue/tmp"));
  CHECK(fs::is_directory(t.dir + "/a/b/queue/q"));
  QueueDir again(t.dir + "/a/b/queue");
  CHECK(again.open(false, err));
}

TEST_CASE("queue: a removed entry's files are emptied and reused by the next entries") {
  Queue qq;
  std::string secret = "Subject: private\r\n\r\nsecret body\r\n";
  std::string a = qq.store(sample("0MB3V9X7QF00S1"), secret);
  struct stat ma {
  }, ea{};
  REQUIRE(stat(qq.q.msg_path(a).c_str(), &ma) == 0);
  REQUIRE(stat(qq.q.env_path(a).c_str(), &ea) == 0);
  std::string err;
  REQUIRE(qq.q.remove(a, err) == 0);
  CHECK_FALSE(fs::exists(qq.q.msg_path(a)));
  CHECK_FALSE(fs::exists(qq.q.env_path(a)));
  // Both files wait in tmp/ as spares, empty: nothing of the message is left in them.
  size_t spares = 0;
  for (const auto &de : fs::directory_iterator(qq.q.root() + "/tmp")) {
    CHECK(SpareFiles::is_spare(de.path().filename().string()));
    CHECK(fs::file_size(de.path()) == 0);
    ++spares;
  }
  CHECK(spares == 2);
  // A restart's scan keeps them and does not count them as leftovers of a crash.
  ScanResult r = qq.q.scan(true);
  CHECK(r.temp_files == 0);
  CHECK(r.spare_files == 2);
  CHECK(files_in(qq.q.root() + "/tmp") == 2);
  // The next entry is written into those very inodes (no new inode allocated): a fresh
  // QueueDir, as another process would be, finds them in tmp/.
  QueueDir q2(qq.q.root());
  REQUIRE(q2.open(false, err));
  std::string msg = "Subject: next\r\n\r\nhello\r\n";
  int fd = message_fd(qq.t, msg);
  Envelope e = sample("0MB3V9X7QF00S2");
  e.size = static_cast<int64_t>(msg.size());
  REQUIRE(q2.store(e, fd, e.size, err) == 0);
  close(fd);
  struct stat mb {
  }, eb{};
  REQUIRE(stat(q2.msg_path(e.id).c_str(), &mb) == 0);
  REQUIRE(stat(q2.env_path(e.id).c_str(), &eb) == 0);
  CHECK(((mb.st_ino == ma.st_ino && eb.st_ino == ea.st_ino) ||
         (mb.st_ino == ea.st_ino && eb.st_ino == ma.st_ino)));
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
  CHECK(slurp(q2.msg_path(e.id)) == msg);  // exactly the new content: no tail of the old one
  Envelope back;
  bool held = true;
  REQUIRE(q2.load(e.id, back, held, err) == 0);
  CHECK(back.sender == e.sender);
  CHECK(back.rcpts.size() == e.rcpts.size());
  CHECK((mb.st_mode & 0777) == 0600);
}

TEST_CASE("queue: a spare a crash left unemptied is emptied by its next user") {
  Queue qq;
  qq.t.write("queue/tmp/spare.1.7", std::string(5000, 'x'));  // renamed, never truncated
  std::string msg = "Subject: s\r\n\r\nb\r\n";
  std::string id = qq.store(sample("0MB3V9X7QF00S3"), msg);
  CHECK(slurp(qq.q.msg_path(id)) == msg);
  CHECK(files_in(qq.q.root() + "/tmp") == 0);
}

TEST_CASE("queue: retire takes the entry out at once and its message after discard_retired") {
  Queue qq;
  std::string a = qq.store(sample("0MB3V9X7QF00R1"), "Subject: a\r\n\r\na\r\n");
  std::string b = qq.store(sample("0MB3V9X7QF00R2"), "Subject: b\r\n\r\nb\r\n");
  std::string err;
  REQUIRE(qq.q.retire(a, err) == 0);
  // The entry is gone: no envelope, nothing to load or deliver, not listed by a scan ...
  CHECK_FALSE(fs::exists(qq.q.env_path(a)));
  Envelope e;
  bool held = false;
  CHECK(qq.q.load(a, e, held, err) == -ENOENT);
  ScanResult r = qq.q.scan(false);
  CHECK(r.waiting == 1);
  CHECK(r.orphan_messages == 1);
  // ... a second retire or a delete finds no entry ...
  CHECK(qq.q.retire(a, err) == -ENOENT);
  CHECK(qq.q.remove(a, err) == -ENOENT);
  // ... and its message waits for the batch (never an envelope without its message). The
  // envelope's file is not a spare yet: until the directory is synced its old name may come
  // back after a power loss, so no other entry may write into it.
  CHECK(fs::exists(qq.q.msg_path(a)));
  auto spares = [&] {
    size_t n = 0;
    for (const auto &de : fs::directory_iterator(qq.q.root() + "/tmp"))
      n += SpareFiles::is_spare(de.path().filename().string());
    return n;
  };
  CHECK(spares() == 0);
  CHECK(qq.q.retired_count() == 1);
  CHECK(qq.q.discard_retired() == 1);
  CHECK(qq.q.retired_count() == 0);
  CHECK_FALSE(fs::exists(qq.q.msg_path(a)));
  CHECK(spares() == 2);  // now both files are
  CHECK(qq.q.discard_retired() == 0);
  // The other entry is untouched.
  REQUIRE(qq.q.load(b, e, held, err) == 0);
  CHECK(e.id == b);
}

TEST_CASE("queue: a crash between retire and discard_retired leaves only an orphan message") {
  Queue qq;
  std::string a = qq.store(sample("0MB3V9X7QF00R3"), "Subject: a\r\n\r\na\r\n");
  std::string err;
  REQUIRE(qq.q.retire(a, err) == 0);
  // The process dies here: a restart's scan removes the message, moves nothing to corrupt/.
  QueueDir q2(qq.q.root());
  REQUIRE(q2.open(false, err));
  ScanResult r = q2.scan(true);
  CHECK(r.orphan_messages == 1);
  CHECK(r.lone_envelopes == 0);
  CHECK(r.waiting == 0);
  CHECK_FALSE(fs::exists(q2.msg_path(a)));
  CHECK(files_in(q2.root() + "/corrupt") == 0);
}

TEST_CASE("queue: discard_retired finishes many retired entries in one call") {
  Queue qq;
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    char id[32];
    snprintf(id, sizeof id, "0MB3V9X7QF%04d", i);
    ids.push_back(qq.store(sample(id), "Subject: x\r\n\r\nx\r\n"));
  }
  std::string err;
  for (const auto &id : ids) REQUIRE(qq.q.retire(id, err) == 0);
  CHECK(qq.q.retired_count() == ids.size());
  CHECK(qq.q.discard_retired() == ids.size());
  for (const auto &id : ids) CHECK_FALSE(fs::exists(qq.q.msg_path(id)));
  CHECK(qq.q.scan(false).orphan_messages == 0);
}
