//go:build linux

package shm

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestBlockWaitGarbageSpaceValue: space_value is shared memory, and another
// process may have stored anything there. A block-policy writer waiting for
// space takes such units one by one without finding space: it must still
// give up at its deadline, and still evict a dead reader that holds the
// ring full, instead of spinning until the garbage count is used up.
func TestBlockWaitGarbageSpaceValue(t *testing.T) {
	r, w, cmd := fullBlockRing(t, "garbagespace")
	reserve := func(d time.Duration) error {
		t.Helper()
		atomic.StoreUint32(&r.hdr.SpaceValue, MaxSemaphoreValue)
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := w.ReserveContext(ctx, 1)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(d + scale(5*time.Second)):
			w.Close() // stops the spinning Reserve
			<-done
			t.Fatalf("ReserveContext(%v) with space_value %d still busy after %v (space_value now %d)",
				d, uint32(MaxSemaphoreValue), d+scale(5*time.Second), atomic.LoadUint32(&r.hdr.SpaceValue))
			return nil
		}
	}
	// A live reader holds the ring full: the deadline ends the wait.
	if err := reserve(100 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("live idle reader, garbage space_value: %v, want context.DeadlineExceeded", err)
	}
	// The reader dies: the writer evicts it and goes on.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := reserve(scale(5 * time.Second)); err != nil {
		t.Fatalf("dead reader, garbage space_value: %v, want it evicted", err)
	}
	w.Commit()
	if n := len(r.Inspect().Readers); n != 0 {
		t.Fatalf("dead reader not evicted: %d readers", n)
	}
	w.Close()
}
