//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"testing"
	"time"
)

// waiter is one way of waiting that shm offers, reduced to the contract
// every one of them must keep: wait returns once signal was called (with
// what was signalled, for rings), at its context's end with the context's
// error, after its deadline with os.ErrDeadlineExceeded, and at close with
// ErrClosed.
type waiter struct {
	wait      func(ctx context.Context) (string, error)
	waitUntil func(t time.Time) (string, error)
	signal    func(v string) // from another goroutine
	close     func()
	carries   bool // wait returns what signal sent (rings); else ""
}

// waitBackends builds a fresh waiter of each kind: ring readers waking by
// futex, by spinning then sleeping, by spinning only and by eventfd,
// through both read paths (Next, ReadInto); block-policy writers waiting
// for space, sleeping or spinning; the semaphore.
func waitBackends() map[string]func(t *testing.T) waiter {
	b := map[string]func(t *testing.T) waiter{}
	n := 0
	fresh := func(what string) string { n++; return fmt.Sprintf("%s-%d", what, n) }
	kinds := map[string]func(t *testing.T, w *Writer) *ReaderOptions{
		"futex":      func(*testing.T, *Writer) *ReaderOptions { return &ReaderOptions{} },
		"spin+futex": func(*testing.T, *Writer) *ReaderOptions { return &ReaderOptions{Spin: 500} },
		"spin":       func(*testing.T, *Writer) *ReaderOptions { return &ReaderOptions{Spin: -1} },
		"eventfd": func(t *testing.T, w *Writer) *ReaderOptions {
			ev, err := NewEventfd()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ev.Close() })
			w.AddNotifier(ev)
			return &ReaderOptions{Notifier: ev}
		},
	}
	// Readers wait for frame 0 of a new ring, and for frame 2^31 after
	// frame 2^31-1 (both have stamp 0, and the slot of each holds the odd
	// stamp 1 while the reader waits).
	for kind, opts := range kinds {
		for _, at := range []string{"frame0", "frame2^31"} {
			rb := readerBackends(kind, at, func(t *testing.T) (*Writer, *Reader) {
				base := uint32(0)
				if at != "frame0" {
					base = 1<<31 - 1
				}
				r := mustCreate(t, fresh("wait"), Config{Slots: 8, SlotPayload: 64, BaseSeq: base})
				w, err := r.NewWriter()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { w.Close() })
				rd, err := r.NewReader(opts(t, w))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rd.Close() })
				if base != 0 {
					w.Write([]byte("before"))
					if f, err := rd.TryReadInto(make([]byte, 64)); err != nil || f.Seq != base {
						t.Fatalf("frame %d: %+v, %v", base, f, err)
					}
				}
				return w, rd
			})
			maps.Copy(b, rb)
		}
	}
	for kind, spin := range map[string]int{"futex": 0, "spin": -1} {
		// The ring is full of frames the reader has not released; signal
		// releases one, which is what the writer waits for.
		b["writer-reserve/"+kind] = func(t *testing.T) waiter {
			r := mustCreate(t, fresh("space"), Config{Slots: 2, SlotPayload: 64, Policy: Block})
			rd, err := r.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rd.Close() })
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			w.SetSpin(spin)
			for {
				if _, err := w.TryReserve(1); err != nil {
					break
				}
				w.Commit()
			}
			got := func(b []byte, err error) (string, error) {
				if err != nil {
					return "", err
				}
				_, err = w.Commit()
				return "", err
			}
			return waiter{
				wait:      func(ctx context.Context) (string, error) { return got(w.ReserveContext(ctx, 1)) },
				waitUntil: func(d time.Time) (string, error) { return got(w.ReserveDeadline(d, 1)) },
				signal:    func(string) { rd.TryReadInto(make([]byte, 64)) },
				close:     func() { w.Close() },
			}
		}
	}
	b["semaphore"] = func(t *testing.T) waiter {
		name := fresh("sem")
		s, err := CreateSemaphore(name, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); RemoveSemaphore(name, nil) })
		return waiter{
			wait:      func(ctx context.Context) (string, error) { return "", s.Wait(ctx) },
			waitUntil: func(d time.Time) (string, error) { return "", s.WaitDeadline(d) },
			signal:    func(string) { s.Post() },
			close:     func() { s.Close() },
		}
	}
	return b
}

// readerBackends makes the Next and the ReadInto waiter for readers from
// newReader.
func readerBackends(kind, at string, newReader func(t *testing.T) (*Writer, *Reader)) map[string]func(t *testing.T) waiter {
	return map[string]func(t *testing.T) waiter{
		"reader-next/" + kind + "/" + at: func(t *testing.T) waiter {
			w, rd := newReader(t)
			got := func(f Frame, err error) (string, error) {
				if err != nil {
					return "", err
				}
				s := string(f.Data)
				return s, rd.Release()
			}
			return waiter{
				wait:      func(ctx context.Context) (string, error) { return got(rd.Next(ctx)) },
				waitUntil: func(d time.Time) (string, error) { return got(rd.NextDeadline(d)) },
				signal:    func(v string) { w.Write([]byte(v)) },
				close:     func() { rd.Close() },
				carries:   true,
			}
		},
		"reader-readinto/" + kind + "/" + at: func(t *testing.T) waiter {
			w, rd := newReader(t)
			buf := make([]byte, 64)
			got := func(f Frame, err error) (string, error) { return string(f.Data), err }
			return waiter{
				wait:      func(ctx context.Context) (string, error) { return got(rd.ReadInto(ctx, buf)) },
				waitUntil: func(d time.Time) (string, error) { return got(rd.ReadIntoDeadline(d, buf)) },
				signal:    func(v string) { w.Write([]byte(v)) },
				close:     func() { rd.Close() },
				carries:   true,
			}
		},
	}
}

// TestWaitConformance runs the same contract against every way of waiting.
func TestWaitConformance(t *testing.T) {
	testDir(t)
	const later = 20 * time.Millisecond
	for name, mk := range waitBackends() {
		t.Run(name, func(t *testing.T) {
			res := func(f func() (string, error)) chan [2]any {
				c := make(chan [2]any, 1)
				go func() { v, err := f(); c <- [2]any{v, err} }()
				return c
			}
			get := func(t *testing.T, c chan [2]any, what string) (string, error) {
				t.Helper()
				select {
				case r := <-c:
					err, _ := r[1].(error)
					return r[0].(string), err
				case <-time.After(scale(10 * time.Second)):
					t.Fatalf("%s: still waiting after %v", what, scale(10*time.Second))
					return "", nil
				}
			}

			t.Run("signal wakes", func(t *testing.T) {
				w := mk(t)
				for i, viaDeadline := range []bool{false, true} {
					c := res(func() (string, error) {
						if viaDeadline {
							return w.waitUntil(time.Now().Add(scale(10 * time.Second)))
						}
						return w.wait(context.Background())
					})
					time.Sleep(later)
					v := fmt.Sprintf("frame%d", i)
					w.signal(v)
					want := ""
					if w.carries {
						want = v
					}
					if got, err := get(t, c, "wait for a signal"); err != nil || got != want {
						t.Fatalf("after signal %q (deadline form %v): %q, %v", v, viaDeadline, got, err)
					}
				}
			})
			t.Run("deadline", func(t *testing.T) {
				w := mk(t)
				c := res(func() (string, error) { return w.waitUntil(time.Now().Add(later)) })
				if _, err := get(t, c, "wait with a deadline"); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("after the deadline: %v, want os.ErrDeadlineExceeded", err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), later)
				defer cancel()
				c = res(func() (string, error) { return w.wait(ctx) })
				if _, err := get(t, c, "wait with a context deadline"); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("after the context's deadline: %v, want context.DeadlineExceeded", err)
				}
			})
			t.Run("cancel", func(t *testing.T) {
				w := mk(t)
				ctx, cancel := context.WithCancel(context.Background())
				c := res(func() (string, error) { return w.wait(ctx) })
				time.Sleep(later)
				cancel()
				if _, err := get(t, c, "wait after cancel"); !errors.Is(err, context.Canceled) {
					t.Fatalf("after cancel: %v, want context.Canceled", err)
				}
			})
			t.Run("close", func(t *testing.T) {
				w := mk(t)
				c := res(func() (string, error) { return w.wait(context.Background()) })
				time.Sleep(later)
				w.close()
				if _, err := get(t, c, "wait after close"); !errors.Is(err, ErrClosed) {
					t.Fatalf("after close: %v, want ErrClosed", err)
				}
				if _, err := w.wait(context.Background()); !errors.Is(err, ErrClosed) {
					t.Fatalf("wait on a closed waiter: %v, want ErrClosed", err)
				}
			})
		})
	}
}

// TestWaitPrefersEventOverEnd: when what a wait waits for happens just as
// its context ends (here: right before the sleep enters the kernel, with
// the cancel), the wait returns the event, not the context's error. A
// consumer that cancels its read once the producer has exited still gets
// the producer's last frame.
func TestWaitPrefersEventOverEnd(t *testing.T) {
	testDir(t)
	defer func() { testHookBeforeFutexWait = nil }()
	race := func(event func(), cancel func()) {
		testHookBeforeFutexWait = func() {
			testHookBeforeFutexWait = nil
			event()
			cancel()
		}
	}

	r := mustCreate(t, "prefer", Config{Slots: 8, SlotPayload: 64})
	w, _ := r.NewWriter()
	defer w.Close()
	rd, _ := r.NewReader(nil)
	defer rd.Close()
	w.Write([]byte("first")) // frame 0: not the one raced for
	rd.TryReadInto(make([]byte, 64))
	ctx, cancel := context.WithCancel(context.Background())
	race(func() { w.Write([]byte("last")) }, cancel)
	if f, err := rd.ReadInto(ctx, make([]byte, 64)); err != nil || string(f.Data) != "last" {
		t.Fatalf("reader: %q, %v; want the frame published as the wait was cancelled", f.Data, err)
	}

	s, err := CreateSemaphore("prefer-sem", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel = context.WithCancel(context.Background())
	race(func() { s.Post() }, cancel)
	if err := s.Wait(ctx); err != nil || s.Value() != 0 {
		t.Fatalf("semaphore: %v, value %d; want the unit posted as the wait was cancelled", err, s.Value())
	}

	br := mustCreate(t, "prefer-block", Config{Slots: 2, SlotPayload: 64, Policy: Block})
	brd, _ := br.NewReader(nil)
	defer brd.Close()
	bw, _ := br.NewWriter()
	defer bw.Close()
	bw.Write([]byte{1})
	bw.Write([]byte{2})
	ctx, cancel = context.WithCancel(context.Background())
	race(func() { brd.TryReadInto(make([]byte, 64)) }, cancel)
	if _, err := bw.ReserveContext(ctx, 1); err != nil {
		t.Fatalf("writer: %v; want the slot freed as the wait was cancelled", err)
	}
}
