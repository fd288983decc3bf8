#!/usr/bin/env python3
# tests/integration/clients/auth_send.py: SMTP AUTH as scripts and applications do it with
# Python's smtplib: starttls() (RFC 3207) or SMTP_SSL (RFC 8314), then login() (RFC 4954),
# verifying the server against the test CA, then one message to a foreign domain (relaying is
# what AUTH is for). Standard library only.
#
#   auth_send.py --port N --mode starttls|ssl --cafile CA --user U --password P
#                [--mech auto|PLAIN|LOGIN] [--to ADDR]
#
# Prints "auth <code> <text>" (or "auth failed <code> <text>") and "data <code> <text>"; exits 0
# if the login succeeded and the message was accepted.
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
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--mech", default="auto")
    ap.add_argument("--to", default="someone@elsewhere.example")
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.cafile)
    if a.mode == "ssl":
        s = smtplib.SMTP_SSL(a.host, a.port, timeout=a.timeout, context=ctx)
    else:
        s = smtplib.SMTP(a.host, a.port, timeout=a.timeout)
        s.ehlo("client.test")
        if s.has_extn("auth"):
            print("AUTH advertised before TLS")
            return 1
        s.starttls(context=ctx)
    s.ehlo("client.test")
    try:
        if a.mech == "auto":
            code, text = s.login(a.user, a.password)
        else:
            s.user, s.password = a.user, a.password
            auth_fn = s.auth_plain if a.mech == "PLAIN" else s.auth_login
            code, text = s.auth(a.mech, auth_fn, initial_response_ok=(a.mech == "PLAIN"))
    except smtplib.SMTPAuthenticationError as e:
        print("auth failed %d %s" % (e.smtp_code, e.smtp_error.decode("utf-8", "replace")))
        s.quit()
        return 1
    print("auth %d %s" % (code, text.decode("utf-8", "replace")))
    msg = b"From: <a@client.test>\r\nSubject: smtplib with AUTH\r\n\r\nhello\r\n"
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
