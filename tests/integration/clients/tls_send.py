#!/usr/bin/env python3
# tests/integration/clients/tls_send.py: one message over TLS with Python's smtplib, as scripts
# and applications do it: SMTP + starttls() (RFC 3207) or SMTP_SSL (implicit TLS, RFC 8314),
# verifying the server against the test CA. Standard library only.
#
#   tls_send.py --port N --mode starttls|ssl --cafile CA [--host 127.0.0.1]
#
# Prints "tls <version> <cipher>" and "data <code> <text>"; exits 0 if the message was accepted.
import argparse
import smtplib
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["starttls", "ssl"], required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.cafile)  # verifies the chain and the host name/IP
    if a.mode == "ssl":
        s = smtplib.SMTP_SSL(a.host, a.port, timeout=a.timeout, context=ctx)
    else:
        s = smtplib.SMTP(a.host, a.port, timeout=a.timeout)
        s.ehlo("client.test")
        if not s.has_extn("starttls"):
            print("STARTTLS not advertised")
            return 1
        s.starttls(context=ctx)
    s.ehlo("client.test")
    if s.has_extn("starttls"):
        print("STARTTLS advertised under TLS")
        return 1
    print("tls %s %s" % (s.sock.version(), s.sock.cipher()[0]))
    msg = b"From: <a@client.test>\r\nTo: <u@example.test>\r\nSubject: smtplib over TLS\r\n\r\nhello\r\n"
    code, text = s.mail("a@client.test")
    if code == 250:
        code, text = s.rcpt("u@example.test")
    if code == 250:
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
    print("data %d %s" % (code, text.decode("utf-8", "replace")))
    s.quit()
    return 0 if code == 250 else 1


if __name__ == "__main__":
    sys.exit(main())
