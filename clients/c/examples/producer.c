/* producer: takes an edgeipc ring's writer lease and writes N test frames.
 *
 *   cc -O2 -Wall -Werror -std=c11 -I.. -o producer producer.c
 *   EDGEIPC_SHM_DIR=/dev/shm ./producer [-n N] [-t MS] [-p K] [-u UID] NAME
 *
 *   -n N   frames to write (default 100)
 *   -t MS  block policy: give up if a reader holds the ring full for MS ms
 *          (default: wait forever)
 *   -p K   after K frames, print "paused next=S" and wait for a line on stdin
 *   -u UID also write a ring that belongs to UID (by default only one of
 *          yours or root's: anyone may create a file in /dev/shm under the
 *          ring's name, and its owner would read every frame)
 *
 * Frame i (0-based) carries a deterministic payload so a reader can check it:
 * length 1 + (i*37) % min(max_payload, 251), byte j = (i*131 + j*7 + 1) & 0xff,
 * type 1000 + i, flags 3*i. Prints "wrote first=S last=S" when done (first is
 * the sequence the writer started at).
 */
#include "edgeipc.h"

int main(int argc, char **argv)
{
	unsigned long n = 100;
	long pause_at = -1;
	int timeout_ms = -1, opt;
	uid_t owners[3] = {geteuid(), 0, 0};
	size_t nowners = 2;
	while ((opt = getopt(argc, argv, "n:t:p:u:")) != -1) {
		switch (opt) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 't': timeout_ms = atoi(optarg); break;
		case 'p': pause_at = strtol(optarg, NULL, 10); break;
		case 'u':
			owners[2] = (uid_t)strtoul(optarg, NULL, 10);
			nowners = 3;
			break;
		default:
			fprintf(stderr, "usage: %s [-n N] [-t MS] [-p K] [-u UID] NAME\n", argv[0]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: %s [-n N] [-t MS] [-p K] [-u UID] NAME\n", argv[0]);
		return 2;
	}
	const char *name = argv[optind];
	edgeipc_ring r;
	uid_t owner = 0;
	int rc = edgeipc_open_owned(&r, name, owners, nowners, &owner);
	if (rc == EDGEIPC_EOWNER) {
		fprintf(stderr, "producer: %s belongs to uid %u, not to you or root: that user would read every frame; "
		                "pass -u %u if you mean to write that user's ring\n",
		        name, (unsigned)owner, (unsigned)owner);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "producer: open %s: %s\n", name, edgeipc_strerror(rc));
		return 1;
	}
	edgeipc_writer w;
	uint32_t holder = 0;
	rc = edgeipc_writer_open(&w, &r, &holder);
	if (rc) {
		fprintf(stderr, "producer: %s: %s (pid %u)\n", name, edgeipc_strerror(rc), holder);
		edgeipc_close(&r);
		return 1;
	}
	uint32_t mod = r.max_payload < 251 ? r.max_payload : 251;
	uint32_t first = w.seq, last = w.seq;
	for (unsigned long i = 0; i < n; i++) {
		if (pause_at >= 0 && i == (unsigned long)pause_at) {
			char line[64];
			printf("paused next=%u\n", w.seq);
			fflush(stdout);
			if (!fgets(line, sizeof line, stdin)) {
				fprintf(stderr, "producer: stdin closed\n");
				rc = EDGEIPC_EINVAL;
				break;
			}
		}
		uint32_t len = 1 + (uint32_t)(i * 37) % mod;
		if (len > r.max_payload)
			len = r.max_payload;
		uint8_t *p;
		rc = edgeipc_reserve(&w, len, (void **)&p, timeout_ms);
		if (rc) {
			fprintf(stderr, "producer: reserve frame %lu: %s\n", i, edgeipc_strerror(rc));
			break;
		}
		for (uint32_t j = 0; j < len; j++)
			p[j] = (uint8_t)(i * 131 + j * 7 + 1);
		rc = edgeipc_commit(&w, 1000 + (uint32_t)i, 3 * (uint32_t)i, &last);
		if (rc) {
			fprintf(stderr, "producer: commit frame %lu: %s\n", i, edgeipc_strerror(rc));
			break;
		}
	}
	printf("wrote first=%u last=%u\n", first, last);
	edgeipc_writer_close(&w);
	edgeipc_close(&r);
	return rc ? 1 : 0;
}
