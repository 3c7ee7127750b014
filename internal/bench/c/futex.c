/* C baseline for ring-wait: futex ping-pong. Like spin.c, but a side that
 * finds no new sequence sleeps in FUTEX_WAIT on the shared word (no
 * FUTEX_PRIVATE_FLAG: the word is shared between processes), announcing
 * itself in a sleeper count so the other side issues FUTEX_WAKE only when
 * someone sleeps: the same protocol as the edgeipc ring's Head/Sleepers. */
#include "common.h"
#include <linux/futex.h>
#include <sys/syscall.h>

static uint32_t *ping, *pong, *ping_sleepers, *pong_sleepers;
static char *pingbuf, *pongbuf, *payload, *buf;
static long size;

static void wait_ne(uint32_t *w, uint32_t old, uint32_t *sleepers) {
	while (__atomic_load_n(w, __ATOMIC_SEQ_CST) == old) {
		__atomic_add_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(w, __ATOMIC_SEQ_CST) == old)
			syscall(SYS_futex, w, FUTEX_WAIT, old, NULL, NULL, 0);
		__atomic_sub_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
	}
}

static void post(uint32_t *w, uint32_t v, uint32_t *sleepers) {
	__atomic_store_n(w, v, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST) != 0)
		syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void rt(uint32_t i) {
	memcpy(pingbuf, payload, size);
	post(ping, i, ping_sleepers);
	wait_ne(pong, i - 1, pong_sleepers);
	memcpy(buf, pongbuf, size);
}

static void stop(void) { post(ping, STOP, ping_sleepers); }

int main(int argc, char **argv) {
	struct args a = parse(argc, argv);
	size = a.size;
	char *m = shared(256 + 2 * (size_t)size + 128);
	ping = (uint32_t *)m;
	ping_sleepers = (uint32_t *)(m + 4);
	pong = (uint32_t *)(m + 64);
	pong_sleepers = (uint32_t *)(m + 68);
	pingbuf = m + 256;
	pongbuf = m + 256 + ((size + 63) & ~63L);
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
			wait_ne(ping, last, ping_sleepers);
			uint32_t s = __atomic_load_n(ping, __ATOMIC_SEQ_CST);
			if (s == STOP)
				_exit(0);
			memcpy(pongbuf, pingbuf, size);
			post(pong, s, pong_sleepers);
			last = s;
		}
	}
	pin(a.cpu_parent);
	pingpong(&a, rt, stop);
	reap(pid);
	return 0;
}
