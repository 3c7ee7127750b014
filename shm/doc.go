// Package shm moves frames between processes through named, preallocated
// shared-memory rings: one writer, many readers, zero copies, no garbage,
// and no system call on the hot path unless a reader sleeps.
//
// Use it directly from any Go program; it does not need the edgeipc
// daemon. C and Python programs share the same rings through the ABI in
// docs/abi.md (clients/ has a header and a module).
//
// # Getting started
//
// A producer creates a ring and publishes frames into it; a consumer in
// another process opens the ring by name and waits for them:
//
//	func produce(samples <-chan []byte) error {
//		r, err := shm.Create("accel", shm.Config{Slots: 256, SlotPayload: 64}) // /dev/shm/edgeipc.accel, 0600
//		if err != nil {
//			return err // wraps os.ErrExist if the name is taken: see OpenOrCreate
//		}
//		defer r.Close()
//		w, err := r.NewWriter() // one live writer per ring: ErrBusy names another
//		if err != nil {
//			return err
//		}
//		for s := range samples {
//			buf, err := w.Reserve(len(s)) // the slot's own bytes: ErrTooLarge beyond SlotPayload
//			if err != nil {
//				return err
//			}
//			copy(buf, s)
//			if _, err := w.CommitWith(1, 0); err != nil { // type 1, flags 0
//				return err
//			}
//		}
//		return nil
//	}
//
//	func consume(ctx context.Context) error {
//		rd, err := shm.OpenReader("accel", nil, &shm.ReaderOptions{From: shm.Oldest})
//		if err != nil {
//			return err // wraps os.ErrNotExist until the producer has created the ring (OpenReaderContext waits)
//		}
//		defer rd.Close()
//		for {
//			f, err := rd.Next(ctx) // sleeps on a futex until a frame arrives, or ctx ends
//			if err != nil {
//				return err
//			}
//			fmt.Printf("frame %d: %q\n", f.Seq, f.Data) // f.Data is the slot itself, valid until Release
//			if err := rd.Release(); errors.Is(err, shm.ErrOverwritten) {
//				// the writer lapped this reader while it looked: discard what it saw
//			}
//		}
//	}
//
// Example runs both halves in one process, and examples/ring runs them as
// two programs.
//
// # Concepts
//
//   - Segment: a file under /dev/shm (edgeipc.<name>, mode 0600 or 0660,
//     created O_EXCL|O_NOFOLLOW and preallocated; a ring gets its name
//     only once it is initialised) or a sealed memfd.
//   - Ring: a segment holding a header, a reader table and N fixed-size
//     slots. Frames carry a sequence number, a CLOCK_MONOTONIC timestamp,
//     a type, flags and a payload. The last N-1 frames are readable (the
//     writer opens the slot of its next frame as it publishes one).
//   - Writer: the one process holding the ring's writer lease; a dead
//     writer's lease is reclaimed by the next one (ErrBusy names a live one).
//   - Reader: one of up to 64 entries, each with its own cursor; starts at
//     the newest frame or the oldest still in the ring.
//   - Policy: Overwrite (the writer never blocks; laggards are told exactly
//     how many frames they lost) or Block (the writer waits for the slowest
//     live reader; dead readers are evicted).
//   - Wake: readers sleep on a futex in the ring header (no descriptors
//     needed), or on an Eventfd so that the wait parks in the netpoller, or
//     spin for the lowest latency (ReaderOptions.Spin). A Block writer
//     facing a full ring sleeps on a semaphore, or polls (Writer.SetSpin).
//     No sleep lasts more than 10 s before it re-checks, so even a wake-up
//     lost to a misbehaving peer costs one late frame, not a hang.
//   - Waiting: every wait comes in three forms. The Try form (TryNext,
//     TryReadInto, TryReserve, TryWait) returns ErrWouldBlock instead of
//     waiting; the context form (Next, ReadInto, Writer.ReserveContext,
//     Wait) returns an error matching ctx.Err() once ctx is done; the
//     Deadline form (NextDeadline, ReadIntoDeadline, ReserveDeadline,
//     WaitDeadline) returns one matching os.ErrDeadlineExceeded after its
//     deadline. All of them return one matching ErrClosed when a Close in
//     another goroutine interrupts them (errors.Is tells them apart).
//     Writer.Reserve alone waits without limit. Open, OpenReader and
//     OpenWriter never wait for a ring that does not exist yet (an error
//     matching os.ErrNotExist); OpenContext and OpenReaderContext do,
//     watching the segment directory on one inotify instance that all
//     the waits of the process share.
//   - Copy: frames of 1 MiB and more are copied with Copy, which keeps them
//     in the cache for the reader (Go's copy bypasses it at that size).
//   - Semaphore: a named, process-shared counting semaphore.
//   - Close: Ring.Close (and the Close of an OpenReader/OpenWriter) may
//     race calls in other goroutines: they return ErrClosed, and a read
//     caught mid-way sees zero pages, never an unmapped hole.
//
// # Trust
//
// Shared memory is writable by every process that can open the segment, so
// nothing read from it is trusted: the geometry is validated once and
// copied, every index is masked locally, every length is bounded, and a
// frame's slot stamp is checked before and after it is read. A torn or
// overwritten frame is never returned as intact; a corrupt header is an
// error wrapping ErrCorrupt, never a panic.
//
// What validation cannot catch is who made the segment: in /dev/shm anyone
// may create a file under a ring's name before its owner does, and then
// read what a writer puts into it, forge frames for its readers, or
// truncate it under their mappings (SIGBUS). Opening by name trusts the
// file's owner. Set SegmentOptions.Owners to the users you trust, and
// Open, OpenWriter, OpenReader and OpenOrCreate refuse anyone else's
// segment before mapping it (ErrForeignOwner); the runtime uses only its
// own, `edgeipc pub` only yours or root's unless told otherwise.
//
// # Kernel and privileges
//
// Linux only (other systems get ErrNotSupported). Needs a tmpfs at /dev/shm
// (or EDGEIPC_SHM_DIR) with room for the ring; no privileges beyond file
// permissions. Cross-process coordination uses only 32-bit atomics, so it
// is correct on ARMv6 too. Readers and writers that must detect each
// other's death should share a PID namespace.
package shm
