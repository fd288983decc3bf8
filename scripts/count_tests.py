#!/usr/bin/env python3
"""scripts/count_tests.py: turn meson's testlog.json into "N passed, N failed".

A suite that prints doctest's summary counts its test cases; any other suite counts as one.
A suite that failed without doctest reporting a failure (crash, timeout) adds one failure.
With --total, sums the one-line counts written earlier by this script.
"""
import json
import re
import sys

SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")


def count_log(path):
    passed = failed = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            t = json.loads(line)
            ok = t.get("result") in ("OK", "EXPECTEDFAIL")
            m = SUMMARY.findall(t.get("stdout", "") or "")
            if m:
                p = sum(int(x[1]) for x in m)
                fl = sum(int(x[2]) for x in m)
                if not ok and fl == 0:
                    fl = 1
                passed += p
                failed += fl
            elif ok:
                passed += 1
            elif t.get("result") != "SKIP":
                failed += 1
            if not ok:
                print(f"FAILED suite: {t.get('name')} ({t.get('result')})", file=sys.stderr)
    return passed, failed


def main():
    args = sys.argv[1:]
    if args and args[0] == "--total":
        passed = failed = 0
        for path in args[1:]:
            try:
                m = re.match(r"(\d+) passed, (\d+) failed", open(path).read().strip())
            except OSError:
                m = None
            if not m:
                failed += 1
                continue
            passed += int(m.group(1))
            failed += int(m.group(2))
    else:
        passed, failed = count_log(args[0])
    print(f"{passed} passed, {failed} failed")
    return 0


sys.exit(main())
