/* plugins/common/mailbox.h: what a local mailbox may be called: the Maildir-safe local part
 * (quoted local parts unquoted, as Postfix does), the storable domain, address literals parsed.
 * Shared by queue/maildir, rcpt_map and rcpt_ok, so what one accepts the others can store. */
#ifndef UVS_PLUGINS_COMMON_MAILBOX_H
#define UVS_PLUGINS_COMMON_MAILBOX_H

#include <stddef.h>

/* The local part (as written in RCPT, quotes included) as it is stored: a quoted local part
 * loses its quotes and backslashes. The result must be [-A-Za-z0-9+_.,=] only, 1..255
 * bytes, with no leading '.' and no "..". Writes it to out (cap >= 256) and returns its
 * length, or -1 when it cannot be stored. */
int mb_local(const char *local, size_t n, char *out, size_t cap);

/* Sender-specified routing in a local part: %, ! or @, quoted or not (percent hack, bang
 * path, quoted address). rcpt_ok refuses these as relaying attempts; the others leave them
 * to it rather than answer "unknown" or "cannot store". */
int mb_has_routing(const char *local, size_t n);

/* A domain as a path component, already lower-cased: [-a-z0-9_.], no leading '.', no "..". */
int mb_domain_ok(const char *s, size_t n);

/* Address literals: "[192.0.2.1]" or "[IPv6:2001:db8::1]" (tag case-insensitive). Fills
 * *family (AF_INET/AF_INET6) and addr (16 bytes) and returns 1; 0 if not such a literal. */
int mb_literal(const char *domain, int *family, unsigned char addr[16]);

/* An IP address as the server prints it ("127.0.0.1", "::1"; an IPv4-mapped IPv6 address
 * counts as its IPv4 address). Same results as mb_literal. */
int mb_ip(const char *ip, int *family, unsigned char addr[16]);

/* Does the literal name this IP (both parsed)? */
int mb_literal_is_ip(const char *domain, const char *ip);

#endif
