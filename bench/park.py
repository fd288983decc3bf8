#!/usr/bin/env python3
"""bench/park.py: park many idle connections on an SMTP server and measure what they cost
(stdlib only).

    park.py --port P --pid SERVER_PID [--n 10000] [--wait W] [--probes 3] [--host 127.0.0.1]

1. Reads the server's RSS and descriptor count (baseline).
2. Opens --n connections (at most 256 connects in flight), sends nothing, and waits until the
   server holds --n more descriptors, i.e. has accepted them all.
3. Reads the server's RSS again: (after - before) / n is the user-space memory one parked
   connection costs. The connections are still inside the greeting delay (earlytalker
   `wait W`) as long as parking took less than W seconds; "greeted_before_measure" says how
   many had already been greeted.
4. Then --probes new polite clients connect (and, like the parked ones, send nothing before
   the greeting): the time each waits for its 220 is the greeting time a real MTA sees while
   the server holds the n parked connections. With --wait W it should be W plus a few ms.
5. Keeps reading until every parked connection has its greeting (or a deadline) and reports
   the distribution of greeting delays, each measured from that connection's own connect().

Prints one JSON object. Exit status 0 when every connection was accepted and greeted with 220.
"""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rss import fd_count, pss_kib, rss_kib  # noqa: E402

MAX_INFLIGHT = 256


class Conn:
    __slots__ = ("sock", "t0", "connected", "greet_t", "first", "closed", "probe")

    def __init__(self, sock, t0, probe):
        self.sock, self.t0, self.probe = sock, t0, probe
        self.connected, self.greet_t, self.first, self.closed = False, None, b"", False


def percentile(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    k = max(0, min(len(vals) - 1, int(-(-p * len(vals) // 100)) - 1))
    return vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="server process to measure")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--wait", type=float, default=0.0, help="the server's greeting delay (s)")
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--accept-timeout", type=float, default=60.0)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.n + a.probes + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        print(json.dumps({"error": f"RLIMIT_NOFILE {soft} < {need}; raise ulimit -n"}))
        return 2

    sel = selectors.DefaultSelector()
    conns = []
    out = {"n": a.n, "wait_s": a.wait}

    def start(probe):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c = Conn(s, time.monotonic(), probe)
        rc = s.connect_ex((a.host, a.port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(rc, os.strerror(rc))
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
        conns.append(c)
        return c

    inflight = 0

    def pump(timeout):
        nonlocal inflight
        for key, ev in sel.select(timeout):
            c = key.data
            if not c.connected and ev & selectors.EVENT_WRITE:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, "connect: " + os.strerror(err))
                c.connected = True
                inflight -= 1
                sel.modify(c.sock, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(4096)
                except ConnectionError:
                    data = b""
                if not c.connected:
                    c.connected = True
                    inflight -= 1
                if c.greet_t is None:
                    c.greet_t = time.monotonic()
                    c.first = data[:64]
                if not data:
                    c.closed = True
                    sel.unregister(c.sock)
                # further greeting bytes (e.g. a 220- teaser's continuation) are just drained

    rss0, pss0, fd0 = rss_kib(a.pid), pss_kib(a.pid), fd_count(a.pid)
    out.update(rss_before_kib=rss0, pss_before_kib=pss0, server_fds_before=fd0)

    t_first = time.monotonic()
    started = 0
    while started < a.n:
        while inflight < MAX_INFLIGHT and started < a.n:
            start(False)
            started += 1
            inflight += 1
        pump(0.05)
    # every connect() done on our side; now wait for the server to have accepted them all
    deadline = time.monotonic() + a.accept_timeout
    fds = fd_count(a.pid)
    while fds < fd0 + a.n and time.monotonic() < deadline:
        pump(0.1)
        fds = fd_count(a.pid)
    t_parked = time.monotonic()
    time.sleep(0.2)  # let the loop settle (allocations made right after accept)
    rss1, pss1, fds = rss_kib(a.pid), pss_kib(a.pid), fd_count(a.pid)
    t_meas = time.monotonic()
    greeted_before = sum(1 for c in conns if c.greet_t is not None)
    out.update(
        connected=sum(1 for c in conns if c.connected),
        server_fds_after=fds,
        accepted=fds - fd0,
        park_seconds=round(t_parked - t_first, 3),
        measured_at_s=round(t_meas - t_first, 3),
        rss_after_kib=rss1,
        pss_after_kib=pss1,
        rss_per_conn_bytes=round((rss1 - rss0) * 1024 / a.n),
        pss_per_conn_bytes=round((pss1 - pss0) * 1024 / a.n) if pss0 >= 0 and pss1 >= 0 else None,
        greeted_before_measure=greeted_before,
        in_delay_when_measured=(a.wait > 0 and t_meas - t_first < a.wait and greeted_before == 0),
    )

    # polite probes: connect now, send nothing, time the greeting
    probes = []
    for _ in range(a.probes):
        probes.append(start(True))
        inflight += 1
    deadline = time.monotonic() + max(a.wait, 0) + 15.0
    while time.monotonic() < deadline and any(c.greet_t is None for c in conns):
        pump(0.1)

    parked = [c for c in conns if not c.probe]
    greeted = [c for c in parked if c.greet_t is not None and c.first.startswith(b"220")]
    other = [c for c in parked if c.greet_t is not None and not c.first.startswith(b"220")]
    delays = [c.greet_t - c.t0 for c in greeted]
    out.update(
        parked_greeted_220=len(greeted),
        parked_other_reply=len(other),
        parked_other_sample=other[0].first.decode("ascii", "replace") if other else None,
        parked_never_greeted=len(parked) - len(greeted) - len(other),
        parked_greet_delay_p50_s=round(percentile(delays, 50), 4) if delays else None,
        parked_greet_delay_p99_s=round(percentile(delays, 99), 4) if delays else None,
        parked_greet_delay_max_s=round(max(delays), 4) if delays else None,
        probe_greet_s=[round(c.greet_t - c.t0, 4) if c.greet_t else None for c in probes],
        probe_replies=[c.first.split(b"\r\n")[0].decode("ascii", "replace") for c in probes],
    )
    for c in conns:  # abortive close: no FIN/TIME_WAIT storm, the server sees a reset
        try:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sock.close()
        except OSError:
            pass
    print(json.dumps(out))
    ok = (out["accepted"] >= a.n and len(greeted) == a.n
          and all(c.greet_t and c.first.startswith(b"220") for c in probes))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
