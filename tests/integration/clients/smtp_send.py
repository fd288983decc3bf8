#!/usr/bin/env python3
# tests/integration/clients/smtp_send.py: sends one message with Python's smtplib (for test_delivery).
#
#   smtp_send.py --port N --from ADDR --to ADDR [--to ADDR ...] --file MSG [--mail-opt OPT ...]
#
# MSG holds the message bytes as they should be stored (CRLF lines); smtplib dot-stuffs them
# on the wire and adds the final ".". Prints "<code> <text>" of the reply to the end of data
# (or of the first command that failed) on one line and exits 0 if a reply came at all.
import argparse
import smtplib
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--from", dest="sender", required=True)
    ap.add_argument("--to", action="append", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--mail-opt", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        msg = f.read()

    def out(code, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        print("%d %s" % (code, text.replace("\n", " ")))
        sys.stdout.flush()

    s = smtplib.SMTP(a.host, a.port, timeout=a.timeout)
    try:
        code, text = s.ehlo("client.test")
        if code != 250:
            return out(code, text)
        code, text = s.mail(a.sender, a.mail_opt)
        if code != 250:
            return out(code, text)
        for to in a.to:
            code, text = s.rcpt(to)
            if code not in (250, 251):
                return out(code, text)
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        out(code, text)
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
    finally:
        s.close()


if __name__ == "__main__":
    main()
