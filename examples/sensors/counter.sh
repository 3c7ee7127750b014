#!/bin/sh
# counter.sh [RATE_HZ] [COUNT] — a sensor for an exec source with
# framing = "lines": prints "<n> <unix-seconds>" lines, RATE_HZ per second
# (default 10), COUNT lines (default: forever), then exits 0.
# It logs to stderr, which the runtime prefixes with the source name.
rate=${1:-10}
count=${2:-0}
echo "counter: writing to ring ${EDGEIPC_RING:-?} in ${EDGEIPC_SHM_DIR:-?} at ${rate} Hz" >&2
n=0
while [ "$count" -eq 0 ] || [ "$n" -lt "$count" ]; do
	n=$((n + 1))
	echo "$n $(date +%s)"
	sleep "$(awk "BEGIN { print 1 / $rate }")"
done
