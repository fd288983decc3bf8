// tests/unit/test_flat_file.cpp: unit tests for config/flat_file (read_flat_file, read_flat_file_at).
#include <doctest/doctest.h>

#include "tmp_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/flat_file.hpp"

using uvs::config::FlatLine;
using uvs::config::read_flat_file;
using uvs::config::read_flat_file_at;

namespace {

using FlatTmp = unit::TmpDir;

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("flat_file: trims, drops blanks and comments") {
  FlatTmp t;
  std::string p = t.write("relayclients",
                          "# comment\n"
                          "\n"
                          "   \t \n"
                          "  192.0.2.1  \n"
                          "\t# indented comment\n"
                          "10.0.0.0/8\r\n"
                          "example.com # inline stays\n"
                          "last-without-newline");
  V lines{"stale"};
  int n = read_flat_file(p, lines);
  CHECK(n == 4);
  CHECK(lines ==
        V{"192.0.2.1", "10.0.0.0/8", "example.com # inline stays", "last-without-newline"});
}

TEST_CASE("flat_file: empty file and comment-only file give zero lines") {
  FlatTmp t;
  V lines{"stale"};
  CHECK(read_flat_file(t.write("empty", ""), lines) == 0);
  CHECK(lines.empty());
  CHECK(read_flat_file(t.write("comments", "# a\n#b\n\n"), lines) == 0);
  CHECK(lines.empty());
}

TEST_CASE("flat_file: missing file is -ENOENT") {
  FlatTmp t;
  V lines{"stale"};
  CHECK(read_flat_file(t.dir + "/nope", lines) == -ENOENT);
  CHECK(lines.empty());
}

TEST_CASE("flat_file: $include of a file, relative to the including file") {
  FlatTmp t;
  t.write("conf/extra", "b\nc\n");
  t.write("conf/sub/deeper", "d\n");
  t.write("conf/sub/mid", "$include deeper\n");
  std::string p = t.write("conf/main", "a\n$include extra\n$include   sub/mid  \ne\n");
  V lines;
  CHECK(read_flat_file(p, lines) == 5);
  CHECK(lines == V{"a", "b", "c", "d", "e"});
}

TEST_CASE("flat_file: $include absolute path") {
  FlatTmp t;
  std::string extra = t.write("x/extra", "x1\n");
  std::string p = t.write("main", "$include " + extra + "\n");
  V lines;
  CHECK(read_flat_file(p, lines) == 1);
  CHECK(lines == V{"x1"});
}

TEST_CASE("flat_file: $include of a directory: sorted, dot files and subdirs skipped") {
  FlatTmp t;
  t.write("d.d/20-b", "b\n");
  t.write("d.d/10-a", "a\n");
  t.write("d.d/.hidden", "hidden\n");
  t.write("d.d/30-c", "c1\nc2\n");
  t.mkdir("d.d/40-subdir");
  std::string p = t.write("main", "first\n$include d.d\nlast\n");
  V lines;
  CHECK(read_flat_file(p, lines) == 6);
  CHECK(lines == V{"first", "a", "b", "c1", "c2", "last"});
}

TEST_CASE("flat_file: include errors propagate") {
  FlatTmp t;
  V lines{"stale"};
  SUBCASE("missing include is -ENOENT") {
    std::string p = t.write("main", "a\n$include missing\n");
    CHECK(read_flat_file(p, lines) == -ENOENT);
    CHECK(lines.empty());
  }
  SUBCASE("self include is -ELOOP") {
    std::string p = t.write("main", "a\n$include main\n");
    CHECK(read_flat_file(p, lines) == -ELOOP);
    CHECK(lines.empty());
  }
  SUBCASE("two-file cycle is -ELOOP") {
    t.write("b", "$include a\n");
    std::string p = t.write("a", "x\n$include b\n");
    CHECK(read_flat_file(p, lines) == -ELOOP);
  }
  SUBCASE("directory containing the including file is a cycle") {
    std::string p = t.write("d/main", "$include .\n");
    CHECK(read_flat_file(p, lines) == -ELOOP);
  }
  SUBCASE("$include without a path is -EINVAL") {
    std::string p = t.write("main", "$include\n");
    CHECK(read_flat_file(p, lines) == -EINVAL);
  }
}

TEST_CASE("flat_file: the same file included twice (no cycle) is fine") {
  FlatTmp t;
  t.write("common", "c\n");
  std::string p = t.write("main", "$include common\n$include common\n");
  V lines;
  CHECK(read_flat_file(p, lines) == 2);
  CHECK(lines == V{"c", "c"});
}

TEST_CASE("flat_file: words that merely start with $include are values") {
  FlatTmp t;
  std::string p = t.write("main", "$includes\n");
  V lines;
  CHECK(read_flat_file(p, lines) == 1);
  CHECK(lines == V{"$includes"});
}

// -- read_flat_file_at: each value with its file and 1-based line number --

namespace {

// "file:line:text" for each line, with t.dir + "/" stripped from the file, for compact CHECKs.
V where(const FlatTmp &t, const std::vector<FlatLine> &lines) {
  V out;
  for (const FlatLine &l : lines) {
    std::string f = l.file;
    if (f.rfind(t.dir + "/", 0) == 0) f = f.substr(t.dir.size() + 1);
    out.push_back(f + ":" + std::to_string(l.line) + ":" + l.text);
  }
  return out;
}

}  // namespace

TEST_CASE("flat_file_at: line numbers count comments, blanks and CRLF lines") {
  FlatTmp t;
  std::string p = t.write("relayclients",
                          "# comment\n"
                          "\n"
                          "   \t \n"
                          "  192.0.2.1  \n"
                          "\t# indented comment\n"
                          "10.0.0.0/8\r\n"
                          "\r\n"
                          "last-without-newline");
  std::vector<FlatLine> lines{FlatLine{"stale", "x", 1}};
  CHECK(read_flat_file_at(p, lines) == 3);
  CHECK(where(t, lines) ==
        V{"relayclients:4:192.0.2.1", "relayclients:6:10.0.0.0/8",
          "relayclients:8:last-without-newline"});
  CHECK(lines[0].file == p);  // the path as given
}

TEST_CASE("flat_file_at: included lines name the included file and their own line") {
  FlatTmp t;
  t.write("conf/extra", "# extra\nb\n\nc\n");
  t.write("conf/sub/deeper", "\n\nd\n");
  t.write("conf/sub/mid", "# mid\n$include deeper\nm\n");
  std::string p = t.write("conf/main", "a\n$include extra\n$include   sub/mid  \ne\n");
  std::vector<FlatLine> lines;
  CHECK(read_flat_file_at(p, lines) == 6);
  CHECK(where(t, lines) == V{"conf/main:1:a", "conf/extra:2:b", "conf/extra:4:c",
                             "conf/sub/deeper:3:d", "conf/sub/mid:3:m", "conf/main:4:e"});
}

TEST_CASE("flat_file_at: directory includes name each file") {
  FlatTmp t;
  t.write("d.d/20-b", "# b\nb\n");
  t.write("d.d/10-a", "a\n");
  std::string p = t.write("main", "first\n$include d.d\nlast\n");
  std::vector<FlatLine> lines;
  CHECK(read_flat_file_at(p, lines) == 4);
  CHECK(where(t, lines) == V{"main:1:first", "d.d/10-a:1:a", "d.d/20-b:2:b", "main:3:last"});
}

TEST_CASE("flat_file_at: errors are those of read_flat_file, and leave nothing") {
  FlatTmp t;
  std::vector<FlatLine> lines{FlatLine{"stale", "x", 1}};
  CHECK(read_flat_file_at(t.dir + "/nope", lines) == -ENOENT);
  CHECK(lines.empty());
  lines.push_back(FlatLine{"stale", "x", 1});
  CHECK(read_flat_file_at(t.write("main", "a\n$include main\n"), lines) == -ELOOP);
  CHECK(lines.empty());
  CHECK(read_flat_file_at(t.write("inv", "a\n$include\n"), lines) == -EINVAL);
  CHECK(lines.empty());
}

TEST_CASE("flat_file: read_flat_file gives the texts of read_flat_file_at") {
  FlatTmp t;
  t.write("inc", "# x\ni1\ni2\n");
  std::string p = t.write("main", "\na\n$include inc\n  b  \n");
  std::vector<FlatLine> at;
  V lines;
  CHECK(read_flat_file_at(p, at) == 4);
  CHECK(read_flat_file(p, lines) == 4);
  V texts;
  for (const FlatLine &l : at) texts.push_back(l.text);
  CHECK(lines == texts);
  CHECK(lines == V{"a", "i1", "i2", "b"});
}
