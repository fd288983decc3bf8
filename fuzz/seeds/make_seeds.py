#!/usr/bin/env python3
"""fuzz/seeds/make_seeds.py: writes the hand-written seed inputs into fuzz/corpus/<target>/.

Seeds are named 'seed-*'; inputs found by fuzzing and kept are named 'found-*' and are not
touched. Run from anywhere: python3 fuzz/seeds/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, '..', 'corpus')


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


# ---- command: one command line without its CRLF ----
commands = {
    'ehlo': 'EHLO mx.example.org',
    'helo-literal': 'HELO [192.0.2.1]',
    'mail-size-body': 'MAIL FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME',
    'mail-null': 'mail from:<>',
    'mail-space': 'MAIL FROM: <alice@example.org>',
    'mail-route': 'MAIL FROM:<@relay.example,@b.example:user@example.org>',
    'mail-quoted': 'MAIL FROM:<"john q. public"@example.org>',
    'mail-utf8': 'MAIL FROM:<jöran@bücher.example> SMTPUTF8',
    'rcpt-dsn': 'RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net',
    'rcpt-postmaster': 'RCPT TO:<Postmaster>',
    'rcpt-v6': 'RCPT TO:<user@[IPv6:2001:db8::1]>',
    'data': 'DATA',
    'rset': 'RSET',
    'noop-arg': 'NOOP   ignored   ',
    'vrfy': 'VRFY postmaster',
    'help': 'HELP',
    'quit': 'QUIT',
    'starttls': 'STARTTLS',
    'auth': 'AUTH PLAIN AGFsaWNlAHNlY3JldA==',
    'bdat': 'BDAT 100 LAST',
    'long-verb': 'ABCDEFGHIJKLM x',
    'http': 'GET / HTTP/1.1',
    'tab': 'EHLO\tx',
    'empty': '',
    'spaces': '   ',
}
for k, v in commands.items():
    put('command', k, v)
put('command', 'overlong-utf8', b'MAIL FROM:<\xc0\xaf@example.org>')
put('command', 'surrogate', b'HELO \xed\xa0\x80')
put('command', 'nul', b'MAIL FROM:<a\x00@example.org>')
put('command', 'del', b'NOOP \x7f')
put('command', 'emoji', 'HELO 😀.example')
put('command', 'truncated-utf8', b'HELO \xe2\x82')

# ---- address: the argument after MAIL / RCPT ----
addresses = {
    'from': 'FROM:<alice@example.org>',
    'from-null': 'FROM:<>',
    'from-space': 'from: <alice@example.org>',
    'from-params': 'FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159',
    'from-auth': 'FROM:<a@b.example> AUTH=<>',
    'from-route': 'FROM:<@a.example,@b.example:c@d.example>',
    'from-quoted': 'FROM:<"a\\"b c"@example.org>',
    'from-quoted-gt': 'FROM:<"a>b"@example.org> SIZE=1',
    'from-literal4': 'FROM:<a@[127.0.0.1]>',
    'from-literal6': 'FROM:<a@[IPv6:2001:db8::1]>',
    'from-utf8': 'FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8',
    'to': 'TO:<bob@example.net>',
    'to-postmaster': 'TO:<postmaster>',
    'to-null': 'TO:<>',
    'to-dsn': 'TO:<bob@example.net> NOTIFY=NEVER ORCPT=rfc822;bob@example.net',
    'dup-param': 'FROM:<a@b.example> SIZE=1 size=2',
    'no-space-param': 'FROM:<a@b.example>SIZE=1',
    'bad-keyword': 'FROM:<a@b.example> -X=1',
    'empty-value': 'FROM:<a@b.example> SIZE=',
    'no-brackets': 'FROM:a@b.example',
    'unclosed': 'FROM:<a@b.example',
    'double-dot': 'TO:<a..b@example.org>',
    'hyphen-label': 'TO:<a@-b.example>',
    'trailing-dot': 'TO:<a@b.example.>',
    'local-64': 'FROM:<' + 'l' * 64 + '@example.org>',
    'local-65': 'FROM:<' + 'l' * 65 + '@example.org>',
    'label-64': 'FROM:<a@' + 'd' * 64 + '.example>',
    'domain-255': 'TO:<a@' + '.'.join(['d' * 63] * 4)[:255] + '>',
    'path-257': 'TO:<' + 'l' * 64 + '@' + '.'.join(['d' * 60] * 4) + '.example>',
    'bad-ipv4': 'FROM:<a@[256.1.1.1]>',
    'route-only': 'FROM:<@a.example:>',
}
for k, v in addresses.items():
    put('address', k, v)
put('address', 'crlf-inside', b'FROM:<a\r\n@b.example>')
put('address', 'nul-quoted', b'FROM:<"a\x00b"@b.example>')
put('address', 'latin1', b'FROM:<j\xf6ran@example.org>')
# Parameter lists: a duplicate found only at the end of a long list, and which of a duplicate and
# a malformed parameter is reported (the first in line order).
put('address', 'late-dup', 'FROM:<a@b.example> ' + ' '.join('K%x' % i for i in range(40)) + ' k3')
put('address', 'dup-before-bad', 'FROM:<a@b.example> X Y x =1')
put('address', 'bad-before-dup', 'FROM:<a@b.example> X =1 x')


# ---- data_reader: flags, [size byte], segmentation, stream ----
def data_seed(stream, normalize=False, size_mode=0, size_byte=0, splits=(1,)):
    flags = (1 if normalize else 0) | (size_mode << 1)
    head = bytes([flags])
    if size_mode in (1, 2):
        head += bytes([size_byte])
    head += bytes([len(splits) - 1]) + bytes(splits)
    return head + (stream.encode() if isinstance(stream, str) else stream)


msg = 'From: a@b.example\r\nSubject: hi\r\n\r\nbody line\r\n..stuffed\r\n.\r\n'
put('data_reader', 'basic', data_seed(msg, splits=(7,)))
put('data_reader', 'basic-bytewise', data_seed(msg, splits=(1,)))
put('data_reader', 'basic-normalize', data_seed(msg, normalize=True, splits=(3, 5)))
put('data_reader', 'empty-message', data_seed('.\r\n'))
put('data_reader', 'no-headers', data_seed('\r\n.\r\n', splits=(2,)))
put('data_reader', 'dot-lines', data_seed('a\r\n.\r\n', splits=(0, 1)))
put('data_reader', 'stuffed', data_seed('..\r\n...x\r\n. \r\n.\r\n', splits=(4,)))
put('data_reader', 'size-limit', data_seed(msg, size_mode=1, size_byte=20, splits=(9,)))
put('data_reader', 'size-limit-16', data_seed(msg * 3, size_mode=2, size_byte=2, splits=(33,)))
put('data_reader', 'unterminated', data_seed('Subject: x\r\n\r\nbody\r\n.', splits=(3,)))
put('data_reader', 'pending-cr', data_seed('Subject: x\r\n\r\nbody\r', splits=(64,)))
# SMTP smuggling: every near-miss end of data, then a smuggled command, then the real end.
smuggle = {
    'lf-dot-lf': '\n.\n',
    'lf-dot-crlf': '\n.\r\n',
    'crlf-dot-lf': '\r\n.\n',
    'cr-dot-cr': '\r.\r',
    'cr-dot-crlf': '\r.\r\n',
    'crlf-dot-cr': '\r\n.\r',
    'crlf-dot-cr-lf-split': '\r\n.\r',
    'crlf-nul-dot': '\r\n\x00.\r\n',
    'crlf-sp-dot': '\r\n .\r\n',
    'crlf-dot-sp': '\r\n. \r\n',
}
for k, seq in smuggle.items():
    s = 'Subject: x\r\n\r\nbody' + seq + 'MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<v@victim.example>\r\nDATA\r\nforged\r\n.\r\n'
    put('data_reader', 'smuggle-' + k, data_seed(s, splits=(5, 1, 2)))
    put('data_reader', 'smuggle-' + k + '-normalize', data_seed(s, normalize=True, splits=(1,)))
put('data_reader', 'bare-lf-headers', data_seed('Subject: x\n\nbody\n.\r\n.\n\r\n.\r\n', normalize=True, splits=(2, 3)))
put('data_reader', 'bare-cr-data', data_seed('a\rb\r\r\n.\r\r\n.\r\n', normalize=True, splits=(1, 2)))
put('data_reader', 'bare-cr-reject', data_seed('a\rb\r\n.\r\n', splits=(1,)))
put('data_reader', 'bare-lf-reject', data_seed('Subject: x\r\n\nbody\r\n.\r\n', splits=(2,)))
put('data_reader', 'binary', data_seed(bytes(range(256)) + b'\r\n.\r\n', normalize=True, splits=(0, 17)))
# Runs of ordinary lines (the reader's memchr fast path) broken by a dot line, an empty line, a
# bare CR and a bare LF, cut in packet-sized pieces; and a size limit inside a run.
runs = 'H: v\r\n\r\n' + ''.join('line %d of text\r\n' % i for i in range(30))
runs_odd = runs + '..dot\r\n\r\nmid\rcr\r\nmid\nlf\r\n' + runs[9:] + '.\r\n'
put('data_reader', 'plain-runs', data_seed(runs + '\r\n' + runs[9:] + '.\r\n', splits=(64, 63, 17)))
put('data_reader', 'plain-runs-normalize', data_seed(runs_odd, normalize=True, splits=(64, 1, 40)))
put('data_reader', 'plain-runs-reject-bare-cr', data_seed(runs_odd, splits=(64, 64, 64)))
put('data_reader', 'plain-runs-limit', data_seed(runs + '.\r\n', size_mode=2, size_byte=20, splits=(64,)))


# ---- line_reader: flags (policy, data mode, limit), segmentation, client stream ----
def line_seed(stream, normalize=False, data=True, limit_mode=0, limit_byte=0, splits=(1,)):
    flags = (1 if normalize else 0) | (2 if data else 0) | (limit_mode << 2)
    head = bytes([flags])
    if limit_mode in (2, 3):
        head += bytes([limit_byte])
    head += bytes([len(splits) - 1]) + bytes(splits)
    return head + (stream.encode() if isinstance(stream, str) else stream)


session = ('EHLO client.example\r\nMAIL FROM:<a@b.example> SIZE=40\r\nRCPT TO:<c@d.example>\r\n'
           'DATA\r\nSubject: hi\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n')
put('line_reader', 'session', line_seed(session, splits=(13,)))
put('line_reader', 'session-bytewise', line_seed(session, splits=(1,)))
put('line_reader', 'session-normalize', line_seed(session.replace('\r\n', '\n'), normalize=True, splits=(4, 9)))
put('line_reader', 'pipelined-two-messages', line_seed(session.replace('QUIT', 'MAIL FROM:<>\r\nRCPT TO:<e@f.example>\r\nDATA\r\nx\r\n.\r\nQUIT'), splits=(64,)))
for k, seq in smuggle.items():
    s = ('EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n\r\nbody' + seq +
         'MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<v@victim.example>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n')
    put('line_reader', 'smuggle-' + k, line_seed(s, splits=(7, 1)))
    put('line_reader', 'smuggle-' + k + '-normalize', line_seed(s, normalize=True, splits=(3,)))
put('line_reader', 'long-line', line_seed('NOOP ' + 'x' * 100 + '\r\nNOOP\r\n', data=False, limit_mode=1, splits=(10,)))
put('line_reader', 'long-line-crlf-split', line_seed('NOOP ' + 'x' * 57 + '\r\nQUIT\r\n', data=False, limit_mode=1, splits=(62, 1)))
put('line_reader', 'tiny-limit', line_seed('a\r\n\r\nab\r\n', data=False, limit_mode=3, limit_byte=3, splits=(1,)))
put('line_reader', 'zero-limit', line_seed('\r\nx\r\n', data=False, limit_mode=3, limit_byte=0, splits=(1,)))
put('line_reader', 'bare-crs-at-limit', line_seed('NOOP ' + 'x\r' * 30 + 'y\r\nNOOP\r\n', normalize=True, data=False, limit_mode=1, splits=(61, 2)))
put('line_reader', 'discard-bare-cr', line_seed('NOOP ' + 'x' * 70 + '\rmore\r\nQUIT\r\n', data=False, limit_mode=1, splits=(5,)))
put('line_reader', 'bare-lf-command', line_seed('EHLO x\nQUIT\r\n', data=False, splits=(3,)))
put('line_reader', 'bare-cr-command', line_seed('EHLO x\rQUIT\r\n', data=False, splits=(3,)))
put('line_reader', 'data-bare-lf-normalize', line_seed('DATA\n.\r\nQUIT\r\n', normalize=True, splits=(2,)))
put('line_reader', 'data-lowercase', line_seed('data\r\n.\r\nDaTa\r\nx\r\n.\r\n', splits=(1,)))

# ---- plugin_lines: main file, NUL, include text ----
qp = ('# conf/plugins\n'
      'hosts_allow\n'
      'earlytalker:0   wait 2\n'
      'earlytalker:1\tcheck-at DATA wait 1\n'
      'count_unrecognized_commands 4\n'
      'dnsbl disconnect zen.spamhaus.org\n'
      'relay\n'
      'rcpt_ok\n'
      'helo policy strict # not a comment\n'
      'queue/maildir   var/mail\n')
put('plugin_lines', 'qpsmtpd', qp)
put('plugin_lines', 'crlf', qp.replace('\n', '\r\n'))
put('plugin_lines', 'include-file', 'hosts_allow\n$include extra\nrcpt_ok\n\0dnsbl\nrelay\n')
put('plugin_lines', 'include-dir', 'hosts_allow\n$include plugins.d\n\0earlytalker wait 1\n')
put('plugin_lines', 'include-dotslash', '$include ./extra\n\0rcpt_ok\n')
put('plugin_lines', 'include-cycle', '$include extra\n\0$include plugins.d/10-extra\n')
put('plugin_lines', 'include-dir-cycle', '$include plugins.d\n\0$include plugins.d\n')
put('plugin_lines', 'include-self', '$include plugins\n')
put('plugin_lines', 'include-twice-dup', '$include extra\n$include extra\n\0a\n')
put('plugin_lines', 'include-hidden', '$include plugins.d/.hidden\n')
put('plugin_lines', 'include-sub', '$include plugins.d/sub\n')
put('plugin_lines', 'include-missing', '$include nothere\n')
put('plugin_lines', 'include-empty', '$include\n')
put('plugin_lines', 'include-spaces', '$include   extra  \t\n\0x\n')
put('plugin_lines', 'duplicate', 'a\nb\na\n')
put('plugin_lines', 'instances', 'a:1\na:2\na\na:0123456789\n')
put('plugin_lines', 'bad-names', 'a/../b\n')
put('plugin_lines', 'bad-colon', 'a:\n')
put('plugin_lines', 'bad-slash', '/a\n')
put('plugin_lines', 'control', b'a\x01b\n')
put('plugin_lines', 'non-ascii', b'caf\xc3\xa9\n')
put('plugin_lines', 'comment-only', '   # x\n\t#\n\n')

# ---- settings: uvsmtpd.toml ----
with open(os.path.join(HERE, '..', '..', 'conf', 'uvsmtpd.toml'), 'rb') as f:
    put('settings', 'shipped', f.read())
toml = {
    'empty': '',
    'minimal': 'hostname = "mx.example.org"\n',
    'listen-tables': '[[listen]]\naddress = "[::1]:2525"\nsync_check = false\n[[listen]]\naddress = "*:0"\n',
    'listen-dup': 'listen = ["127.0.0.1:25", "127.0.0.1:25"]\n',
    'listen-bad': 'listen = ["::1:25", "1.2.3:4", "localhost:65536"]\n',
    'listen-empty': 'listen = []\n',
    'unknown-key': 'hostname = "x"\nfoo = 1\n',
    'wrong-type': 'max_connections = "10"\n',
    'negative': 'max_errors = -1\n',
    'range': 'max_line_length = 63\nmax_recipients = 0\n',
    'big-int': 'max_message_size = 9223372036854775807\nmax_connections = 4294967296\n',
    'seconds': '[timeouts]\ncommand = 1e9\ndata = 0.5\n',
    'seconds-bad': 'hook_timeout = inf\nshutdown_grace = nan\n[timeouts]\ncommand = 0\ndata = 1e10\n',
    'log': '[log]\nlevel = "debug"\nformat = "json"\n',
    'log-bad': '[log]\nlevel = "verbose"\nformat = 1\n',
    'dns': '[dns]\nservers = ["192.0.2.53", "192.0.2.54:5353", "2001:db8::53", "[2001:db8::1]:53"]\ntimeout = 2\nreverse_lookup = false\nreverse_timeout = 1.5\n',
    'dns-bad': '[dns]\nservers = ["x", 1]\nnope = 1\n',
    'bare-newline': '[bare_newline]\npolicy = "normalize"\nnormalize_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]\n',
    'bare-newline-bad': '[bare_newline]\npolicy = "maybe"\nnormalize_networks = ["10.0.0.0/33"]\n',
    'hostname-bad': 'hostname = "has space"\ngreeting = "tab\\there"\n',
    'table-as-value': 'timeouts = 5\nlog = []\n',
    'dotted': 'timeouts.command = 10\nlog.level = "err"\n',
    'inline-table': 'dns = { timeout = 3, servers = [] }\n',
    'syntax-error': 'hostname = \n',
    'bad-header': '[#]\n[[[1]]]\n',
    'crlf': 'hostname = "x"\r\nmax_errors = 3\r\n',
    'tls': '[[listen]]\naddress = "*:465"\ntls = "implicit"\n[[listen]]\naddress = "*:587"\nrequire_tls = true\n[timeouts]\ntls_handshake = 10\n[tls]\ncertificate = "c.pem"\nkey = "k.pem"\nmin_protocol = "TLSv1.3"\nciphers = "ECDHE-RSA-AES128-GCM-SHA256"\nciphersuites = "TLS_AES_128_GCM_SHA256"\ngroups = "X25519"\nsession_tickets = false\nticket_key_lifetime = 60\nclient_certificates = "request"\nclient_ca = "ca.pem"\nwatch = false\n[[tls.sni]]\ncertificate = "o.pem"\nkey = "o.key"\nnames = ["mail.example.net"]\n',
    'tls-bad': '[[listen]]\naddress = "*:465"\ntls = "ssl"\nrequire_tls = 1\n[tls]\nkey = "k.pem"\nmin_protocol = "TLSv1.1"\nticket_key_lifetime = 0\nsni = [{ certificate = "" }, 5]\n',
    'strings': 'spool_dir = \'\'\'\nmulti\'\'\'\nplugin_dir = "\\u00e9"\nuser = "mail"\ngroup = ""\n',
}
for k, v in toml.items():
    put('settings', k, v)

# settings: [metrics]
toml_metrics = {
    'metrics': '[metrics]\nlisten = "127.0.0.1:9101"\n',
    'metrics-remote': '[metrics]\nlisten = "0.0.0.0:9101"\nallow_remote = true\n',
    'metrics-bad': '[metrics]\nlisten = "[2001:db8::1]:9101"\nallow_remote = 1\nport = 2\n',
}
for k, v in toml_metrics.items():
    put('settings', k, v)

# ---- metrics: a request head and an exposition at once ----
metrics = {
    'get': 'GET /metrics HTTP/1.1\r\nHost: localhost:9101\r\nAccept: */*\r\n\r\n',
    'head-10': 'HEAD /metrics?x=1 HTTP/1.0\n\n',
    'post': 'POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab',
    'version': 'GET /metrics HTTP/2.0\r\n\r\n',
    'headers-bad': 'GET / HTTP/1.1\r\n folded\r\nBad Name: x\r\n\r\n',
    'exposition': ('# HELP c_total Things.\n# TYPE c_total counter\n'
                   'c_total{a="1",b="x\\"y\\\\z\\n"} 3\nc_total{b="2",a="1"} 1 1700000000\n'
                   '# TYPE g gauge\ng -1.5e-3\ng NaN\n'
                   '# HELP h Time.\n# TYPE h histogram\n'
                   'h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n'
                   'h_bucket{p="a",le="+Inf"} 1\n# comment\nuntyped{x="y",} +Inf\n'),
    'exposition-bad': 'm{a="1",a="2"} 1\nm{a="1} 1\n9x 1\nm 1 2 3\n# TYPE\n# HELP m\nm{} 1\n',
}
for k, v in metrics.items():
    put('metrics', k, v)
print('seeds written under', os.path.normpath(CORPUS))
