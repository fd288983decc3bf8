#!/usr/bin/env python3
"""bench/tlsidle.py: memory per idle TLS connection of an SMTP server (stdlib only; the
sibling of park.py for connections that have completed STARTTLS).

    tlsidle.py --tlsload BIN --port P --pid PID [--n 5000] [--per-process] [--settle 2]
               [-- extra tlsload options, e.g. --ciphersuites ... --groups ...]

1. Reads the server's RSS/PSS (PID) as the baseline.
2. Runs `tlsload --idle N`: N sessions each take banner, EHLO, STARTTLS, the handshake and the
   second EHLO, then stay idle. Waits for tlsload's "ready" line, then --settle seconds.
3. Finds the server-side sockets of those connections (ESTABLISHED, local port P, in
   /proc/net/tcp) and the processes holding them (/proc/*/fd).
4. One process (uvsmtpd): (RSS after - RSS before) / N = user-space memory per idle TLS
   connection. --per-process (Postfix: one smtpd process per connection): the average RSS and
   PSS of the processes that hold the connections, i.e. what each connection costs in its own
   process (PSS shares the pages common to all smtpd processes among them).
5. Stops tlsload (SIGTERM) and prints one JSON object.

Kernel memory (socket buffers, struct sock) is not in RSS; see bench/README.md.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rss import pss_kib, rss_kib  # noqa: E402


def established_inodes(port):
    """Socket inodes of ESTABLISHED IPv4 TCP connections whose local port is `port`."""
    inodes = set()
    with open("/proc/net/tcp", encoding="ascii") as f:
        next(f)
        for line in f:
            p = line.split()
            local, state, inode = p[1], p[3], p[9]
            if state == "01" and int(local.split(":")[1], 16) == port:
                inodes.add(inode)
    return inodes


def holders(inodes):
    """{pid: number of the given socket inodes it holds}."""
    out = {}
    want = {f"socket:[{i}]" for i in inodes}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{d}/fd")
        except OSError:
            continue
        n = 0
        for fd in fds:
            try:
                if os.readlink(f"/proc/{d}/fd/{fd}") in want:
                    n += 1
            except OSError:
                pass
        if n:
            out[int(d)] = n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tlsload", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server (Postfix: its master)")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--per-process", action="store_true", help="one server process per connection")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("extra", nargs="*", help="options passed to tlsload (after --)")
    a = ap.parse_args()

    # bench/run stops us with SIGTERM: leave through the `finally` below, which stops tlsload
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = {"n": a.n}
    before_rss, before_pss = rss_kib(a.pid), pss_kib(a.pid)
    cmd = [a.tlsload, "--host", a.host, "--port", str(a.port), "--idle", str(a.n),
           "--hold", str(a.timeout + 60), "--timeout", str(a.timeout)] + a.extra
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        try:
            ready = json.loads(line)
        except ValueError:
            ready = {}
        if ready.get("event") != "ready":
            out["error"] = "tlsload ended before its sessions were idle: " + line.strip()
            p.wait(timeout=30)
            print(json.dumps(out))
            return 1 if p.returncode != 3 else 3
        out.update(idle=ready["idle"], failed=ready["failed"], ready_seconds=ready["seconds"],
                   protocol=ready["protocol"], cipher=ready["cipher"])
        time.sleep(a.settle)
        inodes = established_inodes(a.port)
        procs = holders(inodes)
        out["server_connections"] = len(inodes)
        if a.per_process:
            rss = [rss_kib(pid) for pid in procs]
            pss = [pss_kib(pid) for pid in procs]
            out["processes"] = len(procs)
            if procs:
                out["rss_per_process_kib"] = round(sum(rss) / len(rss), 1)
                out["pss_per_process_kib"] = round(sum(pss) / len(pss), 1)
                out["rss_per_conn_bytes"] = round(1024 * sum(rss) / max(1, len(inodes)))
                out["pss_per_conn_bytes"] = round(1024 * sum(pss) / max(1, len(inodes)))
        else:
            after_rss, after_pss = rss_kib(a.pid), pss_kib(a.pid)
            held = procs.get(a.pid, 0)
            out.update(rss_before_kib=before_rss, rss_after_kib=after_rss,
                       pss_before_kib=before_pss, pss_after_kib=after_pss, held_by_server=held)
            if ready["idle"]:
                out["rss_per_conn_bytes"] = round(1024 * (after_rss - before_rss) / ready["idle"])
                out["pss_per_conn_bytes"] = round(1024 * (after_pss - before_pss) / ready["idle"])
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rest = p.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            rest = p.communicate()[0]
    try:
        final = json.loads(rest.strip().splitlines()[-1])
        out["tlsload_first_error"] = final.get("first_error", "")
        out["closed_while_idle"] = final.get("server_closed", 0) + final.get("io_errors", 0)
        out["tlsload_cpu_pct"] = final.get("cpu_pct")
    except (ValueError, IndexError):
        pass
    print(json.dumps(out))
    return 0 if out.get("idle") == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
