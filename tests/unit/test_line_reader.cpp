// tests/unit/test_line_reader.cpp: unit tests for smtp/line_reader (framing, bare CR/LF, limits).
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/line_reader.hpp"

using namespace std::string_literals;
using uvs::smtp::LineEvent;
using uvs::smtp::LineReader;
using uvs::smtp::NewlinePolicy;

namespace {

struct Ev {
  LineEvent::Type type;
  std::string line;
  size_t end;  // absolute stream offset just after the event's consumed bytes
  bool operator==(const Ev &o) const { return type == o.type && line == o.line && end == o.end; }
};

std::string show(const std::vector<Ev> &evs) {
  static const char *names[] = {"need_more", "line", "too_long", "bare_cr", "bare_lf"};
  std::string s;
  for (const auto &e : evs) {
    s += names[e.type];
    s += "(";
    for (char c : e.line) s += c == '\r' ? "\\r"s : std::string(1, c);
    s += ")@" + std::to_string(e.end) + " ";
  }
  return s;
}

// Drives a LineReader the way the session does: append each chunk to a buffer, call next() until
// need_more, drop ev.consumed each time. Stops after a bare CR/LF error (the session closes).
std::vector<Ev> run(LineReader &r, const std::vector<std::string_view> &chunks) {
  std::string buf;
  size_t base = 0;
  std::vector<Ev> evs;
  for (std::string_view chunk : chunks) {
    buf.append(chunk);
    for (;;) {
      LineEvent ev = r.next(buf);
      if (ev.consumed > buf.size()) FAIL("consumed more than the input");
      buf.erase(0, ev.consumed);
      base += ev.consumed;
      if (ev.type == LineEvent::need_more) {
        // Without new input there is no further progress.
        LineEvent again = r.next(buf);
        if (again.type != LineEvent::need_more || again.consumed != 0)
          FAIL("progress without input");
        break;
      }
      evs.push_back(Ev{ev.type, ev.text, base});
      if (ev.type == LineEvent::bare_cr || ev.type == LineEvent::bare_lf) return evs;
    }
  }
  return evs;
}

std::vector<Ev> run_once(std::string_view s, size_t max_len, NewlinePolicy pol) {
  LineReader r(max_len, pol);
  return run(r, {s});
}

std::vector<std::string_view> split_at(std::string_view s, std::vector<size_t> cuts) {
  std::vector<std::string_view> out;
  size_t prev = 0;
  for (size_t c : cuts) {
    out.push_back(s.substr(prev, c - prev));
    prev = c;
  }
  out.push_back(s.substr(prev));
  return out;
}

std::vector<std::string_view> bytewise(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size(); ++i) out.push_back(s.substr(i, 1));
  return out;
}

// Independent whole-buffer model of the framing rules, for comparison.
std::vector<Ev> reference(std::string_view in, size_t max_len, NewlinePolicy pol) {
  const size_t limit = max_len >= 2 ? max_len - 2 : 0;
  const size_t n = in.size();
  const bool reject = pol == NewlinePolicy::reject;
  std::vector<Ev> evs;
  size_t pos = 0;
  bool discard = false;
  while (pos < n) {
    size_t idx = reject ? in.find_first_of("\r\n", pos) : in.find('\n', pos);
    if (discard) {
      if (idx == std::string_view::npos) return evs;
      if (reject) {
        if (in[idx] == '\n') return evs.push_back({LineEvent::bare_lf, "", idx + 1}), evs;
        if (idx + 1 == n) return evs;
        if (in[idx + 1] != '\n') return evs.push_back({LineEvent::bare_cr, "", idx + 1}), evs;
        pos = idx + 2;
      } else {
        pos = idx + 1;
      }
      discard = false;
      continue;
    }
    // content bytes that are certainly part of this line
    size_t content;
    if (idx == std::string_view::npos) {
      content = n - pos - (in[n - 1] == '\r' ? 1 : 0);
    } else if (reject) {
      content = idx - pos;
    } else {
      content = idx - pos - (idx > pos && in[idx - 1] == '\r' ? 1 : 0);
    }
    if (content > limit) {
      pos += limit + 1;
      evs.push_back({LineEvent::too_long, "", pos});
      discard = true;
      continue;
    }
    if (idx == std::string_view::npos) return evs;
    if (reject) {
      if (in[idx] == '\n') return evs.push_back({LineEvent::bare_lf, "", idx + 1}), evs;
      if (idx + 1 == n) return evs;
      if (in[idx + 1] != '\n') return evs.push_back({LineEvent::bare_cr, "", idx + 1}), evs;
      evs.push_back({LineEvent::line, std::string(in.substr(pos, content)), idx + 2});
      pos = idx + 2;
    } else {
      evs.push_back({LineEvent::line, std::string(in.substr(pos, content)), idx + 1});
      pos = idx + 1;
    }
  }
  return evs;
}

}  // namespace

TEST_CASE("line_reader: CRLF lines, several in one buffer, empty line") {
  const auto evs = run_once("HELO a\r\n\r\nMAIL FROM:<x@y>\r\nRCPT", 512, NewlinePolicy::reject);
  REQUIRE(evs.size() == 3);
  CHECK(evs[0] == Ev{LineEvent::line, "HELO a", 8});
  CHECK(evs[1] == Ev{LineEvent::line, "", 10});
  CHECK(evs[2] == Ev{LineEvent::line, "MAIL FROM:<x@y>", 27});
}

TEST_CASE("line_reader: incomplete line and a trailing CR need more input") {
  LineReader r(512, NewlinePolicy::reject);
  auto ev = r.next("NOOP");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 0);
  ev = r.next("NOOP\r");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 0);
  ev = r.next("NOOP\r\n");
  CHECK(ev.type == LineEvent::line);
  CHECK(ev.consumed == 6);
  CHECK(ev.text == "NOOP");
  CHECK(r.next("").type == LineEvent::need_more);
}

TEST_CASE("line_reader: reject policy reports bare LF and bare CR through the offending byte") {
  auto ev = LineReader(512, NewlinePolicy::reject).next("NOOP\nQUIT\r\n");
  CHECK(ev.type == LineEvent::bare_lf);
  CHECK(ev.consumed == 5);
  ev = LineReader(512, NewlinePolicy::reject).next("NO\rOP\r\n");
  CHECK(ev.type == LineEvent::bare_cr);
  CHECK(ev.consumed == 3);
  ev = LineReader(512, NewlinePolicy::reject).next("\n");
  CHECK(ev.type == LineEvent::bare_lf);
  CHECK(ev.consumed == 1);
  ev = LineReader(512, NewlinePolicy::reject).next("\r\r\n");
  CHECK(ev.type == LineEvent::bare_cr);
  CHECK(ev.consumed == 1);
  // A CR split from a following non-LF is still a bare CR.
  LineReader r(512, NewlinePolicy::reject);
  CHECK(r.next("AB\r").type == LineEvent::need_more);
  ev = r.next("AB\rX");
  CHECK(ev.type == LineEvent::bare_cr);
  CHECK(ev.consumed == 3);
}

TEST_CASE("line_reader: normalize policy ends lines at bare LF and keeps bare CR as data") {
  const auto evs = run_once("a\nb\r\nc\rd\r\ne\r\r\n\n", 512, NewlinePolicy::normalize);
  REQUIRE(evs.size() == 5);
  CHECK(evs[0] == Ev{LineEvent::line, "a", 2});
  CHECK(evs[1] == Ev{LineEvent::line, "b", 5});
  CHECK(evs[2] == Ev{LineEvent::line, "c\rd", 10});
  CHECK(evs[3] == Ev{LineEvent::line, "e\r", 14});
  CHECK(evs[4] == Ev{LineEvent::line, "", 15});
  // a CR at the end stays undecided under normalize too
  LineReader r(512, NewlinePolicy::normalize);
  auto ev = r.next("x\r");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 0);
}

TEST_CASE("line_reader: too_long exactly at max_len and max_len+1") {
  const size_t max = 16;
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    const std::string ok(max - 2, 'a');    // + CRLF == max_len: accepted
    const std::string over(max - 1, 'b');  // + CRLF == max_len + 1: too long
    const std::string s = ok + "\r\n" + over + "\r\nNEXT\r\n";
    std::vector<Ev> expect = {{LineEvent::line, ok, max},
                              {LineEvent::too_long, "", max + max - 1},
                              {LineEvent::line, "NEXT", 2 * max + 1 + 6}};
    CHECK(run_once(s, max, pol) == expect);
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      LineReader r(max, pol);
      CHECK(run(r, split_at(s, {cut})) == expect);
    }
    LineReader r(max, pol);
    CHECK(run(r, bytewise(s)) == expect);
  }
  // under normalize a bare-LF line gets the same content limit (as if ended by CRLF)
  const std::string s = std::string(14, 'a') + "\n" + std::string(15, 'b') + "\nX\n";
  CHECK(run_once(s, 16, NewlinePolicy::normalize) ==
        std::vector<Ev>{{LineEvent::line, std::string(14, 'a'), 15},
                        {LineEvent::too_long, "", 30},
                        {LineEvent::line, "X", 33}});
}

TEST_CASE("line_reader: too_long is reported once, then discarding resumes on the next line") {
  LineReader r(10, NewlinePolicy::reject);
  auto ev = r.next("0123456789");  // 10 content bytes, limit is 8
  CHECK(ev.type == LineEvent::too_long);
  CHECK(ev.consumed == 9);
  ev = r.next("9");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 1);
  ev = r.next("more junk");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 9);
  ev = r.next("xx\r");  // CR kept back until we know what follows
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 2);
  ev = r.next("\r\nQUIT\r\nNO");
  CHECK(ev.type == LineEvent::line);
  CHECK(ev.text == "QUIT");
  CHECK(ev.consumed == 8);
  ev = r.next("NO");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 0);
}

TEST_CASE("line_reader: discard ends at the terminator and parses the next line in the same call") {
  LineReader r(10, NewlinePolicy::reject);
  CHECK(r.next("0123456789").type == LineEvent::too_long);
  auto ev = r.next("9abc\r\nRSET\r\n");
  CHECK(ev.type == LineEvent::line);
  CHECK(ev.text == "RSET");
  CHECK(ev.consumed == 12);
  // a discard that ends with an incomplete next line: need_more with the junk consumed only
  CHECK(r.next("0123456789").type == LineEvent::too_long);
  ev = r.next("9\r\nRS");
  CHECK(ev.type == LineEvent::need_more);
  CHECK(ev.consumed == 3);
}

TEST_CASE("line_reader: bare CR/LF inside a discarded line is still an error under reject") {
  LineReader r(10, NewlinePolicy::reject);
  CHECK(r.next("0123456789").type == LineEvent::too_long);
  auto ev = r.next("9\nMAIL FROM:<a@b>\r\n");
  CHECK(ev.type == LineEvent::bare_lf);
  CHECK(ev.consumed == 2);
  LineReader r2(10, NewlinePolicy::reject);
  CHECK(r2.next("0123456789").type == LineEvent::too_long);
  ev = r2.next("9\rX");
  CHECK(ev.type == LineEvent::bare_cr);
  CHECK(ev.consumed == 2);
  // under normalize a bare LF ends the discarded line, a bare CR is discarded as data
  LineReader r3(10, NewlinePolicy::normalize);
  CHECK(r3.next("0123456789").type == LineEvent::too_long);
  ev = r3.next("9\rX\nQUIT\n");
  CHECK(ev.type == LineEvent::line);
  CHECK(ev.text == "QUIT");
  CHECK(ev.consumed == 9);
}

TEST_CASE("line_reader: a policy switch re-scans what was already seen") {
  LineReader r(512, NewlinePolicy::normalize);
  CHECK(r.next("AB\rCD").type == LineEvent::need_more);
  r.set_policy(NewlinePolicy::reject);
  const auto ev = r.next("AB\rCD\r\n");
  CHECK(ev.type == LineEvent::bare_cr);
  CHECK(ev.consumed == 3);
}

TEST_CASE("line_reader: every split position gives the one-shot result") {
  const std::string s =
      "EHLO client.example\r\nMAIL FROM:<a@b>\r\n\r\nRCPT TO:<averyveryverylongname@c>\r\n"
      "DATA\r\nx\r\r\ny\rz\r\nQUIT\r\n";
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    const auto once = run_once(s, 24, pol);
    CHECK(once == reference(s, 24, pol));
    for (size_t a = 0; a <= s.size(); ++a) {
      LineReader r(24, pol);
      const auto got = run(r, split_at(s, {a}));
      CHECK_MESSAGE(got == once, "cut ", a, ": ", show(got), " vs ", show(once));
    }
  }
}

TEST_CASE("line_reader: random segmentation property (fixed seed) against one-shot and a model") {
  std::mt19937 rng(20240611);
  const std::vector<std::string> tokens = {"a",
                                           "b",
                                           "Z",
                                           "\0"s,
                                           " ",
                                           ".",
                                           "\r",
                                           "\n",
                                           "\r\n",
                                           "\r\n",
                                           "\r\r\n",
                                           "\n\n",
                                           "MAIL FROM:<x@y>",
                                           "\r\n"};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const int ntok = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int t = 0; t < ntok; ++t)
      s += tokens[std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng)];
    const size_t max_len = std::uniform_int_distribution<size_t>(2, 24)(rng);
    for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
      const auto once = run_once(s, max_len, pol);
      const auto model = reference(s, max_len, pol);
      REQUIRE_MESSAGE(once == model, "iter ", iter, ": ", show(once), " vs model ", show(model));
      for (int seg = 0; seg < 4; ++seg) {
        std::vector<size_t> cuts;
        for (size_t i = 1; i < s.size(); ++i)
          if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) cuts.push_back(i);
        LineReader r(max_len, pol);
        const auto got = run(r, split_at(s, cuts));
        REQUIRE_MESSAGE(got == once, "iter ", iter, ": ", show(got), " vs ", show(once));
      }
      LineReader r(max_len, pol);
      REQUIRE(run(r, bytewise(s)) == once);
    }
  }
}

TEST_CASE("line_reader: the already-scanned prefix is not examined again after need_more") {
  // White-box check of the O(new bytes) re-scan: the caller must re-pass the same prefix, so a
  // reader that remembers its scan offset never looks at those bytes again. Changing a byte of the
  // prefix (a contract violation, only done here) is therefore invisible to it.
  LineReader r(512, NewlinePolicy::reject);
  CHECK(r.next("abcdef").type == LineEvent::need_more);
  const auto ev = r.next("ab\ndefgh\r\n");
  CHECK(ev.type == LineEvent::line);
  CHECK(ev.consumed == 10);
  // A shorter input than what was scanned resets the offset (the caller dropped bytes).
  LineReader r2(512, NewlinePolicy::reject);
  CHECK(r2.next("abcdef").type == LineEvent::need_more);
  CHECK(r2.next("a\n").type == LineEvent::bare_lf);
}

TEST_CASE("line_reader: byte-at-a-time input is linear (scan offset remembered)") {
  // A 256 KiB line fed one byte per call: re-scanning from the start each time would be ~3e10
  // steps (minutes); remembering the scan offset makes it ~2.6e5.
  const size_t n = 1 << 18;
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    LineReader r(n + 2, pol);
    std::string buf;
    buf.reserve(n + 2);
    size_t unexpected = 0;
    for (size_t i = 0; i < n; ++i) {
      buf.push_back(static_cast<char>('a' + i % 26));
      const auto ev = r.next(buf);
      if (ev.type != LineEvent::need_more || ev.consumed != 0) ++unexpected;
    }
    CHECK(unexpected == 0);
    buf += "\r";
    REQUIRE(r.next(buf).type == LineEvent::need_more);
    buf += "\n";
    const auto ev = r.next(buf);
    CHECK(ev.type == LineEvent::line);
    CHECK(ev.consumed == n + 2);
    CHECK(ev.text.size() == n);
  }
  // and a long discarded line
  LineReader r(512, NewlinePolicy::reject);
  std::string buf;
  size_t too_long = 0;
  for (size_t i = 0; i < n; ++i) {
    buf.push_back('x');
    const auto ev = r.next(buf);
    if (ev.type == LineEvent::too_long) ++too_long;
    buf.erase(0, ev.consumed);
  }
  CHECK(too_long == 1);
  CHECK(buf.empty());
}
