#!/usr/bin/env python3
"""bench/banner.py: banner latency of an SMTP server (stdlib only).

    banner.py --port P [--host 127.0.0.1] [--n 2000] [--warmup 100] [--timeout 5]

Opens --n connections one after the other. For each, the clock starts just before connect()
and stops when the final greeting line ("220 ...\\r\\n"; a multi-line "220-" greeting counts
only at its last line) has been read. Then the client says QUIT, reads the reply and closes,
outside the measured interval. The first --warmup connections are not counted.

Prints one JSON object: n, p50_ms, p90_ms, p99_ms, max_ms, mean_ms, errors.
The interval includes the TCP handshake over loopback and the Python client's own overhead
(a few tens of microseconds), so it is an upper bound on the server's share.
"""
import argparse
import json
import socket
import struct
import sys
import time


def read_reply(sock, deadline):
    """Read one whole SMTP reply; return (code, text)."""
    buf = b""
    while True:
        # a reply ends with a line whose 4th byte is a space
        lines = buf.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return int(line[:3]), buf
            if len(line) == 3:
                return int(line), buf
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete reply")
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before a complete reply: %r" % buf[:80])
        buf += chunk


def one(host, port, timeout):
    t0 = time.perf_counter()
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code, text = read_reply(sock, time.monotonic() + timeout)
        t1 = time.perf_counter()
        if code != 220:
            raise RuntimeError("greeting was %r" % text[:80])
        try:
            sock.sendall(b"QUIT\r\n")
            read_reply(sock, time.monotonic() + timeout)
        except (OSError, TimeoutError, ValueError):
            pass
        return t1 - t0
    finally:
        # abortive close: no TIME_WAIT left behind per measured connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()

    samples, errors, first_error = [], 0, None
    for i in range(a.warmup + a.n):
        try:
            dt = one(a.host, a.port, a.timeout)
        except (OSError, TimeoutError, RuntimeError, ValueError) as e:
            errors += 1
            first_error = first_error or repr(e)
            if errors > max(10, a.n // 100):
                break
            continue
        if i >= a.warmup:
            samples.append(dt * 1e3)
    samples.sort()
    out = {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50), 3),
        "p90_ms": round(percentile(samples, 90), 3),
        "p99_ms": round(percentile(samples, 99), 3),
        "max_ms": round(samples[-1], 3) if samples else None,
        "mean_ms": round(sum(samples) / len(samples), 3) if samples else None,
        "errors": errors,
    }
    if first_error:
        out["first_error"] = first_error
    print(json.dumps(out))
    return 0 if samples and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
