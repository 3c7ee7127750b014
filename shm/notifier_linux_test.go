package shm

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestNotifierList: a writer's notifier list holds each live eventfd once.
// A nil eventfd was taken, and the first commit with an eventfd reader
// asleep panicked signalling it; an eventfd added twice was signalled
// twice per commit; closed ones, and those of readers that had left, were
// kept (and signalled) for as long as the writer ran, the list growing
// with every reader that came and went.
func TestNotifierList(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "notifiers", Config{Slots: 8, SlotPayload: 64})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	list := func() []*Eventfd {
		if p := w.notifiers.Load(); p != nil {
			return *p
		}
		return nil
	}
	newEv := func() *Eventfd {
		ev, err := NewEventfd()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ev.Close() })
		return ev
	}
	if err := w.AddNotifier(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AddNotifier(nil) = %v, want ErrInvalid", err)
	}
	a, b, c := newEv(), newEv(), newEv()
	w.AddNotifier(a)
	w.AddNotifier(a)
	if got := list(); !slices.Equal(got, []*Eventfd{a}) {
		t.Fatalf("after adding one eventfd twice: %d notifiers", len(got))
	}
	w.AddNotifier(b)
	a.Close()
	if err := w.AddNotifier(a); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AddNotifier(closed) = %v, want ErrInvalid", err)
	}
	w.AddNotifier(c)
	if got := list(); !slices.Equal(got, []*Eventfd{b, c}) {
		t.Fatalf("closed eventfd kept: %d notifiers, want 2", len(got))
	}
	if !w.RemoveNotifier(b) || w.RemoveNotifier(b) {
		t.Fatal("RemoveNotifier: want true, then false")
	}
	if got := list(); !slices.Equal(got, []*Eventfd{c}) {
		t.Fatalf("after RemoveNotifier: %d notifiers, want 1", len(got))
	}
	// The remaining one still wakes its reader.
	rd, err := r.NewReader(&ReaderOptions{Notifier: c})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := make(chan error, 1)
	go func() {
		_, err := rd.ReadInto(context.Background(), make([]byte, 64))
		got <- err
	}()
	waitUntil(t, "the reader to sleep", func() bool { return r.Inspect().EvSleepers == 1 })
	w.Write([]byte("x"))
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
