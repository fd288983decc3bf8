// tests/unit/test_plugin_lines.cpp: unit tests for config/plugin_lines (conf/plugins parsing).
#include <doctest/doctest.h>

#include "tmp_dir.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/plugin_lines.hpp"

using uvs::config::parse_plugins_file;
using uvs::config::PluginLine;

namespace {

using PlugTmp = unit::TmpDir;

using Args = std::vector<std::string>;

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// Parses `content` as a single plugins file; returns the error ("" on success).
std::string parse_err(const std::string &content) {
  PlugTmp t;
  std::string p = t.write("plugins", content);
  std::vector<PluginLine> out;
  std::string err;
  bool ok = parse_plugins_file(p, out, err);
  if (ok) return "";
  CHECK(out.empty());
  CHECK(err.rfind(p + ":", 0) == 0);  // always starts with the file name
  return err.substr(p.size());        // ":<line>: <message>"
}

}  // namespace

TEST_CASE("plugin_lines: names, args, file and line") {
  PlugTmp t;
  std::string p = t.write("plugins",
                          "# sample\n"
                          "\n"
                          "hosts_allow\n"
                          "   earlytalker:0   wait 2\n"
                          "earlytalker:1 check-at DATA wait 1\n"
                          "queue/maildir /var/mail/%d\n");
  std::vector<PluginLine> out;
  std::string err;
  REQUIRE_MESSAGE(parse_plugins_file(p, out, err), err);
  REQUIRE(out.size() == 4);
  CHECK(out[0].instance == "hosts_allow");
  CHECK(out[0].module == "hosts_allow");
  CHECK(out[0].args.empty());
  CHECK(out[0].file == p);
  CHECK(out[0].line == 3);
  CHECK(out[1].instance == "earlytalker:0");
  CHECK(out[1].module == "earlytalker");
  CHECK(out[1].args == Args{"wait", "2"});
  CHECK(out[1].line == 4);
  CHECK(out[2].instance == "earlytalker:1");
  CHECK(out[2].module == "earlytalker");
  CHECK(out[2].args == Args{"check-at", "DATA", "wait", "1"});
  CHECK(out[2].line == 5);
  CHECK(out[3].instance == "queue/maildir");
  CHECK(out[3].module == "queue/maildir");
  CHECK(out[3].args == Args{"/var/mail/%d"});
  CHECK(out[3].line == 6);
}

TEST_CASE("plugin_lines: empty and comment-only files") {
  PlugTmp t;
  std::vector<PluginLine> out(1);
  std::string err;
  CHECK(parse_plugins_file(t.write("a", ""), out, err));
  CHECK(out.empty());
  CHECK(parse_plugins_file(t.write("b", "# only\n  # comments\n\n\t\n"), out, err));
  CHECK(out.empty());
}

TEST_CASE("plugin_lines: tabs split words, CRLF and trailing blanks are trimmed") {
  PlugTmp t;
  std::string p = t.write("plugins", "\tdnsbl\treject\tnaughty  reject_type disconnect \t\r\n");
  std::vector<PluginLine> out;
  std::string err;
  REQUIRE_MESSAGE(parse_plugins_file(p, out, err), err);
  REQUIRE(out.size() == 1);
  CHECK(out[0].instance == "dnsbl");
  CHECK(out[0].args == Args{"reject", "naughty", "reject_type", "disconnect"});
}

TEST_CASE("plugin_lines: inline # is an argument (qpsmtpd behaviour)") {
  PlugTmp t;
  std::string p = t.write("plugins", "helo policy strict # comment here\n");
  std::vector<PluginLine> out;
  std::string err;
  REQUIRE_MESSAGE(parse_plugins_file(p, out, err), err);
  REQUIRE(out.size() == 1);
  CHECK(out[0].args == Args{"policy", "strict", "#", "comment", "here"});
}

TEST_CASE("plugin_lines: valid module names") {
  PlugTmp t;
  std::string p =
      t.write("plugins", "a\nA-b_c.d\nx/y/z\nqueue/smtp-forward:12 host 25\nv1.2\nrelay:0\n");
  std::vector<PluginLine> out;
  std::string err;
  REQUIRE_MESSAGE(parse_plugins_file(p, out, err), err);
  REQUIRE(out.size() == 6);
  CHECK(out[2].module == "x/y/z");
  CHECK(out[3].instance == "queue/smtp-forward:12");
  CHECK(out[3].module == "queue/smtp-forward");
  CHECK(out[3].args == Args{"host", "25"});
  CHECK(out[4].module == "v1.2");
  CHECK(out[5].module == "relay");
}

TEST_CASE("plugin_lines: bad plugin names") {
  CHECK(parse_err("ok\n\nfoo!bar\n") == ":3: bad plugin name 'foo!bar'");
  CHECK(parse_err("../evil\n") == ":1: bad plugin name '../evil'");
  CHECK(parse_err("queue/../evil\n") == ":1: bad plugin name 'queue/../evil'");
  CHECK(parse_err("./x\n") == ":1: bad plugin name './x'");
  CHECK(parse_err("/abs\n") == ":1: bad plugin name '/abs'");
  CHECK(parse_err("a//b\n") == ":1: bad plugin name 'a//b'");
  CHECK(parse_err("trailing/\n") == ":1: bad plugin name 'trailing/'");
  CHECK(parse_err("My::Plugin\n") == ":1: bad plugin name 'My::Plugin'");
  CHECK(parse_err("relay:\n") == ":1: bad plugin name 'relay:'");
  CHECK(parse_err("relay:x\n") == ":1: bad plugin name 'relay:x'");
  CHECK(parse_err("relay:1:2\n") == ":1: bad plugin name 'relay:1:2'");
  CHECK(parse_err(":1\n") == ":1: bad plugin name ':1'");
  CHECK(parse_err("$other\n") == ":1: bad plugin name '$other'");
}

TEST_CASE("plugin_lines: control characters and non-ASCII bytes are errors with the line") {
  CHECK(parse_err("a\nb\x01 x\n") == ":2: control character 0x01 in line");
  CHECK(parse_err("a\nb\nc arg\rmore\n") == ":3: control character 0x0D in line");
  CHECK(parse_err(std::string("a\0b\n", 4)) == ":1: control character 0x00 in line");
  CHECK(parse_err("x \x7f\n") == ":1: control character 0x7F in line");
  CHECK(parse_err("x caf\xc3\xa9\n") == ":1: non-ASCII byte 0xC3 in line");
  // comments are not checked
  CHECK(parse_err("# caf\xc3\xa9 \x01\nx\n") == "");
}

TEST_CASE("plugin_lines: duplicate instance names") {
  PlugTmp t;
  std::string p = t.write("plugins", "relay\nfoo\nrelay x\n");
  std::vector<PluginLine> out;
  std::string err;
  CHECK_FALSE(parse_plugins_file(p, out, err));
  CHECK(err == p + ":3: duplicate plugin instance 'relay' (first at " + p + ":1)");
  // different :N instances of one module are fine
  CHECK(parse_err("relay:0\nrelay:1\nrelay\n") == "");
  CHECK(has(parse_err("relay:1\nrelay:1\n"), ":2: duplicate plugin instance 'relay:1'"));
}

TEST_CASE("plugin_lines: $include of a file, relative to the including file") {
  PlugTmp t;
  t.write("conf/queue", "# chosen queue\nqueue/maildir /tmp/m\n");
  t.write("conf/sub/more", "rcpt_ok\n");
  std::string p = t.write("conf/plugins", "hosts_allow\n$include queue\n$include sub/more\nlast\n");
  std::vector<PluginLine> out;
  std::string err;
  REQUIRE_MESSAGE(parse_plugins_file(p, out, err), err);
  REQUIRE(out.size() == 4);
  CHECK(out[0].instance == "hosts_allow");
  CHECK(out[1].instance == "queue/maildir");
  CHECK(out[1].file == t.dir + "/conf/queue");
  CHECK(out[1].line == 2);
  CHECK(out[2].instance == "rcpt_ok");
  CHECK(out[2].file == t.dir + "/conf/sub/more");
  CHECK(out[2].line == 1);
  CHECK(out[3].instance == "last");
  CHECK(out[3].file == p);
  CHECK(out[3].line == 4);
}

TEST_CASE("plugin_lines: $include of a directory: sorted, dot files skipped") {
  PlugTmp t;
  t.write("conf/plugins.d/20-second", "second\n");
  t.write("conf/plugins.d/10-first", "first a\n");
  t.write("conf/plugins.d/.swp", "hidden\n");
  t.write("conf/plugins.d/30-third", "# c\nthird\nfourth\n");
  std::filesystem::create_directories(t.dir + "/conf/plugins.d/25-dir");
  std::string p = t.write("conf/plugins", "zero\n$include plugins.d\nlast\n");
  std::vector<PluginLine> out;
  std::string err;
  REQUIRE_MESSAGE(parse_plugins_file(p, out, err), err);
  REQUIRE(out.size() == 6);
  CHECK(out[0].instance == "zero");
  CHECK(out[1].instance == "first");
  CHECK(out[1].args == Args{"a"});
  CHECK(out[1].file == t.dir + "/conf/plugins.d/10-first");
  CHECK(out[2].instance == "second");
  CHECK(out[3].instance == "third");
  CHECK(out[3].line == 2);
  CHECK(out[4].instance == "fourth");
  CHECK(out[5].instance == "last");
}

TEST_CASE("plugin_lines: include errors") {
  PlugTmp t;
  std::vector<PluginLine> out;
  std::string err;
  SUBCASE("missing included file") {
    std::string p = t.write("plugins", "a\n$include nope\n");
    CHECK_FALSE(parse_plugins_file(p, out, err));
    CHECK(err == p + ":2: cannot open '" + t.dir + "/nope': No such file or directory");
  }
  SUBCASE("self include") {
    std::string p = t.write("plugins", "$include plugins\n");
    CHECK_FALSE(parse_plugins_file(p, out, err));
    CHECK(err == p + ":1: include cycle through '" + p + "'");
  }
  SUBCASE("two-file cycle names the file and line that closes it") {
    std::string b = t.write("b", "x\n\n$include a\n");
    std::string a = t.write("a", "$include b\n");
    CHECK_FALSE(parse_plugins_file(a, out, err));
    CHECK(err == b + ":3: include cycle through '" + a + "'");
    CHECK(out.empty());
  }
  SUBCASE("directory containing the includer") {
    std::string p = t.write("d/plugins", "$include .\n");
    CHECK_FALSE(parse_plugins_file(p, out, err));
    CHECK(has(err, p + ":1: include cycle through "));
  }
  SUBCASE("$include without a path") {
    std::string p = t.write("plugins", "$include   \n");
    CHECK_FALSE(parse_plugins_file(p, out, err));
    CHECK(err == p + ":1: $include needs a path");
  }
  SUBCASE("error inside an included file names that file") {
    t.write("inc", "ok\nbad!name\n");
    std::string p = t.write("plugins", "$include inc\n");
    CHECK_FALSE(parse_plugins_file(p, out, err));
    CHECK(err == t.dir + "/inc:2: bad plugin name 'bad!name'");
  }
  SUBCASE("duplicate across an include") {
    t.write("inc", "relay\n");
    std::string p = t.write("plugins", "relay\n$include inc\n");
    CHECK_FALSE(parse_plugins_file(p, out, err));
    CHECK(err == t.dir + "/inc:1: duplicate plugin instance 'relay' (first at " + p + ":1)");
  }
}

TEST_CASE("plugin_lines: missing top-level file") {
  PlugTmp t;
  std::vector<PluginLine> out;
  std::string err;
  CHECK_FALSE(parse_plugins_file(t.dir + "/none", out, err));
  CHECK(err == t.dir + "/none: cannot open: No such file or directory");
}
