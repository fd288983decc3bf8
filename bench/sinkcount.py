#!/usr/bin/env python3
# bench/sinkcount.py: waits until an `smtp-sink -c` has counted WANT messages (its output file
# ends in "sess=N quit=N mesg=N\r" records) and prints the wall-clock time it saw that count,
# and the count; at TIMEOUT seconds it prints the time and the count reached. Used by the relay
# rows of bench/run: polling in one process, every 5 ms, costs the servers nothing measurable.
#
#   sinkcount.py SINK_OUTPUT WANT TIMEOUT
import re
import sys
import time


def count(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 256))
            m = re.findall(rb"mesg=(\d+)", f.read())
    except OSError:
        return 0
    return int(m[-1]) if m else 0


def main():
    path, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    end = time.time() + timeout
    got = count(path)
    while got < want and time.time() < end:
        time.sleep(0.005)
        got = count(path)
    print("%.6f %d" % (time.time(), got))
    return 0 if got >= want else 1


if __name__ == "__main__":
    sys.exit(main())
