#!/usr/bin/env python3
"""consumer.py: join an edgeipc ring as a reader and print every frame.

    EDGEIPC_SHM_DIR=/dev/shm python3 consumer.py [-o] [-n N] [-t SECONDS] [-s] [-m SECONDS] NAME

-o start at the oldest frame still in the ring (default: newest); -n exit after
N frames; -t give up when no frame arrives for SECONDS; -s after joining, wait
for a line on stdin before reading; -m bound each futex sleep to SECONDS
(default and maximum 10). Output matches the C consumer:
"joined index=I cursor=C", "frame seq=S len=L type=T flags=F lost=X sum=FNV1A32",
"done frames=N lost=L".
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import edgeipc_ring as er  # noqa: E402


def fnv1a(b):
    h = 2166136261
    for x in b:
        h = ((h ^ x) * 16777619) & 0xFFFFFFFF
    return h


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", action="store_true", help="start at the oldest frame")
    p.add_argument("-n", type=int, default=0, help="frames to read (0: forever)")
    p.add_argument("-t", type=float, default=None, help="timeout per frame in seconds")
    p.add_argument("-s", action="store_true", help="wait for a stdin line after joining")
    p.add_argument("-m", type=float, default=0, help="bound each futex sleep (seconds)")
    p.add_argument("name")
    a = p.parse_args()
    ring = er.Ring(a.name)
    rd = ring.reader(oldest=a.o)
    if a.m > 0:
        rd.max_sleep = a.m
    print("joined index=%s cursor=%d native=%s" % (rd.index, rd.cursor, er.NATIVE), flush=True)
    if a.s and not sys.stdin.readline():
        print("consumer.py: stdin closed", file=sys.stderr)
        return 1
    status = 0
    while a.n == 0 or rd.frames < a.n:
        try:
            f = rd.read_wait(a.t)
        except er.CorruptError:
            print("consumer.py: skipped a corrupt slot", file=sys.stderr)
            continue
        if f is None:
            print("consumer.py: timed out", file=sys.stderr)
            status = 1
            break
        print("frame seq=%d len=%d type=%d flags=%d lost=%d sum=%08x"
              % (f.seq, len(f.data), f.type, f.flags, f.lost, fnv1a(f.data)), flush=True)
    print("done frames=%d lost=%d" % (rd.frames, rd.lost), flush=True)
    rd.close()
    ring.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
