#!/usr/bin/env python3
"""sensor.py [COUNT] [RATE_HZ] — a sensor for an exec or fifo source with
framing = "msgp": writes each sample as a MessagePack map
{"type": 3, "flags": 0, "data": <bin>} to stdout, encoded by hand (no
msgpack module needed). COUNT 0 = forever; RATE_HZ 0 = as fast as the
pipe takes them (like sensor.c)."""
import os, struct, sys, time

def mp_str(s):
    b = s.encode()
    return bytes([0xa0 | len(b)]) + b

def mp_uint(v):
    return bytes([v]) if v < 128 else b"\xce" + struct.pack(">I", v)

def mp_bin(b):
    return b"\xc4" + bytes([len(b)]) + b if len(b) < 256 else b"\xc5" + struct.pack(">H", len(b)) + b

def record(typ, flags, data):
    return b"\x83" + mp_str("type") + mp_uint(typ) + mp_str("flags") + mp_uint(flags) + mp_str("data") + mp_bin(data)

count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 50
print(f"sensor.py: {count} samples at {rate} Hz into ring {os.environ.get('EDGEIPC_RING', '?')}", file=sys.stderr)
out = sys.stdout.buffer
n = 0
while count == 0 or n < count:
    n += 1
    out.write(record(3, 0, struct.pack("<Id", n, time.time())))
    out.flush()
    if rate > 0:
        time.sleep(1 / rate)
