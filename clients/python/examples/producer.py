#!/usr/bin/env python3
"""producer.py: take an edgeipc ring's writer lease and write N test frames.

    EDGEIPC_SHM_DIR=/dev/shm python3 producer.py [-n N] [-t SECONDS] [-p K] [-u UID] NAME

Frame i carries the same payload as the C producer: length
1 + (i*37) % min(max_payload, 251), byte j = (i*131 + j*7 + 1) & 0xff,
type 1000 + i, flags 3*i. Prints "wrote first=S last=S" (first: the sequence
the writer started at). -p K: after K frames, print "paused next=S" and wait
for a line on stdin. -u UID: also write a ring that belongs to UID (by
default only one of yours or root's: anyone may create a file in /dev/shm
under the ring's name, and its owner would read every frame).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import edgeipc_ring as er  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=100, help="frames to write")
    p.add_argument("-t", type=float, default=None, help="block policy: give up after SECONDS without space")
    p.add_argument("-p", type=int, default=None, help="pause after K frames until a stdin line")
    p.add_argument("-u", type=int, default=None, help="also write a ring that belongs to this uid")
    p.add_argument("name")
    a = p.parse_args()
    owners = {os.geteuid(), 0}
    if a.u is not None:
        owners.add(a.u)
    try:
        ring = er.Ring(a.name, owners=owners)
    except er.ForeignOwnerError as e:
        print("producer.py: %s belongs to uid %d, not to you or root: that user would read every frame; "
              "pass -u %d if you mean to write that user's ring" % (a.name, e.uid, e.uid), file=sys.stderr)
        return 1
    w = ring.writer()
    mod = min(ring.max_payload, 251)
    first = last = w.seq
    for i in range(a.n):
        if i == a.p:
            print("paused next=%d" % w.seq, flush=True)
            if not sys.stdin.readline():
                print("producer.py: stdin closed", file=sys.stderr)
                return 1
        n = min(1 + (i * 37) % mod, ring.max_payload)
        data = bytes(((i * 131 + j * 7 + 1) & 0xFF) for j in range(n))
        last = w.write(data, type=1000 + i, flags=3 * i, timeout=a.t)
    print("wrote first=%d last=%d" % (first, last), flush=True)
    w.close()
    ring.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
