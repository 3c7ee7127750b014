/* C baseline for ring-stream: a single-producer single-consumer ring of
 * SLOTS slots of SLOT_SIZE bytes (the same geometry as the edgeipc ring)
 * in a shared mapping. The child produces SIZE-byte frames (memcpy in,
 * then a release store of head); the parent consumes them (memcpy out,
 * then a release store of tail) and measures. Both sides busy-poll with a
 * pause instruction: the upper bound for a lossless shared-memory stream.
 * With a ninth argument "stamp", the producer also writes a CLOCK_MONOTONIC
 * timestamp into each slot header, as the edgeipc ring ABI requires. */
#include "common.h"

struct ctl {
	uint32_t head;
	char pad1[60];
	uint32_t tail;
	char pad2[60];
	uint32_t done;
	char pad3[60];
};

int main(int argc, char **argv) {
	struct args a = parse(argc, argv);
	if (a.slots <= 0 || (a.slots & (a.slots - 1)) || a.slot_size < a.size + 16) {
		fprintf(stderr, "bad SLOT_SIZE/SLOTS\n");
		return 2;
	}
	char *m = shared(sizeof(struct ctl) + (size_t)a.slot_size * a.slots);
	struct ctl *c = (struct ctl *)m;
	char *slots = m + sizeof(struct ctl);
	uint32_t mask = a.slots - 1;
	int stamp = argc >= 9 && strcmp(argv[8], "stamp") == 0;
	char *payload = malloc(a.size), *buf = malloc(a.size);
	memset(payload, 0xa5, a.size);
	pid_t pid = fork_peer();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		pin(a.cpu_child);
		int64_t end = now_ns() + a.duration;
		uint32_t head = 0;
		for (long i = 0;; i++) {
			while (head - ld(&c->tail) == (uint32_t)a.slots)
				cpu_relax();
			char *s = slots + (size_t)(head & mask) * a.slot_size;
			*(uint32_t *)s = (uint32_t)a.size;
			*(uint32_t *)(s + 4) = head;
			if (stamp)
				*(int64_t *)(s + 8) = now_ns();
			memcpy(s + 16, payload, a.size);
			st(&c->head, ++head);
			if (a.iters > 0 ? i + 1 >= a.iters : ((i & 1023) == 0 && now_ns() >= end))
				break;
		}
		st(&c->done, 1);
		_exit(0);
	}
	pin(a.cpu_parent);
	uint32_t tail = 0;
	long frames = 0;
	int64_t t0 = 0, t1 = 0;
	for (;;) {
		uint32_t h = ld(&c->head);
		if (h == tail) {
			if (ld(&c->done) && ld(&c->head) == tail)
				break;
			cpu_relax();
			continue;
		}
		while (tail != h) {
			char *s = slots + (size_t)(tail & mask) * a.slot_size;
			uint32_t n = *(uint32_t *)s;
			if (n > (uint32_t)a.size || *(uint32_t *)(s + 4) != tail) {
				fprintf(stderr, "bad slot %u\n", tail);
				return 1;
			}
			memcpy(buf, s + 16, n);
			st(&c->tail, ++tail);
			if (++frames == 1)
				t0 = now_ns();
		}
	}
	t1 = now_ns();
	reap(pid);
	/* The clock starts once the first frame is in: frames - 1 arrived
	 * after it, as bench.go's fillRate counts (fewer than 2: no rate). */
	double secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 1e-9, timed = frames > 1 ? frames - 1 : 0;
	printf("{\"frames\":%ld,\"ns\":%lld,\"frames_per_s\":%.1f,\"bytes_per_s\":%.1f}\n", frames,
	       (long long)(t1 - t0), timed / secs, timed * (double)a.size / secs);
	return 0;
}
