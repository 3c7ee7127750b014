/* C baseline for ring-spin: cache-line ping-pong through shared memory.
 * Each direction is a sequence word on its own cache line plus a payload
 * buffer; the parent copies SIZE bytes in and spins for the echo, the child
 * spins for the ping and copies the payload into the pong buffer. With a
 * sixth argument "stamp", each side also stores a CLOCK_MONOTONIC
 * timestamp next to its sequence word before publishing, as every commit
 * to an edgeipc ring does (c-spin-ts). */
#include "common.h"

static uint32_t *ping, *pong;
static int64_t *pingts, *pongts;
static char *pingbuf, *pongbuf, *payload, *buf;
static long size;
static int stamp;

static void rt(uint32_t i) {
	memcpy(pingbuf, payload, size);
	if (stamp)
		*pingts = now_ns();
	st(ping, i);
	while (ld(pong) != i)
		cpu_relax();
	memcpy(buf, pongbuf, size);
}

static void stop(void) { st(ping, STOP); }

int main(int argc, char **argv) {
	struct args a = parse(argc, argv);
	size = a.size;
	stamp = argc >= 7 && strcmp(argv[6], "stamp") == 0;
	char *m = shared(128 + 2 * (size_t)size + 128);
	ping = (uint32_t *)m;
	pong = (uint32_t *)(m + 64);
	pingts = (int64_t *)(m + 8);
	pongts = (int64_t *)(m + 64 + 8);
	pingbuf = m + 128;
	pongbuf = m + 128 + ((size + 63) & ~63L);
	payload = malloc(size);
	buf = malloc(size);
	memset(payload, 0xa5, size);
	pid_t pid = fork_peer();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		pin(a.cpu_child);
		uint32_t last = 0;
		for (;;) {
			uint32_t s;
			while ((s = ld(ping)) == last)
				cpu_relax();
			if (s == STOP)
				_exit(0);
			memcpy(pongbuf, pingbuf, size);
			if (stamp)
				*pongts = now_ns();
			st(pong, s);
			last = s;
		}
	}
	pin(a.cpu_parent);
	pingpong(&a, rt, stop);
	reap(pid);
	return 0;
}
