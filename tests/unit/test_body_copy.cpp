// tests/unit/test_body_copy.cpp: BodyCopy (spool/body_copy.hpp), the replacement body of ABI 1.3
// body_replace_fd: the cheap checks on the loop (open_source: what fstat tells), reads from the
// source before the copy, and the copy with its line checks (load) that the thread pool runs.
#include <doctest/doctest.h>

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "spool/body_copy.hpp"
#include "tmp_dir.hpp"

using uvs::BodyCopy;

namespace {
int memfd_with(const std::string &text) {
  int fd = memfd_create("body_copy_test", MFD_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  return fd;
}
std::string read_all(const BodyCopy &b) {
  std::string out(static_cast<size_t>(b.size()) + 16, '\0');
  int64_t n = b.read(0, out.data(), out.size());
  REQUIRE(n >= 0);
  out.resize(static_cast<size_t>(n));
  return out;
}
}  // namespace

TEST_CASE("body_copy: open_source refuses what fstat tells is unusable, at once") {
  unit::TmpDir tmp;
  BodyCopy b;
  CHECK(b.open_source(-1, 0) == -EINVAL);
  CHECK(b.open_source(999999, 0) == -EINVAL);  // not open
  int dir = open(tmp.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(b.open_source(dir, 0) == -EINVAL);
  close(dir);
  int p[2];
  REQUIRE(pipe(p) == 0);
  CHECK(b.open_source(p[0], 0) == -EINVAL);  // a pipe: no size, could hold a pool thread
  close(p[0]);
  close(p[1]);
  std::string path = tmp.write("body", "a\r\nb\r\n");
  int wr = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  CHECK(b.open_source(wr, 0) == -EINVAL);
  close(wr);
  int rd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CHECK(b.open_source(rd, 5) == -EFBIG);  // 6 bytes already
  CHECK(!b.is_source());
  CHECK(b.open_source(rd, 6) == 0);
  close(rd);  // the copy keeps its own duplicate
  CHECK(b.is_source());
  CHECK(b.size() == 6);
  CHECK(read_all(b) == "a\r\nb\r\n");
}

TEST_CASE("body_copy: load copies the source and checks its lines") {
  unit::TmpDir tmp;
  int fd = memfd_with("one\r\ntwo\r\n");
  BodyCopy src;
  REQUIRE(src.open_source(fd, 0) == 0);
  close(fd);
  BodyCopy copy;
  CHECK(copy.load(src.source_fd(), tmp.dir, 0) == 0);
  CHECK(!copy.is_source());
  CHECK(read_all(copy) == "one\r\ntwo\r\n");
  for (const char *bad : {"bare\nLF\r\n", "bare\rCR\r\n", "no final CRLF"}) {
    CAPTURE(bad);
    int b = memfd_with(bad);
    BodyCopy c;
    CHECK(c.load(b, tmp.dir, 0) == -EINVAL);
    close(b);
  }
  int big = memfd_with(std::string(300 * 1024, 'x') + "\r\n");  // spills to a file in spool_dir
  BodyCopy c;
  CHECK(c.load(big, tmp.dir, 100 * 1024) == -EFBIG);
  BodyCopy d;
  CHECK(d.load(big, tmp.dir, 0) == 0);
  CHECK(d.size() == 300 * 1024 + 2);
  close(big);
}
