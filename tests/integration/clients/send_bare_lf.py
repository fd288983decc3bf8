#!/usr/bin/env python3
# tests/integration/clients/send_bare_lf.py: what many local scripts do: build a message with the
# email package and hand msg.as_bytes() (LF line endings) to smtplib's sendmail(), which sends the
# bytes as they are. Usage: send_bare_lf.py PORT. Exits non-zero if the server refused anything.
import smtplib
import sys
from email.message import EmailMessage

msg = EmailMessage()
msg["From"] = "script@localhost"
msg["To"] = "postmaster@localhost"
msg["Subject"] = "bare LF from smtplib"
msg.set_content("line one\nline two\n")
assert b"\r\n" not in msg.as_bytes()
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("script@localhost", ["postmaster@localhost"], msg.as_bytes())
print("sent")
