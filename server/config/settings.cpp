// server/config/settings.cpp: loads uvsmtpd.toml (toml++) into Settings, with file:line errors.
#include "config/settings.hpp"

#include "config/text_file.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string_view>
#include <toml++/toml.h>
#include <utility>

#include "log/sink.hpp"
#include "util/cidr.hpp"

namespace uvs::config {

namespace {

// Upper bound for every duration, in seconds: keeps "seconds * 1000" far from uint64 overflow.
constexpr double kMaxSeconds = 1e9;
// Worker processes: a few per core is the most that helps; the bound catches typos.
constexpr uint32_t kMaxWorkers = 256;

const char *const kLogLevels[] = {"emerg",   "alert",  "crit", "err",
                                  "warning", "notice", "info", "debug"};

std::string system_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

bool printable_ascii(std::string_view s, bool allow_space) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) return false;
    if (c == ' ' && !allow_space) return false;
  }
  return true;
}

class Loader {
 public:
  Loader(const std::string &file, Settings &s) : file_(file), s_(s) {}

  // Returns false and sets err to the earliest error (by line) in the file.
  bool load(const toml::table &root, std::string &err) {
    walk_table(root, "", top_handlers());
    check_log_file();
    check_tls();
    check_delivery();
    check_metrics();
    if (errors_.empty()) return true;
    auto &[line, msg] = *errors_.begin();
    err = line > 0 ? file_ + ":" + std::to_string(line) + ": " + msg : file_ + ": " + msg;
    return false;
  }

  bool listen_set() const { return listen_set_; }
  bool hostname_set() const { return hostname_set_; }

 private:
  using Handler = std::function<void(const toml::node &, const std::string &)>;
  using Handlers = std::map<std::string, Handler, std::less<>>;

  void error(const toml::source_region &where, std::string msg) {
    errors_.emplace(where.begin.line, std::move(msg));
  }
  void error(const toml::node &n, std::string msg) { error(n.source(), std::move(msg)); }
  void error(uint32_t line, std::string msg) { errors_.emplace(line, std::move(msg)); }
  // The line of a key if it was seen, else the line of the table it belongs to.
  static uint32_t v_line(uint32_t line, const toml::node &table) {
    return line ? line : table.source().begin.line;
  }

  void walk_table(const toml::table &t, const std::string &prefix, const Handlers &handlers) {
    for (auto &&[key, node] : t) {
      std::string name = prefix + std::string(key.str());
      auto it = handlers.find(key.str());
      if (it == handlers.end()) {
        error(key.source(), "unknown key '" + name + "'");
        continue;
      }
      it->second(node, name);
    }
  }

  Handler sub_table(Handlers handlers) {
    return [this, handlers = std::move(handlers)](const toml::node &n, const std::string &name) {
      const toml::table *t = n.as_table();
      if (t == nullptr) return error(n, "'" + name + "' must be a table");
      walk_table(*t, name + ".", handlers);
    };
  }

  // Non-negative integer in [min, max].
  template <typename T>
  Handler integer(T &field, uint64_t min, uint64_t max) {
    return [this, &field, min, max](const toml::node &n, const std::string &name) {
      const auto *v = n.as_integer();
      if (v == nullptr) return error(n, "'" + name + "' must be an integer");
      int64_t x = v->get();
      if (x < 0 || static_cast<uint64_t>(x) < min || static_cast<uint64_t>(x) > max) {
        if (min == 0 && x < 0) return error(n, "'" + name + "' must not be negative");
        return error(n, "'" + name + "' must be between " + std::to_string(min) + " and " +
                            std::to_string(max));
      }
      field = static_cast<T>(x);
    };
  }

  // Positive, finite number of seconds (integer or float).
  Handler seconds(double &field) {
    return [this, &field](const toml::node &n, const std::string &name) {
      double x = 0;
      if (const auto *i = n.as_integer())
        x = static_cast<double>(i->get());
      else if (const auto *f = n.as_floating_point())
        x = f->get();
      else
        return error(n, "'" + name + "' must be a number");
      if (!std::isfinite(x) || x <= 0 || x > kMaxSeconds)
        return error(n, "'" + name + "' must be a number > 0 and <= 1e9 (seconds)");
      field = x;
    };
  }

  // A delay in seconds: 0 (none) up to max.
  Handler delay(double &field, double max) {
    return [this, &field, max](const toml::node &n, const std::string &name) {
      double x = 0;
      if (const auto *i = n.as_integer())
        x = static_cast<double>(i->get());
      else if (const auto *f = n.as_floating_point())
        x = f->get();
      else
        return error(n, "'" + name + "' must be a number");
      if (!std::isfinite(x) || x < 0 || x > max)
        return error(n, "'" + name + "' must be a number of seconds from 0 to " +
                            std::to_string(static_cast<int>(max)));
      field = x;
    };
  }

  Handler text(std::string &field, std::function<const char *(const std::string &)> check) {
    return [this, &field, check](const toml::node &n, const std::string &name) {
      const auto *v = n.as_string();
      if (v == nullptr) return error(n, "'" + name + "' must be a string");
      if (check)
        if (const char *why = check(v->get())) return error(n, "'" + name + "' " + why);
      field = v->get();
    };
  }

  Handler one_of(std::string &field, std::vector<std::string> allowed) {
    return [this, &field, allowed](const toml::node &n, const std::string &name) {
      const auto *v = n.as_string();
      std::string list;
      for (const auto &a : allowed) list += (list.empty() ? "" : ", ") + a;
      if (v == nullptr) return error(n, "'" + name + "' must be a string, one of " + list);
      for (const auto &a : allowed)
        if (v->get() == a) {
          field = a;
          return;
        }
      error(n, "'" + name + "' must be one of " + list + " (got '" + v->get() + "')");
    };
  }

  // A listener's choice (tls, auth): field = n when it is one of allowed; else the error
  // "'name' must be one of a, b, c" (with " (got 'x')" for a string) and false.
  bool listen_choice(const toml::node &n, const std::string &name,
                     const std::vector<std::string> &allowed, std::string &field) {
    const auto *m = n.as_string();
    for (const auto &a : allowed)
      if (m != nullptr && m->get() == a) {
        field = a;
        return true;
      }
    std::string list;
    for (const auto &a : allowed) list += (list.empty() ? "" : ", ") + a;
    error(n, "'" + name + "' must be one of " + list +
                 (m ? " (got '" + m->get() + "')" : std::string()));
    return false;
  }

  void listen_entry(const toml::node &n, const std::string &name, std::vector<Listen> &out) {
    if (const auto *s = n.as_string()) {
      Listen l;
      if (!parse_listen(s->get(), l))
        return error(n, "'" + name + "' entry '" + s->get() +
                            "' is not a valid address (host:port, [v6]:port or *:port)");
      out.push_back(l);
      return;
    }
    const toml::table *t = n.as_table();
    if (t == nullptr)
      return error(n, "'" + name + "' entries must be \"host:port\" strings or tables");
    Listen l;
    bool have_address = false, ok = true;
    uint32_t tls_line = 0, require_line = 0, auth_line = 0;
    for (auto &&[key, v] : *t) {
      std::string kname = name + "." + std::string(key.str());
      if (key.str() == "address") {
        const auto *s = v.as_string();
        if (s == nullptr) {
          ok = false;
          error(v, "'" + kname + "' must be a string");
          continue;
        }
        Listen parsed;
        if (!parse_listen(s->get(), parsed)) {
          ok = false;
          error(v, "'" + kname + "' '" + s->get() +
                       "' is not a valid address (host:port, [v6]:port or *:port)");
          continue;
        }
        l.host = parsed.host;
        l.port = parsed.port;
        have_address = true;
      } else if (key.str() == "sync_check") {
        const auto *b = v.as_boolean();
        if (b == nullptr) {
          ok = false;
          error(v, "'" + kname + "' must be a boolean");
          continue;
        }
        l.sync_check = b->get();
      } else if (key.str() == "tls") {
        if (!listen_choice(v, kname, {"none", "starttls", "implicit"}, l.tls)) {
          ok = false;
          continue;
        }
        tls_line = v.source().begin.line;
      } else if (key.str() == "require_tls") {
        const auto *b = v.as_boolean();
        if (b == nullptr) {
          ok = false;
          error(v, "'" + kname + "' must be true or false");
          continue;
        }
        l.require_tls = b->get();
        require_line = v.source().begin.line;
      } else if (key.str() == "auth") {
        if (!listen_choice(v, kname, {"required", "optional", "off"}, l.auth)) {
          ok = false;
          continue;
        }
        auth_line = v.source().begin.line;
      } else if (key.str() == "auth_plaintext" || key.str() == "auth_relay") {
        const auto *b = v.as_boolean();
        if (b == nullptr) {
          ok = false;
          error(v, "'" + kname + "' must be true or false");
          continue;
        }
        (key.str() == "auth_plaintext" ? l.auth_plaintext : l.auth_relay) = b->get();
      } else {
        ok = false;
        error(key.source(), "unknown key '" + kname + "'");
      }
    }
    if (!ok) return;
    if (!have_address) return error(n, "'" + name + "' table needs an 'address'");
    if (l.require_tls && l.tls == "none")
      return error(n.source(), "'" + name +
                                   ".require_tls' is true but 'tls' is \"none\" (no "
                                   "message could be accepted)");
    if (l.require_tls && l.tls == "starttls")
      need_certificate_.emplace(require_line, "'" + name +
                                                  ".require_tls' is true but "
                                                  "'tls.certificate' is not set");
    // AUTH needs TLS unless auth_plaintext: a listener that requires AUTH where no client could
    // ever authenticate accepts no mail at all.
    if (l.auth == "required" && !l.auth_plaintext && l.tls == "none")
      return error(v_line(auth_line, n), "'" + name +
                                             ".auth' is \"required\" but 'tls' is \"none\" and "
                                             "'auth_plaintext' is false (no client could "
                                             "authenticate)");
    if (l.auth == "required" && !l.auth_plaintext && l.tls == "starttls")
      need_certificate_.emplace(auth_line, "'" + name +
                                               ".auth' is \"required\" but "
                                               "'tls.certificate' is not set (AUTH needs TLS "
                                               "unless 'auth_plaintext' is true)");
    if (l.tls == "implicit")
      need_certificate_.emplace(tls_line, "'" + name +
                                              ".tls' is \"implicit\" but "
                                              "'tls.certificate' is not set");
    out.push_back(l);
  }

  Handler listen() {
    return [this](const toml::node &n, const std::string &name) {
      const toml::array *a = n.as_array();
      if (a == nullptr)
        return error(
            n, "'" + name + "' must be an array of \"host:port\" strings or [[listen]] tables");
      if (a->empty()) return error(n, "'" + name + "' must not be empty");
      std::vector<Listen> out;
      for (const toml::node &e : *a) {
        size_t before = out.size();
        listen_entry(e, name, out);
        if (out.size() == before) continue;
        const Listen &l = out.back();
        for (size_t i = 0; i + 1 < out.size(); ++i)
          if (out[i].host == l.host && out[i].port == l.port && l.port != 0) {
            error(e, "'" + name + "' has a duplicate address");
            break;
          }
      }
      s_.listen = std::move(out);
      listen_set_ = true;
    };
  }

  Handler boolean(bool &field) {
    return [this, &field](const toml::node &n, const std::string &name) {
      const auto *b = n.as_boolean();
      if (b == nullptr) return error(n, "'" + name + "' must be true or false");
      field = b->get();
    };
  }

  // DNS servers: "ip" or "ip:port" or "[ipv6]:port".
  Handler server_list(std::vector<std::string> &field) {
    return [this, &field](const toml::node &n, const std::string &name) {
      const toml::array *a = n.as_array();
      if (a == nullptr) return error(n, "'" + name + "' must be an array of \"ip[:port]\" strings");
      std::vector<std::string> out;
      for (const toml::node &e : *a) {
        const auto *s = e.as_string();
        Listen l;
        std::string v = s ? s->get() : "";
        bool ok = s && (parse_listen(v, l) || parse_listen(v + ":53", l) ||
                        parse_listen("[" + v + "]:53", l));
        if (!ok) {
          error(e, "'" + name + "' entries must be \"ip\", \"ip:port\" or \"[ipv6]:port\"");
          continue;
        }
        out.push_back(l.host.find(':') != std::string::npos
                          ? "[" + l.host + "]:" + std::to_string(l.port)
                          : l.host + ":" + std::to_string(l.port));
      }
      field = std::move(out);
    };
  }

  Handler cidr_list(std::vector<std::string> &field) {
    return [this, &field](const toml::node &n, const std::string &name) {
      const toml::array *a = n.as_array();
      if (a == nullptr) return error(n, "'" + name + "' must be an array of CIDR strings");
      std::vector<std::string> out;
      for (const toml::node &e : *a) {
        const auto *s = e.as_string();
        if (s == nullptr) {
          error(e, "'" + name + "' entries must be strings");
          continue;
        }
        Cidr c;
        if (!parse_cidr(s->get(), c)) {
          error(e, "'" + name + "' entry '" + s->get() + "' is not a valid CIDR");
          continue;
        }
        out.push_back(s->get());
      }
      field = std::move(out);
    };
  }

  // Remembers the line a handler saw, then runs it.
  Handler at_line(uint32_t &line, Handler h) {
    return [&line, h = std::move(h)](const toml::node &n, const std::string &name) {
      line = n.source().begin.line;
      h(n, name);
    };
  }

  // A TOML string that must not be empty (file names, OpenSSL lists).
  Handler nonempty(std::string &field) {
    return text(field, [](const std::string &v) -> const char * {
      return v.empty() ? "must not be empty" : nullptr;
    });
  }

  // [[tls.sni]]: tables of certificate, key and optional names.
  Handler sni_list() {
    return [this](const toml::node &n, const std::string &name) {
      const toml::array *a = n.as_array();
      if (a == nullptr) return error(n, "'" + name + "' must be an array of [[tls.sni]] tables");
      std::vector<SniPair> out;
      for (const toml::node &e : *a) {
        const toml::table *t = e.as_table();
        if (t == nullptr) {
          error(e, "'" + name + "' entries must be tables (certificate, key, names)");
          continue;
        }
        if (sni_line_ == 0) sni_line_ = e.source().begin.line;
        SniPair pair;
        size_t before = errors_.size();
        walk_table(*t, name + ".",
                   {{"certificate", nonempty(pair.certificate)},
                    {"key", nonempty(pair.key)},
                    {"names", sni_names(pair.names)}});
        if (errors_.size() != before) continue;
        if (pair.certificate.empty() || pair.key.empty()) {
          error(e, "'" + name + "' entry needs both 'certificate' and 'key'");
          continue;
        }
        out.push_back(std::move(pair));
      }
      s_.tls.sni = std::move(out);
    };
  }

  Handler sni_names(std::vector<std::string> &field) {
    return [this, &field](const toml::node &n, const std::string &name) {
      const toml::array *a = n.as_array();
      if (a == nullptr || a->empty())
        return error(n, "'" + name +
                            "' must be a non-empty array of host names (leave it out "
                            "to use the certificate's names)");
      std::vector<std::string> out;
      for (const toml::node &e : *a) {
        const auto *v = e.as_string();
        if (v == nullptr || v->get().empty() || v->get().size() > 255 ||
            !printable_ascii(v->get(), false)) {
          error(e, "'" + name + "' entries must be host names (printable ASCII, no spaces)");
          continue;
        }
        out.push_back(v->get());
      }
      field = std::move(out);
    };
  }

  Handlers tls_handlers() {
    TlsSettings &t = s_.tls;
    return {{"certificate", at_line(tls_certificate_line_, text(t.certificate, nullptr))},
            {"key", at_line(tls_key_line_, text(t.key, nullptr))},
            {"min_protocol", one_of(t.min_protocol, {"TLSv1.2", "TLSv1.3"})},
            {"ciphers", nonempty(t.ciphers)},
            {"ciphersuites", nonempty(t.ciphersuites)},
            {"groups", nonempty(t.groups)},
            {"session_tickets", boolean(t.session_tickets)},
            {"ticket_key_lifetime", integer(t.ticket_key_lifetime, 1, 1000000000)},
            {"client_certificates", one_of(t.client_certificates, {"none", "request"})},
            {"client_ca", text(t.client_ca, nullptr)},
            {"watch", boolean(t.watch)},
            {"sni", sni_list()}};
  }

  // The pair must be whole, and what needs TLS needs the default pair.
  void check_tls() {
    const TlsSettings &t = s_.tls;
    if (!t.certificate.empty() && t.key.empty())
      errors_.emplace(tls_certificate_line_, "'tls.certificate' is set but 'tls.key' is not");
    if (t.certificate.empty() && !t.key.empty())
      errors_.emplace(tls_key_line_, "'tls.key' is set but 'tls.certificate' is not");
    if (!t.certificate.empty()) return;
    for (const auto &[line, msg] : need_certificate_) errors_.emplace(line, msg);
    if (!t.sni.empty())
      errors_.emplace(sni_line_,
                      "'tls.sni' pairs need the default pair: 'tls.certificate' is not set");
  }

  Handlers top_handlers() {
    Handlers h;
    h["hostname"] = [this](const toml::node &n, const std::string &name) {
      text(s_.hostname, [](const std::string &v) -> const char * {
        if (v.empty()) return "must not be empty";
        if (v.size() > 255 || !printable_ascii(v, false))
          return "must be printable ASCII without spaces (at most 255 characters)";
        return nullptr;
      })(n, name);
      // A fully qualified name may be written with its root dot: the name is the same without it
      // (replies, Received:, own-domain checks and the Maildir directory then agree).
      if (s_.hostname.size() > 1 && s_.hostname.back() == '.') s_.hostname.pop_back();
      hostname_set_ = n.is_string();
    };
    h["greeting"] = text(s_.greeting, [](const std::string &v) -> const char * {
      if (v.size() > 400 || !printable_ascii(v, true))
        return "must be printable ASCII (at most 400 characters)";
      return nullptr;
    });
    h["listen"] = listen();
    h["max_connections"] = integer(s_.max_connections, 0, UINT32_MAX);
    h["max_connections_per_ip"] = integer(s_.max_connections_per_ip, 0, UINT32_MAX);
    h["max_message_size"] = integer(s_.max_message_size, 0, INT64_MAX);
    h["max_recipients"] = integer(s_.max_recipients, 1, UINT32_MAX);
    h["max_line_length"] = integer(s_.max_line_length, 64, 65536);
    h["max_errors"] = integer(s_.max_errors, 0, UINT32_MAX);
    h["max_junk_commands"] = integer(s_.max_junk_commands, 0, UINT32_MAX);
    h["max_hops"] = integer(s_.max_hops, 1, 10000);
    h["hook_timeout"] = seconds(s_.hook_timeout);
    h["shutdown_grace"] = seconds(s_.shutdown_grace);
    h["spool_dir"] = text(s_.spool_dir, [](const std::string &v) -> const char * {
      return v.empty() ? "must not be empty" : nullptr;
    });
    h["plugin_dir"] = text(s_.plugin_dir, nullptr);
    h["timeouts"] = sub_table({{"command", seconds(s_.timeout_command)},
                               {"data", seconds(s_.timeout_data)},
                               {"tls_handshake", seconds(s_.timeout_tls_handshake)},
                               {"min_data_rate", integer(s_.min_data_rate, 0, UINT32_MAX)}});
    h["log"] =
        sub_table({{"level", one_of(s_.log_level, std::vector<std::string>(std::begin(kLogLevels),
                                                                           std::end(kLogLevels)))},
                   {"format", one_of(s_.log_format, {"text", "json"})},
                   {"destination",
                    [this](const toml::node &n, const std::string &name) {
                      one_of(s_.log_destination, {"stderr", "file", "syslog"})(n, name);
                      log_destination_line_ = n.source().begin.line;
                    }},
                   {"file", text(s_.log_file,
                                 [](const std::string &v) -> const char * {
                                   return v.empty() ? "must not be empty" : nullptr;
                                 })},
                   {"syslog_facility", one_of(s_.log_syslog_facility,
                                              log::syslog_facility_names())}});
    h["thread_pool_size"] = integer(s_.thread_pool_size, 1, 1024);
    h["workers"] = integer(s_.workers, 1, kMaxWorkers);
    h["user"] = text(s_.user, nullptr);
    h["group"] = text(s_.group, nullptr);
    h["dns"] = sub_table({{"servers", server_list(s_.dns_servers)},
                          {"timeout", seconds(s_.dns_timeout)},
                          {"reverse_lookup", boolean(s_.reverse_lookup)},
                          {"reverse_timeout", seconds(s_.reverse_timeout)}});
    h["bare_newline"] =
        sub_table({{"policy", one_of(s_.bare_newline, {"reject", "normalize"})},
                   {"normalize_networks", cidr_list(s_.bare_newline_normalize_networks)},
                   {"normalize_relay_clients", boolean(s_.bare_newline_normalize_relay_clients)}});
    h["require_queue_plugin"] = boolean(s_.require_queue_plugin);
    h["tls"] = sub_table(tls_handlers());
    h["auth"] = sub_table({{"max_failures", integer(s_.auth_max_failures, 0, 1000)},
                           {"failure_delay", delay(s_.auth_failure_delay, 60)},
                           {"lockout_failures", integer(s_.auth_lockout_failures, 0, 100000)},
                           {"lockout_window", seconds(s_.auth_lockout_window)}});
    h["delivery"] = sub_table(delivery_handlers());
    h["metrics"] =
        sub_table({{"listen",
                    [this](const toml::node &n, const std::string &name) {
                      const auto *v = n.as_string();
                      if (v == nullptr)
                        return error(n, "'" + name + "' must be a string (\"127.0.0.1:9101\")");
                      metrics_listen_line_ = n.source().begin.line;
                      if (v->get().empty()) return s_.metrics.listen.clear();  // off
                      Listen l;
                      if (!parse_listen(v->get(), l))
                        return error(n, "'" + name + "' must be ADDR:PORT or [IPv6]:PORT (got '" +
                                            v->get() + "')");
                      s_.metrics.address = l;
                      s_.metrics.listen = v->get();
                    }},
                   {"allow_remote", boolean(s_.metrics.allow_remote)}});
    h["state"] = sub_table(state_handlers());
    return h;
  }

  // The metrics tell whoever can connect about the server's traffic: loopback only, unless
  // allow_remote says otherwise.
  void check_metrics() {
    const MetricsSettings &m = s_.metrics;
    if (m.listen.empty() || m.allow_remote || is_loopback(m.address.host)) return;
    errors_.emplace(metrics_listen_line_,
                    "'metrics.listen' \"" + m.listen +
                        "\" is not a loopback address: the metrics would be served to other "
                        "hosts; use 127.0.0.1 or [::1] (and a proxy or tunnel), or set "
                        "'metrics.allow_remote = true' and restrict access with a firewall");
  }

  static bool is_loopback(const std::string &host) {
    unsigned char a[16];
    if (inet_pton(AF_INET, host.c_str(), a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host.c_str(), a) != 1) return false;
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, v4mapped, 12) == 0) return a[12] == 127;
    for (int i = 0; i < 15; ++i)
      if (a[i]) return false;
    return a[15] == 1;
  }

  Handlers delivery_handlers() {
    DeliverySettings &d = s_.delivery;
    Handlers h;
    h["enabled"] = boolean(d.enabled);
    h["queue_dir"] = text(d.queue_dir, nullptr);
    h["hostname"] = text(d.hostname, [](const std::string &v) -> const char * {
      if (v.size() > 255 || !printable_ascii(v, false))
        return "must be printable ASCII without spaces (at most 255 characters)";
      return nullptr;
    });
    h["concurrency"] = integer(d.concurrency, 1, 100000);
    h["destination_concurrency"] = integer(d.destination_concurrency, 1, 100000);
    h["retry_min"] = seconds(d.retry_min);
    h["retry_max"] = [this, &d](const toml::node &n, const std::string &name) {
      seconds(d.retry_max)(n, name);
      retry_max_line_ = n.source().begin.line;
    };
    h["max_queue_lifetime"] = seconds(d.max_queue_lifetime);
    h["delay_warning"] = delay(d.delay_warning, kMaxSeconds);
    h["postmaster"] = text(d.postmaster, [](const std::string &v) -> const char * {
      if (v.size() > 254 || !printable_ascii(v, false)) return "must be an address without spaces";
      return nullptr;
    });
    h["smtp_port"] = integer(d.smtp_port, 1, 65535);
    h["starttls"] = one_of(d.starttls, {"may", "encrypt", "none"});
    h["timeout_connect"] = seconds(d.timeout_connect);
    h["timeout_command"] = seconds(d.timeout_command);
    h["rescan_interval"] = seconds(d.rescan_interval);
    h["route"] = [this, &d](const toml::node &n, const std::string &name) {
      const toml::array *a = n.as_array();
      if (a == nullptr) return error(n, "'" + name + "' must be an array of [[delivery.route]] tables");
      for (const auto &e : *a) {
        const toml::table *t = e.as_table();
        if (t == nullptr) {
          error(e, "'" + name + "' entries must be tables (domain, to)");
          continue;
        }
        DeliveryRoute r;
        r.line = e.source().begin.line;
        walk_table(*t, name + ".", {{"domain", text(r.domain, [](const std::string &v) -> const char * {
                                       if (v.empty() || v.size() > 255 || !printable_ascii(v, false))
                                         return "must be a domain, .domain or * (printable ASCII)";
                                       return nullptr;
                                     })},
                                    {"to", text(r.to, nullptr)}});
        if (r.domain.empty() || r.to.empty()) {
          error(e, "'" + name + "' needs 'domain' and 'to'");
          continue;
        }
        std::string why;
        if (!valid_route_target(r.to, why)) {
          error(e, "'" + name + ".to' \"" + r.to + "\": " + why);
          continue;
        }
        d.routes.push_back(std::move(r));
      }
    };
    return h;
  }

  // [state]: the shared key-value store (embedded, or Redis when 'redis' is set).
  Handlers state_handlers() {
    StateSettings &st = s_.state;
    Handlers h;
    h["redis"] = text(st.redis, [](const std::string &v) -> const char * {
      if (v.empty()) return nullptr;
      if (v.rfind("unix:", 0) == 0)
        return v.size() > 5 && v[5] == '/' && v.size() < 108 + 5
                   ? nullptr
                   : "must be \"host:port\", \"[ipv6]:port\" or \"unix:/absolute/path\"";
      Listen l;
      if (!parse_listen(v, l) || l.port == 0 || l.host == "0.0.0.0" || l.host == "::")
        return "must be \"host:port\", \"[ipv6]:port\" or \"unix:/absolute/path\"";
      return nullptr;
    });
    h["timeout"] = [this, &st](const toml::node &n, const std::string &name) {
      double x = 0;
      if (const auto *i = n.as_integer())
        x = static_cast<double>(i->get());
      else if (const auto *f = n.as_floating_point())
        x = f->get();
      if ((!n.as_integer() && !n.as_floating_point()) || !std::isfinite(x) || x < 0.001 || x > 60)
        return error(n, "'" + name + "' must be a number of seconds from 0.001 to 60");
      st.timeout = x;
    };
    h["password"] = text(st.password, [](const std::string &v) -> const char * {
      return v.size() > 512 || !printable_ascii(v, true) ? "must be printable ASCII (at most 512)"
                                                         : nullptr;
    });
    h["db"] = integer(st.db, 0, 65535);
    h["max_entries"] = integer(st.max_entries, 1, 100000000);
    return h;
  }

  void check_delivery() {
    if (s_.delivery.retry_max < s_.delivery.retry_min)
      errors_.emplace(retry_max_line_, "'delivery.retry_max' (" +
                                           std::to_string(static_cast<long long>(s_.delivery.retry_max)) +
                                           ") is smaller than 'delivery.retry_min' (" +
                                           std::to_string(static_cast<long long>(s_.delivery.retry_min)) +
                                           ")");
  }

  // destination "file" needs a file: the error names the destination's line.
  void check_log_file() {
    if (s_.log_destination != "file" || !s_.log_file.empty()) return;
    errors_.emplace(log_destination_line_,
                    "'log.destination' is \"file\" but 'log.file' is not set");
  }

  const std::string &file_;
  Settings &s_;
  uint32_t log_destination_line_ = 0;
  uint32_t retry_max_line_ = 0;
  uint32_t metrics_listen_line_ = 0;
  uint32_t tls_certificate_line_ = 0, tls_key_line_ = 0, sni_line_ = 0;
  std::multimap<uint32_t, std::string> need_certificate_;  // listeners that need [tls]
  std::multimap<uint32_t, std::string> errors_;  // line -> message
  bool listen_set_ = false;
  bool hostname_set_ = false;
};

void apply_defaults(Settings &s, bool hostname_set, bool listen_set) {
  if (!hostname_set) s.hostname = system_hostname();
  if (!listen_set) s.listen = {Listen{"127.0.0.1", 2525, true}};
}

}  // namespace

bool valid_route_target(const std::string &to, std::string &why) {
  if (to == "mx") return true;
  std::string rest;
  if (to.rfind("smtp:", 0) == 0)
    rest = to.substr(5);
  else if (to.rfind("lmtp:", 0) == 0)
    rest = to.substr(5);
  else {
    why = "must be mx, smtp:[host]:port, lmtp:[host]:port or lmtp:unix:/path";
    return false;
  }
  if (to.rfind("lmtp:unix:", 0) == 0) {
    if (to.size() > 10 && to[10] == '/' && to.size() < 10 + 108) return true;
    why = "lmtp:unix: needs an absolute socket path";
    return false;
  }
  std::string host = rest, port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close == 1) {
      why = "an unclosed or empty [host]";
      return false;
    }
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        why = "expected :port after [host]";
        return false;
      }
      port = rest.substr(close + 2);
    }
  } else if (size_t c = rest.rfind(':'); c != std::string::npos) {
    host = rest.substr(0, c);
    port = rest.substr(c + 1);
  }
  if (host.empty() || !printable_ascii(host, false)) {
    why = "needs a host";
    return false;
  }
  if (to.rfind("smtp:", 0) != 0 && to.rfind("lmtp:", 0) == 0 && port.empty()) {
    why = "lmtp needs a port (lmtp:[host]:port)";
    return false;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) == 0 || std::stoul(port) > 65535) {
      why = "the port must be 1 to 65535";
      return false;
    }
  }
  return true;
}

Settings default_settings() {
  Settings s;
  s.greeting = "ESMTP uvsmtpd";
  apply_defaults(s, false, false);
  return s;
}

bool load_settings(const std::string &path, Settings &out, std::string &err, bool missing_ok) {
  Settings s;
  s.greeting = "ESMTP uvsmtpd";
  std::string data;
  if (int e = slurp(path, data); e != 0) {
    if (e == ENOENT && missing_ok) {
      out = default_settings();
      return true;
    }
    err = path + ": cannot open: " + std::strerror(e);
    return false;
  }
  toml::table root;
  try {
    root = toml::parse(data, std::string_view(path));
  } catch (const toml::parse_error &e) {
    err = path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
    return false;
  }
  Loader loader(path, s);
  if (!loader.load(root, err)) return false;
  apply_defaults(s, loader.hostname_set(), loader.listen_set());
  out = std::move(s);
  return true;
}

bool parse_listen(const std::string &text, Listen &out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5) return false;
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return false;

  std::string canon;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    std::string inner = host.substr(1, host.size() - 2);
    unsigned char buf[16];
    if (inner.find(':') == std::string::npos) return false;
    if (inet_pton(AF_INET6, inner.c_str(), buf) != 1) return false;
    char text6[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, buf, text6, sizeof text6) == nullptr) return false;
    canon = text6;
  } else if (host == "*") {
    canon = "0.0.0.0";
  } else if (host == "localhost") {
    canon = "127.0.0.1";
  } else {
    unsigned char buf[4];
    if (host.find(':') != std::string::npos) return false;  // IPv6 needs brackets
    if (inet_pton(AF_INET, host.c_str(), buf) != 1) return false;
    canon = host;
  }
  Listen l;
  l.host = std::move(canon);
  l.port = static_cast<uint16_t>(port);
  out = std::move(l);
  return true;
}

}  // namespace uvs::config
