#!/usr/bin/env python3
# tests/unit/dsn_parse.py: checks a delivery status notification with Python's email package
# (for test_dsn.cpp): it parses without defects as multipart/report; report-type=delivery-status
# with three parts; the status part has the per-message fields and one group per expected
# recipient with the expected Action; the third part is the original (message/rfc822 or
# message/global with the expected Subject) or its header section (text/rfc822-headers or
# text/global-headers).
#
#   dsn_parse.py FILE --rcpt ADDR [--rcpt ADDR ...] --action ACTION --original full|headers
#                [--subject TEXT] [--envid ID]
# Exits 0 and prints "ok" when every check holds, else prints the first failure and exits 1.
import argparse
import re
import email
import email.parser
import email.policy
import sys


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def unfold(v):
    """A field value with RFC 5322 folding undone."""
    return re.sub(r"\r?\n[ \t]+", " ", v) if v is not None else None


def blocks_of(part):
    """The status part's field groups as Message objects (per-message first)."""
    ctype = part.get_content_type()
    payload = part.get_payload()
    if ctype == "message/delivery-status":
        return payload  # the email package splits the groups itself
    if ctype == "message/global-delivery-status":
        # Not special to the email package: the raw text, split at empty lines.
        raw = part.get_payload(decode=True)
        if raw is None:
            raw = part.as_bytes().split(b"\n\n", 1)[1]
        text = raw.decode("utf-8").replace("\r\n", "\n")
        hp = email.parser.HeaderParser(policy=email.policy.compat32)
        return [hp.parsestr(b) for b in text.split("\n\n") if b.strip()]
    fail("status part is " + ctype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--rcpt", action="append", default=[])
    ap.add_argument("--action", required=True)
    ap.add_argument("--original", choices=["full", "headers"], required=True)
    ap.add_argument("--subject", default="")
    ap.add_argument("--envid", default="")
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        raw = f.read()
    for n, line in enumerate(raw.split(b"\r\n")):
        if b"\n" in line or b"\r" in line:
            fail("line %d: bare CR or LF" % (n + 1))
        if len(line) > 998:
            fail("line %d: %d octets" % (n + 1, len(line)))
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for p in msg.walk():
        if p.defects:
            fail("defects in %s: %r" % (p.get_content_type(), p.defects))
    if msg.get_content_type() != "multipart/report":
        fail("top-level type " + msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        fail("report-type %r" % msg.get_param("report-type"))
    for h in ("Date", "From", "To", "Subject", "Message-ID", "Auto-Submitted"):
        if msg[h] is None:
            fail("no " + h + " field")
    if "MAILER-DAEMON@" not in msg["From"]:
        fail("From: " + msg["From"])
    if msg["Auto-Submitted"] != "auto-replied":
        fail("Auto-Submitted: " + msg["Auto-Submitted"])
    parts = msg.get_payload()
    if len(parts) != 3:
        fail("%d parts" % len(parts))
    if parts[0].get_content_type() != "text/plain":
        fail("first part " + parts[0].get_content_type())
    blocks = blocks_of(parts[1])
    per_msg = blocks[0]
    if not (unfold(per_msg["Reporting-MTA"]) or "").startswith("dns; "):
        fail("Reporting-MTA %r" % per_msg["Reporting-MTA"])
    if per_msg["Arrival-Date"] is None:
        fail("no Arrival-Date")
    if a.envid and unfold(per_msg["Original-Envelope-Id"]) != a.envid:
        fail("Original-Envelope-Id %r" % per_msg["Original-Envelope-Id"])
    groups = blocks[1:]
    if len(groups) != len(a.rcpt):
        fail("%d recipient groups, want %d" % (len(groups), len(a.rcpt)))
    for g, want in zip(groups, a.rcpt):
        fr = unfold(g["Final-Recipient"]) or ""
        if fr.split(";", 1)[-1].strip() != want:
            fail("Final-Recipient %r, want %r" % (fr, want))
        if g["Action"] != a.action:
            fail("Action %r for %s" % (g["Action"], want))
        st = g["Status"] or ""
        want_class = {"failed": "5", "delayed": "4", "delivered": "2"}[a.action]
        if not st.startswith(want_class + "."):
            fail("Status %r for %s" % (st, want))
    orig = parts[2]
    ctype = orig.get_content_type()
    if a.original == "full":
        if ctype not in ("message/rfc822", "message/global"):
            fail("original part " + ctype)
        if ctype == "message/rfc822":
            inner = orig.get_payload()[0]
        else:
            # message/global: parsed as a message by the email package as well
            inner = orig.get_payload()[0]
        if a.subject and inner["Subject"] != a.subject:
            fail("original Subject %r" % inner["Subject"])
    else:
        if ctype not in ("text/rfc822-headers", "text/global-headers"):
            fail("original part " + ctype)
        text = orig.get_payload(decode=True).decode("utf-8", "replace")
        if a.subject and ("Subject: " + a.subject) not in text:
            fail("no Subject in the returned headers")
        if "\r\n\r\n" in text.rstrip("\r\n") or "\n\n" in text.rstrip("\n"):
            fail("returned headers contain a body")
    print("ok")


main()
