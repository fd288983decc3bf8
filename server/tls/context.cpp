// tls/context.cpp: builds the server SSL_CTX objects from [tls]: files checked (readable, PEM,
// key matching the certificate), protocol/cipher policy, SNI selection, ticket keys and the
// optional client-certificate request.
#include "tls/context.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/ssl_error.hpp"
#include "tls/ticket_keys.hpp"

namespace uvs::tls {

namespace {

std::string lower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool readable(const std::string &path, std::string &err) {
  FILE *f = std::fopen(path.c_str(), "r");
  if (!f) {
    err = "tls: " + path + ": " + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

// Client certificates are asked for, never required: the chain's verification result is
// recorded (SSL_get_verify_result) and the handshake goes on.
int accept_any(int, X509_STORE_CTX *) {
  return 1;
}

// The certificate's DNS names: subjectAltName dNSName entries, or the subject CN when the
// certificate has none (lower case).
std::vector<std::string> dns_names(X509 *x) {
  std::vector<std::string> out;
  if (!x) return out;
  auto *gens =
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (gens) {
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
      const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
      if (g->type != GEN_DNS) continue;
      const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
      int n = ASN1_STRING_length(g->d.dNSName);
      if (d && n > 0) out.push_back(lower(std::string(reinterpret_cast<const char *>(d), n)));
    }
    GENERAL_NAMES_free(gens);
  }
  if (out.empty()) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    if (n > 0) out.push_back(lower(std::string(cn, n)));
  }
  return out;
}

bool wildcard_match(const std::string &pattern, const std::string &name) {
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return false;
  std::string_view suffix(pattern.data() + 1, pattern.size() - 1);  // ".example.org"
  if (name.size() <= suffix.size()) return false;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  std::string_view label(name.data(), name.size() - suffix.size());
  return label.find('.') == std::string_view::npos;  // exactly one label
}

SSL_CTX *build_ctx(const config::TlsSettings &s, const std::string &cert, const std::string &key,
                   TicketKeys &keys, std::string &err) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    err = "tls: cannot create a context: " + take_ssl_error("out of memory");
    return nullptr;
  }
  auto fail = [&](std::string msg) {
    err = std::move(msg);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return nullptr;
  };
  int min = 0;
  if (s.min_protocol == "TLSv1.2")
    min = TLS1_2_VERSION;
  else if (s.min_protocol == "TLSv1.3")
    min = TLS1_3_VERSION;
  else
    return fail("tls: min_protocol: \"" + s.min_protocol + "\" is not TLSv1.2 or TLSv1.3");
  SSL_CTX_set_min_proto_version(ctx, min);

  // The server's order of `ciphers` and `ciphersuites` decides, not the client's (testssl.sh
  // flags a server that leaves the choice to the client).
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (!s.session_tickets) opts |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(ctx, opts);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

  if (SSL_CTX_set_cipher_list(ctx, s.ciphers.c_str()) != 1)
    return fail("tls: ciphers: no usable cipher in \"" + s.ciphers + "\"");
  if (SSL_CTX_set_ciphersuites(ctx, s.ciphersuites.c_str()) != 1)
    return fail("tls: ciphersuites: no usable suite in \"" + s.ciphersuites + "\"");
  if (SSL_CTX_set1_groups_list(ctx, s.groups.c_str()) != 1)
    return fail("tls: groups: unknown group in \"" + s.groups + "\"");
  SSL_CTX_set_dh_auto(ctx, 1);  // RFC 7919 groups for the DHE suites

  // No server-side session cache: resumption only by tickets, which the server keeps no
  // state for. A ticket is accepted for one key lifetime (then its key may be gone).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char sid_ctx[] = "uvsmtpd";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  SSL_CTX_set_timeout(ctx, keys.lifetime());
  SSL_CTX_set_num_tickets(ctx, s.session_tickets ? 1 : 0);
  if (s.session_tickets) keys.install(ctx);

  if (!readable(cert, err)) return fail(err);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
    return fail("tls: " + cert + ": " + take_ssl_error("cannot load the certificate chain"));
  if (key.empty()) return fail("tls: " + cert + ": no key file given for this certificate");
  if (!readable(key, err)) return fail(err);
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL compares the pair here already when the key types agree ("key values mismatch").
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                           ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)) {
      ERR_clear_error();
      return fail("tls: " + key + ": key does not match certificate " + cert);
    }
    return fail("tls: " + key + ": " + take_ssl_error("cannot load the private key"));
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("tls: " + key + ": key does not match certificate " + cert);

  if (s.client_certificates == "request") {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    if (!s.client_ca.empty()) {
      if (!readable(s.client_ca, err)) return fail(err);
      if (SSL_CTX_load_verify_locations(ctx, s.client_ca.c_str(), nullptr) != 1)
        return fail("tls: " + s.client_ca + ": " + take_ssl_error("cannot load the CA bundle"));
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s.client_ca.c_str());
      if (names) SSL_CTX_set_client_CA_list(ctx, names);
    }
  } else if (s.client_certificates != "none") {
    return fail("tls: client_certificates: \"" + s.client_certificates +
                "\" is not none or request");
  }
  ERR_clear_error();
  return ctx;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::load(const config::TlsSettings &settings, std::string &err,
                                             std::shared_ptr<TicketKeys> keys) {
  if (settings.certificate.empty()) {
    err = "tls: no certificate given";
    return nullptr;
  }
  if (!keys)
    keys = std::make_shared<TicketKeys>(settings.ticket_key_lifetime);
  else
    keys->set_lifetime(settings.ticket_key_lifetime);
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->settings_ = settings;
  c->keys_ = keys;
  c->default_.ctx = build_ctx(settings, settings.certificate, settings.key, *keys, err);
  if (!c->default_.ctx) return nullptr;
  c->default_.names = dns_names(SSL_CTX_get0_certificate(c->default_.ctx));
  for (const config::SniPair &p : settings.sni) {
    Pair pair;
    pair.ctx = build_ctx(settings, p.certificate, p.key, *keys, err);
    if (!pair.ctx) return nullptr;  // the pairs built so far are freed with c
    c->sni_.push_back(pair);
    Pair &added = c->sni_.back();
    for (const std::string &n : p.names) {
      std::string l = lower(n);
      if (!l.empty() && l.back() == '.') l.pop_back();
      if (l.empty() ||
          (l.find('*') != std::string::npos && !wildcard_match(l, "x" + l.substr(1)))) {
        err = "tls: " + p.certificate + ": name \"" + n +
              "\" is not a host name or a *.domain wildcard";
        return nullptr;
      }
      added.names.push_back(l);
    }
    if (added.names.empty()) added.names = dns_names(SSL_CTX_get0_certificate(added.ctx));
    if (added.names.empty()) {
      err = "tls: " + p.certificate + ": the certificate has no DNS names; give names";
      return nullptr;
    }
  }
  SSL_CTX_set_tlsext_servername_callback(c->default_.ctx, &TlsContext::servername_cb);
  SSL_CTX_set_tlsext_servername_arg(c->default_.ctx, c.get());
  err.clear();
  return c;
}

TlsContext::~TlsContext() {
  for (Pair &p : sni_) SSL_CTX_free(p.ctx);
  SSL_CTX_free(default_.ctx);
}

SSL_CTX *TlsContext::ctx_for_name(const std::string &sni) const {
  std::string name = lower(sni);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty() || sni_.empty()) return default_.ctx;
  for (const std::string &n : default_.names)
    if (n == name) return default_.ctx;
  for (const Pair &p : sni_)
    for (const std::string &n : p.names)
      if (n == name) return p.ctx;
  for (const std::string &n : default_.names)
    if (wildcard_match(n, name)) return default_.ctx;
  for (const Pair &p : sni_)
    for (const std::string &n : p.names)
      if (wildcard_match(n, name)) return p.ctx;
  return default_.ctx;
}

std::vector<std::vector<std::string>> TlsContext::names() const {
  std::vector<std::vector<std::string>> out{default_.names};
  for (const Pair &p : sni_) out.push_back(p.names);
  return out;
}

int TlsContext::servername_cb(SSL *ssl, int *, void *arg) {
  auto *self = static_cast<const TlsContext *>(arg);
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  SSL_CTX *want = self->ctx_for_name(name);
  if (want != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, want);
  return SSL_TLSEXT_ERR_OK;  // an unknown name gets the default certificate
}

std::vector<std::pair<std::string, time_t>> TlsContext::expiries() const {
  std::vector<std::pair<std::string, time_t>> out;
  auto add = [&out](SSL_CTX *ctx, const std::string &file) {
    X509 *leaf = ctx ? SSL_CTX_get0_certificate(ctx) : nullptr;
    std::tm tm{};
    if (!leaf || ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1) return;
    out.emplace_back(file, timegm(&tm));
  };
  add(default_.ctx, settings_.certificate);
  for (size_t i = 0; i < sni_.size() && i < settings_.sni.size(); ++i)
    add(sni_[i].ctx, settings_.sni[i].certificate);
  return out;
}

}  // namespace uvs::tls
