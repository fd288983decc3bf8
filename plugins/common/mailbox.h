/* plugins/common/mailbox.h: what a local mailbox may be called: the Maildir-safe local part
 * (quoted local parts unquoted, as Postfix does), the storable domain, own address literals.
 * Shared by queue/maildir, rcpt_map and rcpt_ok, so what one accepts the others can store. */
#ifndef UVS_PLUGINS_COMMON_MAILBOX_H
#define UVS_PLUGINS_COMMON_MAILBOX_H

#include <stddef.h>

/* The local part (as written in RCPT, quotes included) as it is stored: a quoted local part
 * loses its quotes and backslashes. The result must be [-A-Za-z0-9+_.,=] only, 1..255
 * bytes, with no leading '.' and no "..". Writes it to out (cap >= 256) and returns its
 * length, or -1 when it cannot be stored. */
int mb_local(const char *local, size_t n, char *out, size_t cap);

/* Does s (n bytes, not quoted) pass mb_local unchanged and is it also an unquoted RFC 5321
 * dot-string (RFC 5321 4.1.2: atoms of atext joined by single dots)? That is: letters, digits
 * and -+_= in atoms separated by single '.' (no leading, trailing or double '.'; no ','). The
 * form of a local name that can be written back into an address without quotes. */
int mb_dot_string(const char *s, size_t n);

/* ASCII lower case (the locale plays no part). */
char mb_lower(char c);

/* Printable copy of s for log lines and replies: at most 200 bytes (and cap - 1), every byte
 * outside printable ASCII as '?'. */
void mb_printable(char *out, size_t cap, const char *s);

/* Sender-specified routing in a local part: %, ! or @, quoted or not (percent hack, bang
 * path, quoted address). rcpt_ok refuses these as relaying attempts; the others leave them
 * to it rather than answer "unknown" or "cannot store". */
int mb_has_routing(const char *local, size_t n);

/* A domain as a path component, already lower-cased: [-a-z0-9_.], no leading '.', no "..". */
int mb_domain_ok(const char *s, size_t n);

/* The domain part of a local mailbox as queue/maildir stores it: domain (NULL for a bare
 * "postmaster") lower-cased; me instead when domain is NULL or an address literal that is a
 * local domain (local_literal), without the trailing '.' a hostname may be written with.
 * Writes it to out and returns its length, or -1 when mb_domain_ok refuses it (a non-ASCII
 * domain, an address literal that is not local) or it does not fit. */
int mb_store_domain(const char *domain, const char *me, int local_literal, char *out, size_t cap);

/* Does the address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") name this IP ("127.0.0.1",
 * "::1", as the server prints it)? Both parsed by ipnet.h: an IPv4-mapped IP is its IPv4
 * address, an IPv4-mapped IPv6 literal is not the IPv4 literal. 1 or 0. */
int mb_literal_is_ip(const char *domain, const char *ip);

#endif
