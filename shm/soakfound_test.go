//go:build linux

// Regression tests for the two bugs TestSoak found.

package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/atomicx"
)

// TestReadAfterStampedCrashHonoursDeadline: a writer died between a
// commit's stamp store and its head store. A reader that took that frame
// by its stamp waits for the next one with head == cursor-1: that is
// "nothing new", and the wait must sleep and honour its deadline, not
// return at once and be called again (which spun a core, deaf to the
// deadline, until a new writer came). A new writer then publishes the
// frame it finds committed and wakes the reader.
func TestReadAfterStampedCrashHonoursDeadline(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "stamped", Config{Slots: 8, SlotPayload: 64})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Frame 3: stamp stored, head not, as by a writer SIGKILLed between them.
	s := w.Seq()
	if _, err := w.Reserve(1); err != nil {
		t.Fatal(err)
	}
	sh := w.slot
	sh.Length, sh.Seq, sh.Time = 1, s, nanotime()
	atomicx.StoreRelease(&sh.Stamp, s<<1)
	buf := make([]byte, 64)
	for want := uint32(0); want <= s; want++ {
		f, err := rd.ReadIntoDeadline(time.Now().Add(scale(5*time.Second)), buf)
		if err != nil || f.Seq != want {
			t.Fatalf("frame %d: seq %d, %v", want, f.Seq, err)
		}
	}
	res := make(chan error, 1)
	go func() {
		_, err := rd.ReadIntoDeadline(time.Now().Add(100*time.Millisecond), buf)
		res <- err
	}()
	select {
	case err := <-res:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read with a 100 ms deadline after the crash point: %v; want the deadline error", err)
		}
	case <-time.After(scale(3 * time.Second)):
		atomic.StoreUint32(&r.hdr.Head, s+1) // end the spin
		<-res
		t.Fatal("read with a 100 ms deadline after the crash point still running after 3 s")
	}
	// A new writer takes over: it publishes frame s, and then its own.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
		defer cancel()
		f, err := rd.ReadInto(ctx, buf)
		if err == nil && f.Seq != s+1 {
			err = fmt.Errorf("got frame %d, want %d", f.Seq, s+1)
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it sleep
	w.held = false
	atomic.StoreUint32(&r.hdr.LeaseOwner, 0) // the dead writer's lease
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	if w2.Seq() != s+1 {
		t.Fatalf("new writer starts at %d, want %d (it publishes the dead writer's frame %d)", w2.Seq(), s+1, s)
	}
	if _, err := w2.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("reader after the takeover: %v", err)
	}
}

// TestBlockCountsReaderMoreThanARingBehind: a block-policy writer waits for
// a live reader whose cursor is more than a ring behind (one that joined
// while the writer, not yet aware of it, went on) instead of taking it for
// stale: ignored, such a reader lost frames for as long as the writer
// stayed ahead of it. The reader skips what is gone, once, and loses
// nothing after that.
func TestBlockCountsReaderMoreThanARingBehind(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "behind", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if i%8 == 0 {
			// keep the reader ahead of the writer while it is in the table
			for {
				if _, err := rd.TryReadInto(make([]byte, 64)); err != nil {
					break
				}
			}
		}
		if err := writeTry(w, i); err != nil {
			t.Fatal(err)
		}
	}
	// Put the reader 12 frames behind the head, as a join that the writer
	// learnt of too late leaves it.
	h := r.Head()
	rd.cursor, rd.knownHead = h-12, h-12
	atomic.StoreUint32(&rd.e.Cursor, h-12)
	w.joins-- // the writer rescans, as after a join
	// The slot of the next frame may already be open (Writer.openNext):
	// that one frame goes out, the one after it must wait.
	i := 30
	for ; i < 32; i++ {
		if err := writeTry(w, i); errors.Is(err, ErrWouldBlock) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if i == 32 {
		t.Fatalf("the writer wrote 2 frames past a reader 12 frames behind in an 8-slot ring; want it to wait after at most 1")
	}
	buf := make([]byte, 64)
	f, err := rd.TryReadInto(buf)
	if err != nil || f.Lost == 0 || f.Seq-(h-12) > 12 {
		t.Fatalf("first read: seq %d lost %d, %v; want the lost frames from %d reported", f.Seq, f.Lost, err, h-12)
	}
	next := f.Seq + 1
	for ; i < 60; i++ {
		for {
			err := writeTry(w, i)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
			f, err := rd.TryReadInto(buf)
			if err != nil || f.Lost != 0 || f.Seq != next {
				t.Fatalf("read: seq %d lost %d, %v; want %d, nothing lost", f.Seq, f.Lost, err, next)
			}
			next++
		}
	}
}

// TestBlockJoinLosesNothingAfterJoining: real processes. A block-policy
// writer child writes as fast as it can; this process joins (From Oldest
// and From Newest), reads 64 frames and leaves, over and over. No frame
// written after NewReader returned may be lost: before the fix, a reader
// whose join the writer saw late was taken for stale and lost thousands.
func TestBlockJoinLosesNothingAfterJoining(t *testing.T) {
	for _, from := range []Start{Oldest, Newest} {
		testDir(t)
		name := fmt.Sprint("probe", from)
		r := mustCreate(t, name, Config{Slots: 8, SlotPayload: 64, Policy: Block})
		startChild(t, child(t, "writer", "EDGEIPC_RING="+name, "EDGEIPC_N=2000000000"))
		buf := make([]byte, 64)
		bad, joins := 0, 0
		end := time.Now().Add(time.Second)
		for time.Now().Before(end) {
			rd, err := r.NewReader(&ReaderOptions{From: from})
			if err != nil {
				t.Fatal(err)
			}
			joined := r.Head()
			joins++
			time.Sleep(time.Duration(joins%3) * 100 * time.Microsecond)
			ctx, cancel := context.WithTimeout(context.Background(), scale(5*time.Second))
			for i := 0; i < 64; i++ {
				f, err := rd.ReadInto(ctx, buf)
				if err != nil {
					t.Fatal(err)
				}
				if f.Lost != 0 && f.Seq-1-joined < 1<<31 {
					bad++
					if bad <= 3 {
						t.Logf("%s: joined at head %d, frame %d reports %d lost (%d..%d)", startName[from], joined, f.Seq, f.Lost, f.Seq-f.Lost, f.Seq-1)
					}
				}
			}
			cancel()
			rd.Close()
		}
		if bad != 0 {
			t.Errorf("%s: %d of %d joins lost frames written after NewReader returned", startName[from], bad, joins)
		}
	}
}

var startName = [...]string{Newest: "newest", Oldest: "oldest"}
