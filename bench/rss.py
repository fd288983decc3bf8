#!/usr/bin/env python3
"""bench/rss.py: memory and descriptor counts of a running process, read from /proc (stdlib only).

    rss.py PID [PID...]        prints "PID rss_kib pss_kib fds" for each

VmRSS is what `ps` shows as RSS: resident user-space pages (heap, stacks, mapped code) of the
process. Kernel memory (socket buffers, struct sock, epoll entries) is not in it; see
bench/README.md. park.py imports these functions.
"""
import os
import sys


def _status_kib(pid, key):
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def rss_kib(pid):
    """Resident set size of pid in KiB (VmRSS)."""
    return _status_kib(pid, "VmRSS")


def pss_kib(pid):
    """Proportional set size in KiB (shared pages divided among their users), or -1."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fd_count(pid):
    """Open file descriptors of pid."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for pid in argv[1:]:
        print(pid, rss_kib(pid), pss_kib(pid), fd_count(pid))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
