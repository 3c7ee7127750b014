/*
 * sensor.c — a sensor program for an exec source with framing = "len32".
 *
 *   cc -O2 -o sensor sensor.c
 *   ./sensor [COUNT] [RATE_HZ]
 *
 * Writes COUNT (default 100; 0 = forever) binary records to stdout, each a
 * 4-byte little-endian length followed by the payload: a 16-byte sample
 * {u32 seq, i32 temperature in milli-°C, i32 humidity in milli-%, u32 crc}.
 * Records go out with one write(2) each, so a FIFO with several writers
 * never interleaves them (records are well under PIPE_BUF).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>

static void put32(uint8_t *p, uint32_t v) {
	p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

int main(int argc, char **argv) {
	long count = argc > 1 ? atol(argv[1]) : 100;
	double rate = argc > 2 ? atof(argv[2]) : 100;
	const char *ring = getenv("EDGEIPC_RING");
	fprintf(stderr, "sensor: %ld records at %.0f Hz into ring %s\n", count, rate, ring ? ring : "?");
	/* tv_nsec must stay below 1e9: at 1 Hz or less the period is whole seconds. */
	long long period = rate > 0 ? (long long)(1e9 / rate) : 0;
	struct timespec ts = {(time_t)(period / 1000000000), (long)(period % 1000000000)};
	for (uint32_t seq = 1; count == 0 || seq <= (uint32_t)count; seq++) {
		uint8_t rec[4 + 16];
		put32(rec, 16);
		put32(rec + 4, seq);
		put32(rec + 8, (uint32_t)(21500 + (int32_t)(seq % 100)));
		put32(rec + 12, (uint32_t)(40000 + (int32_t)(seq % 50)));
		put32(rec + 16, seq ^ 0xa5a5a5a5u);
		size_t off = 0;
		while (off < sizeof rec) {
			ssize_t n = write(1, rec + off, sizeof rec - off);
			if (n < 0 && errno == EINTR) continue;
			if (n <= 0) return 1; /* the runtime went away */
			off += (size_t)n;
		}
		if (period) nanosleep(&ts, NULL);
	}
	return 0;
}
