//go:build linux

package shm

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// interruptThread sends SIGURG (which the Go runtime handles and otherwise
// ignores) to OS thread tid every period until the returned stop is called.
// A timed futex wait on that thread returns EINTR at each one, as it does
// in a process that gets SIGCHLD from its children or signal doorbells.
func interruptThread(tid int, period time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-time.After(period):
				unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
			}
		}
	}()
	return func() { close(done); <-exited }
}

// TestBlockWriterEvictsDeadReaderUnderSignals: a block-policy writer
// waiting for space evicts dead readers every evictEvery. Signals arriving
// more often than that interrupt each futex sleep early (EINTR); they must
// not restart the slice each time and so postpone the eviction forever.
func TestBlockWriterEvictsDeadReaderUnderSignals(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "eintr", Config{Slots: 4, SlotPayload: 64, Policy: Block})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A reader that died before reading anything: it holds every slot.
	e := r.reader(0)
	atomic.StoreUint32(&e.Cursor, 0)
	atomic.StoreUint32(&e.Owner, deadPID(t))
	atomic.AddUint32(&r.hdr.Joins, 1)
	for i := 0; i < 4; i++ {
		if _, err := w.TryReserve(1); err != nil {
			t.Fatal(err)
		}
		w.Commit()
	}
	if _, err := w.TryReserve(1); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("ring held by a dead reader is not full before the wait: %v", err)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	stop := interruptThread(unix.Gettid(), evictEvery/5)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), scale(5*time.Second))
	defer cancel()
	start := time.Now()
	if _, err := w.ReserveContext(ctx, 1); err != nil {
		t.Fatalf("writer interrupted by signals every %v did not evict the dead reader: %v after %v", evictEvery/5, err, time.Since(start))
	}
	w.Commit()
	if n := len(r.Inspect().Readers); n != 0 {
		t.Fatalf("dead reader not evicted: %d readers", n)
	}
}
