// Package clients holds the ring ABI clients for programs that are not
// written in Go, and the Go tests that hold them to docs/abi.md.
//
// There is no Go API here. The directory contains:
//
//   - c/edgeipc.h: a single-header C11 library (static inline functions,
//     <stdatomic.h>, futex through syscall(2)) to open and validate a ring,
//     join it as a reader, read frames with stamp validation and loss
//     counting, sleep on the head futex, take the writer lease, write and
//     commit frames (block policy included) and leave.
//   - c/examples: consumer.c and producer.c.
//   - python/edgeipc_ring.py: the same in Python 3 (mmap, struct, ctypes
//     for libatomic compare-and-swap and the futex); python/examples.
//   - README.md: how to build and use them, and what each language
//     guarantees.
//
// The tests (clients_test.go) run the C and Python programs as real
// processes against rings that Go writes or reads, in a temporary segment
// directory passed through EDGEIPC_SHM_DIR. They need cc and python3 on
// PATH (and qemu-user-static for the tests that run a client under
// qemu-user) and skip, saying so, without them; under make test
// (EDGEIPC_REQUIRE_TOOLS=1) they fail instead.
package clients
