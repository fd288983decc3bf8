#!/usr/bin/env python3
"""bench/perftrace.py: summarise `perf trace -s -p PID -o FILE` as a Markdown table (stdlib only).

    perftrace.py FILE --pid PID [--messages N] [--top 14]

perf trace -s prints, per thread, "name (tid), N events, P%" and then one line per system call:
"syscall calls errors total min avg max stddev" (times in ms). This groups the threads into
"event loop" (tid == PID) and "thread pool" (every other thread of the process) and prints, per
group and system call: calls, calls per message (with --messages), total ms and average ms,
sorted by total time. Time spent *inside* a system call is wall time: a worker blocked in
fsync() or an idle loop in epoll_wait() counts, which is the point (where the threads wait).
"""
import argparse
import re
import sys

HEAD = re.compile(r"\s*(\S.*?) \((\d+)\), \d+ events")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--pid", required=True)
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--top", type=int, default=14)
    a = ap.parse_args()

    agg, tid = {}, None
    with open(a.file, errors="replace") as f:
        for line in f:
            m = HEAD.match(line)
            if m:
                tid = m.group(2)
                continue
            fields = line.split()
            if tid is None or len(fields) < 8 or not fields[1].isdigit():
                continue
            try:
                calls, total = int(fields[1]), float(fields[3])
            except ValueError:
                continue
            key = ("event loop" if tid == a.pid else "thread pool", fields[0])
            v = agg.setdefault(key, [0, 0.0])
            v[0] += calls
            v[1] += total
    if not agg:
        print("(perf trace recorded nothing)")
        return 1
    per = a.messages > 0
    print("| thread(s) | syscall | calls |" + (" per message |" if per else "") + " total ms | avg ms |")
    print("|---|---|---:|" + ("---:|" if per else "") + "---:|---:|")
    for (th, sc), (calls, total) in sorted(agg.items(), key=lambda kv: -kv[1][1])[: a.top]:
        pm = f" {calls / a.messages:.2f} |" if per else ""
        print(f"| {th} | {sc} | {calls} |{pm} {total:.0f} | {total / calls:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
