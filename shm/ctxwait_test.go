//go:build linux

package shm

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Blocking calls under one long-lived cancellable context allocate nothing
// per sleep: a reader woken for every frame (futex and eventfd) and a
// block-policy writer that waits for space before every frame. Each sleep
// registered its own context.AfterFunc (four allocations), so a runtime
// stats reader at 1 kHz allocated 4,000 objects a second.
func TestContextSleepsAllocateNothing(t *testing.T) {
	testDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for _, notifier := range []bool{false, true} {
		name, ring := "futex reader", "ctxallocf"
		if notifier {
			name, ring = "eventfd reader", "ctxalloce"
		}
		t.Run(name, func(t *testing.T) {
			r := mustCreate(t, ring, Config{Slots: 16, SlotPayload: 64})
			defer r.Close()
			w, _ := r.NewWriter()
			var opts *ReaderOptions
			if notifier {
				opts = &ReaderOptions{Notifier: notifierFor(t, w)}
			}
			rd, err := r.NewReader(opts)
			if err != nil {
				t.Fatal(err)
			}
			var read atomic.Uint64
			errc := make(chan error, 1)
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := rd.ReadInto(ctx, buf); err != nil {
						errc <- err
						return
					}
					read.Add(1)
				}
			}()
			sleepers := &r.hdr.Sleepers
			if notifier {
				sleepers = &r.hdr.EvSleepers
			}
			var wrote uint64
			p := make([]byte, 64)
			frame := func() {
				// The reader is asleep before each frame comes.
				for atomic.LoadUint32(sleepers) == 0 {
					time.Sleep(10 * time.Microsecond)
				}
				w.Write(p)
				wrote++
				for read.Load() != wrote {
					time.Sleep(10 * time.Microsecond)
				}
			}
			frame()
			if n := allocsPerFrame(1000, frame); n >= maxAllocsPerFrame {
				t.Errorf("%.2f allocations per frame, each waited for in %s under one context; want 0", n, name)
			}
			rd.Close()
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Fatalf("reader ended with %v, want ErrClosed", err)
			}
		})
	}

	t.Run("semaphore", func(t *testing.T) {
		s, err := CreateSemaphore("ctxallocs", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var took atomic.Uint64
		errc := make(chan error, 1)
		go func() {
			for {
				if err := s.Wait(ctx); err != nil {
					errc <- err
					return
				}
				took.Add(1)
			}
		}()
		var posted uint64
		frame := func() {
			// The waiter is asleep before each Post.
			for atomic.LoadUint32(&s.h.Waiters) == 0 {
				time.Sleep(10 * time.Microsecond)
			}
			time.Sleep(10 * time.Microsecond)
			s.Post()
			posted++
			for took.Load() != posted {
				time.Sleep(10 * time.Microsecond)
			}
		}
		frame()
		if n := allocsPerFrame(1000, frame); n >= maxAllocsPerFrame {
			t.Errorf("%.2f allocations per Post, each waited for in Semaphore.Wait under one context; want 0", n)
		}
		s.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter ended with %v, want ErrClosed", err)
		}
	})

	t.Run("block writer", func(t *testing.T) {
		r := mustCreate(t, "ctxallocw", Config{Slots: 4, SlotPayload: 64, Policy: Block})
		defer r.Close()
		w, _ := r.NewWriter()
		rd, _ := r.NewReader(nil)
		for { // fill the ring
			if _, err := w.TryReserve(8); err != nil {
				break
			}
			w.Commit()
		}
		var quit atomic.Bool
		done := make(chan struct{})
		go func() { // frees one slot whenever the writer sleeps
			defer close(done)
			buf := make([]byte, 64)
			for !quit.Load() {
				if atomic.LoadUint32(&r.hdr.SpaceWaiters) != 0 {
					rd.TryReadInto(buf)
				}
				runtime.Gosched()
			}
		}()
		defer func() { quit.Store(true); <-done }()
		frame := func() {
			if _, err := w.ReserveContext(ctx, 8); err != nil {
				t.Fatal(err)
			}
			w.Commit()
		}
		frame()
		if n := allocsPerFrame(1000, frame); n >= maxAllocsPerFrame {
			t.Errorf("%.2f allocations per frame, each waited for in ReserveContext under one context; want 0", n)
		}
	})
}

// allocsPerFrame is testing.AllocsPerRun without its GOMAXPROCS=1, under
// which qemu-user takes up to a second to run a goroutine woken from a
// futex. The count is the whole process's: under qemu the test binary's
// fork watchdog (internal/qemuwatch) allocates a few dozen objects a
// second, hence maxAllocsPerFrame instead of 0; a registration per sleep
// costs 4-5 per frame.
func allocsPerFrame(n int, f func()) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n)
}

const maxAllocsPerFrame = 0.25

// One registration kept across waits must never reach a wait under another
// context: a cancellation of the context of an earlier wait neither ends
// a later eventfd wait under another context, nor one with a deadline only.
func TestEarlierContextLeavesLaterWaitsAlone(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "ctxstale", Config{Slots: 16, SlotPayload: 64})
	defer r.Close()
	w, _ := r.NewWriter()
	ev := notifierFor(t, w)
	rd, _ := r.NewReader(&ReaderOptions{Notifier: ev})
	buf := make([]byte, 64)

	for _, later := range []string{"another context", "a deadline"} {
		// An earlier wait under ctxA ends with a frame; ctxA stays registered.
		ctxA, cancelA := context.WithCancel(context.Background())
		w.Write([]byte("a"))
		if _, err := rd.ReadInto(ctxA, buf); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			var err error
			if later == "a deadline" {
				_, err = rd.ReadIntoDeadline(time.Now().Add(scale(10*time.Second)), buf)
			} else {
				ctxB, cancelB := context.WithTimeout(context.Background(), scale(10*time.Second))
				defer cancelB()
				_, err = rd.ReadInto(ctxB, buf)
			}
			done <- err
		}()
		for atomic.LoadUint32(&r.hdr.EvSleepers) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancelA()
		select {
		case err := <-done:
			t.Fatalf("a wait under %s ended when an earlier wait's context was cancelled: %v", later, err)
		case <-time.After(50 * time.Millisecond):
		}
		w.Write([]byte("b"))
		if err := <-done; err != nil {
			t.Fatalf("a wait under %s: %v, want the frame", later, err)
		}
	}
}
