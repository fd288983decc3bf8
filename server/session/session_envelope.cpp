// session/session_envelope.cpp: plugins' envelope edits (ABI 1.5 mail_from_replace, rcpt_add,
// rcpt_delete) applied to the open transaction, with one log line each, as a milter's
// end-of-message actions change the envelope. The hook check and the address syntax are
// plugin_host/api_envelope.cpp's.
#include <cerrno>
#include <string>

#include "log/log.hpp"
#include "session/session.hpp"

namespace uvs {

namespace {
bool has_8bit(std::string_view s) {
  for (unsigned char ch : s)
    if (ch >= 0x80) return true;
  return false;
}
}  // namespace

int Session::mail_from_replace(std::string_view addr, std::string_view by) {
  if (!txn_.is_open()) return -ENOENT;
  if (has_8bit(addr) && !txn_.smtputf8()) return -EINVAL;
  std::string old = txn_.mail_from();
  txn_.set_mail_from(std::string(addr));
  log::format_txn(log::info, id_, txn_.id(), "%s: from=<%s> orig_from=<%s> by %s",
                  txn_.id().c_str(), log::printable(std::string(addr)).c_str(),
                  log::printable(old).c_str(), std::string(by).c_str());
  return 0;
}

int Session::rcpt_add(std::string_view addr, std::string_view by) {
  if (!txn_.is_open()) return -ENOENT;
  if (has_8bit(addr) && !txn_.smtputf8()) return -EINVAL;
  if (txn_.has_rcpt(addr)) return 0;  // stored once, as RCPT stores a duplicate once
  if (txn_.rcpts().size() >= cfg_.max_recipients) return -E2BIG;
  txn_.add_rcpt(std::string(addr));
  log::format_txn(log::info, id_, txn_.id(), "%s: to=<%s> added by %s", txn_.id().c_str(),
                  log::printable(std::string(addr)).c_str(), std::string(by).c_str());
  return 0;
}

int Session::rcpt_delete(std::string_view addr, std::string_view by) {
  if (!txn_.is_open()) return -ENOENT;
  if (!txn_.remove_rcpt(addr)) return -ENOENT;
  log::format_txn(log::info, id_, txn_.id(), "%s: to=<%s> removed by %s", txn_.id().c_str(),
                  log::printable(std::string(addr)).c_str(), std::string(by).c_str());
  return 0;
}

}  // namespace uvs
