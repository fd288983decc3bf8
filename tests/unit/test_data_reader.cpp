// tests/unit/test_data_reader.cpp: unit tests for smtp/data_reader (end of data, smuggling), and a
// differential test of random segmentations against a line-based reference.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/data_reader.hpp"

using namespace std::string_literals;
using uvs::smtp::DataEvent;
using uvs::smtp::DataReader;
using uvs::smtp::NewlinePolicy;

namespace {

struct Ev {
  DataEvent::Type type;
  size_t end;  // absolute stream offset just after the event's consumed bytes
  bool operator==(const Ev &o) const { return type == o.type && end == o.end; }
};

struct Run {
  std::vector<Ev> evs;
  std::string out;
  uint64_t size = 0;
  bool too_big = false;
  bool headers_seen = false;
};

std::string esc(std::string_view s) {
  std::string r;
  for (char c : s) {
    if (c == '\r')
      r += "\\r";
    else if (c == '\n')
      r += "\\n";
    else if (c == '\0')
      r += "\\0";
    else
      r += c;
  }
  return r;
}

std::string show(const std::vector<Ev> &evs) {
  static const char *names[] = {"need_more", "headers_end", "done", "bare_cr", "bare_lf"};
  std::string s;
  for (const auto &e : evs) s += std::string(names[e.type]) + "@" + std::to_string(e.end) + " ";
  return s;
}

bool terminal(DataEvent::Type t) {
  return t != DataEvent::need_more && t != DataEvent::headers_end;
}

// Drives a DataReader the way the session does: each chunk is fed until need_more; after done or
// an error nothing more is fed (the rest of the stream belongs to command mode / is dropped).
Run run(const std::vector<std::string_view> &chunks, uint64_t max_size, NewlinePolicy pol) {
  DataReader r(max_size, pol);
  Run res;
  size_t base = 0;
  for (std::string_view rest : chunks) {
    for (;;) {
      const DataEvent ev = r.feed(rest, res.out);
      if (ev.consumed > rest.size()) FAIL("consumed more than the input");
      rest.remove_prefix(ev.consumed);
      base += ev.consumed;
      if (ev.type == DataEvent::need_more) {
        if (!rest.empty()) FAIL("need_more left input unconsumed");
        break;
      }
      res.evs.push_back(Ev{ev.type, base});
      if (terminal(ev.type)) goto finished;
    }
  }
finished:
  res.size = r.size();
  res.too_big = r.too_big();
  res.headers_seen = r.headers_seen();
  return res;
}

Run run_once(std::string_view s, NewlinePolicy pol, uint64_t max_size = 0) {
  return run({s}, max_size, pol);
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

bool same(const Run &a, const Run &b) {
  return a.evs == b.evs && a.out == b.out && a.size == b.size && a.too_big == b.too_big &&
         a.headers_seen == b.headers_seen;
}

// Independent line-based model of the rules over a whole buffer. `complete` is set when it
// reached done (then out/size are comparable; on errors and incomplete input only events are).
Run reference(std::string_view in, NewlinePolicy pol, uint64_t max_size, bool &complete) {
  Run res;
  std::string full;
  complete = false;
  const bool reject = pol == NewlinePolicy::reject;
  const size_t n = in.size();
  size_t pos = 0;
  bool eligible = true;  // the previous line ended with a real CRLF
  for (;;) {
    size_t idx, end;
    bool crlf;
    if (reject) {
      idx = in.find_first_of("\r\n", pos);
      if (idx == std::string_view::npos) break;
      if (in[idx] == '\n') {
        res.evs.push_back({DataEvent::bare_lf, idx + 1});
        break;
      }
      if (idx + 1 == n) break;
      if (in[idx + 1] != '\n') {
        res.evs.push_back({DataEvent::bare_cr, idx + 1});
        break;
      }
      crlf = true;
      end = idx + 2;
    } else {
      idx = in.find('\n', pos);
      if (idx == std::string_view::npos) break;
      end = idx + 1;
      crlf = idx > pos && in[idx - 1] == '\r';
      if (crlf) --idx;
    }
    std::string_view line = in.substr(pos, idx - pos);
    if (line == "." && eligible && crlf) {
      res.evs.push_back({DataEvent::done, end});
      complete = true;
      break;
    }
    if (!line.empty() && line[0] == '.' && line != ".") line.remove_prefix(1);
    full += line;
    full += "\r\n";
    if (line.empty() && !res.headers_seen) {
      res.headers_seen = true;
      res.evs.push_back({DataEvent::headers_end, end});
    }
    eligible = crlf;
    pos = end;
  }
  res.size = full.size();
  res.too_big = max_size != 0 && full.size() > max_size;
  res.out = max_size != 0 && full.size() > max_size ? full.substr(0, max_size) : full;
  return res;
}

struct Variant {
  const char *name;
  std::string bytes;
  std::string stored_normalize;  // what the variant becomes in the stored body under normalize
  DataEvent::Type reject_event;  // first event after headers_end under reject
};

const std::vector<Variant> &variants() {
  static const std::vector<Variant> v = {
      {"lflf", "\n.\n"s, "\r\n.\r\n"s, DataEvent::bare_lf},
      {"lfcrlf", "\n.\r\n"s, "\r\n.\r\n"s, DataEvent::bare_lf},
      {"crlflf", "\r\n.\n"s, "\r\n.\r\n"s, DataEvent::bare_lf},
      {"crlf", "\r.\n"s, "\r.\r\n"s, DataEvent::bare_cr},
      {"lfcr", "\n.\r"s, "\r\n\r"s, DataEvent::bare_lf},
      {"crcr", "\r.\r"s, "\r.\r"s, DataEvent::bare_cr},
      {"crcrlf", "\r.\r\n"s, "\r.\r\n"s, DataEvent::bare_cr},
      {"crlfcr", "\r\n.\r"s, "\r\n\r"s, DataEvent::bare_cr},
      {"nullbefore", "\r\n\0.\r\n"s, "\r\n\0.\r\n"s, DataEvent::done},
      {"nullafter", "\r\n.\0\r\n"s, "\r\n\0\r\n"s, DataEvent::done},
      {"crlfcrcrlf", "\r\n.\r\r\n"s, "\r\n\r\r\n"s, DataEvent::bare_cr},
      {"crcrlfcrcrlf", "\r\r\n.\r\r\n"s, "\r\r\n\r\r\n"s, DataEvent::bare_cr},
  };
  return v;
}

// Position just after the first bare CR or bare LF in s, and which one (need_more if none).
Ev first_bare(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return {DataEvent::bare_lf, i + 1};
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] != '\n') return {DataEvent::bare_cr, i + 1};
  }
  return {DataEvent::need_more, 0};
}

const std::string kHead = "Subject: t\r\n\r\n";
const std::string kSmuggled =
    "MAIL FROM:<s@evil.example>\r\nRCPT TO:<v@victim.example>\r\nDATA\r\n\r\nsmuggled\r\n";
const std::string kAfter = "QUIT\r\n";  // pipelined after the real end; must stay unconsumed

}  // namespace

TEST_CASE("data_reader: simple message, terminator not stored, trailing input not consumed") {
  const std::string s = "Subject: hi\r\n\r\nline 1\r\nline 2\r\n.\r\nQUIT\r\n";
  const Run r = run_once(s, NewlinePolicy::reject);
  CHECK(r.evs == std::vector<Ev>{{DataEvent::headers_end, 15}, {DataEvent::done, s.size() - 6}});
  CHECK(r.out == "Subject: hi\r\n\r\nline 1\r\nline 2\r\n");
  CHECK(r.size == r.out.size());
  CHECK_FALSE(r.too_big);
  CHECK(r.headers_seen);
}

TEST_CASE("data_reader: empty message") {
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    const Run r = run_once(".\r\nMAIL FROM:<>\r\n", pol);
    CHECK(r.evs == std::vector<Ev>{{DataEvent::done, 3}});
    CHECK(r.out.empty());
    CHECK(r.size == 0);
    CHECK_FALSE(r.headers_seen);
    // split at every position
    for (size_t a = 0; a <= 3; ++a) CHECK(same(run(split_at(".\r\n", {a}), 0, pol), r));
    // a message that is one empty line
    const Run e = run_once("\r\n.\r\n", pol);
    CHECK(e.evs == std::vector<Ev>{{DataEvent::headers_end, 2}, {DataEvent::done, 5}});
    CHECK(e.out == "\r\n");
  }
}

TEST_CASE("data_reader: dot-unstuffing removes exactly one leading dot") {
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    const std::string s = "..foo\r\n..\r\n...\r\n.bar\r\na.b\r\n. \r\n.\0\r\n"s + "x.\r\n.\r\n";
    const Run r = run_once(s, pol);
    CHECK(r.out == ".foo\r\n.\r\n..\r\nbar\r\na.b\r\n \r\n\0\r\n"s + "x.\r\n");
    CHECK(r.evs == std::vector<Ev>{{DataEvent::done, s.size()}});
    CHECK(r.size == r.out.size());
    for (size_t a = 0; a <= s.size(); ++a) CHECK(same(run(split_at(s, {a}), 0, pol), r));
    CHECK(same(run(bytewise(s), 0, pol), r));
  }
}

TEST_CASE("data_reader: NUL bytes are ordinary data") {
  const std::string s = "a\0b\r\n\0\r\n\r\n\0\r\n.\r\n"s;
  const Run r = run_once(s, NewlinePolicy::reject);
  CHECK(r.out == "a\0b\r\n\0\r\n\r\n\0\r\n"s);
  CHECK(r.evs == std::vector<Ev>{{DataEvent::headers_end, 10}, {DataEvent::done, s.size()}});
}

TEST_CASE("data_reader: headers_end placement") {
  // after the first empty line, reported once
  {
    const std::string s = "A: b\r\nC: d\r\n\r\nbody\r\n\r\nmore\r\n.\r\n";
    const Run r = run_once(s, NewlinePolicy::reject);
    CHECK(r.evs == std::vector<Ev>{{DataEvent::headers_end, 14}, {DataEvent::done, s.size()}});
    for (size_t a = 0; a <= s.size(); ++a)
      CHECK(same(run(split_at(s, {a}), 0, NewlinePolicy::reject), r));
  }
  // the message starts with an empty line
  {
    const Run r = run_once("\r\nbody\r\n.\r\n", NewlinePolicy::reject);
    CHECK(r.evs == std::vector<Ev>{{DataEvent::headers_end, 2}, {DataEvent::done, 11}});
  }
  // no empty line at all: never reported
  {
    const Run r = run_once("A: b\r\nbody\r\n.\r\n", NewlinePolicy::reject);
    CHECK(r.evs == std::vector<Ev>{{DataEvent::done, 15}});
    CHECK_FALSE(r.headers_seen);
  }
  // the empty line split between chunks: reported by the call that consumes its LF
  {
    DataReader d(0, NewlinePolicy::reject);
    std::string out;
    auto ev = d.feed("A: b\r\n\r", out);
    CHECK(ev.type == DataEvent::need_more);
    CHECK(ev.consumed == 7);
    CHECK_FALSE(d.headers_seen());
    ev = d.feed("\nbody", out);
    CHECK(ev.type == DataEvent::headers_end);
    CHECK(ev.consumed == 1);
    CHECK(d.headers_seen());
    ev = d.feed("body", out);
    CHECK(ev.type == DataEvent::need_more);
    CHECK(out == "A: b\r\n\r\nbody");
  }
  // normalize: an empty line ended by a bare LF (or after a bare LF) counts
  {
    const Run r = run_once("A: b\n\nbody\r\n.\r\n", NewlinePolicy::normalize);
    CHECK(r.evs == std::vector<Ev>{{DataEvent::headers_end, 6}, {DataEvent::done, 15}});
    CHECK(r.out == "A: b\r\n\r\nbody\r\n");
    const Run r2 = run_once("A: b\n\r\nbody\r\n.\r\n", NewlinePolicy::normalize);
    CHECK(r2.evs == std::vector<Ev>{{DataEvent::headers_end, 7}, {DataEvent::done, 16}});
  }
  // a bare CR line is not empty
  {
    const Run r = run_once("A: b\r\n\r\r\nbody\r\n.\r\n", NewlinePolicy::normalize);
    CHECK(r.evs == std::vector<Ev>{{DataEvent::done, 18}});
  }
}

TEST_CASE("data_reader: size limit at the exact boundary") {
  const std::string msg = "Subject: x\r\n\r\n..dot\r\nabcdef\r\n";  // content as stored below
  const std::string stored = "Subject: x\r\n\r\n.dot\r\nabcdef\r\n";
  const std::string s = msg + ".\r\n";
  const uint64_t n = stored.size();
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    const Run exact = run_once(s, pol, n);
    CHECK(exact.size == n);
    CHECK_FALSE(exact.too_big);
    CHECK(exact.out == stored);
    const Run over = run_once(s, pol, n - 1);
    CHECK(over.size == n);
    CHECK(over.too_big);
    CHECK(over.out == stored.substr(0, n - 1));
    CHECK(over.evs == exact.evs);  // still finds headers_end and the end of data
    const Run unlimited = run_once(s, pol, 0);
    CHECK_FALSE(unlimited.too_big);
    CHECK(unlimited.out == stored);
    for (size_t a = 0; a <= s.size(); ++a) {
      CHECK(same(run(split_at(s, {a}), n, pol), exact));
      CHECK(same(run(split_at(s, {a}), n - 1, pol), over));
    }
  }
  // size counts a bare LF as the CRLF it is stored as
  const Run lf = run_once("a\nb\r\n.\r\n", NewlinePolicy::normalize, 4);
  CHECK(lf.size == 6);
  CHECK(lf.too_big);
  CHECK(lf.out == "a\r\nb");
}

TEST_CASE("data_reader: reject policy stops at the first bare CR or LF") {
  struct Case {
    std::string s;
    Ev ev;
  };
  const std::vector<Case> cases = {
      {"\n.\r\n", {DataEvent::bare_lf, 1}},
      {"abc\ndef\r\n.\r\n", {DataEvent::bare_lf, 4}},
      {"abc\rdef\r\n.\r\n", {DataEvent::bare_cr, 4}},
      {".\n", {DataEvent::bare_lf, 2}},
      {".\rx", {DataEvent::bare_cr, 2}},
      {"\r\r\n", {DataEvent::bare_cr, 1}},
      {"a\r\n.\r.\r\n", {DataEvent::bare_cr, 5}},
  };
  for (const auto &c : cases) {
    const Run r = run_once(c.s, NewlinePolicy::reject);
    CHECK_MESSAGE(r.evs == std::vector<Ev>{c.ev}, esc(c.s), ": ", show(r.evs));
    for (size_t a = 0; a <= c.s.size(); ++a)
      CHECK(run(split_at(c.s, {a}), 0, NewlinePolicy::reject).evs == r.evs);
  }
  // the CR arrived in an earlier chunk (already consumed): the error consumes nothing more
  DataReader d(0, NewlinePolicy::reject);
  std::string out;
  auto ev = d.feed("abc\r", out);
  CHECK(ev.type == DataEvent::need_more);
  CHECK(ev.consumed == 4);
  ev = d.feed("x\r\n", out);
  CHECK(ev.type == DataEvent::bare_cr);
  CHECK(ev.consumed == 0);
  // the error is sticky
  ev = d.feed(".\r\n", out);
  CHECK(ev.type == DataEvent::bare_cr);
  CHECK(ev.consumed == 0);
}

TEST_CASE("data_reader: after done nothing more is consumed") {
  DataReader d(0, NewlinePolicy::reject);
  std::string out;
  auto ev = d.feed("x\r\n.\r\nMAIL", out);
  CHECK(ev.type == DataEvent::done);
  CHECK(ev.consumed == 6);
  ev = d.feed("MAIL", out);
  CHECK(ev.type == DataEvent::done);
  CHECK(ev.consumed == 0);
  CHECK(out == "x\r\n");
}

TEST_CASE("data_reader: smuggling variants never end the data (one write and every split)") {
  for (const auto &v : variants()) {
    const std::string msg = kHead + "body" + v.bytes + kSmuggled + ".\r\n";
    const std::string stream = msg + kAfter;
    const size_t vstart = kHead.size() + 4, vend = vstart + v.bytes.size();
    const std::string stored = kHead + "body" + v.stored_normalize + kSmuggled;

    // normalize: exactly one done, at the real terminator, smuggled commands are body text
    const Run norm = run_once(stream, NewlinePolicy::normalize);
    const std::vector<Ev> norm_expect = {{DataEvent::headers_end, kHead.size()},
                                         {DataEvent::done, msg.size()}};
    CHECK_MESSAGE(norm.evs == norm_expect, v.name, ": ", show(norm.evs));
    CHECK_MESSAGE(norm.out == stored, v.name, ": ", esc(norm.out));
    CHECK(norm.size == stored.size());

    // reject: the bare CR/LF is reported where it is; NUL variants are plain data
    const Run rej = run_once(stream, NewlinePolicy::reject);
    std::vector<Ev> rej_expect;
    if (v.reject_event == DataEvent::done) {
      CHECK(first_bare(stream).type == DataEvent::need_more);
      rej_expect = {{DataEvent::headers_end, kHead.size()}, {DataEvent::done, msg.size()}};
      CHECK(rej.out == stored);
    } else {
      const Ev bare = first_bare(stream);
      CHECK(bare.type == v.reject_event);
      CHECK(bare.end > vstart);
      CHECK(bare.end <= vend);
      rej_expect = {{DataEvent::headers_end, kHead.size()}, bare};
    }
    CHECK_MESSAGE(rej.evs == rej_expect, v.name, ": ", show(rej.evs));

    for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
      const Run &once = pol == NewlinePolicy::reject ? rej : norm;
      for (size_t a = 0; a <= stream.size(); ++a) {
        const Run got = run(split_at(stream, {a}), 0, pol);
        CHECK_MESSAGE(same(got, once), v.name, " cut ", a, ": ", show(got.evs));
      }
      // every pair of cuts around the variant (two boundaries inside the sequence)
      for (size_t a = vstart - 2; a <= vend + 2; ++a)
        for (size_t b = a; b <= vend + 2; ++b) {
          const Run got = run(split_at(stream, {a, b}), 0, pol);
          CHECK_MESSAGE(same(got, once), v.name, " cuts ", a, ",", b, ": ", show(got.evs));
        }
      CHECK(same(run(bytewise(stream), 0, pol), once));
    }
  }
}

TEST_CASE("data_reader: smuggling variants right at the start of the data") {
  // The first CR LF of each variant stands for the one that ended the DATA command.
  for (const auto &v : variants()) {
    std::string tail = v.bytes;
    if (tail.rfind("\r\n", 0) != 0) continue;
    tail.erase(0, 2);
    const std::string msg = tail + kSmuggled + ".\r\n";
    for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
      bool complete = false;
      const Run model = reference(msg, pol, 0, complete);
      const Run once = run_once(msg + kAfter, pol);
      CHECK_MESSAGE(once.evs == model.evs, v.name, ": ", show(once.evs));
      if (pol == NewlinePolicy::normalize) {
        CHECK(complete);
        REQUIRE(!once.evs.empty());
        CHECK(once.evs.back() == Ev{DataEvent::done, msg.size()});
        CHECK(once.out.find("MAIL FROM:<s@evil.example>\r\n") != std::string::npos);
      }
      for (const auto &e : once.evs)
        if (e.type == DataEvent::done) CHECK(e.end == msg.size());
      for (size_t a = 0; a <= msg.size(); ++a)
        CHECK(same(run(split_at(msg + kAfter, {a}), 0, pol), once));
    }
  }
}

TEST_CASE("data_reader: normalize keeps a dot line after a bare LF, real CRLF.CRLF still ends") {
  const std::string s = "a\n.\r\n.\r\nQUIT\r\n";  // "\n.\r\n" is not the end, the next one is
  const Run r = run_once(s, NewlinePolicy::normalize);
  CHECK(r.evs == std::vector<Ev>{{DataEvent::done, 8}});
  CHECK(r.out == "a\r\n.\r\n");
  const Run r2 = run_once("a\n..x\n.\n.\r\n.\r\n", NewlinePolicy::normalize);
  CHECK(r2.out == "a\r\n.x\r\n.\r\n.\r\n");
  CHECK(r2.evs == std::vector<Ev>{{DataEvent::done, 14}});
}

TEST_CASE("data_reader: random segmentation property (fixed seed) against one-shot and a model") {
  std::mt19937 rng(5321);
  const std::vector<std::string> tokens = {"a",   "b",      "\0"s,  ".",        "..",    "\r",
                                           "\n",  "\r\n",   "\r\n", "\r\n\r\n", "\r\n.", "\n.",
                                           "\r.", "\r\n..", "X: y", "\r\n.\r\n"};
  int completed = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s;
    const int ntok = std::uniform_int_distribution<int>(0, 30)(rng);
    for (int t = 0; t < ntok; ++t) {
      size_t k = std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng);
      if (k == tokens.size() - 1 && std::uniform_int_distribution<int>(0, 3)(rng) != 0) k = 0;
      s += tokens[k];
    }
    if (iter % 2 == 0) s += "\r\n.\r\n";
    const uint64_t max_size = std::uniform_int_distribution<uint64_t>(0, 40)(rng);
    for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
      const Run once = run_once(s, pol, max_size);
      bool complete = false;
      const Run model = reference(s, pol, max_size, complete);
      REQUIRE_MESSAGE(once.evs == model.evs, "iter ", iter, " ", esc(s), ": ", show(once.evs),
                      " vs model ", show(model.evs));
      if (complete) {
        ++completed;
        REQUIRE_MESSAGE(same(once, model), "iter ", iter, " ", esc(s), ": ", esc(once.out));
      }
      for (int seg = 0; seg < 4; ++seg) {
        std::vector<size_t> cuts;
        for (size_t i = 1; i < s.size(); ++i)
          if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) cuts.push_back(i);
        const Run got = run(split_at(s, cuts), max_size, pol);
        REQUIRE_MESSAGE(same(got, once), "iter ", iter, " ", esc(s), ": ", show(got.evs));
      }
      REQUIRE(same(run(bytewise(s), max_size, pol), once));
    }
  }
  CHECK(completed > 1000);
}

TEST_CASE("data_reader: large input in one piece and byte by byte is linear") {
  std::string body;
  for (int i = 0; i < 40000; ++i) body += (i % 7 == 0) ? ".line\r\n" : "some text here\r\n";
  const std::string s = "H: v\r\n\r\n" + body + ".\r\n";
  for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
    const Run once = run_once(s, pol, 1000);
    CHECK(once.evs.size() == 2);
    CHECK(once.too_big);
    CHECK(once.out.size() == 1000);
    const Run bytes = run(bytewise(s), 1000, pol);
    CHECK(same(bytes, once));
  }
}

// ---- differential test: the reader, fed in random segmentations, against a simple reference ----

namespace {

struct DiffEv {
  DataEvent::Type type;
  size_t end;      // absolute stream offset just after the event's consumed bytes
  size_t out_len;  // bytes stored when the event was reported (the session splits headers here)
  bool operator==(const DiffEv &o) const {
    return type == o.type && end == o.end && out_len == o.out_len;
  }
};

struct DiffRun {
  std::vector<DiffEv> evs;
  std::string out;
  uint64_t size = 0;
  bool too_big = false;
  bool headers_seen = false;
  size_t consumed = 0;
  bool operator==(const DiffRun &o) const {
    return evs == o.evs && out == o.out && size == o.size && too_big == o.too_big &&
           headers_seen == o.headers_seen && consumed == o.consumed;
  }
};

std::string show(const DiffRun &r) {
  static const char *names[] = {"need_more", "headers_end", "done", "bare_cr", "bare_lf"};
  std::string s;
  for (const auto &e : r.evs)
    s += std::string(names[e.type]) + "@" + std::to_string(e.end) + "/" +
         std::to_string(e.out_len) + " ";
  return s + "consumed=" + std::to_string(r.consumed) + " size=" + std::to_string(r.size) +
         " too_big=" + std::to_string(r.too_big) + " headers=" + std::to_string(r.headers_seen) +
         " out=" + std::to_string(r.out.size()) + "B";
}

// The reference: the whole stream at once, one line at a time, no state machine. A line ends at
// LF; it is a CRLF line when the byte before the LF is CR. A CR followed by anything but LF is a
// bare CR (the stream's last byte, if CR, is undecided). "." ends the data when its line ends in
// CRLF and the line before did too (or it is the first line). A line starting with "." loses that
// dot, except the line "." itself. Every stored line ends in CRLF. An unfinished line is stored
// as far as it is decided: without its leading dot and without a trailing CR.
DiffRun diff_reference(std::string_view in, uint64_t max_size, NewlinePolicy pol) {
  constexpr size_t npos = std::string_view::npos;
  const bool reject = pol == NewlinePolicy::reject;
  const uint64_t limit = max_size == 0 ? UINT64_MAX : max_size;
  DiffRun r;
  std::string content;  // everything stored, ignoring the limit
  auto stored = [&] { return static_cast<size_t>(std::min<uint64_t>(limit, content.size())); };
  auto event = [&](DataEvent::Type t, size_t end) { r.evs.push_back({t, end, stored()}); };
  auto partial = [](std::string_view s) {
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    if (!s.empty() && s.front() == '.') s.remove_prefix(1);
    return std::string(s);
  };
  bool after_crlf = true;
  size_t pos = 0;
  r.consumed = in.size();
  while (pos < in.size()) {
    const size_t nl = in.find('\n', pos);
    const size_t stop = nl == npos ? in.size() : nl;
    size_t bare = npos;
    for (size_t j = pos; j < stop && bare == npos; ++j)
      if (in[j] == '\r' && j + 1 < in.size() && in[j + 1] != '\n') bare = j;
    if (reject && bare != npos) {
      content += partial(in.substr(pos, bare - pos));
      event(DataEvent::bare_cr, bare + 1);
      r.consumed = bare + 1;
      break;
    }
    if (nl == npos) {
      content += partial(in.substr(pos));
      break;
    }
    const bool crlf = nl > pos && in[nl - 1] == '\r';
    if (reject && !crlf) {
      content += partial(in.substr(pos, nl - pos));
      event(DataEvent::bare_lf, nl + 1);
      r.consumed = nl + 1;
      break;
    }
    std::string_view text = in.substr(pos, nl - pos - (crlf ? 1 : 0));
    if (text == "." && crlf && after_crlf) {
      event(DataEvent::done, nl + 1);
      r.consumed = nl + 1;
      break;
    }
    if (text.size() > 1 && text.front() == '.') text.remove_prefix(1);
    content += text;
    content += "\r\n";
    if (text.empty() && !r.headers_seen) {
      r.headers_seen = true;
      event(DataEvent::headers_end, nl + 1);
    }
    after_crlf = crlf;
    pos = nl + 1;
  }
  r.size = content.size();
  r.too_big = content.size() > limit;
  r.out = content.substr(0, stored());
  return r;
}

// Feeds the chunks the way the session does and records every event with the stored length.
DiffRun diff_drive(const std::vector<std::string_view> &chunks, uint64_t max_size,
                   NewlinePolicy pol) {
  DataReader dr(max_size, pol);
  DiffRun r;
  size_t base = 0;
  bool stopped = false;
  for (std::string_view chunk : chunks) {
    size_t off = 0;
    while (!stopped) {
      const DataEvent ev = dr.feed(chunk.substr(off), r.out);
      if (ev.consumed > chunk.size() - off) FAIL("consumed more than the input");
      off += ev.consumed;
      if (ev.type == DataEvent::need_more) {
        if (off != chunk.size()) FAIL("need_more left input unconsumed");
        break;
      }
      r.evs.push_back({ev.type, base + off, r.out.size()});
      stopped = terminal(ev.type);
    }
    r.consumed = base + off;
    base += chunk.size();
    if (stopped) {
      std::string more;  // a finished reader stays finished
      const DataEvent again = dr.feed("x\r\n.\r\n", more);
      if (again.type != r.evs.back().type || again.consumed != 0 || !more.empty())
        FAIL("a finished reader did not stay finished");
      break;
    }
  }
  r.size = dr.size();
  r.too_big = dr.too_big();
  r.headers_seen = dr.headers_seen();
  return r;
}

// Cuts s into chunks whose sizes come from one of several shapes: tiny, packet-like, large, or
// cut exactly before/after CR, LF and "." bytes.
std::vector<std::string_view> random_chunks(std::string_view s, std::mt19937 &rng) {
  std::vector<std::string_view> out;
  const int shape = std::uniform_int_distribution<int>(0, 4)(rng);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len;
    switch (shape) {
      case 0:
        len = std::uniform_int_distribution<size_t>(1, 3)(rng);
        break;
      case 1:
        len = std::uniform_int_distribution<size_t>(1, 200)(rng);
        break;
      case 2:
        len = std::uniform_int_distribution<size_t>(500, 5000)(rng);
        break;
      case 3: {  // up to (or just past) one of the next special bytes
        const size_t k = s.find_first_of("\r\n.", pos + 1);
        len = (k == std::string_view::npos ? s.size() : k) - pos +
              std::uniform_int_distribution<size_t>(0, 1)(rng);
        break;
      }
      default:
        len = std::uniform_int_distribution<int>(0, 9)(rng) == 0
                  ? 0
                  : std::uniform_int_distribution<size_t>(1, 64)(rng);
        break;
    }
    len = std::min(len, s.size() - pos);
    out.push_back(s.substr(pos, len));
    pos += len;
  }
  return out;
}

std::string plain_line(std::mt19937 &rng, size_t max_len) {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.";
  const size_t len = std::uniform_int_distribution<size_t>(1, max_len)(rng);
  std::string s;
  for (size_t i = 0; i < len; ++i)
    s += kChars[std::uniform_int_distribution<size_t>(0, sizeof kChars - 2)(rng)];
  if (s[0] == '.') s[0] = 'x';
  return s + "\r\n";
}

// The message set: realistic bodies (long runs of ordinary lines, where the fast path works),
// every smuggling variant embedded between such runs, and random token soups.
std::vector<std::string> diff_messages() {
  std::mt19937 rng(20260301);
  std::vector<std::string> msgs;
  auto body = [&](int lines, size_t max_len) {
    std::string s;
    for (int i = 0; i < lines; ++i) {
      const int k = std::uniform_int_distribution<int>(0, 19)(rng);
      if (k == 0)
        s += "\r\n";
      else if (k == 1)
        s += "." + plain_line(rng, max_len);
      else if (k == 2)
        s += ".." + plain_line(rng, 10);
      else if (k == 3)
        s += std::string(std::uniform_int_distribution<size_t>(900, 3000)(rng), 'L') + "\r\n";
      else
        s += plain_line(rng, max_len);
    }
    return s;
  };
  const std::string head =
      "From: a@b.example\r\nSubject: differential\r\nX-Long: " + std::string(300, 'h') + "\r\n\r\n";
  for (int i = 0; i < 6; ++i) msgs.push_back(head + body(200, 78) + ".\r\n" + kAfter);
  msgs.push_back(body(100, 78) + ".\r\n");       // no header section: the first empty line ends it
  msgs.push_back(head + body(150, 78));          // unfinished: no end of data
  msgs.push_back(head + body(40, 78) + "tail");  // unfinished line
  msgs.push_back(head + body(40, 78) + "tail\r");
  msgs.push_back(head + body(40, 78) + ".");
  msgs.push_back(head + body(40, 78) + ".\r");
  msgs.push_back(".\r\n");
  msgs.push_back("\r\n.\r\n");
  for (const Variant &v : variants()) {
    msgs.push_back(head + body(30, 78) + "text" + v.bytes + body(30, 78) + ".\r\n" + kAfter);
    msgs.push_back(body(5, 20) + v.bytes + "x\r\n" + body(5, 20) + "\r\n" + body(5, 20) + ".\r\n");
    msgs.push_back(v.bytes.substr(2) + body(10, 40) + ".\r\n");  // right at the start
  }
  const std::vector<std::string> tokens = {"plain text line\r\n",
                                           "plain text line\r\n",
                                           "\r\n",
                                           ".dot\r\n",
                                           "..\r\n",
                                           "\r",
                                           "\n",
                                           ".",
                                           "x",
                                           "\0"s,
                                           "\r\n.",
                                           std::string(700, 'y') + "\r\n",
                                           "\r\n.\r\n"};
  for (int i = 0; i < 150; ++i) {
    std::string s;
    const int ntok = std::uniform_int_distribution<int>(1, 120)(rng);
    for (int t = 0; t < ntok; ++t) {
      size_t k = std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng);
      if (k == tokens.size() - 1 && std::uniform_int_distribution<int>(0, 3)(rng) != 0) k = 0;
      s += tokens[k];
    }
    if (i % 3 != 0) s += "\r\n.\r\n" + kAfter;
    msgs.push_back(s);
  }
  return msgs;
}

}  // namespace

TEST_CASE("data_reader: differential: random segmentations of a message set vs a reference") {
  std::mt19937 rng(4242);
  const std::vector<std::string> msgs = diff_messages();
  size_t runs = 0, done = 0, fast_lines = 0;
  for (const std::string &m : msgs) {
    fast_lines += m.size() > 2000;
    for (auto pol : {NewlinePolicy::reject, NewlinePolicy::normalize}) {
      const uint64_t content = diff_reference(m, 0, pol).size;
      const std::vector<uint64_t> limits = {
          0, 1, content, content > 0 ? content - 1 : 1,
          std::uniform_int_distribution<uint64_t>(1, content + 1)(rng)};
      for (uint64_t max_size : limits) {
        const DiffRun ref = diff_reference(m, max_size, pol);
        done += !ref.evs.empty() && ref.evs.back().type == DataEvent::done;
        const DiffRun whole = diff_drive({m}, max_size, pol);
        REQUIRE_MESSAGE(whole == ref, esc(m.substr(0, 300)), "\n  reader: ", show(whole),
                        "\n  ref:    ", show(ref));
        for (int seg = 0; seg < 4; ++seg) {
          const DiffRun got = diff_drive(random_chunks(m, rng), max_size, pol);
          REQUIRE_MESSAGE(got == ref, esc(m.substr(0, 300)), "\n  reader: ", show(got),
                          "\n  ref:    ", show(ref));
          ++runs;
        }
        if (m.size() <= 3000) REQUIRE(diff_drive(bytewise(m), max_size, pol) == ref);
      }
    }
  }
  CHECK(runs > 4000);
  CHECK(done > 500);       // most messages do reach the end of data
  CHECK(fast_lines > 30);  // and many are long enough for long runs of ordinary lines
}
