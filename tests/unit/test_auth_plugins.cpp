// tests/unit/test_auth_plugins.cpp: the pure parts of the AUTH plugins, without the server:
// Dovecot's auth protocol lines (plugins/auth/dovecot/dc_proto.c) and the sender login map
// (plugins/sender_login/sl_map.c). Built as its own binary (auth_plugins_tests).
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "../../plugins/auth/dovecot/dc_proto.h"
#include "../../plugins/sender_login/sl_map.h"
}

namespace {

dc_line parse(const std::string &s, int *rc = nullptr) {
  dc_line l;
  int r = dc_parse(s.data(), s.size(), &l);
  if (rc) *rc = r;
  return l;
}

std::string b64(const std::string &s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  size_t n = dc_base64(reinterpret_cast<const unsigned char *>(s.data()), s.size(), out.data());
  out.resize(n);
  return out;
}

std::string auth_line(const dc_auth &a) {
  size_t len = 0;
  char *p = dc_auth_line(&a, &len);
  if (!p) return "errno " + std::to_string(errno);
  std::string s(p, len);
  free(p);
  return s;
}

}  // namespace

TEST_CASE("dovecot: base64 as RFC 4648 section 10 has it") {
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foob") == "Zm9vYg==");
  CHECK(b64("fooba") == "Zm9vYmE=");
  CHECK(b64("foobar") == "Zm9vYmFy");
  CHECK(b64(std::string("\0alice\0pw", 9)) == "AGFsaWNlAHB3");
}

TEST_CASE("dovecot: the handshake lines") {
  dc_line l = parse("VERSION\t1\t2");
  CHECK(l.kind == DC_VERSION);
  CHECK(l.major == 1);
  CHECK(l.minor == 2);
  int rc = 0;
  parse("VERSION\tx\t2", &rc);
  CHECK(rc == -1);
  parse("VERSION\t1", &rc);
  CHECK(rc == -1);
  l = parse("MECH\tPLAIN\tplaintext");
  CHECK(l.kind == DC_MECH);
  CHECK(std::string(l.mech) == "PLAIN");
  CHECK(parse("DONE").kind == DC_DONE);
  CHECK(parse("DONE\r").kind == DC_DONE);
  CHECK(parse("SPID\t6166").kind == DC_OTHER);
  CHECK(parse("COOKIE\t3e6e7602b42551caead74878b71194b7").kind == DC_OTHER);
  CHECK(parse("").kind == DC_OTHER);
}

TEST_CASE("dovecot: answers OK, FAIL (temp or not), CONT") {
  dc_line l = parse("OK\t7\tuser=alice");
  CHECK(l.kind == DC_OK);
  CHECK(l.id == 7);
  CHECK(std::string(l.user) == "alice");
  l = parse("FAIL\t2\tuser=alice");
  CHECK(l.kind == DC_FAIL);
  CHECK(l.id == 2);
  CHECK(l.temp == 0);
  l = parse("FAIL\t3\tuser=bob\ttemp\treason=Internal error");
  CHECK(l.kind == DC_FAIL);
  CHECK(l.temp == 1);
  CHECK(std::string(l.reason) == "Internal error");
  CHECK(parse("FAIL\t4\tcode=temp_fail").temp == 1);
  CHECK(parse("FAIL\t4\tcode=authz_fail").temp == 0);
  CHECK(parse("FAIL\t4\ttemporary").temp == 0);  // only the exact flag
  l = parse("CONT\t5\tVXNlcm5hbWU6");
  CHECK(l.kind == DC_CONT);
  CHECK(l.id == 5);
  int rc = 0;
  parse("OK\tabc", &rc);
  CHECK(rc == -1);
  parse("FAIL", &rc);
  CHECK(rc == -1);
  parse("OK\t99999999999", &rc);
  CHECK(rc == -1);
}

TEST_CASE("dovecot: escaped and control characters in fields are made safe for logs") {
  dc_line l = parse("FAIL\t1\treason=a\001tb\001nc\001\001d\x1b");
  CHECK(std::string(l.reason) == "a?b?c?d?");
  l = parse("FAIL\t1\tuser=" + std::string(400, 'u'));
  CHECK(std::strlen(l.user) == sizeof l.user - 1);
}

TEST_CASE("dovecot: the AUTH line") {
  dc_auth a{};
  a.id = 3;
  a.user = "alice";
  a.password = "pw";
  a.service = "smtp";
  a.lip = "127.0.0.1";
  a.rip = "192.0.2.1";
  a.lport = 587;
  a.rport = 40000;
  a.secured = 1;
  a.session = "e1ef69f03b41";
  CHECK(auth_line(a) ==
        "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tno-penalty\tlip=127.0.0.1\trip=192.0.2.1\tlport="
        "587\trport=40000"
        "\tsecured\tsession=e1ef69f03b41\tresp=" +
            b64(std::string("\0alice\0pw", 9)) + "\n");
  // no TLS: no `secured`; authzid first; empty and unsafe optional values left out
  a.secured = 0;
  a.authzid = "admin";
  a.lip = "";
  a.rip = "bad\tvalue";
  a.lport = a.rport = 0;
  a.session = nullptr;
  CHECK(auth_line(a) == "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tno-penalty\tresp=" +
                            b64(std::string("admin\0alice\0pw", 14)) + "\n");
  // the password never appears in clear
  a.password = "s3cret-Passw0rd";
  CHECK(auth_line(a).find("s3cret") == std::string::npos);
  // too long for one protocol line
  std::string big(DC_MAX_LINE, 'p');
  a.password = big.c_str();
  CHECK(auth_line(a) == "errno " + std::to_string(E2BIG));
  a.password = nullptr;
  CHECK(auth_line(a) == "errno " + std::to_string(EINVAL));
}

namespace {

struct Map {
  sl_map m{};
  ~Map() { sl_map_free(&m); }
  std::string add(const char *line, int lineno = 1, const char *file = "conf/sender_logins") {
    char err[300] = "";
    return sl_map_add(&m, line, file, lineno, err, sizeof err) == 0 ? "" : err;
  }
  std::string finish() {
    char err[600] = "";
    return sl_map_finish(&m, err, sizeof err) == 0 ? "" : err;
  }
  // the key of the entry addr finds, "" if none; "+" appended when user is listed in it
  std::string find(const char *addr, const char *user = "") {
    const sl_entry *e = sl_map_find(&m, addr);
    if (!e) return "";
    return std::string(e->key) + (sl_entry_has(e, user) ? "+" : "");
  }
};

}  // namespace

TEST_CASE("sender_login: map lines and lookups (address first, then @domain)") {
  Map m;
  CHECK(m.add("alice@example.org  alice", 1) == "");
  CHECK(m.add("Sales@Example.org alice, bob,carol", 2) == "");
  CHECK(m.add("@example.org\tadmin", 3) == "");
  CHECK(m.add("@example.net  Dave dave2", 4) == "");
  CHECK(m.finish() == "");
  CHECK(m.m.n == 4);
  CHECK(m.find("alice@example.org", "alice") == "alice@example.org+");
  CHECK(m.find("ALICE@EXAMPLE.ORG", "ALICE") == "alice@example.org+");  // no case anywhere
  CHECK(m.find("alice@example.org", "admin") == "alice@example.org");   // exact entry wins
  CHECK(m.find("sales@example.org", "carol") == "sales@example.org+");
  CHECK(m.find("other@example.org", "admin") == "@example.org+");
  CHECK(m.find("other@example.org", "alice") == "@example.org");
  CHECK(m.find("x@example.net", "dave") == "@example.net+");
  CHECK(m.find("x@example.net", "dave2") == "@example.net+");
  CHECK(m.find("x@sub.example.net", "dave") == "");  // @domain is that domain only
  CHECK(m.find("x@example.com", "alice") == "");
  CHECK(m.find("") == "");
  CHECK(m.find("postmaster") == "");
}

TEST_CASE("sender_login: bad lines say why") {
  Map m;
  CHECK(m.add("alice@example.org") == "no login names after 'alice@example.org'");
  CHECK(m.add("alice@example.org  ,  ") == "no login names after 'alice@example.org'");
  CHECK(m.add("alice  alice") == "'alice' is not an address (local@domain) or @domain");
  CHECK(m.add("alice@  alice") == "'alice@' is not an address (local@domain) or @domain");
  CHECK(m.add("<a@example.org>  alice") ==
        "'<a@example.org>' is not an address (local@domain) or @domain");
  CHECK(m.add("a@example.org alice # the owner") == "a '#' comment must start its own line");
  CHECK(m.m.n == 0);
}

TEST_CASE("sender_login: a key listed twice names both places") {
  Map m;
  CHECK(m.add("a@example.org alice", 2) == "");
  CHECK(m.add("b@example.org bob", 3) == "");
  CHECK(m.add("A@example.org bob", 7) == "");
  CHECK(m.finish() ==
        "conf/sender_logins:7: 'a@example.org' is listed twice (first at conf/sender_logins:2)");
}
