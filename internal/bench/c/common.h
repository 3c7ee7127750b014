/* Shared helpers for the edgeipc C baselines (see ../cbase.go).
 * Each program forks: parent and child share one MAP_SHARED|MAP_ANONYMOUS
 * mapping. Arguments: SIZE ITERS DURATION_NS CPU_PARENT CPU_CHILD [SLOT_SIZE SLOTS]
 * (ITERS 0 = run for DURATION_NS; CPU -1 = no pinning). The parent prints
 * one JSON object on stdout. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP 0xffffffffu

static inline int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && __ARM_ARCH >= 7)
	__asm__ __volatile__("yield");
#endif
}

static inline uint32_t ld(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void st(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static void die(const char *what) {
	perror(what);
	exit(1);
}

/* fork_peer forks the peer process, which dies with its parent even when
 * the parent is SIGKILLed (a busy-polling peer would otherwise spin on a
 * CPU for ever). */
static pid_t fork_peer(void) {
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
			die("prctl");
		if (getppid() != parent) /* the parent died before the prctl */
			_exit(1);
	}
	return pid;
}

static void pin(int cpu) {
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die("sched_setaffinity");
}

struct args {
	long size, iters, slot_size, slots;
	int64_t duration;
	int cpu_parent, cpu_child;
};

static struct args parse(int argc, char **argv) {
	struct args a = {0};
	if (argc < 6) {
		fprintf(stderr, "usage: %s SIZE ITERS DURATION_NS CPU_PARENT CPU_CHILD [SLOT_SIZE SLOTS]\n", argv[0]);
		exit(2);
	}
	a.size = atol(argv[1]);
	a.iters = atol(argv[2]);
	a.duration = atoll(argv[3]);
	a.cpu_parent = atoi(argv[4]);
	a.cpu_child = atoi(argv[5]);
	if (argc >= 8) {
		a.slot_size = atol(argv[6]);
		a.slots = atol(argv[7]);
	}
	return a;
}

static void *shared(size_t n) {
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	memset(p, 0, n);
	return p;
}

/* p99_index: the 99th percentile of n sorted samples by nearest rank, the
 * ceil(0.99 n)-th smallest (bench.go's p99Index). */
static __attribute__((unused)) long p99_index(long n) { return (n * 99 + 99) / 100 - 1; }

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* ping-pong driver: rt(i) does one round trip; the warm-up is the first
 * tenth of the iterations (or of the duration). */
static __attribute__((unused)) void pingpong(struct args *a, void (*rt)(uint32_t), void (*stop)(void)) {
	long cap = a->iters > 0 ? a->iters : (1L << 20);
	int64_t *s = malloc(sizeof(int64_t) * cap);
	if (!s)
		die("malloc");
	long warm = a->iters > 0 ? a->iters / 10 + 10 : 0;
	int64_t t_start = now_ns(), warm_until = t_start + a->duration / 10, end = warm_until + a->duration;
	long n = 0, seen = 0;
	uint64_t rnd = (uint64_t)t_start | 1; /* xorshift64 state */
	uint32_t i = 1;
	for (;; i++) {
		int64_t t0 = now_ns();
		rt(i);
		int64_t t1 = now_ns();
		if (a->iters > 0) {
			if (warm > 0) {
				warm--;
				continue;
			}
			s[n++] = t1 - t0;
			if (n == a->iters)
				break;
		} else {
			if (t1 < warm_until)
				continue;
			/* Past cap samples, each round trip replaces a random one
			 * (reservoir sampling, as bench.go's pingPong): the run lasts
			 * DURATION_NS however fast it is. */
			seen++;
			if (n < cap) {
				s[n++] = t1 - t0;
			} else {
				rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
				uint64_t j = rnd % (uint64_t)seen;
				if (j < (uint64_t)cap)
					s[j] = t1 - t0;
			}
			if (t1 >= end || i == STOP - 1) /* i must not reach STOP */
				break;
		}
	}
	stop();
	qsort(s, n, sizeof s[0], cmp64);
	printf("{\"iters\":%ld,\"rtt_p50_ns\":%lld,\"rtt_p99_ns\":%lld,\"rtt_min_ns\":%lld}\n", n,
	       (long long)s[n / 2], (long long)s[p99_index(n)], (long long)s[0]);
	free(s);
}

static void reap(pid_t pid) {
	int status;
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "child failed (status %d)\n", status);
		exit(1);
	}
}
