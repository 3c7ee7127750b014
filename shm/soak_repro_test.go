//go:build linux && soakrepro

// Reproductions of the two bugs TestSoak points at; they fail until fixed.
// Run with: go test -tags soakrepro -run Repro -v ./shm

package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A: writer dead between a commit's stamp store and its head store; a
// reader that took that frame by its stamp then waits for the next one.
func TestReproSpinAfterStampedCrash(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "spin", Config{Slots: 8, SlotPayload: 64})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	for i := 0; i < 3; i++ {
		w.Write([]byte("x"))
	}
	// frame 3: stamp stored, head not (as a writer SIGKILLed between them)
	s := w.Seq()
	w.Reserve(1)
	sh := w.slot
	sh.Length, sh.Seq, sh.Time = 1, s, nanotime()
	storeRelease(&sh.Stamp, s<<1)
	buf := make([]byte, 64)
	for i := 0; i < 4; i++ {
		f, err := rd.ReadInto(context.Background(), buf)
		t.Logf("frame %d: %v", f.Seq, err)
	}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	done := make(chan error, 1)
	go func() {
		_, err := rd.ReadIntoDeadline(time.Now().Add(100*time.Millisecond), buf)
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("read with a 100 ms deadline returned: %v", err)
	case <-time.After(3 * time.Second):
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
		t.Errorf("read with a 100 ms deadline still running after 3 s (head %d, cursor %d, sleepers %d), CPU used %v", r.Head(), rd.Cursor(), r.Inspect().Sleepers, cpu)
		// a new writer (takeover) lets it go: simulate by storing the head
		atomic.StoreUint32(&r.hdr.Head, s+1)
		t.Logf("after head store: %v", <-done)
	}
}

// B: a block-policy reader joining From Oldest while the writer commits one
// frame and opens the next (the writer's joins load came before the
// reader's increment) is taken for stale and never waited for.
func TestReproBlockJoinIgnored(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "ign", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	for i := 0; i < 13; i++ {
		if err := writeTry(w, i); err != nil {
			t.Fatal(err)
		}
	}
	// head 13; frame 13's slot (frame 5's) is open: oldest = 6
	rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
	joined := r.Head()
	// The writer loaded reader_joins before the reader's increment (its
	// commit of frame 13 and the open of 14 fell inside the join).
	w.joins = r.hdr.Joins
	n := 0
	for i := 13; i < 100; i++ {
		err := writeTry(w, i)
		if errors.Is(err, ErrWouldBlock) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	t.Logf("reader joined at head %d with cursor %d; the writer then wrote %d frames (to %d) without blocking", joined, rd.Cursor(), n, w.Seq())
	buf := make([]byte, 64)
	f, err := rd.TryReadInto(buf)
	t.Logf("reader's first frame: seq %d lost %d (%q) %v", f.Seq, f.Lost, f.Data, err)
	if err == nil && f.Lost != 0 && f.Seq-1-joined < 1<<31 {
		t.Errorf("frames %d..%d lost, %d of them written after the join (head %d)", f.Seq-f.Lost, f.Seq-1, f.Seq-joined, joined)
	}
}

// Real processes: a block-policy writer child writes as fast as it can;
// this process joins From Oldest (or Newest), waits a moment, reads 64
// frames and leaves, over and over, and counts lost frames that were
// written after NewReader returned.
func TestReproBlockJoinRealProcesses(t *testing.T) {
	for _, from := range []Start{Oldest, Newest} {
		testDir(t)
		name := fmt.Sprint("probe", from)
		r := mustCreate(t, name, Config{Slots: 8, SlotPayload: 64, Policy: Block})
		cmd := child(t, "writer", "EDGEIPC_RING="+name, "EDGEIPC_N=2000000000")
		startChild(t, cmd)
		time.Sleep(100 * time.Millisecond)
		buf := make([]byte, 64)
		bad, lostBefore, joins, maxAfter := 0, 0, 0, uint32(0)
		end := time.Now().Add(5 * time.Second)
		for time.Now().Before(end) {
			rd, err := r.NewReader(&ReaderOptions{From: from})
			if err != nil {
				t.Fatal(err)
			}
			joined := r.Head()
			joins++
			time.Sleep(time.Duration(joins%3) * 100 * time.Microsecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for i := 0; i < 64; i++ {
				f, err := rd.ReadInto(ctx, buf)
				if err != nil {
					t.Fatal(err)
				}
				if f.Lost != 0 {
					if f.Seq-1-joined < 1<<31 {
						bad++
						maxAfter = max(maxAfter, f.Seq-joined)
						if bad <= 3 {
							t.Logf("%s: joined at head %d, frame %d reports %d lost (%d..%d)", [...]string{"newest", "oldest"}[from], joined, f.Seq, f.Lost, f.Seq-f.Lost, f.Seq-1)
						}
					} else {
						lostBefore++
					}
				}
			}
			cancel()
			rd.Close()
		}
		if bad != 0 {
			t.Errorf("%s: %d joins, %d with frames lost that were written after the join (up to %d frames after it), %d with losses only before", [...]string{"newest", "oldest"}[from], joins, bad, maxAfter, lostBefore)
		}
	}
}
