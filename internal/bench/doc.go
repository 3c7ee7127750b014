// Package bench implements `edgeipc bench`: two-process ping-pong and
// streaming measurements of edgeipc rings against pipes, Unix and TCP
// sockets, FIFOs and POSIX message queues, with C baselines compiled at
// run time for the shared-memory cases.
//
// # Concepts
//
//   - A case is one transport measured one way: ping-pong cases report the
//     round-trip time (p50/p99, measured with shm.Now around each round
//     trip after a warm-up), streaming cases report frames and bytes per
//     second seen by the consumer.
//   - Every case runs between two processes: the bench re-executes its own
//     binary (Options.Exe, by default os.Executable) with the hidden
//     subcommand "bench-child" as the peer (the echo side of a ping-pong,
//     the producer of a stream).
//   - The C baselines (c/*.c, embedded) are compiled with the system `cc
//     -O2` into a temporary directory; each forks and measures the same
//     exchange through a shared anonymous mapping. ring-spin is compared
//     with c-spin, ring-wait with c-futex and ring-stream with c-ring;
//     ratio_to_c is Go/C of the round-trip p50 (lower is better) or of
//     frames per second (higher is better). ring-spin and ring-stream
//     also get ratio_to_c_like against c-spin-ts and c-ring-ts, the same C
//     programs plus the CLOCK_MONOTONIC read per frame that every ring
//     commit makes. go-spin and go-spin-ts (gospin.go) are c-spin and
//     c-spin-ts written in Go, compared with them: the language's share of
//     ring-spin's distance from C, apart from the ring's. Without a C
//     compiler the results say "no C compiler: ratios unavailable" and the
//     C cases are skipped, as they are with Options.NoC; a compiler that
//     builds for another machine (the host's under qemu-user) counts as
//     none.
//
// # Kernel and privileges
//
// Linux only. Rings live in a temporary directory under $EDGEIPC_SHM_DIR
// or /dev/shm (real shared memory), locked by its bench for as long as it
// runs; a bench removes the directories of benches that died, and starts
// every peer with PR_SET_PDEATHSIG so that the peers die with it
// (segdir.go, starter.go). POSIX message queues are capped by
// /proc/sys/fs/mqueue/msgsize_max (larger sizes are reported as skipped).
// Pinning (Options.CPUs) uses sched_setaffinity on every thread.
package bench
