/* consumer: joins an edgeipc ring as a reader and prints every frame.
 *
 *   cc -O2 -Wall -Werror -std=c11 -I.. -o consumer consumer.c
 *   EDGEIPC_SHM_DIR=/dev/shm ./consumer [-o] [-n N] [-t MS] [-s] [-m MS] NAME
 *
 *   -o     start at the oldest frame still in the ring (default: newest)
 *   -n N   exit after N frames (default: run until interrupted)
 *   -t MS  give up when no frame arrives for MS milliseconds (default: wait forever)
 *   -s     after joining, wait for a line on stdin before reading
 *   -m MS  bound each futex sleep to MS milliseconds (default and maximum 10 s)
 *
 * Output (one line each): "joined index=I cursor=C", then
 * "frame seq=S len=L type=T flags=F lost=X sum=FNV1A32" per frame, then
 * "done frames=N lost=L". Blocking uses the futex on the ring head: no polling.
 */
#include "edgeipc.h"

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

int main(int argc, char **argv)
{
	int oldest = 0, wait_stdin = 0, timeout_ms = -1, max_sleep_ms = 0;
	unsigned long long want = 0;
	int opt;
	while ((opt = getopt(argc, argv, "on:t:sm:")) != -1) {
		switch (opt) {
		case 'o': oldest = 1; break;
		case 'n': want = strtoull(optarg, NULL, 10); break;
		case 't': timeout_ms = atoi(optarg); break;
		case 's': wait_stdin = 1; break;
		case 'm': max_sleep_ms = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-o] [-n N] [-t MS] [-s] [-m MS] NAME\n", argv[0]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: %s [-o] [-n N] [-t MS] [-s] [-m MS] NAME\n", argv[0]);
		return 2;
	}
	const char *name = argv[optind];
	edgeipc_ring r;
	int rc = edgeipc_open(&r, name);
	if (rc) {
		fprintf(stderr, "consumer: open %s: %s\n", name, edgeipc_strerror(rc));
		return 1;
	}
	edgeipc_reader rd;
	rc = edgeipc_reader_join(&rd, &r, oldest ? EDGEIPC_FROM_OLDEST : EDGEIPC_FROM_NEWEST);
	if (rc) {
		fprintf(stderr, "consumer: join %s: %s\n", name, edgeipc_strerror(rc));
		edgeipc_close(&r);
		return 1;
	}
	rd.max_sleep_ms = max_sleep_ms;
	printf("joined index=%u cursor=%u\n", rd.index, rd.cursor);
	fflush(stdout);
	if (wait_stdin) {
		char line[64];
		if (!fgets(line, sizeof line, stdin)) {
			fprintf(stderr, "consumer: stdin closed\n");
			edgeipc_reader_leave(&rd);
			edgeipc_close(&r);
			return 1;
		}
	}
	uint8_t *buf = malloc(r.max_payload ? r.max_payload : 1);
	if (!buf) {
		perror("malloc");
		return 1;
	}
	int status = 0;
	while (want == 0 || rd.frames < want) {
		edgeipc_frame f;
		rc = edgeipc_read_wait(&rd, &f, buf, r.max_payload, timeout_ms);
		if (rc == EDGEIPC_ECORRUPT) {
			fprintf(stderr, "consumer: skipped a corrupt slot\n");
			continue;
		}
		if (rc) {
			fprintf(stderr, "consumer: read: %s\n", edgeipc_strerror(rc));
			status = 1;
			break;
		}
		printf("frame seq=%u len=%u type=%u flags=%u lost=%u sum=%08x\n", f.seq, f.length, f.type, f.flags,
		       f.lost, fnv1a(buf, f.length));
		fflush(stdout);
	}
	printf("done frames=%llu lost=%llu\n", (unsigned long long)rd.frames, (unsigned long long)rd.lost);
	fflush(stdout);
	free(buf);
	edgeipc_reader_leave(&rd);
	edgeipc_close(&r);
	return status;
}
