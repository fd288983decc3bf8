// queue/queue_entry.cpp: the envelope file format: xtext values, serialize, parse with line
// numbers in every error.
#include "queue/queue_entry.hpp"

#include <charconv>
#include <cstdio>

namespace uvs::queue {

namespace {

const char kHex[] = "0123456789ABCDEF";

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // RFC 3461: upper-case hex only
}

bool parse_i64(std::string_view s, int64_t &out) {
  if (s.empty() || s.size() > 19) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}

void put(std::string &out, std::string_view name, std::string_view value) {
  out.append(name);
  out += ' ';
  out += xtext_encode(value);
  out += '\n';
}

void put_num(std::string &out, std::string_view name, int64_t v) {
  out.append(name);
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

bool state_from(std::string_view s, RcptState &st) {
  if (s == "pending")
    st = RcptState::pending;
  else if (s == "delivered")
    st = RcptState::delivered;
  else if (s == "failed")
    st = RcptState::failed;
  else
    return false;
  return true;
}

// One "rcpt k=v k=v ..." line (after "rcpt ").
bool parse_rcpt(std::string_view rest, Recipient &r, std::string &why) {
  bool have_addr = false, have_state = false;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view tok = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    size_t eq = tok.find('=');
    if (eq == std::string_view::npos) {
      why = "rcpt field without '=': '" + std::string(tok.substr(0, 40)) + "'";
      return false;
    }
    std::string_view k = tok.substr(0, eq);
    std::string v;
    if (!xtext_decode(tok.substr(eq + 1), v)) {
      why = "bad xtext in rcpt field '" + std::string(k) + "'";
      return false;
    }
    int64_t n = 0;
    if (k == "addr") {
      r.address = v;
      have_addr = true;
    } else if (k == "state") {
      if (!state_from(v, r.state)) {
        why = "unknown recipient state '" + v.substr(0, 40) + "'";
        return false;
      }
      have_state = true;
    } else if (k == "orcpt") {
      r.orcpt = v;
    } else if (k == "notify") {
      r.notify = v;
    } else if (k == "status") {
      if (!parse_i64(v, n) || (n != 0 && (n < 200 || n > 599))) {
        why = "bad rcpt status '" + v.substr(0, 40) + "'";
        return false;
      }
      r.status = static_cast<int>(n);
    } else if (k == "enhanced") {
      r.enhanced = v;
    } else if (k == "mta") {
      r.remote_mta = v;
    } else if (k == "diag") {
      r.diagnostic = v;
    } else if (k == "updated") {
      if (!parse_i64(v, r.updated)) {
        why = "bad rcpt updated time";
        return false;
      }
    } else {
      why = "unknown rcpt field '" + std::string(k.substr(0, 40)) + "'";
      return false;
    }
  }
  if (!have_addr || !have_state) {
    why = "rcpt line without addr= or state=";
    return false;
  }
  return true;
}

}  // namespace

std::string_view rcpt_state_name(RcptState s) {
  switch (s) {
    case RcptState::pending:
      return "pending";
    case RcptState::delivered:
      return "delivered";
    case RcptState::failed:
      return "failed";
  }
  return "pending";
}

size_t Envelope::pending_count() const {
  size_t n = 0;
  for (const auto &r : rcpts) n += r.state == RcptState::pending;
  return n;
}

std::string xtext_encode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool xtext_decode(std::string_view s, std::string &out) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size()) return false;
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c >= 33 && c <= 126 && c != '=') {
      out += static_cast<char>(c);
    } else {
      return false;
    }
  }
  return true;
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLen) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

std::string serialize(const Envelope &e) {
  std::string out;
  out.reserve(512 + e.rcpts.size() * 96);
  out.append(kEnvelopeMagic);
  out += ' ';
  out += std::to_string(kEnvelopeVersion);
  out += '\n';
  put(out, "id", e.id);
  put_num(out, "arrival", e.arrival);
  put_num(out, "size", e.size);
  put(out, "sender", e.sender);
  put(out, "client-ip", e.client_ip);
  put(out, "client-name", e.client_name);
  put(out, "helo", e.helo);
  put(out, "auth-user", e.auth_user);
  put(out, "protocol", e.protocol);
  std::string flags;
  if (e.smtputf8) flags = "smtputf8";
  if (e.body_8bitmime) flags += flags.empty() ? "8bitmime" : ",8bitmime";
  put(out, "flags", flags);
  put(out, "dsn-ret", e.dsn_ret);
  put(out, "dsn-envid", e.dsn_envid);
  put_num(out, "attempts", e.attempts);
  put_num(out, "next-try", e.next_try);
  put(out, "last-error", e.last_error);
  for (const auto &r : e.rcpts) {
    out += "rcpt state=";
    out.append(rcpt_state_name(r.state));
    out += " addr=" + xtext_encode(r.address);
    out += " orcpt=" + xtext_encode(r.orcpt);
    out += " notify=" + xtext_encode(r.notify);
    out += " status=" + std::to_string(r.status);
    out += " enhanced=" + xtext_encode(r.enhanced);
    out += " mta=" + xtext_encode(r.remote_mta);
    out += " updated=" + std::to_string(r.updated);
    out += " diag=" + xtext_encode(r.diagnostic);
    out += '\n';
  }
  out += "end\n";
  return out;
}

bool parse(std::string_view text, Envelope &e, std::string &err) {
  e = Envelope{};
  if (text.size() > kMaxEnvelopeBytes) {
    err = "envelope larger than " + std::to_string(kMaxEnvelopeBytes) + " bytes";
    return false;
  }
  // The magic line.
  size_t nl = text.find('\n');
  std::string_view first = text.substr(0, nl);
  std::string magic(kEnvelopeMagic);
  if (first.substr(0, magic.size()) != magic || first.size() <= magic.size() + 1 ||
      first[magic.size()] != ' ') {
    err = text.empty() ? "empty file (no \"" + magic + "\" line)"
                       : "line 1: not an uvsmtpd queue envelope (no \"" + magic + "\" line)";
    return false;
  }
  int64_t version = 0;
  if (!parse_i64(first.substr(magic.size() + 1), version) || version != kEnvelopeVersion) {
    err = "line 1: envelope format version '" + std::string(first.substr(magic.size() + 1, 20)) +
          "' is not " + std::to_string(kEnvelopeVersion) + " (written by a newer uvsmtpd?)";
    return false;
  }
  if (nl == std::string_view::npos) {
    err = "truncated: no \"end\" line";
    return false;
  }
  enum Seen : unsigned { kId = 1, kArrival = 2, kSize = 4, kSender = 8 };
  unsigned seen = 0;
  size_t pos = nl + 1;
  int lineno = 1;
  bool ended = false;
  while (pos < text.size()) {
    ++lineno;
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) {
      err = "line " + std::to_string(lineno) + ": truncated (no newline; no \"end\" line)";
      return false;
    }
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    auto fail = [&](const std::string &why) {
      err = "line " + std::to_string(lineno) + ": " + why;
      return false;
    };
    if (ended) return fail("data after \"end\"");
    if (line == "end") {
      ended = true;
      continue;
    }
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return fail("record without a value");
    std::string_view name = line.substr(0, sp), raw = line.substr(sp + 1);
    if (name == "rcpt") {
      Recipient r;
      std::string why;
      if (!parse_rcpt(raw, r, why)) return fail(why);
      e.rcpts.push_back(std::move(r));
      continue;
    }
    std::string v;
    if (!xtext_decode(raw, v))
      return fail("bad xtext in '" + std::string(name.substr(0, 40)) + "'");
    int64_t n = 0;
    auto num = [&](int64_t &dst) {
      if (!parse_i64(v, n)) return fail("'" + std::string(name) + "' is not a number");
      dst = n;
      return true;
    };
    if (name == "id") {
      if (!valid_id(v)) return fail("bad queue id");
      e.id = v;
      seen |= kId;
    } else if (name == "arrival") {
      if (!num(e.arrival)) return false;
      seen |= kArrival;
    } else if (name == "size") {
      if (!num(e.size)) return false;
      seen |= kSize;
    } else if (name == "sender") {
      e.sender = v;
      seen |= kSender;
    } else if (name == "client-ip") {
      e.client_ip = v;
    } else if (name == "client-name") {
      e.client_name = v;
    } else if (name == "helo") {
      e.helo = v;
    } else if (name == "auth-user") {
      e.auth_user = v;
    } else if (name == "protocol") {
      e.protocol = v;
    } else if (name == "flags") {
      std::string_view f = v;
      while (!f.empty()) {
        size_t c = f.find(',');
        std::string_view one = f.substr(0, c);
        if (one == "smtputf8")
          e.smtputf8 = true;
        else if (one == "8bitmime")
          e.body_8bitmime = true;
        else
          return fail("unknown flag '" + std::string(one.substr(0, 40)) + "'");
        f = c == std::string_view::npos ? std::string_view{} : f.substr(c + 1);
      }
    } else if (name == "dsn-ret") {
      e.dsn_ret = v;
    } else if (name == "dsn-envid") {
      e.dsn_envid = v;
    } else if (name == "attempts") {
      int64_t a = 0;
      if (!num(a)) return false;
      if (a > 1000000) return fail("'attempts' out of range");
      e.attempts = static_cast<int>(a);
    } else if (name == "next-try") {
      if (!num(e.next_try)) return false;
    } else if (name == "last-error") {
      e.last_error = v;
    } else {
      return fail("unknown record '" + std::string(name.substr(0, 40)) + "'");
    }
  }
  if (!ended) {
    err = "truncated: no \"end\" line";
    return false;
  }
  if ((seen & (kId | kArrival | kSize | kSender)) != (kId | kArrival | kSize | kSender)) {
    err = "missing record: id, arrival, size and sender are required";
    return false;
  }
  if (e.rcpts.empty()) {
    err = "no recipients";
    return false;
  }
  return true;
}

}  // namespace uvs::queue
