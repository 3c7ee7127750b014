/*
 * edgeipc.h — single-header C11 client for edgeipc rings (ring ABI v1).
 *
 * Written from docs/abi.md alone. Linux only: shared memory through mmap,
 * 32-bit C11 atomics (<stdatomic.h>, seq_cst unless noted), futex through
 * syscall(2) WITHOUT FUTEX_PRIVATE_FLAG (the words are shared between
 * processes). No 64-bit atomic is used on shared memory.
 *
 * Include this header first in a translation unit (it defines _GNU_SOURCE
 * for syscall(2) and clock_gettime under -std=c11), or compile with
 * -D_GNU_SOURCE. Every function is `static inline`; nothing to link.
 *
 *   edgeipc_ring r;       edgeipc_open(&r, "cam0")  /  edgeipc_open_fd(&r, fd)
 *                         edgeipc_open_owned(&r, "cam0", uids, n, &owner)
 *   edgeipc_reader rd;    edgeipc_reader_join(&rd, &r, EDGEIPC_FROM_OLDEST)
 *                         edgeipc_read(&rd, &frame, buf, cap)      copy, never torn
 *                         edgeipc_read_wait(&rd, &frame, buf, cap, timeout_ms)
 *                         edgeipc_reader_leave(&rd)
 *   edgeipc_writer w;     edgeipc_writer_open(&w, &r, &holder_pid)
 *                         edgeipc_reserve / edgeipc_commit, or edgeipc_write
 *                         edgeipc_writer_close(&w)
 *   edgeipc_close(&r);    edgeipc_strerror(rc)
 *
 * Return values: 0 on success, a negative EDGEIPC_E* code on failure
 * (EDGEIPC_ESYS: look at errno). A reader or writer that is not open (left,
 * closed, its join or open failed, or its ring was closed) answers
 * EDGEIPC_EINVAL. A reader/writer object is used by one thread at a time. Eventfd wakes are not supported: a C writer only wakes
 * futex sleepers, so Go readers of a C-written ring must not use
 * ReaderOptions.Notifier.
 *
 * Casting plain shared memory to `_Atomic uint32_t *` relies on GCC/Clang
 * giving _Atomic uint32_t the size and alignment of uint32_t (they do).
 */
#ifndef EDGEIPC_H
#define EDGEIPC_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __linux__
#error "edgeipc.h needs Linux (futex, /proc)"
#endif

/* ---- ABI v1 constants (docs/abi.md) ---------------------------------- */

#define EDGEIPC_MAGIC 0x52504945u /* "EIPR" on disk: 45 49 50 52 */
#define EDGEIPC_SEM_MAGIC 0x53504945u
#define EDGEIPC_ABI_VERSION 1u
#define EDGEIPC_HEADER_SIZE 8192u
#define EDGEIPC_READERS_OFF 256u
#define EDGEIPC_READER_STRIDE 64u
#define EDGEIPC_MAX_READERS 64u
#define EDGEIPC_SLOT_HEADER 64u
#define EDGEIPC_MAX_SLOTS (1u << 24)
#define EDGEIPC_CLAIM 0x80000000u
#define EDGEIPC_POLICY_OVERWRITE 0u
#define EDGEIPC_POLICY_BLOCK 1u
#define EDGEIPC_MAX_SLOT_SIZE ((64u << 20) + 64u) /* 64 MiB payload + slot header */
#define EDGEIPC_MIN_FILE 8192u                      /* header_size: shorter = still being created */
#define EDGEIPC_RF_EVENTFD 1u                       /* reader flags bit 0: waits on an eventfd */
#define EDGEIPC_RF_ASLEEP 2u                        /* reader flags bit 1: counted in a sleeper count */
#define EDGEIPC_MAX_SLEEP_MS 10000                  /* every futex sleep is bounded by this */
#define EDGEIPC_STALE_WAKES 64                      /* wakes for nobody in a row before a stale-sleeper check */
#define EDGEIPC_STALE_CHECK_NS 1000000000           /* and at most one such check a second */

/* header offsets */
#define EDGEIPC_H_MAGIC 0
#define EDGEIPC_H_VERSION 4
#define EDGEIPC_H_HEADER_SIZE 8
#define EDGEIPC_H_SLOT_SIZE 12
#define EDGEIPC_H_SLOT_COUNT 16
#define EDGEIPC_H_MAX_PAYLOAD 20
#define EDGEIPC_H_POLICY 24
#define EDGEIPC_H_MAX_READERS 28
#define EDGEIPC_H_READERS_OFF 32
#define EDGEIPC_H_READER_STRIDE 36
#define EDGEIPC_H_BASE_SEQ 40
#define EDGEIPC_H_READY 44
#define EDGEIPC_H_TOTAL_LO 48
#define EDGEIPC_H_TOTAL_HI 52
#define EDGEIPC_H_CREATOR_PID 56
#define EDGEIPC_H_LEASE_OWNER 64
#define EDGEIPC_H_LEASE_START 68
#define EDGEIPC_H_LEASE_PIDNS 72
#define EDGEIPC_H_LEASE_EPOCH 76
#define EDGEIPC_H_HEAD 128
#define EDGEIPC_H_SLEEPERS 132
#define EDGEIPC_H_EV_SLEEPERS 136
#define EDGEIPC_H_READER_JOINS 140
#define EDGEIPC_H_SPACE_VALUE 192
#define EDGEIPC_H_SPACE_WAITERS 196
#define EDGEIPC_H_WRITER_WAITING 200
/* reader entry offsets */
#define EDGEIPC_R_OWNER 0
#define EDGEIPC_R_START 4
#define EDGEIPC_R_PIDNS 8
#define EDGEIPC_R_CURSOR 12
#define EDGEIPC_R_LOST 16
#define EDGEIPC_R_FRAMES 20
#define EDGEIPC_R_FLAGS 24
/* slot header offsets */
#define EDGEIPC_S_STAMP 0
#define EDGEIPC_S_LENGTH 4
#define EDGEIPC_S_TYPE 8
#define EDGEIPC_S_FLAGS 12
#define EDGEIPC_S_TIME_LO 16
#define EDGEIPC_S_TIME_HI 20
#define EDGEIPC_S_SEQ 24

/* ---- errors ----------------------------------------------------------- */

enum {
	EDGEIPC_OK = 0,
	EDGEIPC_EAGAIN = -1,    /* no frame yet / no space (Try forms) */
	EDGEIPC_ESYS = -2,      /* system call failed: see errno */
	EDGEIPC_EINVAL = -3,    /* bad argument or ring name, or a reader/writer (or its ring) not open */
	EDGEIPC_ENOTRING = -4,  /* magic is not "EIPR" (or a semaphore), or not a regular file */
	EDGEIPC_ENOTREADY = -5, /* creator never set ready within 1 s */
	EDGEIPC_EVERSION = -6,  /* ABI version / reader table layout differs */
	EDGEIPC_ECORRUPT = -7,  /* header or slot violates the ABI */
	EDGEIPC_EBUSY = -8,     /* a live writer holds the lease */
	EDGEIPC_EFULL = -9,     /* all 64 reader entries held by live readers */
	EDGEIPC_ETOOLARGE = -10, /* payload larger than max_payload */
	EDGEIPC_ETIMEDOUT = -11,
	EDGEIPC_EEVICTED = -12, /* our reader entry / lease is no longer ours */
	EDGEIPC_ESHORTBUF = -13, /* frame larger than the buffer (not consumed) */
	EDGEIPC_EOWNER = -14,   /* the segment belongs to a user not trusted (edgeipc_open_owned) */
};

static inline const char *edgeipc_strerror(int rc)
{
	switch (rc) {
	case EDGEIPC_OK: return "ok";
	case EDGEIPC_EAGAIN: return "would block";
	case EDGEIPC_ESYS: return strerror(errno);
	case EDGEIPC_EINVAL: return "invalid argument (or a reader, writer or ring that is not open)";
	case EDGEIPC_ENOTRING: return "not an edgeipc ring (bad magic, or not a regular file)";
	case EDGEIPC_ENOTREADY: return "ring header never completed (creator died?); remove the segment";
	case EDGEIPC_EVERSION: return "incompatible ring ABI version or layout";
	case EDGEIPC_ECORRUPT: return "corrupt shared memory";
	case EDGEIPC_EBUSY: return "ring already has a live writer";
	case EDGEIPC_EFULL: return "reader table is full";
	case EDGEIPC_ETOOLARGE: return "payload larger than the slot";
	case EDGEIPC_ETIMEDOUT: return "timed out";
	case EDGEIPC_EEVICTED: return "reader entry or writer lease was taken over";
	case EDGEIPC_ESHORTBUF: return "buffer too small for frame";
	case EDGEIPC_EOWNER: return "segment belongs to another user";
	}
	return "unknown edgeipc error";
}

/* ---- types ------------------------------------------------------------ */

typedef struct edgeipc_ring {
	uint8_t *base;        /* mapping */
	size_t map_size;      /* file size mapped */
	int fd;
	/* validated, process-local geometry: never re-read from shm */
	uint32_t header_size, slot_size, slot_count, mask, max_payload, policy, base_seq;
	uint64_t total_size;
} edgeipc_ring;

typedef struct edgeipc_frame {
	uint32_t seq;
	uint32_t length;
	uint32_t type;
	uint32_t flags;
	int64_t timestamp_ns; /* CLOCK_MONOTONIC at commit */
	uint32_t lost;        /* frames missed just before this one */
} edgeipc_frame;

typedef struct edgeipc_reader {
	edgeipc_ring *r;
	uint32_t index;   /* reader table entry */
	uint32_t me;      /* our PID */
	uint32_t cursor;  /* next sequence to read */
	uint32_t pending; /* lost frames not yet reported in a frame */
	uint64_t frames, lost, corrupt;
	int max_sleep_ms; /* bound of one futex sleep: 0 (set by join) = EDGEIPC_MAX_SLEEP_MS, never more */
} edgeipc_reader;

typedef struct edgeipc_writer {
	edgeipc_ring *r;
	uint32_t me;
	uint32_t seq;        /* next sequence to publish */
	uint32_t min_cursor; /* block policy: cached slowest reader cursor */
	uint32_t joins;      /* block policy: reader_joins as loaded before the scan that set min_cursor */
	uint32_t len;        /* reserved length */
	int held;            /* a slot is reserved */
	uint32_t idle_wakes; /* consecutive commits whose FUTEX_WAKE woke nobody */
	int64_t stale_at;    /* CLOCK_MONOTONIC ns of the last stale-sleeper check */
} edgeipc_writer;

enum { EDGEIPC_FROM_NEWEST = 0, EDGEIPC_FROM_OLDEST = 1 };

/* ---- low level helpers ------------------------------------------------ */

static inline _Atomic uint32_t *edgeipc__w(const edgeipc_ring *r, size_t off)
{
	return (_Atomic uint32_t *)(void *)(r->base + off);
}
static inline uint32_t edgeipc__ld(const edgeipc_ring *r, size_t off)
{
	return atomic_load(edgeipc__w(r, off));
}
static inline void edgeipc__st(const edgeipc_ring *r, size_t off, uint32_t v)
{
	atomic_store(edgeipc__w(r, off), v);
}
/* plain fields of a slot: relaxed atomics (no data race in C11 terms) */
static inline uint32_t edgeipc__ldr(const edgeipc_ring *r, size_t off)
{
	return atomic_load_explicit(edgeipc__w(r, off), memory_order_relaxed);
}
static inline void edgeipc__str(const edgeipc_ring *r, size_t off, uint32_t v)
{
	atomic_store_explicit(edgeipc__w(r, off), v, memory_order_relaxed);
}
static inline size_t edgeipc__entry(uint32_t i)
{
	return EDGEIPC_READERS_OFF + (size_t)i * EDGEIPC_READER_STRIDE;
}
static inline size_t edgeipc__slot(const edgeipc_ring *r, uint32_t seq)
{
	return (size_t)r->header_size + (size_t)(seq & r->mask) * r->slot_size;
}

/* Whether r is an open ring (edgeipc_close leaves base NULL). */
static inline int edgeipc__open(const edgeipc_ring *r)
{
	return r && r->base;
}

static inline int64_t edgeipc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The timeout SYS_futex reads: the kernel's own timespec, two longs (on a
 * 32-bit ABI the 32-bit old_timespec32). Not struct timespec: where the C
 * library's time_t is 64-bit on a 32-bit ABI (musl, glibc with
 * -D_TIME_BITS=64) the kernel would read tv_sec's high word as tv_nsec,
 * and every sleep shorter than a second would return at once. x32 passes
 * 64-bit fields. */
#if defined(__x86_64__) && defined(__ILP32__)
typedef long long edgeipc__klong;
#else
typedef long edgeipc__klong;
#endif
struct edgeipc__ktimespec {
	edgeipc__klong tv_sec, tv_nsec;
};

/* FUTEX_WAIT = 0, FUTEX_WAKE = 1, never FUTEX_PRIVATE_FLAG. */
static inline int edgeipc__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
	struct edgeipc__ktimespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = (edgeipc__klong)(timeout_ns / 1000000000);
		ts.tv_nsec = (edgeipc__klong)(timeout_ns % 1000000000);
		tsp = &ts;
	}
	long rc = syscall(SYS_futex, (void *)addr, 0 /* FUTEX_WAIT */, val, tsp, NULL, 0);
	if (rc == -1 && errno == ETIMEDOUT)
		return EDGEIPC_ETIMEDOUT;
	return 0; /* woken, EAGAIN (value changed) or EINTR: caller re-checks */
}
/* Returns the number of waiters woken (-1 on error). */
static inline long edgeipc__futex_wake(_Atomic uint32_t *addr, int n)
{
	return syscall(SYS_futex, (void *)addr, 1 /* FUTEX_WAKE */, n, NULL, NULL, 0);
}

/* ---- process identity and liveness (owner words) ---------------------- */

/* Reads the stat line of PID's main thread, /proc/PID/task/PID/stat (the
 * line /proc/PID/stat shows): state letter (field 3), number of threads
 * (field 20) and start time (field 22, low 32 bits). Returns 0 if readable.
 * Not /proc/PID/stat: qemu-user answers a process's reads of its own with
 * a line of its own making, whose start time is qemu's estimate, ticks off
 * the kernel's, and every other process would take this one for dead. */
static inline int edgeipc__proc_stat(uint32_t pid, char *state, uint32_t *threads, uint32_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%u/task/%u/stat", (unsigned)pid, (unsigned)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* comm may contain spaces and ')' */
	if (!p)
		return -1;
	p++;
	for (int field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -1;
		if (field == 3)
			*state = *p;
		if (field == 20)
			*threads = (uint32_t)strtoull(p, NULL, 10);
		if (field == 22) {
			*start = (uint32_t)strtoull(p, NULL, 10);
			return 0;
		}
		while (*p && *p != ' ')
			p++;
	}
	return -1;
}

/* The boottime offset of this process's time namespace in clock ticks
 * (USER_HZ = 100), rounded down; 0 outside one. The kernel adds the
 * reader's offset to the start times in /proc/PID/stat: start times are
 * stored and compared with it taken off (docs/abi.md, owner words). */
static inline uint32_t edgeipc__boot_offset(void)
{
	static _Atomic uint32_t cached, known; /* 32-bit: no libatomic on ARMv6 */
	if (atomic_load(&known))
		return atomic_load(&cached);
	uint32_t ticks = 0;
	char buf[256];
	int fd = open("/proc/self/timens_offsets", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			char *p = strstr(buf, "boottime");
			long long sec, nsec;
			if (p && sscanf(p, "boottime %lld %lld", &sec, &nsec) == 2) {
				long long ns = sec * 1000000000LL + nsec, tick = 10000000LL;
				long long t = ns / tick;
				if (ns % tick < 0)
					t--; /* rounded down */
				ticks = (uint32_t)t;
			}
		}
	}
	atomic_store(&cached, ticks);
	atomic_store(&known, 1);
	return ticks;
}

static inline uint32_t edgeipc_self_start(void)
{
	char st;
	uint32_t threads, start = 0;
	if (edgeipc__proc_stat((uint32_t)getpid(), &st, &threads, &start) != 0)
		return 0;
	return start - edgeipc__boot_offset();
}

/* Low 32 bits of the inode of /proc/self/ns/pid ("pid:[4026531836]"), 0 if unknown. */
static inline uint32_t edgeipc_self_pidns(void)
{
	char buf[64];
	ssize_t n = readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strchr(buf, '[');
	if (!p)
		return 0;
	return (uint32_t)strtoull(p + 1, NULL, 10);
}

/* Whether owner word o (with the start time and pid namespace stored next
 * to it) names a live process. Another pid namespace cannot be checked:
 * assume alive. With the claim bit set only the PID is checked. Where
 * /proc/PID/stat cannot be read (hidepid, no /proc) the kernel is asked:
 * alive unless kill(PID, 0) fails with ESRCH. */
static inline int edgeipc_holder_alive(uint32_t o, uint32_t start, uint32_t ns)
{
	uint32_t pid = o & ~EDGEIPC_CLAIM;
	if (pid == 0 || pid > (1u << 22))
		return 0;
	uint32_t self = edgeipc_self_pidns();
	if (ns != 0 && self != 0 && ns != self)
		return 1;
	char st = 0;
	uint32_t threads = 0, s = 0;
	if (edgeipc__proc_stat(pid, &st, &threads, &s) != 0)
		return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH);
	/* A zombie has one thread left; a Z with more is a live process whose
	 * main thread called pthread_exit. */
	if (st == 'X' || (st == 'Z' && threads <= 1))
		return 0;
	if ((o & EDGEIPC_CLAIM) || start == 0) /* start 0: the holder could not read its own */
		return 1;
	/* Within a tick: time namespaces whose offsets are not whole ticks. */
	uint32_t d = s - edgeipc__boot_offset() - start;
	return d == 0 || d == 1 || d == UINT32_MAX;
}

/* Owner-word claim, steps 1–2 of docs/abi.md: returns 1 when the word now
 * holds me|CLAIM (*prev, if not NULL, receives the value it replaced: 0 or
 * a dead holder), 0 when a live holder has it (*holder set). */
static inline int edgeipc__claim(edgeipc_ring *r, size_t owner_off, size_t start_off, size_t ns_off,
				 uint32_t me, uint32_t *holder, uint32_t *prev)
{
	_Atomic uint32_t *ow = edgeipc__w(r, owner_off);
	for (;;) {
		uint32_t v = atomic_load(ow);
		if (v != 0 && edgeipc_holder_alive(v, edgeipc__ld(r, start_off), edgeipc__ld(r, ns_off))) {
			if (holder)
				*holder = v & ~EDGEIPC_CLAIM;
			return 0;
		}
		uint32_t was = v;
		if (atomic_compare_exchange_strong(ow, &v, me | EDGEIPC_CLAIM)) {
			if (prev)
				*prev = was;
			return 1;
		}
	}
}

/* Takes back the sleeper count a dead holder may have left in reader entry
 * e ("Sleeping" in docs/abi.md). Call it only with the entry claimed (its
 * owner word holds our PID with the claim bit): once, CAS flags to clear
 * bit 1; if that succeeded, subtract 1 from ev_sleepers (bit 0 set) or
 * sleepers unless it is already 0 (a count above 64 is garbage: reset). */
static inline void edgeipc__forget_sleeper(edgeipc_ring *r, size_t e)
{
	_Atomic uint32_t *fl = edgeipc__w(r, e + EDGEIPC_R_FLAGS);
	uint32_t f = atomic_load(fl);
	if (!(f & EDGEIPC_RF_ASLEEP) || !atomic_compare_exchange_strong(fl, &f, f & ~EDGEIPC_RF_ASLEEP))
		return;
	_Atomic uint32_t *cnt = edgeipc__w(r, (f & EDGEIPC_RF_EVENTFD) ? EDGEIPC_H_EV_SLEEPERS : EDGEIPC_H_SLEEPERS);
	uint32_t v = atomic_load(cnt);
	while (v != 0 && !atomic_compare_exchange_weak(cnt, &v, v > EDGEIPC_MAX_READERS ? 0 : v - 1))
		;
}

/* Subtracts a sleeper's or waiter's 1 from *cnt unless it is 0 (docs/abi.md,
 * Sleeping): a writer's repair can take a live sleeper's count, and a plain
 * subtract then wrapped the count to 2^32-1, which the next sleeper's add
 * made 0, so that every later sleep lasted its bound. */
static inline void edgeipc__uncount(_Atomic uint32_t *cnt)
{
	uint32_t v = atomic_load(cnt);
	while (v != 0 && !atomic_compare_exchange_weak(cnt, &v, v - 1))
		;
}

/* ---- open / validate / close ------------------------------------------ */

static inline int edgeipc_valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > 200 || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static inline void edgeipc__nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Validates a mapped header (every check of docs/abi.md) and fills the
 * ring's private geometry. Waits until deadline_ns (CLOCK_MONOTONIC) for
 * a creator to finish (magic still 0, or ready still 0). */
static inline int edgeipc__validate(edgeipc_ring *r, int64_t deadline_ns)
{
	if (r->map_size < EDGEIPC_HEADER_SIZE)
		return EDGEIPC_ENOTRING;
	for (;;) {
		uint32_t m = edgeipc__ld(r, EDGEIPC_H_MAGIC);
		if (m == EDGEIPC_MAGIC && edgeipc__ld(r, EDGEIPC_H_READY) == 1)
			break;
		if (m != 0 && m != EDGEIPC_MAGIC)
			return EDGEIPC_ENOTRING; /* includes EDGEIPC_SEM_MAGIC */
		if (edgeipc_now_ns() >= deadline_ns)
			return EDGEIPC_ENOTREADY;
		edgeipc__nap_ms(10);
	}
	if (edgeipc__ld(r, EDGEIPC_H_VERSION) != EDGEIPC_ABI_VERSION)
		return EDGEIPC_EVERSION;
	if (edgeipc__ld(r, EDGEIPC_H_READERS_OFF) != EDGEIPC_READERS_OFF ||
	    edgeipc__ld(r, EDGEIPC_H_READER_STRIDE) != EDGEIPC_READER_STRIDE ||
	    edgeipc__ld(r, EDGEIPC_H_MAX_READERS) != EDGEIPC_MAX_READERS)
		return EDGEIPC_EVERSION;
	r->header_size = edgeipc__ld(r, EDGEIPC_H_HEADER_SIZE);
	r->slot_size = edgeipc__ld(r, EDGEIPC_H_SLOT_SIZE);
	r->slot_count = edgeipc__ld(r, EDGEIPC_H_SLOT_COUNT);
	r->max_payload = edgeipc__ld(r, EDGEIPC_H_MAX_PAYLOAD);
	r->policy = edgeipc__ld(r, EDGEIPC_H_POLICY);
	r->base_seq = edgeipc__ld(r, EDGEIPC_H_BASE_SEQ);
	r->total_size = (uint64_t)edgeipc__ld(r, EDGEIPC_H_TOTAL_LO) | (uint64_t)edgeipc__ld(r, EDGEIPC_H_TOTAL_HI) << 32;
	if (r->header_size != EDGEIPC_HEADER_SIZE)
		return EDGEIPC_ECORRUPT;
	if (r->slot_count < 2 || r->slot_count > EDGEIPC_MAX_SLOTS || (r->slot_count & (r->slot_count - 1)) != 0)
		return EDGEIPC_ECORRUPT;
	if (r->slot_size < 128 || r->slot_size % 64 != 0 || r->slot_size > EDGEIPC_MAX_SLOT_SIZE)
		return EDGEIPC_ECORRUPT;
	if (r->max_payload != r->slot_size - EDGEIPC_SLOT_HEADER)
		return EDGEIPC_ECORRUPT;
	if (r->policy != EDGEIPC_POLICY_OVERWRITE && r->policy != EDGEIPC_POLICY_BLOCK)
		return EDGEIPC_ECORRUPT;
	if (r->total_size != (uint64_t)r->header_size + (uint64_t)r->slot_count * r->slot_size)
		return EDGEIPC_ECORRUPT;
	if (r->total_size > (uint64_t)r->map_size)
		return EDGEIPC_ECORRUPT;
	r->mask = r->slot_count - 1;
	return EDGEIPC_OK;
}

/* Maps the ring behind fd (takes ownership of fd, also on failure). A
 * file shorter than header_size (8192) is still being created: it waits
 * up to 1 s (in all, with the wait for magic and ready) for it to grow,
 * unless it has a magic other than a ring's (a named semaphore). */
static inline int edgeipc_open_fd(edgeipc_ring *r, int fd)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	int64_t deadline = edgeipc_now_ns() + 1000000000;
	struct stat sb;
	for (;;) {
		if (fstat(fd, &sb) != 0) {
			int e = errno;
			close(fd);
			errno = e;
			return EDGEIPC_ESYS;
		}
		if (!S_ISREG(sb.st_mode)) { /* a FIFO under the ring's name: nobody is creating it */
			close(fd);
			return EDGEIPC_ENOTRING;
		}
		if (sb.st_size >= (off_t)EDGEIPC_MIN_FILE)
			break;
		/* Magic first: a named semaphore (4096 bytes) or anything else
		 * with a magic is not a ring being created: refuse it at once. */
		uint32_t m = 0;
		if (sb.st_size >= 4 && pread(fd, &m, 4, 0) == 4 && m != 0 && m != EDGEIPC_MAGIC) {
			close(fd);
			return EDGEIPC_ENOTRING;
		}
		if (edgeipc_now_ns() >= deadline) {
			close(fd);
			return EDGEIPC_ENOTREADY;
		}
		edgeipc__nap_ms(10);
	}
	if (sb.st_size < (off_t)EDGEIPC_HEADER_SIZE || (uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
		close(fd);
		return EDGEIPC_ENOTRING;
	}
	void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		close(fd);
		errno = e;
		return EDGEIPC_ESYS;
	}
	r->base = (uint8_t *)p;
	r->map_size = (size_t)sb.st_size;
	r->fd = fd;
	int rc = edgeipc__validate(r, deadline);
	if (rc != EDGEIPC_OK) {
		munmap(r->base, r->map_size);
		close(fd);
		memset(r, 0, sizeof *r);
		r->fd = -1;
	}
	return rc;
}

/* Opens $EDGEIPC_SHM_DIR/edgeipc.<name> (default /dev/shm) if it belongs to
 * one of the n users in owners. Another user's segment is refused with
 * EDGEIPC_EOWNER before it is mapped, and its owner is stored in *owner (if
 * owner is not NULL). owners == NULL with n == 0 accepts any owner (that is
 * edgeipc_open). An empty list, owners != NULL with n == 0, is
 * EDGEIPC_EINVAL, as is owners == NULL with n > 0: it would trust nobody,
 * which is never meant (Python's Ring(owners=[]) raises ValueError): pass
 * the uids to trust, or NULL, 0 to accept any owner. In /dev/shm anyone may
 * create a file under a ring's name: its owner reads what a writer writes
 * into it, can forge frames, and can truncate it under the mapping
 * (SIGBUS). A writer should trust only its own uid, root and the ring's
 * known owner. */
static inline int edgeipc_open_owned(edgeipc_ring *r, const char *name, const uid_t *owners, size_t n, uid_t *owner)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	if (!edgeipc_valid_name(name) || (n > 0) != (owners != NULL))
		return EDGEIPC_EINVAL;
	const char *dir = getenv("EDGEIPC_SHM_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	char path[4096];
	if (snprintf(path, sizeof path, "%s/edgeipc.%s", dir, name) >= (int)sizeof path)
		return EDGEIPC_EINVAL;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return EDGEIPC_ESYS;
	if (n > 0) {
		struct stat sb;
		if (fstat(fd, &sb) != 0) {
			int e = errno;
			close(fd);
			errno = e;
			return EDGEIPC_ESYS;
		}
		if (owner)
			*owner = sb.st_uid;
		size_t i = 0;
		while (i < n && owners[i] != sb.st_uid)
			i++;
		if (i == n) {
			close(fd);
			return EDGEIPC_EOWNER;
		}
	}
	return edgeipc_open_fd(r, fd);
}

/* Opens $EDGEIPC_SHM_DIR/edgeipc.<name> (default /dev/shm), whoever owns
 * it: see edgeipc_open_owned. */
static inline int edgeipc_open(edgeipc_ring *r, const char *name)
{
	return edgeipc_open_owned(r, name, NULL, 0, NULL);
}

/* Unmaps the ring. Leave its readers and close its writers first: their
 * reader entries and writer lease stay held by this (live) process
 * otherwise (using them afterwards answers EDGEIPC_EINVAL: r itself must
 * still exist, it is how they see the ring closed). */
static inline void edgeipc_close(edgeipc_ring *r)
{
	if (r->base)
		munmap(r->base, r->map_size);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof *r);
	r->fd = -1;
}

static inline uint32_t edgeipc_head(const edgeipc_ring *r) { return edgeipc__ld(r, EDGEIPC_H_HEAD); }

/* ---- block-policy space semaphore -------------------------------------- */

/* Add 1 unless the value is already 2^31-1 or more (garbage from another
 * process must not wrap the count to 0), then wake one waiter. */
static inline void edgeipc__sem_post(edgeipc_ring *r)
{
	_Atomic uint32_t *v = edgeipc__w(r, EDGEIPC_H_SPACE_VALUE);
	uint32_t x = atomic_load(v);
	do {
		if (x >= 0x7fffffffu)
			return;
	} while (!atomic_compare_exchange_weak(v, &x, x + 1));
	if (edgeipc__ld(r, EDGEIPC_H_SPACE_WAITERS) != 0)
		edgeipc__futex_wake(edgeipc__w(r, EDGEIPC_H_SPACE_VALUE), 1);
}

static inline int edgeipc__sem_trywait(edgeipc_ring *r)
{
	_Atomic uint32_t *v = edgeipc__w(r, EDGEIPC_H_SPACE_VALUE);
	uint32_t x = atomic_load(v);
	while (x > 0)
		if (atomic_compare_exchange_weak(v, &x, x - 1))
			return 1;
	return 0;
}

/* ---- reader ------------------------------------------------------------ */

/* The first frame a reader joining at head reads: head itself (newest), or
 * the oldest frame still in the ring. */
static inline uint32_t edgeipc__start(edgeipc_ring *r, uint32_t head, int from)
{
	if (from != EDGEIPC_FROM_OLDEST)
		return head;
	if (head - r->base_seq < r->slot_count)
		return r->base_seq;
	uint32_t c = head - r->slot_count;
	/* A writer may already have opened this slot for frame head (odd
	 * stamp): that frame is gone, start after it. */
	if (edgeipc__ld(r, edgeipc__slot(r, c) + EDGEIPC_S_STAMP) != c << 1)
		c++;
	return c;
}

/* Joins the reader table. from: EDGEIPC_FROM_NEWEST (next frame published)
 * or EDGEIPC_FROM_OLDEST (oldest frame still in the ring). */
static inline int edgeipc_reader_join(edgeipc_reader *rd, edgeipc_ring *r, int from)
{
	memset(rd, 0, sizeof *rd);
	if (!edgeipc__open(r))
		return EDGEIPC_EINVAL; /* rd->r NULL: nothing to leave */
	rd->r = r;
	rd->me = (uint32_t)getpid();
	uint32_t i, prev = 0;
	for (i = 0; i < EDGEIPC_MAX_READERS; i++) {
		size_t e = edgeipc__entry(i);
		if (edgeipc__claim(r, e + EDGEIPC_R_OWNER, e + EDGEIPC_R_START, e + EDGEIPC_R_PIDNS, rd->me, NULL, &prev))
			break;
	}
	if (i == EDGEIPC_MAX_READERS) {
		rd->r = NULL; /* nothing to leave: edgeipc_reader_leave is a no-op */
		return EDGEIPC_EFULL;
	}
	size_t e = edgeipc__entry(i);
	rd->index = i;
	if (prev != 0) /* taken over from a dead holder, who may have died asleep */
		edgeipc__forget_sleeper(r, e);
	edgeipc__st(r, e + EDGEIPC_R_START, edgeipc_self_start());
	edgeipc__st(r, e + EDGEIPC_R_PIDNS, edgeipc_self_pidns());
	uint32_t head = edgeipc_head(r), c = edgeipc__start(r, head, from);
	rd->cursor = c;
	edgeipc__st(r, e + EDGEIPC_R_CURSOR, c);
	edgeipc__st(r, e + EDGEIPC_R_LOST, 0);
	edgeipc__st(r, e + EDGEIPC_R_FRAMES, 0);
	edgeipc__st(r, e + EDGEIPC_R_FLAGS, 0);
	edgeipc__st(r, e + EDGEIPC_R_OWNER, rd->me);
	/* Tell a block-policy writer that caches its space check to scan the
	 * table again: we may start behind every cursor it last saw. */
	atomic_fetch_add(edgeipc__w(r, EDGEIPC_H_READER_JOINS), 1);
	/* Frames committed since we read head were written while the writer
	 * may not have seen us. From the oldest, the oldest may be gone: start
	 * after them rather than report them lost. From the newest, they are
	 * ours and still in their slots unless the writer went a whole ring
	 * further. */
	uint32_t h2 = edgeipc_head(r);
	if (h2 != head && (from == EDGEIPC_FROM_OLDEST || h2 - head >= r->slot_count)) {
		uint32_t c2 = edgeipc__start(r, h2, from);
		if (c2 != c && c2 - c < 0x80000000u) {
			rd->cursor = c2;
			edgeipc__st(r, e + EDGEIPC_R_CURSOR, c2);
		}
	}
	return EDGEIPC_OK;
}

static inline void edgeipc__advance(edgeipc_reader *rd, uint32_t c)
{
	rd->cursor = c;
	edgeipc__st(rd->r, edgeipc__entry(rd->index) + EDGEIPC_R_CURSOR, c);
	/* block policy: let a waiting writer re-check */
	if (rd->r->policy == EDGEIPC_POLICY_BLOCK && edgeipc__ld(rd->r, EDGEIPC_H_WRITER_WAITING) == 1) {
		uint32_t one = 1;
		if (atomic_compare_exchange_strong(edgeipc__w(rd->r, EDGEIPC_H_WRITER_WAITING), &one, 0))
			edgeipc__sem_post(rd->r);
	}
}

static inline void edgeipc__lose(edgeipc_reader *rd, uint32_t n)
{
	rd->pending += n;
	rd->lost += n;
	atomic_fetch_add(edgeipc__w(rd->r, edgeipc__entry(rd->index) + EDGEIPC_R_LOST), n);
}

/* Copies the next frame into buf (cap bytes) without waiting. Returns 0 with
 * *f filled, EDGEIPC_EAGAIN when there is no frame, EDGEIPC_ESHORTBUF (frame
 * not consumed, f->length = needed size), EDGEIPC_ECORRUPT (slot skipped),
 * EDGEIPC_EEVICTED. A torn frame is never returned: frames the writer
 * overwrote are skipped and counted in f->lost of the next frame. */
static inline int edgeipc_read(edgeipc_reader *rd, edgeipc_frame *f, void *buf, size_t cap)
{
	edgeipc_ring *r = rd->r;
	if (!edgeipc__open(r))
		return EDGEIPC_EINVAL;
	if (edgeipc__ld(r, edgeipc__entry(rd->index) + EDGEIPC_R_OWNER) != rd->me)
		return EDGEIPC_EEVICTED;
	for (int attempt = 0; attempt < 64; attempt++) {
		uint32_t c = rd->cursor;
		uint32_t h = edgeipc_head(r);
		if (h == c)
			return EDGEIPC_EAGAIN;
		uint32_t lag = h - c;
		if (lag > 0x80000000u) { /* head went backwards: follow it */
			edgeipc__advance(rd, h);
			return EDGEIPC_EAGAIN;
		}
		if (lag > r->slot_count) { /* lapped */
			edgeipc__lose(rd, lag - r->slot_count);
			c = h - r->slot_count;
			edgeipc__advance(rd, c);
		}
		size_t s = edgeipc__slot(r, c);
		uint32_t st = atomic_load_explicit(edgeipc__w(r, s + EDGEIPC_S_STAMP), memory_order_acquire);
		if (st != c << 1 || edgeipc__ldr(r, s + EDGEIPC_S_SEQ) != c) {
			edgeipc__lose(rd, 1); /* slot reused after we read head */
			edgeipc__advance(rd, c + 1);
			continue;
		}
		uint32_t len = edgeipc__ldr(r, s + EDGEIPC_S_LENGTH);
		if (len > r->max_payload) {
			atomic_thread_fence(memory_order_seq_cst);
			if (edgeipc__ld(r, s + EDGEIPC_S_STAMP) == st) {
				rd->corrupt++;
				edgeipc__advance(rd, c + 1);
				return EDGEIPC_ECORRUPT;
			}
			edgeipc__lose(rd, 1);
			edgeipc__advance(rd, c + 1);
			continue;
		}
		if (len > cap) {
			f->seq = c;
			f->length = len;
			return EDGEIPC_ESHORTBUF;
		}
		edgeipc_frame fr;
		fr.seq = c;
		fr.length = len;
		fr.type = edgeipc__ldr(r, s + EDGEIPC_S_TYPE);
		fr.flags = edgeipc__ldr(r, s + EDGEIPC_S_FLAGS);
		fr.timestamp_ns = (int64_t)((uint64_t)edgeipc__ldr(r, s + EDGEIPC_S_TIME_LO) |
					    (uint64_t)edgeipc__ldr(r, s + EDGEIPC_S_TIME_HI) << 32);
		memcpy(buf, r->base + s + EDGEIPC_SLOT_HEADER, len);
		/* load→load barrier, then re-check: was the slot reused meanwhile? */
		atomic_thread_fence(memory_order_seq_cst);
		if (edgeipc__ld(r, s + EDGEIPC_S_STAMP) != st) {
			edgeipc__lose(rd, 1);
			edgeipc__advance(rd, c + 1);
			continue;
		}
		fr.lost = rd->pending;
		rd->pending = 0;
		rd->frames++;
		edgeipc__advance(rd, c + 1);
		if ((rd->frames & 63) == 0)
			edgeipc__st(r, edgeipc__entry(rd->index) + EDGEIPC_R_FRAMES, (uint32_t)rd->frames);
		*f = fr;
		return EDGEIPC_OK;
	}
	return EDGEIPC_EAGAIN;
}

/* Sleeps on the head futex until the head moves past the cursor (returns
 * 0) or timeout_ms elapses (EDGEIPC_ETIMEDOUT); timeout_ms < 0 waits
 * forever. Each FUTEX_WAIT lasts at most EDGEIPC_MAX_SLEEP_MS (10 s; less
 * if rd->max_sleep_ms is set lower), then the head is checked again, so a
 * lost wake-up costs one late frame, not a reader asleep forever. May
 * return 0 early (a signal): call edgeipc_read again. EDGEIPC_EEVICTED if
 * the reader entry is no longer ours. */
static inline int edgeipc_wait(edgeipc_reader *rd, int timeout_ms)
{
	edgeipc_ring *r = rd->r;
	if (!edgeipc__open(r))
		return EDGEIPC_EINVAL;
	uint32_t c = rd->cursor;
	size_t e = edgeipc__entry(rd->index);
	_Atomic uint32_t *head = edgeipc__w(r, EDGEIPC_H_HEAD);
	_Atomic uint32_t *sl = edgeipc__w(r, EDGEIPC_H_SLEEPERS);
	_Atomic uint32_t *fl = edgeipc__w(r, e + EDGEIPC_R_FLAGS);
	int64_t deadline = timeout_ms < 0 ? -1 : edgeipc_now_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		if (atomic_load(head) != c)
			return 0;
		if (edgeipc__ld(r, e + EDGEIPC_R_OWNER) != rd->me)
			return EDGEIPC_EEVICTED; /* the flags word is no longer ours to touch */
		int bound = EDGEIPC_MAX_SLEEP_MS;
		if (rd->max_sleep_ms > 0 && rd->max_sleep_ms < bound)
			bound = rd->max_sleep_ms;
		int64_t t = (int64_t)bound * 1000000;
		if (deadline >= 0) {
			int64_t left = deadline - edgeipc_now_ns();
			if (left <= 0)
				return EDGEIPC_ETIMEDOUT;
			if (left < t)
				t = left;
		}
		int rc = 0;
		/* asleep bit before raising the count, cleared after lowering it:
		 * whoever finds us dead with it set takes the count back */
		atomic_fetch_or(fl, EDGEIPC_RF_ASLEEP);
		atomic_fetch_add(sl, 1); /* raise before re-checking head (seq_cst) */
		if (atomic_load(head) == c)
			rc = edgeipc__futex_wait(head, c, t);
		edgeipc__uncount(sl);
		atomic_fetch_and(fl, ~EDGEIPC_RF_ASLEEP);
		if (rc != EDGEIPC_ETIMEDOUT)
			return 0; /* woken, head changed, or a signal: the caller re-checks */
		/* a bounded sleep ran out: check the head and the deadline again */
	}
}

/* edgeipc_read that waits up to timeout_ms (< 0: forever) for a frame. */
static inline int edgeipc_read_wait(edgeipc_reader *rd, edgeipc_frame *f, void *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : edgeipc_now_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		int rc = edgeipc_read(rd, f, buf, cap);
		if (rc != EDGEIPC_EAGAIN)
			return rc;
		int ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - edgeipc_now_ns();
			if (left <= 0)
				return EDGEIPC_ETIMEDOUT;
			ms = (int)((left + 999999) / 1000000);
		}
		rc = edgeipc_wait(rd, ms);
		if (rc == EDGEIPC_EEVICTED)
			return rc;
		if (rc == EDGEIPC_ETIMEDOUT && deadline >= 0 && edgeipc_now_ns() >= deadline &&
		    edgeipc_head(rd->r) == rd->cursor)
			return rc;
	}
}

/* Leaves the reader table. After a join that failed, a second time, or
 * after edgeipc_close of its ring (the entry then stays held), it does nothing. */
static inline void edgeipc_reader_leave(edgeipc_reader *rd)
{
	edgeipc_ring *r = rd->r;
	rd->r = NULL;
	if (!edgeipc__open(r)) /* its ring was closed first: nothing left to touch */
		return;
	size_t e = edgeipc__entry(rd->index);
	if (edgeipc__ld(r, e + EDGEIPC_R_OWNER) == rd->me) { /* evicted: the entry is another's now */
		edgeipc__st(r, e + EDGEIPC_R_FRAMES, (uint32_t)rd->frames);
		edgeipc__st(r, e + EDGEIPC_R_FLAGS, 0);
	}
	uint32_t v = rd->me;
	atomic_compare_exchange_strong(edgeipc__w(r, e + EDGEIPC_R_OWNER), &v, 0);
	uint32_t one = 1; /* a block-policy writer may be waiting on us */
	if (r->policy == EDGEIPC_POLICY_BLOCK &&
	    atomic_compare_exchange_strong(edgeipc__w(r, EDGEIPC_H_WRITER_WAITING), &one, 0))
		edgeipc__sem_post(r);
}

/* ---- writer ------------------------------------------------------------ */

/* Takes the writer lease. EDGEIPC_EBUSY if a live process holds it (its PID
 * in *holder if holder is not NULL); a dead holder's lease is reclaimed. A
 * frame the previous writer committed but died before publishing (slot of
 * head stamped head << 1 with seq == head) is published, not reused:
 * readers may already have taken it by its stamp. Readers asleep on the
 * futex are woken (the previous writer may have died before its wake). */
static inline int edgeipc_writer_open(edgeipc_writer *w, edgeipc_ring *r, uint32_t *holder)
{
	memset(w, 0, sizeof *w);
	if (!edgeipc__open(r))
		return EDGEIPC_EINVAL; /* w->r NULL: nothing to close */
	w->r = r;
	w->me = (uint32_t)getpid();
	if (!edgeipc__claim(r, EDGEIPC_H_LEASE_OWNER, EDGEIPC_H_LEASE_START, EDGEIPC_H_LEASE_PIDNS, w->me, holder,
			    NULL)) {
		w->r = NULL;
		return EDGEIPC_EBUSY;
	}
	edgeipc__st(r, EDGEIPC_H_LEASE_START, edgeipc_self_start());
	edgeipc__st(r, EDGEIPC_H_LEASE_PIDNS, edgeipc_self_pidns());
	atomic_fetch_add(edgeipc__w(r, EDGEIPC_H_LEASE_EPOCH), 1);
	edgeipc__st(r, EDGEIPC_H_LEASE_OWNER, w->me);
	_Atomic uint32_t *head = edgeipc__w(r, EDGEIPC_H_HEAD);
	uint32_t h = atomic_load(head);
	size_t off = edgeipc__slot(r, h);
	if (atomic_load_explicit(edgeipc__w(r, off + EDGEIPC_S_STAMP), memory_order_acquire) == h << 1 &&
	    edgeipc__ldr(r, off + EDGEIPC_S_SEQ) == h) {
		/* the last writer died between its commit's stamp and head stores */
		h++;
		atomic_store_explicit(head, h, memory_order_seq_cst);
	}
	/* It may also have died between its head store and its wake: wake the
	 * readers asleep on the head it moved. */
	if (edgeipc__ld(r, EDGEIPC_H_SLEEPERS) != 0)
		edgeipc__futex_wake(head, INT_MAX);
	w->seq = h;
	w->stale_at = edgeipc_now_ns() - EDGEIPC_STALE_CHECK_NS; /* the first check may come at once */
	/* No cache yet: the first frame scans the reader table (readers may
	 * be up to a ring behind head). */
	w->min_cursor = h - r->slot_count;
	return EDGEIPC_OK;
}

/* Slowest live reader's cursor relative to s (s itself if none). Entries
 * with the claim bit or a cursor ahead of s are ignored; one more than a
 * ring behind (a reader that joined while we went on) fills the ring. */
static inline uint32_t edgeipc__slowest(edgeipc_ring *r, uint32_t s)
{
	uint32_t min = s;
	for (uint32_t i = 0; i < EDGEIPC_MAX_READERS; i++) {
		size_t e = edgeipc__entry(i);
		uint32_t o = edgeipc__ld(r, e + EDGEIPC_R_OWNER);
		if (o == 0 || (o & EDGEIPC_CLAIM))
			continue;
		uint32_t c = edgeipc__ld(r, e + EDGEIPC_R_CURSOR);
		uint32_t lag = s - c;
		if (lag <= 0x80000000u && lag > s - min)
			min = c;
	}
	return min;
}

/* Scans the reader table for the slowest cursor and caches it, with the
 * value of reader_joins loaded before the scan (acquire). */
static inline void edgeipc__scan(edgeipc_writer *w, uint32_t s)
{
	w->joins = atomic_load_explicit(edgeipc__w(w->r, EDGEIPC_H_READER_JOINS), memory_order_acquire);
	w->min_cursor = edgeipc__slowest(w->r, s);
}

/* Whether the last scan proves that frame s fits: the slowest cursor it
 * saw is less than a ring behind s, and no reader has joined since (one
 * that joins from the oldest frame starts behind every cursor the scan
 * saw). Readers that advance or leave only make room. */
static inline int edgeipc__cached_space(edgeipc_writer *w, uint32_t s)
{
	return s - w->min_cursor < w->r->slot_count &&
	       atomic_load_explicit(edgeipc__w(w->r, EDGEIPC_H_READER_JOINS), memory_order_acquire) == w->joins;
}

static inline int edgeipc__has_space(edgeipc_writer *w, uint32_t s)
{
	if (edgeipc__cached_space(w, s))
		return 1;
	edgeipc__scan(w, s);
	return s - w->min_cursor < w->r->slot_count;
}

/* Frees reader entry e, whose owner word read o, if its holder is dead
 * (docs/abi.md, Owner words): claim the entry first, take back the sleeper
 * count its holder may have left, then free it. A reader taking the entry
 * over meanwhile keeps it: its claim or ours fails. */
static inline void edgeipc__reap_if_dead(edgeipc_writer *w, size_t e, uint32_t o)
{
	edgeipc_ring *r = w->r;
	if (o == 0 || edgeipc_holder_alive(o, edgeipc__ld(r, e + EDGEIPC_R_START), edgeipc__ld(r, e + EDGEIPC_R_PIDNS)))
		return;
	if (!atomic_compare_exchange_strong(edgeipc__w(r, e + EDGEIPC_R_OWNER), &o, w->me | EDGEIPC_CLAIM))
		return;
	edgeipc__forget_sleeper(r, e);
	edgeipc__st(r, e + EDGEIPC_R_OWNER, 0);
}

/* Frees the entries of readers that died (block policy, ring full). */
static inline void edgeipc__evict_dead(edgeipc_writer *w)
{
	for (uint32_t i = 0; i < EDGEIPC_MAX_READERS; i++) {
		size_t e = edgeipc__entry(i);
		edgeipc__reap_if_dead(w, e, edgeipc__ld(w->r, e + EDGEIPC_R_OWNER));
	}
}

/* Takes back the sleeper counts of readers that died asleep ("Sleeping"
 * in docs/abi.md): without it every later commit would make a FUTEX_WAKE
 * for nobody. A count above 64 is garbage and is reset; otherwise only
 * what a dead entry is known to hold (its asleep bit) is subtracted, so a
 * live reader that wakes and sleeps again during the scan keeps its
 * count. The commit calls it after EDGEIPC_STALE_WAKES wakes in a row
 * reached nobody, at most once per EDGEIPC_STALE_CHECK_NS. */
static inline void edgeipc__repair_sleepers(edgeipc_writer *w)
{
	edgeipc_ring *r = w->r;
	size_t counts[2] = {EDGEIPC_H_SLEEPERS, EDGEIPC_H_EV_SLEEPERS};
	for (int k = 0; k < 2; k++) {
		uint32_t v = edgeipc__ld(r, counts[k]);
		if (v > EDGEIPC_MAX_READERS)
			atomic_compare_exchange_strong(edgeipc__w(r, counts[k]), &v, 0);
	}
	for (uint32_t i = 0; i < EDGEIPC_MAX_READERS; i++) {
		size_t e = edgeipc__entry(i);
		uint32_t o = edgeipc__ld(r, e + EDGEIPC_R_OWNER);
		if (o != 0 && (edgeipc__ld(r, e + EDGEIPC_R_FLAGS) & EDGEIPC_RF_ASLEEP))
			edgeipc__reap_if_dead(w, e, o);
	}
}

/* Block policy: wait until frame s fits (deadline_ns < 0: forever). */
static inline int edgeipc__wait_space(edgeipc_writer *w, uint32_t s, int64_t deadline_ns)
{
	edgeipc_ring *r = w->r;
	_Atomic uint32_t *val = edgeipc__w(r, EDGEIPC_H_SPACE_VALUE);
	_Atomic uint32_t *waiters = edgeipc__w(r, EDGEIPC_H_SPACE_WAITERS);
	int64_t next_evict = edgeipc_now_ns() + 100000000;
	for (;;) {
		edgeipc__st(r, EDGEIPC_H_WRITER_WAITING, 1);
		if (edgeipc__has_space(w, s)) {
			edgeipc__st(r, EDGEIPC_H_WRITER_WAITING, 0);
			return 0;
		}
		if (!edgeipc__sem_trywait(r)) {
			int64_t now = edgeipc_now_ns();
			int64_t t = next_evict - now;
			if (deadline_ns >= 0 && deadline_ns - now < t)
				t = deadline_ns - now;
			if (t > 0) {
				atomic_fetch_add(waiters, 1);
				if (atomic_load(val) == 0)
					edgeipc__futex_wait(val, 0, t);
				edgeipc__uncount(waiters);
			}
		}
		int64_t now = edgeipc_now_ns();
		if (now >= next_evict) { /* free entries of readers that died */
			edgeipc__evict_dead(w);
			edgeipc__scan(w, s);
			next_evict = now + 100000000;
		}
		if (deadline_ns >= 0 && now >= deadline_ns && !edgeipc__has_space(w, s)) {
			edgeipc__st(r, EDGEIPC_H_WRITER_WAITING, 0);
			return EDGEIPC_ETIMEDOUT;
		}
	}
}

/* Reserves the next slot for a payload of n bytes and returns its address
 * in *payload (64-byte aligned). Under the block policy it waits up to
 * timeout_ms (< 0 forever; 0: EDGEIPC_EAGAIN at once) for the slowest reader.
 * Reserving again before commit reuses the same slot. */
static inline int edgeipc_reserve(edgeipc_writer *w, uint32_t n, void **payload, int timeout_ms)
{
	edgeipc_ring *r = w->r;
	if (!edgeipc__open(r))
		return EDGEIPC_EINVAL;
	if (n > r->max_payload)
		return EDGEIPC_ETOOLARGE;
	uint32_t s = w->seq;
	size_t off = edgeipc__slot(r, s);
	if (!w->held) {
		if (r->policy == EDGEIPC_POLICY_BLOCK && !edgeipc__has_space(w, s)) {
			if (timeout_ms == 0)
				return EDGEIPC_EAGAIN;
			int rc = edgeipc__wait_space(w, s, timeout_ms < 0 ? -1 : edgeipc_now_ns() + (int64_t)timeout_ms * 1000000);
			if (rc)
				return rc;
		}
		/* odd stamp, then store→store barrier before the payload */
		edgeipc__st(r, off + EDGEIPC_S_STAMP, (s << 1) | 1);
		atomic_thread_fence(memory_order_seq_cst);
		w->held = 1;
	}
	w->len = n;
	*payload = r->base + off + EDGEIPC_SLOT_HEADER;
	return EDGEIPC_OK;
}

/* Publishes the reserved frame and wakes futex sleepers. *seq (if not NULL)
 * receives its sequence number. After EDGEIPC_STALE_WAKES commits in a row
 * whose wake reached nobody (at most once a second) it takes back the
 * sleeper counts of readers that died asleep and frees their entries. */
static inline int edgeipc_commit(edgeipc_writer *w, uint32_t type, uint32_t flags, uint32_t *seq)
{
	edgeipc_ring *r = w->r;
	if (!edgeipc__open(r) || !w->held)
		return EDGEIPC_EINVAL;
	w->held = 0;
	if (edgeipc__ld(r, EDGEIPC_H_LEASE_OWNER) != w->me)
		return EDGEIPC_EEVICTED;
	uint32_t s = w->seq;
	size_t off = edgeipc__slot(r, s);
	uint64_t now = (uint64_t)edgeipc_now_ns();
	edgeipc__str(r, off + EDGEIPC_S_LENGTH, w->len);
	edgeipc__str(r, off + EDGEIPC_S_TYPE, type);
	edgeipc__str(r, off + EDGEIPC_S_FLAGS, flags);
	edgeipc__str(r, off + EDGEIPC_S_TIME_LO, (uint32_t)now);
	edgeipc__str(r, off + EDGEIPC_S_TIME_HI, (uint32_t)(now >> 32));
	edgeipc__str(r, off + EDGEIPC_S_SEQ, s);
	atomic_store_explicit(edgeipc__w(r, off + EDGEIPC_S_STAMP), s << 1, memory_order_release);
	atomic_store_explicit(edgeipc__w(r, EDGEIPC_H_HEAD), s + 1, memory_order_seq_cst);
	w->seq = s + 1;
	if (edgeipc__ld(r, EDGEIPC_H_SLEEPERS) != 0) {
		if (edgeipc__futex_wake(edgeipc__w(r, EDGEIPC_H_HEAD), INT_MAX) == 0)
			w->idle_wakes++;
		else
			w->idle_wakes = 0;
	}
	if (w->idle_wakes >= EDGEIPC_STALE_WAKES && (int64_t)now - w->stale_at >= EDGEIPC_STALE_CHECK_NS) {
		w->idle_wakes = 0;
		w->stale_at = (int64_t)now;
		edgeipc__repair_sleepers(w);
	}
	if (seq)
		*seq = s;
	return EDGEIPC_OK;
}

/* Copies p (n bytes) into the next slot and commits it. */
static inline int edgeipc_write(edgeipc_writer *w, uint32_t type, uint32_t flags, const void *p, uint32_t n,
				uint32_t *seq, int timeout_ms)
{
	void *dst;
	int rc = edgeipc_reserve(w, n, &dst, timeout_ms);
	if (rc)
		return rc;
	memcpy(dst, p, n);
	return edgeipc_commit(w, type, flags, seq);
}

/* Releases the writer lease (an uncommitted reservation is discarded:
 * its odd stamp tells readers the slot holds no frame). */
static inline void edgeipc_writer_close(edgeipc_writer *w)
{
	edgeipc_ring *r = w->r;
	w->r = NULL;
	if (!edgeipc__open(r)) /* its ring was closed first: nothing left to touch */
		return;
	_Atomic uint32_t *o = edgeipc__w(r, EDGEIPC_H_LEASE_OWNER);
	uint32_t v = w->me;
	if (!atomic_compare_exchange_strong(o, &v, 0)) {
		v = w->me | EDGEIPC_CLAIM;
		atomic_compare_exchange_strong(o, &v, 0);
	}
}

#endif /* EDGEIPC_H */
