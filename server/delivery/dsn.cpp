// delivery/dsn.cpp: composes RFC 3464 delivery status notifications (bounces, delay warnings,
// success reports) as multipart/report messages, and the policy of who gets one.
#include "delivery/dsn.hpp"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace uvs::delivery {

namespace {

constexpr size_t kFoldAt = 78;    // RFC 5322 2.1.1: SHOULD
constexpr size_t kMaxLine = 998;  // RFC 5322 2.1.1: MUST (without the CRLF)

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool icontains(std::string_view hay, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequal(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One line of text for a header field or the report: CR, LF and other control bytes become
// spaces; with !utf8, bytes >= 0x80 become '?'.
std::string clean(std::string_view s, bool utf8) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f)
      out += ' ';
    else if (c >= 0x80 && !utf8)
      out += '?';
    else
      out += static_cast<char>(c);
  }
  return out;
}

// "Mon, 7 Dec 2026 06:46:58 +0000 (UTC)" (RFC 5322 3.3).
std::string date(int64_t t) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %d %s %d %02d:%02d:%02d +0000 (UTC)", days[tm.tm_wday % 7],
           tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// "Name: value" CRLF, folded at spaces before kFoldAt where possible; a word longer than a
// line allows is split (a continuation line), so no line exceeds kMaxLine.
void field(std::string &out, std::string_view name, std::string_view value) {
  std::string line = std::string(name) + ":";
  size_t i = 0;
  int words = 0;  // on this line: never fold after the first word ("dns;", "smtp;")
  while (i < value.size()) {
    size_t sp = value.find(' ', i);
    std::string_view word = value.substr(i, sp == std::string_view::npos ? sp : sp - i);
    i = sp == std::string_view::npos ? value.size() : sp + 1;
    if (word.empty()) continue;
    if (words >= 2 && line.size() + 1 + word.size() > kFoldAt) {
      out += line + "\r\n";
      line = " ";  // a folded line starts with white space
      words = 0;
    } else {
      line += ' ';
    }
    ++words;
    while (line.size() + word.size() > kMaxLine - 2) {
      size_t take = kMaxLine - 2 - line.size();
      line += word.substr(0, take);
      word.remove_prefix(take);
      out += line + "\r\n";
      line = " ";
    }
    line += word;
  }
  out += line + "\r\n";
}

// Text wrapped at spaces to kFoldAt columns, continuation lines indented by `indent` spaces;
// CRLF line ends.
void wrap(std::string &out, std::string_view text, size_t indent) {
  std::string line;
  size_t i = 0;
  while (i < text.size()) {
    size_t sp = text.find(' ', i);
    std::string_view word = text.substr(i, sp == std::string_view::npos ? sp : sp - i);
    i = sp == std::string_view::npos ? text.size() : sp + 1;
    if (word.empty()) continue;
    if (!line.empty() && line.size() + 1 + word.size() > kFoldAt) {
      out += line + "\r\n";
      line.assign(indent, ' ');
    } else if (!line.empty() && line.find_first_not_of(' ') != std::string::npos) {
      line += ' ';
    }
    while (line.size() + word.size() > kMaxLine) {
      size_t take = kMaxLine - line.size();
      line += word.substr(0, take);
      word.remove_prefix(take);
      out += line + "\r\n";
      line.assign(indent, ' ');
    }
    line += word;
  }
  out += line + "\r\n";
}

// The bytes with every line ending made CRLF and a final CRLF; `longest` is the longest line.
std::string to_crlf(std::string_view s, size_t &longest) {
  std::string out;
  out.reserve(s.size() + 2);
  longest = 0;
  size_t len = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += "\r\n";
      len = 0;
      continue;
    }
    out += c;
    if (++len > longest) longest = len;
  }
  if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0))
    out += "\r\n";
  return out;
}

// A header section with every line within kMaxLine (a longer line is split into a folded
// continuation), CRLF line ends, without the empty line that ends it.
std::string header_section(std::string_view h) {
  size_t longest = 0;
  std::string crlf = to_crlf(h, longest);
  while (crlf.size() >= 4 && crlf.compare(crlf.size() - 4, 4, "\r\n\r\n") == 0)
    crlf.resize(crlf.size() - 2);
  size_t end = crlf.find("\r\n\r\n");  // only the header section, if a body came with it
  if (end != std::string::npos) crlf.resize(end + 2);
  if (longest <= kMaxLine) return crlf;
  std::string out;
  size_t pos = 0;
  while (pos < crlf.size()) {
    size_t eol = crlf.find("\r\n", pos);
    std::string_view line(crlf.data() + pos, eol - pos);
    while (line.size() > kMaxLine) {
      out.append(line.substr(0, kMaxLine - 1));
      out += "\r\n ";
      line.remove_prefix(kMaxLine - 1);
    }
    out.append(line);
    out += "\r\n";
    pos = eol + 2;
  }
  return out;
}

// The original's Message-ID ("<...>"), "" if none or unusable.
std::string message_id_of(std::string_view headers) {
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t eol = headers.find('\n', pos);
    if (eol == std::string_view::npos) eol = headers.size();
    std::string_view line = headers.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the header section
    if (line.size() > 11 && iequal(line.substr(0, 11), "message-id:")) {
      std::string value(line.substr(11));
      // Folded continuation lines.
      size_t next = eol + 1;
      while (next < headers.size() && (headers[next] == ' ' || headers[next] == '\t')) {
        size_t e2 = headers.find('\n', next);
        if (e2 == std::string_view::npos) e2 = headers.size();
        value += headers.substr(next, e2 - next);
        next = e2 + 1;
      }
      std::string id(trim(clean(value, false)));
      size_t lt = id.find('<'), gt = id.find('>');
      if (lt == std::string::npos || gt == std::string::npos || gt < lt) return "";
      id = id.substr(lt, gt - lt + 1);
      if (id.size() > 900 || id.find(' ') != std::string::npos || id.find('?') != std::string::npos)
        return "";
      return id;
    }
    pos = eol + 1;
  }
  return "";
}

// "mx.example.net[192.0.2.1]:25" -> "mx.example.net"; "[192.0.2.1]:25" -> "[192.0.2.1]".
std::string mta_name(std::string_view s) {
  s = trim(s);
  size_t lb = s.find('[');
  if (lb == 0) {
    size_t rb = s.find(']');
    return std::string(rb == std::string_view::npos ? s : s.substr(0, rb + 1));
  }
  if (lb != std::string_view::npos) return std::string(s.substr(0, lb));
  return std::string(s);
}

// Whether s begins with an RFC 3464 diagnostic-type ("smtp;", "X-Postfix;").
bool has_diag_type(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                          (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
    ++i;
  return i > 0 && i < s.size() && s[i] == ';';
}

bool is_reply(std::string_view s) {
  return s.size() >= 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
         s[2] <= '9' && (s.size() == 3 || s[3] == ' ' || s[3] == '-');
}

// The Diagnostic-Code value with its type.
std::string diagnostic_code(std::string_view d) {
  d = trim(d);
  if (d.empty()) return "";
  if (has_diag_type(d)) {
    size_t semi = d.find(';');
    return std::string(d.substr(0, semi)) + "; " + std::string(trim(d.substr(semi + 1)));
  }
  if (is_reply(d)) return "smtp; " + std::string(d);
  return "X-Uvsmtpd; " + std::string(d);
}

// The diagnostic without its type, for the human-readable part.
std::string diagnostic_text(std::string_view d) {
  d = trim(d);
  if (has_diag_type(d)) d = trim(d.substr(d.find(';') + 1));
  return std::string(d);
}

bool valid_status(std::string_view s) {
  // class "." subject "." detail: 2/4/5, 1-3 digits, 1-3 digits (RFC 3463).
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2, digits = 0;
  for (int part = 0; part < 2; ++part) {
    digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
    if (digits < 1 || digits > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

std::string status_of(const DsnRecipient &r) {
  if (valid_status(r.status)) return r.status;
  if (r.action == "failed") return "5.0.0";
  if (r.action == "delayed") return "4.0.0";
  return "2.0.0";
}

std::string action_of(const DsnRecipient &r) {
  static const char *const known[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
  for (const char *k : known)
    if (iequal(r.action, k)) return k;
  return "failed";
}

// "rfc822; a@b" or "utf-8; jörg@b" (RFC 6533 3) for an address.
std::string typed_address(std::string_view a) {
  return (is_ascii(a) ? "rfc822; " : "utf-8; ") + clean(a, true);
}

// The Original-Recipient value for an ORCPT parameter "type;value": rfc822 values are xtext
// (RFC 3461 4.2) and are decoded; other types are kept as given. "" when unusable.
std::string original_recipient(std::string_view orcpt) {
  size_t semi = orcpt.find(';');
  if (semi == std::string_view::npos) return "";
  std::string_view type = trim(orcpt.substr(0, semi));
  std::string_view value = trim(orcpt.substr(semi + 1));
  if (type.empty() || value.empty()) return "";
  std::string v(value);
  if (iequal(type, "rfc822")) {
    std::string decoded;
    if (queue::xtext_decode(value, decoded)) v = decoded;
    return (is_ascii(v) ? "rfc822; " : "utf-8; ") + clean(v, true);
  }
  return std::string(type) + "; " + clean(v, true);
}

// "4 hours", "25 minutes", "2 days".
std::string span(int64_t s) {
  if (s < 0) s = 0;
  auto n = [](int64_t v, const char *unit) {
    return std::to_string(v) + " " + unit + (v == 1 ? "" : "s");
  };
  if (s < 2 * 3600) return n(s / 60, "minute");
  if (s < 2 * 86400) return n(s / 3600, "hour");
  return n(s / 86400, "day");
}

std::atomic<unsigned> g_counter{0};

}  // namespace

bool should_bounce(const queue::Envelope &env) {
  return !env.sender.empty();
}

bool wants_notice(const queue::Recipient &r, std::string_view action) {
  std::string_view n = trim(r.notify);
  if (n.empty()) return action == "failed" || action == "delayed";
  if (icontains(n, "NEVER")) return false;
  if (action == "failed") return icontains(n, "FAILURE");
  if (action == "delayed") return icontains(n, "DELAY");
  if (action == "delivered" || action == "relayed" || action == "expanded")
    return icontains(n, "SUCCESS");
  return false;
}

std::string compose_dsn(const DsnInput &in) {
  const queue::Envelope &env = in.env;
  std::string host = clean(trim(in.reporting_mta), false);
  if (host.empty() || host.find(' ') != std::string::npos) host = "localhost";
  std::string to(in.postmaster.empty() ? std::string_view(env.sender) : in.postmaster);
  bool postmaster_copy = !in.postmaster.empty();

  bool any_failed = false, any_delayed = false;
  for (const auto &r : in.rcpts) {
    std::string a = action_of(r);
    any_failed |= a == "failed";
    any_delayed |= a == "delayed";
  }

  // The original: whole, or its header section.
  size_t longest = 0;
  std::string original;
  bool whole = !in.delay_warning && !in.original_message.empty() &&
               !iequal(trim(env.dsn_ret), "HDRS") && in.original_message.size() <= in.max_return;
  if (whole) {
    original = to_crlf(in.original_message, longest);
    if (longest > kMaxLine) whole = false;
  }
  if (!whole) {
    std::string_view h = in.original_headers;
    if (h.empty()) h = in.original_message;  // header_section() stops at the empty line
    original = header_section(h);
  }
  bool global = env.smtputf8;
  std::string orig_type = whole ? (global ? "message/global" : "message/rfc822")
                                : (global ? "text/global-headers" : "text/rfc822-headers");
  bool orig_8bit = !is_ascii(original);

  // The delivery-status part: UTF-8 allowed (message/global-delivery-status) when an address or
  // another value in it is not ASCII.
  bool status_utf8 = !is_ascii(env.sender) || !is_ascii(env.dsn_envid);
  for (const auto &r : in.rcpts)
    status_utf8 |= !is_ascii(r.address) || !is_ascii(r.orcpt) || !is_ascii(r.diagnostic) ||
                   !is_ascii(r.remote_mta);
  std::string status;
  field(status, "Reporting-MTA", "dns; " + host);
  if (!env.id.empty()) field(status, "X-Uvsmtpd-Queue-ID", clean(env.id, false));
  field(status, "X-Uvsmtpd-Sender", typed_address(env.sender));
  if (!env.dsn_envid.empty())
    field(status, "Original-Envelope-Id", clean(env.dsn_envid, status_utf8));
  // Received-From-MTA: the client's verified name, else its HELO name, with its address as a
  // comment; the address literal alone when there is no name.
  std::string client = clean(env.client_name.empty() ? env.helo : env.client_name, false);
  std::string ip = clean(env.client_ip, false);
  if (client.find(' ') != std::string::npos) client.clear();
  if (!client.empty())
    field(status, "Received-From-MTA",
          "dns; " + client + (ip.empty() ? std::string() : " ([" + ip + "])"));
  else if (!ip.empty())
    field(status, "Received-From-MTA", "dns; [" + ip + "]");
  if (env.arrival > 0) field(status, "Arrival-Date", date(env.arrival));
  for (const auto &r : in.rcpts) {
    status += "\r\n";  // per-recipient groups are separated by an empty line
    field(status, "Final-Recipient", typed_address(r.address));
    std::string orig = original_recipient(r.orcpt);
    if (!orig.empty()) field(status, "Original-Recipient", orig);
    field(status, "Action", action_of(r));
    field(status, "Status", status_of(r));
    if (!trim(r.remote_mta).empty())
      field(status, "Remote-MTA", "dns; " + clean(mta_name(r.remote_mta), status_utf8));
    std::string diag = diagnostic_code(clean(r.diagnostic, status_utf8));
    if (!diag.empty()) field(status, "Diagnostic-Code", diag);
    if (r.last_attempt > 0) field(status, "Last-Attempt-Date", date(r.last_attempt));
    if (action_of(r) == "delayed" && in.retry_until > 0)
      field(status, "Will-Retry-Until", date(in.retry_until));
  }

  // The human-readable part.
  std::string text;
  wrap(text, "This is the mail system at host " + host + ".", 0);
  text += "\r\n";
  if (postmaster_copy) {
    wrap(text,
         "A delivery status notification could not be delivered; it is attached below, "
         "with the recipients that failed.",
         0);
  } else if (in.delay_warning) {
    wrap(text, "This is a warning only; you do not need to send your message again.", 0);
    text += "\r\n";
    std::string msg = "Your message could not yet be delivered to the recipients below";
    if (env.arrival > 0 && in.now > env.arrival) msg += " after " + span(in.now - env.arrival);
    msg += ". Delivery will be retried";
    if (in.retry_until > 0) msg += " until " + date(in.retry_until);
    msg += "; you will be notified if it fails.";
    wrap(text, msg, 0);
  } else if (any_failed) {
    wrap(text,
         std::string("Your message could not be delivered to one or more recipients. ") +
             (whole ? "It is attached below." : "Its header section is attached below."),
         0);
  } else {
    wrap(text, "Your message was delivered to the recipients below, as you asked.", 0);
  }
  text += "\r\n";
  wrap(text,
       "For further assistance, please send mail to the postmaster of " + host +
           ", and include this report.",
       0);
  text += "\r\n";
  bool text_utf8 = false;
  for (const auto &r : in.rcpts) {
    std::string line = "<" + clean(r.address, true) + ">: ";
    std::string d = diagnostic_text(clean(r.diagnostic, true));
    std::string mta = clean(trim(r.remote_mta), true);
    std::string a = action_of(r);
    if (!mta.empty() && is_reply(d))
      line += "host " + mta + " said: " + d;
    else if (!d.empty())
      line += d;
    else
      line += a == "failed" ? "delivery failed" : a == "delayed" ? "delivery delayed" : "delivered";
    if (!mta.empty() && !is_reply(d) && !d.empty()) line += " (host " + mta + ")";
    text_utf8 |= !is_ascii(line);
    wrap(text, line, 4);
    text += "\r\n";
  }

  // The boundary: made from the id, the time and a counter (at most 60 characters of RFC 2046
  // bchars), lengthened until it occurs in no part.
  unsigned serial = g_counter.fetch_add(1, std::memory_order_relaxed);
  char buf[96];
  snprintf(buf, sizeof buf, "%lld.%u", static_cast<long long>(in.now), serial);
  std::string boundary;
  for (char c : "=_" + env.id + "." + buf + "/" + host)
    if (std::isalnum(static_cast<unsigned char>(c)) || (c != 0 && std::strchr("'()+_,-./:=?", c)))
      boundary += c;
  if (boundary.size() > 60) boundary.resize(60);
  std::string base = boundary;
  for (int n = 0; original.find("--" + boundary) != std::string::npos ||
                  text.find("--" + boundary) != std::string::npos ||
                  status.find("--" + boundary) != std::string::npos;
       ++n)
    boundary = base + "=" + std::to_string(n);

  // The message.
  bool eight = orig_8bit || text_utf8 || status_utf8;
  std::string out;
  field(out, "Date", date(in.now));
  field(out, "From", "MAILER-DAEMON@" + host + " (Mail Delivery System)");
  field(out, "To", "<" + clean(to, true) + ">");
  std::string subject = postmaster_copy    ? "Postmaster Copy: Undelivered Mail"
                        : in.delay_warning ? "Delayed Mail (still being retried)"
                        : any_failed       ? "Undelivered Mail Returned to Sender"
                        : any_delayed      ? "Delayed Mail (still being retried)"
                                           : "Successful Mail Delivery Report";
  field(out, "Subject", subject);
  snprintf(buf, sizeof buf, "%lld.%u", static_cast<long long>(in.now), serial);
  std::string kind = in.delay_warning ? "delay" : postmaster_copy ? "pm" : "dsn";
  field(out, "Message-ID",
        "<" + std::string(buf) + "." + kind + "." + clean(env.id, false) + "@" + host + ">");
  std::string orig_id =
      message_id_of(in.original_headers.empty() ? in.original_message : in.original_headers);
  if (!orig_id.empty()) {
    field(out, "In-Reply-To", orig_id);
    field(out, "References", orig_id);
  }
  field(out, "Auto-Submitted", "auto-replied");
  field(out, "MIME-Version", "1.0");
  field(out, "Content-Type",
        "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
  if (eight) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n";
  out += "This is a MIME-encapsulated message.\r\n";

  out += "\r\n--" + boundary + "\r\n";
  field(out, "Content-Description", "Notification");
  field(out, "Content-Type",
        std::string("text/plain; charset=") + (text_utf8 ? "utf-8" : "us-ascii"));
  if (text_utf8) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n" + text;

  out += "\r\n--" + boundary + "\r\n";
  field(out, "Content-Description", in.delay_warning ? "Delivery delay report" : "Delivery report");
  field(out, "Content-Type",
        status_utf8 ? "message/global-delivery-status" : "message/delivery-status");
  if (status_utf8) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n" + status;

  out += "\r\n--" + boundary + "\r\n";
  field(out, "Content-Description",
        whole              ? "Undelivered Message"
        : in.delay_warning ? "Message Headers"
                           : "Undelivered Message Headers");
  field(out, "Content-Type", orig_type);
  if (orig_8bit) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n" + original;
  out += "\r\n--" + boundary + "--\r\n";
  return out;
}

queue::Envelope dsn_envelope(const DsnInput &in, std::string_view message, std::string id) {
  queue::Envelope e;
  e.id = std::move(id);
  e.arrival = in.now;
  e.next_try = in.now;
  e.size = static_cast<int64_t>(message.size());
  e.sender = "";
  e.protocol = "local";
  queue::Recipient r;
  r.address = in.postmaster.empty() ? in.env.sender : std::string(in.postmaster);
  e.rcpts.push_back(std::move(r));
  size_t hend = message.find("\r\n\r\n");
  std::string_view headers = message.substr(0, hend);
  e.smtputf8 = !is_ascii(e.rcpts[0].address) || !is_ascii(headers);
  e.body_8bitmime = !is_ascii(message);
  return e;
}

}  // namespace uvs::delivery
