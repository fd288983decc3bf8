#!/usr/bin/env python3
# tests/integration/clients/passwd_login.py: SMTP AUTH as Python applications do it: smtplib's
# starttls() (RFC 3207), then login() (RFC 4954; smtplib picks PLAIN or LOGIN from the EHLO
# reply), then one message. Verifies the server against the test CA. Standard library only.
#
#   passwd_login.py --port N --cafile CA --user U --password P [--to ADDR] [--host 127.0.0.1]
#
# Prints "login <code> <text>" and, after a successful login, "data <code> <text>"; exits 0 if
# the login and the message were accepted.
import argparse
import smtplib
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--to", default="u@example.test")
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.cafile)
    s = smtplib.SMTP(a.host, a.port, timeout=a.timeout)
    s.ehlo("client.test")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    if not s.has_extn("auth"):
        print("AUTH not advertised under TLS")
        return 1
    try:
        code, text = s.login(a.user, a.password)
    except smtplib.SMTPAuthenticationError as e:
        code, text = e.smtp_code, e.smtp_error
    print("login %d %s" % (code, text.decode("utf-8", "replace")))
    if code != 235:
        s.quit()
        return 1
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: smtplib login\r\n\r\nhello\r\n" % (
        "a@client.test", a.to)).encode()
    code, text = s.mail("a@client.test")
    if code == 250:
        code, text = s.rcpt(a.to)
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
