//go:build linux

package shm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/atomicx"
)

// writeTry writes frame i's text with TryReserve (block policy: it reports
// ErrWouldBlock rather than wait).
func writeTry(w *Writer, i int) error {
	b, err := w.TryReserve(8)
	if err != nil {
		return err
	}
	copy(b, fmt.Sprintf("frame-%02d", i))
	_, err = w.Commit()
	return err
}

func drainAll(t *testing.T, rd *Reader) {
	t.Helper()
	for {
		if _, err := rd.TryNext(); err != nil {
			if !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
			return
		}
		if err := rd.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBlockLateJoinerIsWaitedFor: a reader that joins a block-policy ring
// from the oldest frame starts behind everything the writer's last scan
// saw; the writer must see it (reader_joins) and wait for it rather than
// reuse the slot it holds.
func TestBlockLateJoinerIsWaitedFor(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "latejoin", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	for i := 0; i < 13; i++ { // no reader yet: the writer's cache says there is room up to frame 20
		if err := writeTry(w, i); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := r.NewReader(&ReaderOptions{From: Oldest})
	if err != nil {
		t.Fatal(err)
	}
	f, err := rd.TryNext()
	if err != nil || f.Seq != 6 || string(f.Data) != "frame-06" {
		t.Fatalf("oldest frame: %+v %q %v, want frame 6 (frame 5's slot is opened for 13)", f, f.Data, err)
	}
	if err := writeTry(w, 13); err != nil { // slot 5, opened at frame 12's commit: frame 5 was already gone
		t.Fatal(err)
	}
	if err := writeTry(w, 14); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("frame 14 would reuse the slot of held frame 6: TryReserve = %v, want ErrWouldBlock", err)
	}
	if string(f.Data) != "frame-06" {
		t.Fatalf("held frame changed to %q", f.Data)
	}
	if err := rd.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := writeTry(w, 14); err != nil {
		t.Fatalf("frame 14 after the release: %v", err)
	}
}

// TestBlockReadersJoiningBetweenScans: two readers join between two scans
// of the reader table; the second one's entry lies beyond the highest one
// the last scan saw, and the writer must still wait for it.
func TestBlockReadersJoiningBetweenScans(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "twojoin", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	a, _ := r.NewReader(nil) // entry 0
	for i := 0; i < 9; i++ {
		if err := writeTry(w, i); err != nil {
			t.Fatal(err)
		}
		drainAll(t, a)
	}
	b, _ := r.NewReader(nil) // entry 1
	c, _ := r.NewReader(nil) // entry 2, past the last scan's highest entry + 1
	if b.e != r.reader(1) || c.e != r.reader(2) {
		t.Fatal("readers did not take entries 1 and 2")
	}
	for i := 9; i < 16; i++ {
		if err := writeTry(w, i); err != nil {
			t.Fatal(err)
		}
		drainAll(t, a)
		drainAll(t, b)
	}
	f, err := c.TryNext()
	if err != nil || f.Seq != 9 {
		t.Fatalf("c's first frame: %+v %v, want 9", f, err)
	}
	for i := 16; i < 20; i++ {
		err := writeTry(w, i)
		if errors.Is(err, ErrWouldBlock) {
			if i != 17 {
				t.Fatalf("writer blocked at frame %d, want 17 (frame 9's slot)", i)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		drainAll(t, a)
		drainAll(t, b)
	}
	if string(f.Data) != "frame-09" || c.Release() != nil {
		t.Fatalf("c's held frame 9 was overwritten: %q", f.Data)
	}
}

// TestBlockNewWriterWaitsForLaggingReader: a writer that takes over a
// block-policy ring must scan for readers behind the head before it writes
// (its predecessor's readers may be up to a ring behind).
func TestBlockNewWriterWaitsForLaggingReader(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "newwriter", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w1, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	for i := 0; i < 5; i++ {
		if err := writeTry(w1, i); err != nil {
			t.Fatal(err)
		}
	}
	w1.Close()
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 8; i++ { // frames 0..4 unread: room for 3 more
		if err := writeTry(w2, i); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := writeTry(w2, 8); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("frame 8 would reuse unread frame 0's slot: %v, want ErrWouldBlock", err)
	}
	buf := make([]byte, 64)
	for i := 0; i < 8; i++ {
		f, err := rd.TryReadInto(buf)
		if err != nil || f.Seq != uint32(i) || f.Lost != 0 || string(f.Data) != fmt.Sprintf("frame-%02d", i) {
			t.Fatalf("frame %d: %+v %q %v", i, f, f.Data, err)
		}
	}
}

// TestBlockJoinRaceIsCaught: a reader that joins from the oldest frame
// just as the writer, which had not yet seen the join, reuses that frame's
// slot must not take the rewritten bytes for the old frame: Release says
// ErrOverwritten, and a copying read counts the frame lost.
func TestBlockJoinRaceIsCaught(t *testing.T) {
	testDir(t)
	for _, copying := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy=%v", copying), func(t *testing.T) {
			r := mustCreate(t, fmt.Sprintf("joinrace%v", copying), Config{Slots: 8, SlotPayload: 64, Policy: Block})
			w, _ := r.NewWriter()
			for i := 0; i < 13; i++ {
				if err := writeTry(w, i); err != nil {
					t.Fatal(err)
				}
			}
			rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
			// The writer loaded reader_joins just before the reader's
			// increment: its cache still says frame 14 fits.
			w.joins = atomic.LoadUint32(&r.hdr.Joins)
			if copying {
				sh, p, k := rd.peek()
				if k != peekReady || rd.cursor != 6 {
					t.Fatalf("peek: %v at %d", k, rd.cursor)
				}
				for i := 13; i < 15; i++ { // frame 14 reuses frame 6's slot
					if err := writeTry(w, i); err != nil {
						t.Fatal(err)
					}
				}
				buf := make([]byte, 64)
				var f Frame
				if rd.copyFrame(&f, sh, p, buf) {
					t.Fatalf("copied a frame whose slot was reused during the copy: %+v %q", f, f.Data)
				}
				// (The stale cache also let the writer open frame 7's slot
				// for frame 15.)
				f, err := rd.TryReadInto(buf)
				if err != nil || f.Seq <= 6 || f.Lost != f.Seq-6 || string(f.Data) != fmt.Sprintf("frame-%02d", f.Seq) {
					t.Fatalf("next read: %+v %q %v, want an intact frame after 6, with the frames between counted lost", f, f.Data, err)
				}
				return
			}
			f, err := rd.TryNext()
			if err != nil || f.Seq != 6 {
				t.Fatalf("%+v %v", f, err)
			}
			for i := 13; i < 15; i++ {
				if err := writeTry(w, i); err != nil {
					t.Fatal(err)
				}
			}
			if err := rd.Release(); !errors.Is(err, ErrOverwritten) {
				t.Fatalf("Release of a frame rewritten while held = %v, want ErrOverwritten (data now %q)", err, f.Data)
			}
		})
	}
}

// TestNewWriterPublishesDeadWritersFrame: a writer killed between the
// stamp and the head store of its commit leaves a frame that readers can
// already take by its stamp. The next writer must publish it, not reuse its
// sequence number for another frame.
func TestNewWriterPublishesDeadWritersFrame(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "deadcommit", Config{Slots: 8, SlotPayload: 64})
	w1, _ := r.NewWriter()
	r1, _ := r.NewReader(nil)
	r2, _ := r.NewReader(nil)
	for i := 0; i < 3; i++ {
		w1.Write([]byte{byte(i)})
	}
	drainAll(t, r1)
	drainAll(t, r2)
	// w1 commits frame 3 up to the stamp, then "dies" (Close frees the
	// lease as a dead holder's reclaim would; the head stays at 3).
	p, _ := w1.Reserve(5)
	copy(p, "OLD-3")
	sh := w1.slot
	sh.Length, sh.Seq = 5, 3
	atomic.StoreUint32(&sh.Stamp, 3<<1)
	w1.held = false
	w1.Close()
	if h := r.Head(); h != 3 {
		t.Fatalf("head %d", h)
	}
	f1, err := r1.TryNext()
	if err != nil || f1.Seq != 3 || string(f1.Data) != "OLD-3" {
		t.Fatalf("r1 by the stamp: %+v %q %v", f1, f1.Data, err)
	}
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	if w2.Seq() != 4 || r.Head() != 4 {
		t.Fatalf("new writer starts at %d with head %d, want both 4", w2.Seq(), r.Head())
	}
	s, _ := w2.WriteFrame(0, 0, []byte("NEW-4"))
	if s != 4 {
		t.Fatalf("new writer's first frame is %d", s)
	}
	if err := r1.Release(); err != nil || string(f1.Data) != "OLD-3" {
		t.Fatalf("r1's frame 3 changed under it: %q %v", f1.Data, err)
	}
	buf := make([]byte, 64)
	for _, want := range []string{"OLD-3", "NEW-4"} {
		f, err := r2.TryReadInto(buf)
		if err != nil || string(f.Data) != want || f.Lost != 0 {
			t.Fatalf("r2: %+v %q %v, want %q", f, f.Data, err, want)
		}
	}
	if f, err := r1.TryReadInto(buf); err != nil || f.Seq != 4 || string(f.Data) != "NEW-4" {
		t.Fatalf("r1: %+v %q %v", f, f.Data, err)
	}
}

func init() { children["next-reader"] = childNextReader }

// childNextReader joins EDGEIPC_RING From Newest (sleeping on the eventfd
// passed as fd 3 if EDGEIPC_EVENTFD is set), says "joined", waits for
// one frame with no bound on its sleeps (only a wake ends them) and prints
// "got SEQ DATA".
func childNextReader() int {
	maxSleepNs.Store(int64(time.Hour))
	var opts ReaderOptions
	if os.Getenv("EDGEIPC_EVENTFD") != "" { // sleep on the eventfd passed as fd 3
		ev, err := EventfdFromFile(os.NewFile(3, "eventfd"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		defer ev.Close()
		opts.Notifier = ev
	}
	rd, err := OpenReader(os.Getenv("EDGEIPC_RING"), nil, &opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Println("joined")
	f, err := rd.NextDeadline(time.Now().Add(time.Hour))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Printf("got %d %s\n", f.Seq, f.Data)
	return 0
}

// TestNewWriterWakesReadersOfDeadWritersFrame: a writer killed between the
// head store of its commit and the wake after it (steps 5 and 6 of Writing
// in docs/abi.md) leaves its frame published and the readers that were
// asleep on the head asleep. The next writer wakes them when it takes the
// lease: they slept until their sleep bound (10 s) or the next writer's
// first commit, however long that took. The reader here is another
// process, asleep on the futex with no bound on its sleep.
func TestNewWriterWakesReadersOfDeadWritersFrame(t *testing.T) {
	testDir(t)
	const base = 100 // a frame whose stamp is not 0 (see Reader.await)
	r := mustCreate(t, "deadwake", Config{Slots: 8, SlotPayload: 64, BaseSeq: base})
	w1, err := r.NewWriter() // before the reader sleeps: taking the lease may wake it
	if err != nil {
		t.Fatal(err)
	}
	cmd := child(t, "next-reader", "EDGEIPC_RING=deadwake")
	out, _ := cmd.StdoutPipe()
	startChild(t, cmd)
	waitLine(t, out, "joined")
	waitUntil(t, "the reader sleeps", func() bool { return atomic.LoadUint32(&r.hdr.Sleepers) == 1 })
	time.Sleep(20 * time.Millisecond) // into FUTEX_WAIT (were it not, it would see the head move and pass)
	// w1 commits frame base up to the head store, then "dies" before its
	// wake (Close frees the lease as a dead holder's reclaim would).
	p, err := w1.Reserve(4)
	if err != nil {
		t.Fatal(err)
	}
	copy(p, "last")
	sh := w1.slot
	sh.Length, sh.Seq, sh.Time = 4, base, nanotime()
	atomicx.StoreRelease(&sh.Stamp, base<<1)
	atomic.StoreUint32(&r.hdr.Head, base+1)
	w1.held = false
	w1.Close()
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if w2.Seq() != base+1 {
		t.Fatalf("new writer starts at %d, want %d", w2.Seq(), base+1)
	}
	waitLine(t, out, fmt.Sprintf("got %d last", base))
}

// TestNotifierWakesReadersOfDeadWritersFrame: as above, with the reader
// (another process) asleep on its eventfd. The next writer cannot signal
// it when it takes the lease (it has no notifiers yet): it does when the
// reader's eventfd is added, if eventfd readers sleep. Before, the reader
// slept until its sleep bound or the new writer's first commit.
func TestNotifierWakesReadersOfDeadWritersFrame(t *testing.T) {
	testDir(t)
	const base = 100
	r := mustCreate(t, "deadwakeev", Config{Slots: 8, SlotPayload: 64, BaseSeq: base})
	w1, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	f, err := ev.File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := child(t, "next-reader", "EDGEIPC_RING=deadwakeev", "EDGEIPC_EVENTFD=1")
	cmd.ExtraFiles = []*os.File{f}
	out, _ := cmd.StdoutPipe()
	startChild(t, cmd)
	f.Close()
	waitLine(t, out, "joined")
	waitUntil(t, "the reader sleeps", func() bool { return atomic.LoadUint32(&r.hdr.EvSleepers) == 1 })
	time.Sleep(20 * time.Millisecond) // into its read of the eventfd
	p, err := w1.Reserve(4)
	if err != nil {
		t.Fatal(err)
	}
	copy(p, "last")
	sh := w1.slot
	sh.Length, sh.Seq, sh.Time = 4, base, nanotime()
	atomicx.StoreRelease(&sh.Stamp, base<<1)
	atomic.StoreUint32(&r.hdr.Head, base+1)
	w1.held = false
	w1.Close() // "died" before its wake
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if err := w2.AddNotifier(ev); err != nil {
		t.Fatal(err)
	}
	waitLine(t, out, fmt.Sprintf("got %d last", base))
	cmd.Wait()
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return uint32(cmd.Process.Pid)
}

// TestReapKeepsTakenOverEntry: the writer finds a reader entry whose holder
// died asleep; before it frees the entry, a new reader takes it over and
// goes to sleep, counted. The writer, going on from what it read, must
// leave the new reader's entry and sleeper count alone.
func TestReapKeepsTakenOverEntry(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "reap", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	e := r.reader(0)
	dead := deadPID(t)
	atomic.StoreUint32(&e.Owner, dead)
	atomic.StoreUint32(&e.Flags, readerAsleep)
	atomic.StoreUint32(&r.hdr.Sleepers, 1) // the dead reader's count
	// The writer read the dead owner word ... then a reader took the
	// entry over (taking the dead count back) and fell asleep in it.
	rd, err := r.NewReader(nil)
	if err != nil || rd.e != e {
		t.Fatalf("reader did not take over entry 0: %v", err)
	}
	if n := atomic.LoadUint32(&r.hdr.Sleepers); n != 0 {
		t.Fatalf("takeover left sleepers = %d", n)
	}
	atomic.StoreUint32(&e.Flags, readerAsleep)
	atomic.AddUint32(&r.hdr.Sleepers, 1)
	w.reapIfDead(e, dead)
	if o := atomic.LoadUint32(&e.Owner); o != uint32(os.Getpid()) {
		t.Fatalf("entry owner %d after the reap, want the live reader %d", o, os.Getpid())
	}
	if n, fl := atomic.LoadUint32(&r.hdr.Sleepers), atomic.LoadUint32(&e.Flags); n != 1 || fl&readerAsleep == 0 {
		t.Fatalf("live sleeper uncounted: sleepers %d flags %#x", n, fl)
	}
	// A dead entry is freed with its count taken back.
	e1 := r.reader(1)
	atomic.StoreUint32(&e1.Owner, dead)
	atomic.StoreUint32(&e1.Flags, readerAsleep)
	atomic.AddUint32(&r.hdr.Sleepers, 1)
	w.reapIfDead(e1, dead)
	if o, n := atomic.LoadUint32(&e1.Owner), atomic.LoadUint32(&r.hdr.Sleepers); o != 0 || n != 1 {
		t.Fatalf("dead entry: owner %d sleepers %d, want 0 and 1", o, n)
	}
}

// TestOpenWaitsForCreator: Create makes the file empty (O_EXCL) before it
// sizes and fills it; an Open in between waits instead of calling the ring
// corrupt, and gives up (ErrCorrupt) on a file that never grows.
func TestOpenWaitsForCreator(t *testing.T) {
	dir := testDir(t)
	other := t.TempDir()
	src := mustCreate(t, "img", Config{Slots: 4, SlotPayload: 64, Segment: SegmentOptions{Dir: other}})
	img := append([]byte(nil), src.seg.mem...)
	path := filepath.Join(dir, FilePrefix+"growing")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			f.Write(img)
			f.Close()
		}
	}()
	r, err := Open("growing", nil)
	if err != nil {
		t.Fatalf("Open during creation: %v", err)
	}
	r.Close()
	defer readyPolls.Store(readyPolls.Load())
	readyPolls.Store(5)
	if err := os.WriteFile(filepath.Join(dir, FilePrefix+"empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("empty", nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a file that stays empty = %v, want ErrCorrupt", err)
	}
}

// TestOpenDoesNotWaitForAbandoned: a file that has not changed for a while
// has no creator left to wait for: Open (and so `ring ls`, `ring inspect`)
// reports it at once, short or zero-filled.
func TestOpenDoesNotWaitForAbandoned(t *testing.T) {
	dir := testDir(t)
	defer func(d time.Duration) { settleTime = d }(settleTime)
	settleTime = 20 * time.Millisecond
	for name, size := range map[string]int{"short": 100, "zeros": 1 << 16} {
		if err := os.WriteFile(filepath.Join(dir, FilePrefix+name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	for _, name := range []string{"short", "zeros"} {
		start := time.Now()
		_, err := Open(name, nil)
		if took := time.Since(start); !errors.Is(err, ErrCorrupt) || took > 500*time.Millisecond {
			t.Errorf("Open of an abandoned %s file: %v after %v, want ErrCorrupt at once", name, err, took)
		}
	}
}

// TestNewestJoinerReadsFramesAfterItIsListed: frames committed after a
// From-Newest reader became visible in the table, while NewReader was
// still finishing, are the reader's first frames (both policies). It
// skipped them: the runtime's recorder lost the first frame a test wrote
// once it saw the recorder listed (qemu armv6, CI).
func TestNewestJoinerReadsFramesAfterItIsListed(t *testing.T) {
	for _, policy := range []Policy{Overwrite, Block} {
		t.Run(policy.String(), func(t *testing.T) {
			testDir(t)
			r := mustCreate(t, "newest-join", Config{Slots: 8, SlotPayload: 16, Policy: policy})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := w.Write([]byte("before")); err != nil {
				t.Fatal(err)
			}
			testHookAfterJoin = func() {
				testHookAfterJoin = nil
				for _, p := range []string{"after-1", "after-2"} {
					if _, err := w.Write([]byte(p)); err != nil {
						t.Error(err)
					}
				}
			}
			defer func() { testHookAfterJoin = nil }()
			rd, err := r.NewReader(&ReaderOptions{From: Newest})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			for _, want := range []string{"after-1", "after-2"} {
				f, err := rd.TryNext()
				if err != nil || string(f.Data) != want || f.Lost != 0 {
					t.Fatalf("frame: %q lost %d, %v; want %q, none lost", f.Data, f.Lost, err, want)
				}
				rd.Release()
			}
		})
	}
}

// TestInspectShowsJoiningReader: an entry claimed but not yet published
// (its holder is still filling it in) is listed as alive and joining, so
// that counts of readers that are reading can leave it out.
func TestInspectShowsJoiningReader(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "joining", Config{Slots: 4, SlotPayload: 16})
	e := r.reader(3)
	atomic.StoreUint32(&e.Owner, uint32(os.Getpid())|claimBit)
	defer atomic.StoreUint32(&e.Owner, 0)
	rd, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	info := r.Inspect()
	if len(info.Readers) != 2 {
		t.Fatalf("readers %+v, want the joined one and the joining one", info.Readers)
	}
	for _, ri := range info.Readers {
		if want := ri.Index == 3; ri.Joining != want || !ri.Alive {
			t.Errorf("reader %+v: joining %v, want %v (and alive)", ri, ri.Joining, want)
		}
	}
}
