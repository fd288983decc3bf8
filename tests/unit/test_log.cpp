// tests/unit/test_log.cpp: unit tests for log/: the [log] settings, the syslog facility and
// level maps, JSON escaping (every line parses), the file sink and its reopen, the session
// counters and the accepted-message / session-end lines.
#include <doctest/doctest.h>

#include "tmp_dir.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "json_check.hpp"
#include "log/events.hpp"
#include "log/log.hpp"
#include "log/sink.hpp"

namespace fs = std::filesystem;
using uvs::config::Settings;

namespace {

using TmpDir = unit::TmpDir;

std::string read_file(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string &text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// "" on success, else the error after the file name (":<line>: <message>").
std::string load_err(const std::string &toml, Settings *out = nullptr) {
  TmpDir t;
  std::string p = t.dir + "/uvsmtpd.toml";
  std::ofstream(p) << toml;
  Settings s;
  std::string err;
  bool ok = uvs::config::load_settings(p, s, err, false);
  if (out) *out = s;
  if (ok) return "";
  CHECK_MESSAGE(err.rfind(p + ":", 0) == 0, err);
  return err.substr(p.size());
}

// Sends the logger to a file in a temp dir for one test, then back to stderr.
struct FileLog {
  TmpDir tmp;
  std::string path;
  explicit FileLog(bool json) : path(tmp.dir + "/log") {
    std::string err;
    REQUIRE_MESSAGE(uvs::log::open_sink(uvs::log::Destination::file, path, 0, err), err);
    uvs::log::set_json(json);
    uvs::log::set_level(uvs::log::info);
  }
  ~FileLog() {
    std::string err;
    uvs::log::open_sink(uvs::log::Destination::standard_error, "", 0, err);
    uvs::log::set_json(false);
  }
  std::string text() const { return read_file(path); }
};

}  // namespace

// ---- [log] settings ---------------------------------------------------------------------

TEST_CASE("log settings: defaults are stderr, no file, facility mail") {
  Settings s;
  CHECK(load_err("", &s) == "");
  CHECK(s.log_destination == "stderr");
  CHECK(s.log_file == "");
  CHECK(s.log_syslog_facility == "mail");
}

TEST_CASE("log settings: destination, file and syslog_facility are read") {
  Settings s;
  CHECK(load_err("[log]\ndestination = \"file\"\nfile = \"/var/log/uvsmtpd.log\"\n", &s) == "");
  CHECK(s.log_destination == "file");
  CHECK(s.log_file == "/var/log/uvsmtpd.log");
  CHECK(load_err("[log]\ndestination = \"syslog\"\nsyslog_facility = \"local3\"\n", &s) == "");
  CHECK(s.log_destination == "syslog");
  CHECK(s.log_syslog_facility == "local3");
  for (const auto &name : uvs::log::syslog_facility_names())
    CHECK(load_err("[log]\nsyslog_facility = \"" + name + "\"\n") == "");
}

TEST_CASE("log settings: bad values name the file and line") {
  CHECK(load_err("[log]\nlevel = \"info\"\ndestination = \"stdout\"\n") ==
        ":3: 'log.destination' must be one of stderr, file, syslog (got 'stdout')");
  CHECK(load_err("[log]\n\nsyslog_facility = \"kern\"\n")
            .rfind(":3: 'log.syslog_facility' must be one of auth, authpriv, cron, daemon, ", 0) ==
        0);
  CHECK(load_err("[log]\nfile = \"\"\n") == ":2: 'log.file' must not be empty");
  CHECK(load_err("[log]\nfile = 7\n") == ":2: 'log.file' must be a string");
  CHECK(load_err("[log]\ndestinaton = \"file\"\n") == ":2: unknown key 'log.destinaton'");
}

TEST_CASE("log settings: destination file without a file names the destination's line") {
  CHECK(load_err("hostname = \"a\"\n[log]\nlevel = \"info\"\ndestination = \"file\"\n") ==
        ":4: 'log.destination' is \"file\" but 'log.file' is not set");
  // Order does not matter; a file with another destination is allowed (unused).
  CHECK(load_err("[log]\nfile = \"x.log\"\ndestination = \"file\"\n") == "");
  CHECK(load_err("[log]\nfile = \"x.log\"\n") == "");
}

TEST_CASE("log settings: the shipped conf/uvsmtpd.toml has the [log] defaults") {
  std::string found = unit::shipped_toml();
  if (found.empty()) return;
  Settings s, d;
  std::string err;
  REQUIRE_MESSAGE(uvs::config::load_settings(found, s, err, false), err);
  CHECK(s.log_destination == d.log_destination);
  CHECK(s.log_file == d.log_file);
  CHECK(s.log_syslog_facility == d.log_syslog_facility);
  std::string text = read_file(found);
  CHECK(text.find("destination = \"stderr\"") != std::string::npos);
  CHECK(text.find("syslog_facility = \"mail\"") != std::string::npos);
}

// ---- syslog maps ------------------------------------------------------------------------

TEST_CASE("log syslog: facility names map to the LOG_* values") {
  int f = -1;
  CHECK((uvs::log::syslog_facility("mail", f) && f == LOG_MAIL));
  CHECK((uvs::log::syslog_facility("daemon", f) && f == LOG_DAEMON));
  CHECK((uvs::log::syslog_facility("user", f) && f == LOG_USER));
  CHECK((uvs::log::syslog_facility("auth", f) && f == LOG_AUTH));
  CHECK((uvs::log::syslog_facility("authpriv", f) && f == LOG_AUTHPRIV));
  CHECK((uvs::log::syslog_facility("local0", f) && f == LOG_LOCAL0));
  CHECK((uvs::log::syslog_facility("local7", f) && f == LOG_LOCAL7));
  f = -1;
  CHECK_FALSE(uvs::log::syslog_facility("kern", f));  // user processes cannot use it
  CHECK_FALSE(uvs::log::syslog_facility("MAIL", f));
  CHECK_FALSE(uvs::log::syslog_facility("local8", f));
  CHECK_FALSE(uvs::log::syslog_facility("", f));
  CHECK(f == -1);
  CHECK(uvs::log::syslog_facility_names().size() == 19);
}

TEST_CASE("log syslog: levels map to the syslog priorities, clamped") {
  CHECK(uvs::log::syslog_priority(uvs::log::emerg) == LOG_EMERG);
  CHECK(uvs::log::syslog_priority(uvs::log::alert) == LOG_ALERT);
  CHECK(uvs::log::syslog_priority(uvs::log::crit) == LOG_CRIT);
  CHECK(uvs::log::syslog_priority(uvs::log::err) == LOG_ERR);
  CHECK(uvs::log::syslog_priority(uvs::log::warning) == LOG_WARNING);
  CHECK(uvs::log::syslog_priority(uvs::log::notice) == LOG_NOTICE);
  CHECK(uvs::log::syslog_priority(uvs::log::info) == LOG_INFO);
  CHECK(uvs::log::syslog_priority(uvs::log::debug) == LOG_DEBUG);
  CHECK(uvs::log::syslog_priority(-3) == LOG_EMERG);
  CHECK(uvs::log::syslog_priority(99) == LOG_DEBUG);
}

TEST_CASE("log: destination names") {
  uvs::log::Destination d;
  CHECK((uvs::log::parse_destination("stderr", d) && d == uvs::log::Destination::standard_error));
  CHECK((uvs::log::parse_destination("file", d) && d == uvs::log::Destination::file));
  CHECK((uvs::log::parse_destination("syslog", d) && d == uvs::log::Destination::syslog));
  CHECK_FALSE(uvs::log::parse_destination("stdout", d));
}

// ---- JSON -------------------------------------------------------------------------------

TEST_CASE("log json: the reader used by these tests is strict") {
  CHECK(jsoncheck::parse("{\"a\":[1,-2.5e3,true,null,\"x\\u00e9\\ud83d\\ude00\"]}"));
  CHECK_FALSE(jsoncheck::parse("{\"a\":\"\x01\"}"));     // raw control byte
  CHECK_FALSE(jsoncheck::parse("{\"a\":\"\xff\"}"));     // not UTF-8
  CHECK_FALSE(jsoncheck::parse("{\"a\":\"\\x41\"}"));    // no such escape
  CHECK_FALSE(jsoncheck::parse("{\"a\":\"\\ud83d\"}"));  // lone surrogate
  CHECK_FALSE(jsoncheck::parse("{\"a\":1,}"));
  CHECK_FALSE(jsoncheck::parse("{\"a\":01}"));
  CHECK_FALSE(jsoncheck::parse("{\"a\":1} x"));
}

TEST_CASE("log json: escaping keeps every string parseable and round-trips valid text") {
  const std::string cases[] = {
      "plain",
      "quote\" backslash\\ slash/",
      std::string("nul\0byte", 8),
      "\x01\x02\x1f\x7f tab\t cr\r lf\n",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",  // valid UTF-8 stays as it is
  };
  for (const auto &c : cases) {
    auto v = jsoncheck::parse(uvs::log::json_string(c));
    REQUIRE_MESSAGE(v, uvs::log::json_string(c));
    CHECK(v->s == c);
  }
  // Bytes that are not UTF-8 (lone continuation, overlong, surrogate, truncated sequence,
  // beyond U+10FFFF) read as \xNN once decoded.
  const std::pair<std::string, std::string> bad[] = {
      {"a\x80z", "a\\x80z"},
      {"\xc0\xaf", "\\xc0\\xaf"},
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},
      {"x\xe2\x82", "x\\xe2\\x82"},
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},
      {"\xff\"", "\\xff\""},
  };
  for (const auto &[in, want] : bad) {
    auto v = jsoncheck::parse(uvs::log::json_string(in));
    REQUIRE_MESSAGE(v, uvs::log::json_string(in));
    CHECK(v->s == want);
  }
  CHECK(uvs::log::json_strings(std::vector<std::string>{"a\"", "b"}) == "[\"a\\\"\",\"b\"]");
  CHECK(uvs::log::json_strings(std::vector<std::string>{}) == "[]");
}

// ---- the file sink ----------------------------------------------------------------------

TEST_CASE("log file: lines are appended; reopen switches to a new file at the same path") {
  FileLog f(false);
  std::ofstream(f.path, std::ios::app) << "existing line\n";
  uvs::log::write(uvs::log::info, "sess1", "", "first");
  uvs::log::write(uvs::log::debug, "sess1", "", "not at this level");
  auto l = lines_of(f.text());
  REQUIRE(l.size() == 2);
  CHECK(l[0] == "existing line");
  CHECK(l[1].find(" info [sess1] first") != std::string::npos);
  fs::rename(f.path, f.path + ".1");
  uvs::log::write(uvs::log::info, "", "", "second");  // still the renamed file
  std::string err;
  REQUIRE_MESSAGE(uvs::log::reopen_sink(err), err);
  uvs::log::write(uvs::log::info, "", "", "third");
  CHECK(lines_of(read_file(f.path + ".1")).size() == 3);
  auto now = lines_of(f.text());
  REQUIRE(now.size() == 1);
  CHECK(now[0].find("third") != std::string::npos);
  CHECK((fs::status(f.path).permissions() & fs::perms::others_all) == fs::perms::none);
}

TEST_CASE("log file: an unopenable path is an error and the old destination stays") {
  FileLog f(false);
  std::string err;
  CHECK_FALSE(
      uvs::log::open_sink(uvs::log::Destination::file, f.tmp.dir + "/no/such/dir/log", 0, err));
  CHECK(err.find("cannot open log file " + f.tmp.dir + "/no/such/dir/log: No such file") == 0);
  uvs::log::write(uvs::log::info, "", "", "still here");
  CHECK(f.text().find("still here") != std::string::npos);
  // reopen: the path's directory is gone: the old file stays in use.
  fs::rename(f.path, f.tmp.dir + "/moved");
  fs::remove_all(f.tmp.dir + "/no");
  fs::create_directory(f.path);  // a directory now sits at the path
  CHECK_FALSE(uvs::log::reopen_sink(err));
  uvs::log::write(uvs::log::info, "", "", "after failed reopen");
  CHECK(read_file(f.tmp.dir + "/moved").find("after failed reopen") != std::string::npos);
}

TEST_CASE("log text: control bytes in a message cannot start a new line") {
  FileLog f(false);
  uvs::log::write(uvs::log::info, "s", "plug\nin", "a\nfake line\r\x1b[1m");
  auto l = lines_of(f.text());
  REQUIRE(l.size() == 1);
  CHECK(l[0].find("plug\\x0ain: a\\x0afake line\\x0d\\x1b[1m") != std::string::npos);
}

TEST_CASE("log json: every line parses, fields follow msg") {
  FileLog f(true);
  std::string nasty = std::string("q\"b\\c\x01\x7f\xff\n\xc3\xa9", 11);
  uvs::log::write(uvs::log::info, nasty, nasty, nasty);
  uvs::log::Field fields[] = {{"queue_id", uvs::log::json_string(nasty)},
                              {"size", uvs::log::json_number(-12)}};
  uvs::log::write(uvs::log::warning, "", "", "m", fields);
  uvs::log::format(uvs::log::err, "", "", "%s", nasty.c_str());
  auto l = lines_of(f.text());
  REQUIRE(l.size() == 3);
  for (const auto &line : l) {
    auto v = jsoncheck::parse(line);
    REQUIRE_MESSAGE(v, line);
    CHECK_FALSE(v->duplicate_key);
    CHECK(v->has("ts"));
    CHECK(v->has("level"));
    CHECK(v->has("msg"));
  }
  auto a = jsoncheck::parse(l[0]);
  CHECK(a->str("session") == "q\"b\\c\x01\x7f\\xff\n\xc3\xa9");
  CHECK(a->str("source") == a->str("session"));
  CHECK(a->str("msg") == a->str("session"));
  CHECK(a->str("level") == "info");
  auto b = jsoncheck::parse(l[1]);
  CHECK(b->str("queue_id") == a->str("session"));
  CHECK(b->num("size") == -12);
  CHECK(b->str("level") == "warning");
  CHECK_FALSE(b->has("session"));
}

// ---- counters and event lines -----------------------------------------------------------

TEST_CASE("log events: command counts settle on the reply; 354 waits for the next reply") {
  uvs::log::SessionCounters c;
  c.command("ehlo");
  c.reply(250);
  c.command("mail");
  c.reply(250);
  c.command("rcpt");
  c.reply(550);
  c.command("rcpt");
  c.reply(250);
  c.command("data");
  c.reply(354);
  c.reply(250);
  c.message_accepted();
  c.command("frobnicate");
  c.reply(500);
  c.command("quit");
  c.reply(221);
  c.reply(421);  // no command pending: ignored
  uvs::log::SessionEnd e{"192.0.2.7", "", &c, 1.5, uvs::log::EndReason::quit, "", "", ""};
  CHECK(uvs::log::session_end_text(e) ==
        "disconnect from unknown[192.0.2.7] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 unknown=0/1 "
        "commands=5/7 messages=1 duration=1.500s end=quit");

  uvs::log::SessionCounters d;
  d.command("data");
  d.reply(354);
  d.reply(554);  // the message was refused: DATA failed
  d.command("helo");
  uvs::log::SessionEnd e2{
      "2001:db8::1", "mx.example.org",        &d, 0, uvs::log::EndReason::plugin, "earlytalker",
      "TLSv1.3",     "TLS_AES_256_GCM_SHA384"};
  CHECK(uvs::log::session_end_text(e2) ==
        "disconnect from mx.example.org[2001:db8::1] helo=0/1 data=0/1 commands=0/2 messages=0 "
        "duration=0.000s tls=TLSv1.3/TLS_AES_256_GCM_SHA384 end=plugin:earlytalker");
  // Nothing recorded reads "lost"; the plugin is named only when a plugin ended it.
  uvs::log::SessionEnd e3{"192.0.2.7", "", &d, 0, uvs::log::EndReason::unknown, "x", "", ""};
  CHECK(uvs::log::session_end_text(e3).ends_with(" end=lost"));

  // JSON fields
  std::string obj = "{";
  for (const auto &f : uvs::log::session_end_fields(e))
    obj += (obj.size() > 1 ? ",\"" : "\"") + std::string(f.key) + "\":" + f.json;
  obj += "}";
  auto v = jsoncheck::parse(obj);
  REQUIRE_MESSAGE(v, obj);
  CHECK(v->str("event") == "disconnect");
  CHECK(v->str("client_ip") == "192.0.2.7");
  CHECK(v->get("client_host")->type == jsoncheck::Value::null);
  CHECK(v->num("commands_ok") == 5);
  CHECK(v->num("commands_total") == 7);
  CHECK(v->num("messages") == 1);
  CHECK(v->num("duration") == 1.5);
  const auto *cmds = v->get("commands");
  REQUIRE(cmds);
  CHECK(cmds->o.size() == 6);
  CHECK(cmds->get("rcpt")->num("ok") == 1);
  CHECK(cmds->get("rcpt")->num("total") == 2);
  CHECK(cmds->get("unknown")->num("total") == 1);
  CHECK(v->get("tls")->type == jsoncheck::Value::null);
  CHECK(v->str("end") == "quit");
  CHECK(v->get("end_plugin")->type == jsoncheck::Value::null);

  obj = "{";
  for (const auto &f : uvs::log::session_end_fields(e2))
    obj += (obj.size() > 1 ? ",\"" : "\"") + std::string(f.key) + "\":" + f.json;
  obj += "}";
  auto v2 = jsoncheck::parse(obj);
  REQUIRE_MESSAGE(v2, obj);
  REQUIRE(v2->get("tls"));
  CHECK(v2->get("tls")->str("protocol") == "TLSv1.3");
  CHECK(v2->get("tls")->str("cipher") == "TLS_AES_256_GCM_SHA384");
  CHECK(v2->str("end") == "plugin");
  CHECK(v2->str("end_plugin") == "earlytalker");
}

TEST_CASE("log events: the accepted line lists a bounded number of recipients") {
  std::vector<std::string> rcpts;
  for (int i = 0; i < 25; ++i) rcpts.push_back("r" + std::to_string(i) + "@example.org");
  std::string mid = "  <id.1@example.org>\t";
  uvs::log::AcceptedMessage m;
  m.queue_id = "QID1";
  m.message_id = &mid;
  m.size = 1234;
  m.from = "a\"b@example.org";
  m.rcpts = rcpts;
  m.plugin = "queue/maildir";
  m.reply = "250 2.0.0 Queued as QID1";
  m.client_ip = "192.0.2.7";
  std::string t = uvs::log::accepted_text(m);
  CHECK(t.rfind("QID1: accepted message-id=<id.1@example.org> size=1234 from=<a\"b@example.org> "
                "nrcpt=25 rcpt=<r0@example.org>,<r1@example.org>,",
                0) == 0);
  CHECK(t.find("<r19@example.org>,...(5 more) client=unknown[192.0.2.7] queue=queue/maildir: "
               "250 2.0.0 Queued as QID1") != std::string::npos);
  CHECK(t.find("r20@") == std::string::npos);

  std::string obj = "{";
  for (const auto &f : uvs::log::accepted_fields(m))
    obj += (obj.size() > 1 ? ",\"" : "\"") + std::string(f.key) + "\":" + f.json;
  obj += "}";
  auto v = jsoncheck::parse(obj);
  REQUIRE_MESSAGE(v, obj);
  CHECK(v->str("event") == "accepted");
  CHECK(v->str("queue_id") == "QID1");
  CHECK(v->str("message_id") == "<id.1@example.org>");
  CHECK(v->num("size") == 1234);
  CHECK(v->str("from") == "a\"b@example.org");
  CHECK(v->num("nrcpt") == 25);
  REQUIRE(v->get("rcpts")->a.size() == 20);
  CHECK(v->get("rcpts")->a[19].s == "r19@example.org");
  CHECK(v->str("plugin") == "queue/maildir");
  CHECK(v->str("reply") == "250 2.0.0 Queued as QID1");
  CHECK(v->str("client_ip") == "192.0.2.7");

  // Long addresses: the byte budget ends the list early. No Message-ID: none / null.
  std::vector<std::string> longs(5, std::string(300, 'x') + "@example.org");
  m.rcpts = longs;
  m.message_id = nullptr;
  t = uvs::log::accepted_text(m);
  CHECK(t.find("message-id=none ") != std::string::npos);
  CHECK(t.find(",...(1 more)") != std::string::npos);
  auto fields = uvs::log::accepted_fields(m);
  for (const auto &f : fields)
    if (f.key == "message_id") CHECK(f.json == "null");
}
