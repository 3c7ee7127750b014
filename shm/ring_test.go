//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/sys"
)

func TestWraparound(t *testing.T) {
	testDir(t)
	base := ^uint32(0) - 20 // the sequence wraps after 21 frames
	r := mustCreate(t, "wrap", Config{Slots: 16, SlotPayload: 64, BaseSeq: base})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
	buf := make([]byte, 64)
	seq := base
	for i := 0; i < 100; i++ {
		p, _ := w.Reserve(frameLen(seq, 64))
		pattern(p, seq)
		got, err := w.Commit()
		if err != nil || got != seq {
			t.Fatalf("commit %d: seq %d err %v", seq, got, err)
		}
		f, err := rd.TryReadInto(buf)
		if err != nil {
			t.Fatalf("read at %d: %v", seq, err)
		}
		if f.Seq != seq || f.Lost != 0 || len(f.Data) != frameLen(seq, 64) || !checkPattern(f.Data, seq) {
			t.Fatalf("frame %+v, want seq %d", f, seq)
		}
		seq++
	}
	if seq > base {
		t.Fatal("sequence did not wrap")
	}
	// Lag and loss across the wrap point.
	for i := 0; i < 40; i++ {
		w.Write([]byte{1})
	}
	// 15 of the 16 slots are readable: the writer has already opened the
	// slot of the next frame (Writer.openNext).
	f, err := rd.TryReadInto(buf)
	if err != nil || f.Lost != 40-15 || f.Seq != seq+40-15 {
		t.Fatalf("after lap: %+v %v (want lost %d)", f, err, 40-15)
	}
}

func TestOverwriteLossAccounting(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "loss", Config{Slots: 8, SlotPayload: 64})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	buf := make([]byte, 64)
	var next uint32
	var lost uint64
	for round, burst := range []int{3, 8, 9, 25, 1, 100} {
		for i := 0; i < burst; i++ {
			w.Write([]byte{byte(round)})
		}
		for {
			f, err := rd.TryReadInto(buf)
			if errors.Is(err, ErrWouldBlock) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Seq-f.Lost != next {
				t.Fatalf("round %d: seq %d lost %d, previous next %d", round, f.Seq, f.Lost, next)
			}
			lost += uint64(f.Lost)
			next = f.Seq + 1
		}
		if next != w.Seq() {
			t.Fatalf("round %d: reader at %d, writer at %d", round, next, w.Seq())
		}
	}
	// A burst of b frames costs b-7: the eighth slot is the one the writer
	// has already opened for its next frame (Writer.openNext).
	want := uint64(8-7) + uint64(9-7) + uint64(25-7) + uint64(100-7)
	if lost != want || rd.Stats().Lost != want {
		t.Fatalf("lost %d (stats %d), want %d", lost, rd.Stats().Lost, want)
	}
	if info := r.Inspect(); info.Readers[0].Lost != uint32(want) {
		t.Fatalf("reader table lost %d, want %d", info.Readers[0].Lost, want)
	}
}

func TestZeroCopyOverwriteDetected(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "zc", Config{Slots: 4, SlotPayload: 64})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	w.Write([]byte("first"))
	f, err := rd.TryNext()
	if err != nil || string(f.Data) != "first" {
		t.Fatalf("%q %v", f.Data, err)
	}
	for i := 0; i < 4; i++ { // lap the held frame
		w.Write([]byte("later"))
	}
	if err := rd.Release(); !errors.Is(err, ErrOverwritten) {
		t.Fatalf("release of a lapped frame: %v, want ErrOverwritten", err)
	}
}

func TestStartOldestNewestAndRejoin(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "start", Config{Slots: 8, SlotPayload: 64})
	w, _ := r.NewWriter()
	for i := 0; i < 5; i++ {
		w.Write([]byte{byte(i)})
	}
	old, _ := r.NewReader(&ReaderOptions{From: Oldest})
	f, err := old.TryNext()
	if err != nil || f.Seq != 0 {
		t.Fatalf("oldest: %+v %v", f, err)
	}
	old.Release()
	newr, _ := r.NewReader(nil)
	if _, err := newr.TryNext(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("newest reader saw history: %v", err)
	}
	for i := 0; i < 20; i++ {
		w.Write([]byte{byte(i)})
	}
	late, _ := r.NewReader(&ReaderOptions{From: Oldest})
	// Frame 25-8 is gone: its slot is already open for frame 25.
	if f, _ := late.TryNext(); f.Seq != 25-7 || f.Lost != 0 {
		t.Fatalf("oldest after wrap: seq %d lost %d, want %d and 0", f.Seq, f.Lost, 25-7)
	}
	// Leave and rejoin: the entry is freed and reused.
	n := len(r.Inspect().Readers)
	late.Close()
	if got := len(r.Inspect().Readers); got != n-1 {
		t.Fatalf("readers after close %d, want %d", got, n-1)
	}
	again, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

func TestReaderTableFull(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "full", Config{Slots: 4, SlotPayload: 64})
	for i := 0; i < MaxReaders; i++ {
		if _, err := r.NewReader(nil); err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	if _, err := r.NewReader(nil); !errors.Is(err, ErrNoReaderSlot) {
		t.Fatalf("reader %d: %v, want ErrNoReaderSlot", MaxReaders+1, err)
	}
}

// TestReaderReclaimsEntriesOfDeadHolderWithItsPID: reader entries left by
// a process that died, whose PID this process now has (PIDs are reused:
// pid_max is 32768 on many 32-bit boards), are free. NewReader skipped
// every entry holding its own PID as "another reader of this process"
// without looking at the start time, so it never reclaimed them: with the
// rest of the table held, it failed with ErrNoReaderSlot ("held by live
// readers") while Inspect showed those entries dead.
func TestReaderReclaimsEntriesOfDeadHolderWithItsPID(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "pidreuse", Config{Slots: 4, SlotPayload: 64})
	me, start := uint32(os.Getpid()), sys.SelfStartTime()
	if start < 200 {
		t.Fatalf("own start time %d: cannot make an older one", start)
	}
	for i := 0; i < MaxReaders; i++ {
		e := r.reader(i)
		// What a reader of the dead process left: its PID (now ours),
		// its start time two seconds before ours, our PID namespace.
		atomic.StoreUint32(&e.Start, start-200)
		atomic.StoreUint32(&e.PidNS, sys.SelfPidNS())
		atomic.StoreUint32(&e.Owner, me)
	}
	for _, ri := range r.Inspect().Readers {
		if ri.Alive {
			t.Fatalf("entry %d of the dead process shows alive: %+v", ri.Index, ri)
		}
	}
	rd, err := r.NewReader(nil)
	if err != nil {
		t.Fatalf("join with every entry held by a dead process under this PID: %v", err)
	}
	defer rd.Close()
	// Our own live readers are still told apart from the dead ones.
	rd2, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd2.Close()
	if rd2.e == rd.e {
		t.Fatal("second reader took the first one's entry")
	}
}

func TestWriterBusyInProcess(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "busy", Config{Slots: 4, SlotPayload: 64})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.NewWriter()
	var be *BusyError
	if !errors.As(err, &be) || be.PID != os.Getpid() {
		t.Fatalf("second writer: %v", err)
	}
	w.Close()
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatalf("writer after close: %v", err)
	}
	if r.Inspect().WriterEpoch != 2 {
		t.Fatalf("epoch %d, want 2", r.Inspect().WriterEpoch)
	}
	w2.Close()
}

func TestBlockBackPressure(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "block", Config{Slots: 4, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	for i := 0; i < 4; i++ {
		if _, err := w.TryReserve(8); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		w.Commit()
	}
	if _, err := w.TryReserve(8); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("full ring: %v, want ErrWouldBlock", err)
	}
	if _, err := w.ReserveDeadline(time.Now().Add(20*time.Millisecond), 8); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := w.ReserveContext(ctx, 8); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx: %v", err)
	}
	// A held (unreleased) frame still blocks; releasing it frees a slot and
	// wakes the blocked writer.
	f, _ := rd.TryNext()
	done := make(chan error, 1)
	go func() {
		_, err := w.ReserveContext(context.Background(), 8)
		if err == nil {
			_, err = w.Commit()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("writer did not wait for the held frame: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if f.Seq != 0 {
		t.Fatalf("seq %d", f.Seq)
	}
	rd.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("writer not woken by release")
	}
	// No frame was lost under the block policy.
	buf := make([]byte, 64)
	for want := uint32(1); want < 5; want++ {
		f, err := rd.TryReadInto(buf)
		if err != nil || f.Seq != want || f.Lost != 0 {
			t.Fatalf("frame %d: %+v %v", want, f, err)
		}
	}
}

func TestCloseUnblocksWaiters(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "close", Config{Slots: 4, SlotPayload: 64, Policy: Block})
	rd, _ := r.NewReader(nil)
	errc := make(chan error, 1)
	go func() {
		_, err := rd.Next(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	rd.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("Close did not unblock Next")
	}
	// A writer blocked on a full ring is unblocked by its Close.
	rd2, _ := r.NewReader(nil)
	defer rd2.Close()
	w, _ := r.NewWriter()
	for i := 0; i < 4; i++ {
		w.Write([]byte{1})
	}
	go func() {
		_, err := w.Reserve(1)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	w.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Reserve after Close: %v", err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("Close did not unblock Reserve")
	}
}

// TestCloseAbortsSpinningReserve: a Reserve that polls a full block ring
// (SetSpin) is a blocked Reserve too, and Close ends it with ErrClosed even
// when a reader frees a slot right after Close. The poll looked at closed
// only every 1024 polls: a slot freed in between was taken, the Reserve
// returned a buffer after Close, and it marked that slot being written in
// shared memory after the lease was released, where a writer that took
// the lease meanwhile may already have committed a frame (readers then
// lose it).
func TestCloseAbortsSpinningReserve(t *testing.T) {
	testDir(t)
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("spinclose%d", i)
		const base = 100 // no frame has stamp 0
		r := mustCreate(t, name, Config{Slots: 4, SlotPayload: 64, Policy: Block, BaseSeq: base})
		rd, _ := r.NewReader(nil)
		w, _ := r.NewWriter()
		w.SetSpin(-1)
		for j := 0; j < 4; j++ {
			if _, err := w.Write([]byte{byte(j)}); err != nil {
				t.Fatal(err)
			}
		}
		s := w.Seq()
		sh, _ := r.slot(s)
		errc := make(chan error, 1)
		go func() {
			_, err := w.Reserve(1)
			errc <- err
		}()
		time.Sleep(5 * time.Millisecond) // let it start polling (if it has not, it sees closed at once)
		w.Close()
		f, err := rd.TryNext() // frees the slot of frame s
		if err != nil || f.Seq != base {
			t.Fatalf("frame %+v %v; want %d", f, err, base)
		}
		rd.Release()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("round %d: Reserve blocked on a full ring, then the writer closed: %v; want ErrClosed", i, err)
			}
		case <-time.After(scale(5 * time.Second)):
			t.Fatal("Close did not end a spinning Reserve")
		}
		if st := atomic.LoadUint32(&sh.Stamp); st != (s-4)<<1 {
			t.Fatalf("round %d: slot of frame %d has stamp %#x after Close, want %#x (frame %d, untouched)", i, s, st, (s-4)<<1, s-4)
		}
		rd.Close()
		r.Close()
	}
}

// TestCommitAfterCloseRefused: a frame reserved before Close is discarded
// (Writer.Close says so) even when another Writer of this process has taken
// the lease since, which the lease check alone cannot tell from its own.
// Committed, it would publish a sequence number the new writer then gives
// to another frame.
func TestCommitAfterCloseRefused(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "commitclosed", Config{Slots: 4, SlotPayload: 64})
	rd, _ := r.NewReader(nil)
	defer rd.Close()
	w1, _ := r.NewWriter()
	p, err := w1.Reserve(3)
	if err != nil {
		t.Fatal(err)
	}
	copy(p, "old")
	w1.Close() // e.g. from another goroutine, while the frame is being filled
	w2, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if s, err := w1.Commit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit on a closed Writer: seq %d, %v; want ErrClosed", s, err)
	}
	if s, err := w2.WriteFrame(0, 0, []byte("new")); err != nil || s != 0 {
		t.Fatalf("new writer: seq %d, %v; want 0", s, err)
	}
	f, err := rd.TryNext()
	if err != nil || f.Seq != 0 || string(f.Data) != "new" {
		t.Fatalf("frame 0: %+v %v; want the new writer's", f, err)
	}
	rd.Release()
	if f, err := rd.TryNext(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("second frame %+v %v; want none", f, err)
	}
}

// TestReleaseAfterCloseRefused: Release of a frame held when the Reader was
// closed (by another goroutine, as Reader documents) must not write to the
// reader entry Close gave up: a reader that took it over since would get
// the old cursor, and a block-policy writer would wait for that reader
// while it waits for the writer.
func TestReleaseAfterCloseRefused(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "releaseclosed", Config{Slots: 4, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	defer w.Close()
	rd1, _ := r.NewReader(nil)
	w.Write([]byte("x"))
	if _, err := rd1.TryNext(); err != nil {
		t.Fatal(err)
	}
	rd1.Close()
	for i := 0; i < 7; i++ {
		if _, err := w.TryReserve(1); err != nil {
			t.Fatalf("frame %d with no reader: %v", i+1, err)
		}
		w.Commit()
	}
	rd2, err := r.NewReader(nil) // takes the entry rd1 left
	if err != nil {
		t.Fatal(err)
	}
	defer rd2.Close()
	if err := rd1.Release(); !errors.Is(err, ErrClosed) {
		t.Errorf("Release on a closed Reader: %v, want ErrClosed", err)
	}
	for _, ri := range r.Inspect().Readers {
		if ri.Cursor != 8 || ri.Lost != 0 {
			t.Errorf("reader entry %d: cursor %d lost %d, want 8 and 0 (rd2's)", ri.Index, ri.Cursor, ri.Lost)
		}
	}
	if _, err := w.TryReserve(1); err != nil {
		t.Fatalf("writer blocked by a closed reader's cursor: %v", err)
	}
}

func TestWaitForms(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "forms", Config{Slots: 4, SlotPayload: 64})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	if _, err := rd.NextDeadline(time.Now().Add(10 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("NextDeadline: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := rd.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel: %v", err)
	}
	wrote := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); w.Write([]byte("wake")); close(wrote) }()
	f, err := rd.Next(context.Background())
	<-wrote
	if err != nil || string(f.Data) != "wake" {
		t.Fatalf("%q %v", f.Data, err)
	}
	rd.Release()
	// Spinning reader.
	spin, _ := r.NewReader(&ReaderOptions{Spin: -1})
	wrote = make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); w.Write([]byte("spin")); close(wrote) }()
	f, err = spin.ReadInto(context.Background(), make([]byte, 64))
	<-wrote
	if err != nil || string(f.Data) != "spin" {
		t.Fatalf("spin: %q %v", f.Data, err)
	}
	if f, err := rd.TryReadInto(make([]byte, 64)); err != nil || string(f.Data) != "spin" {
		t.Fatalf("rd after spin: %q %v", f.Data, err)
	}
	// Short buffer: error, frame not consumed.
	w.Write([]byte("0123456789"))
	if _, err := rd.TryReadInto(make([]byte, 4)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	if f, err := rd.TryReadInto(make([]byte, 64)); err != nil || string(f.Data) != "0123456789" {
		t.Fatalf("after short buffer: %q %v", f.Data, err)
	}
}

func TestEventfdNotifier(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "ev", Config{Slots: 4, SlotPayload: 64})
	w, _ := r.NewWriter()
	ev := notifierFor(t, w)
	rd, _ := r.NewReader(&ReaderOptions{Notifier: ev})
	go func() { time.Sleep(20 * time.Millisecond); w.Write([]byte("ev")) }()
	ctx, cancel := context.WithTimeout(context.Background(), scale(5*time.Second))
	defer cancel()
	f, err := rd.Next(ctx)
	if err != nil || string(f.Data) != "ev" {
		t.Fatalf("%q %v", f.Data, err)
	}
	rd.Release()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := rd.Next(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("eventfd wait timeout: %v", err)
	}
	if !r.Inspect().Readers[0].Event {
		t.Fatal("reader table does not flag the eventfd reader")
	}
}

// TestConcurrentNeverTorn runs a fast writer against readers in the same
// process (use -race) and checks every frame's contents.
func TestConcurrentNeverTorn(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "torn", Config{Slots: 8, SlotPayload: 256})
	w, _ := r.NewWriter()
	const frames = 20000
	var wg sync.WaitGroup
	deadline := time.Now().Add(scale(30 * time.Second))
	for i := 0; i < 3; i++ {
		rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
		zeroCopy := i == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256)
			var last uint32
			var got int
			// Read until the last frame has been seen (it stays in the ring).
			for last != frames-1 {
				if time.Now().After(deadline) {
					t.Errorf("reader stuck at %d after %d frames", last, got)
					return
				}
				var f Frame
				var err error
				if zeroCopy {
					f, err = rd.TryNext()
					if err == nil {
						ok := checkPattern(f.Data, f.Seq) && len(f.Data) == frameLen(f.Seq, 256)
						if rerr := rd.Release(); rerr == nil && !ok {
							t.Errorf("zero-copy frame %d torn but Release said intact", f.Seq)
							return
						}
						// An overwritten frame was still delivered (and
						// flagged): the sequence continues after it.
					}
				} else {
					f, err = rd.TryReadInto(buf)
					if err == nil && (!checkPattern(f.Data, f.Seq) || len(f.Data) != frameLen(f.Seq, 256)) {
						t.Errorf("ReadInto returned torn frame %d", f.Seq)
						return
					}
				}
				if err == nil {
					if got > 0 && f.Seq-f.Lost-1 != last {
						t.Errorf("reader %d: sequence gap: %d after %d with lost %d", i, f.Seq, last, f.Lost)
						return
					}
					last = f.Seq
					got++
				}
			}
		}()
	}
	for s := uint32(0); s < frames; s++ {
		p, _ := w.Reserve(frameLen(s, 256))
		pattern(p, s)
		w.Commit()
	}
	wg.Wait()
}

func TestZeroAllocs(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "alloc", Config{Slots: 64, SlotPayload: 256})
	w, _ := r.NewWriter()
	rd, _ := r.NewReader(nil)
	buf := make([]byte, 256)
	payload := make([]byte, 200)
	if n := testing.AllocsPerRun(1000, func() {
		w.Write(payload)
		rd.TryReadInto(buf)
	}); n != 0 {
		t.Errorf("Write+TryReadInto: %v allocs per frame, want 0", n)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := w.Reserve(64)
		p[0] = 1
		w.CommitWith(7, 1)
		f, _ := rd.Next(ctx)
		_ = f.Data[0]
		rd.Release()
	}); n != 0 {
		t.Errorf("Reserve/Commit+Next/Release: %v allocs per frame, want 0", n)
	}
}

// TestCancelRacesSleep cancels waits at the moment they go to sleep. A
// futex wake, unlike a write to the word, is lost if it comes before the
// sleeper is queued: the cancellation must keep waking until the wait is
// back (a sub interrupted by SIGINT once hung here).
func TestCancelRacesSleep(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "cancelrace", Config{Slots: 4, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	ev := notifierFor(t, w)
	futex, _ := r.NewReader(nil)
	evrd, _ := r.NewReader(&ReaderOptions{Notifier: ev})
	buf := make([]byte, 64)
	waits := map[string]func(context.Context) error{
		"futex reader":   func(ctx context.Context) error { _, err := futex.ReadInto(ctx, buf); return err },
		"eventfd reader": func(ctx context.Context) error { _, err := evrd.ReadInto(ctx, buf); return err },
	}
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	for what, wait := range waits {
		for i := 0; i < rounds; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- wait(ctx) }()
			// Cancel anywhere from before the wait starts to after it
			// sleeps (0 to 10 µs).
			spinFor(time.Duration(i%40) * 250 * time.Nanosecond)
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("%s, round %d: %v, want context.Canceled", what, i, err)
				}
			case <-time.After(scale(5 * time.Second)):
				t.Fatalf("%s, round %d: still asleep 5s after its context was cancelled", what, i)
			}
		}
	}
	// Deterministically: the cancellation, and its first wake, land after
	// the sleeper's last check but before it is queued on the futex.
	ctx, cancel := context.WithCancel(context.Background())
	testHookBeforeFutexWait = func() {
		testHookBeforeFutexWait = nil
		cancel()
		time.Sleep(20 * time.Millisecond) // the first wake is gone by now
	}
	done := make(chan error, 1)
	go func() { done <- waits["futex reader"](ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("futex reader cancelled in the window: %v", err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("futex reader cancelled just before it slept never woke (lost wake-up)")
	}
	// The eventfd reader still wakes for a frame after all those
	// cancellations (no stale deadline is left behind).
	wrote := make(chan struct{})
	go func() { time.Sleep(10 * time.Millisecond); w.Write([]byte("after")); close(wrote) }()
	ctx, cancel = context.WithTimeout(context.Background(), scale(5*time.Second))
	defer cancel()
	if f, err := evrd.ReadInto(ctx, buf); err != nil || string(f.Data) != "after" {
		t.Fatalf("eventfd reader after cancellations: %q %v", f.Data, err)
	}
	<-wrote
	// The block-policy writer waiting for space (the futex reader lags).
	for {
		if _, err := w.TryReserve(8); err != nil {
			break
		}
		w.Commit()
	}
	for i := 0; i < rounds; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := w.ReserveContext(ctx, 8); done <- err }()
		spinFor(time.Duration(i%40) * 250 * time.Nanosecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("writer, round %d: %v, want context.Canceled", i, err)
			}
		case <-time.After(scale(5 * time.Second)):
			t.Fatalf("writer, round %d: still waiting 5s after its context was cancelled", i)
		}
	}
}

// spinFor busy-waits d: finer than time.Sleep, to hit narrow windows.
func spinFor(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// TestSpinningWriterLossless: a block-policy writer that polls a full ring
// (SetSpin(-1)) against a reader that keeps stopping: every frame arrives,
// in order and intact, and Close ends a Reserve that is spinning.
func TestSpinningWriterLossless(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "spinw", Config{Slots: 8, SlotPayload: 64, Policy: Block})
	w, _ := r.NewWriter()
	w.SetSpin(-1)
	rd, _ := r.NewReader(nil)
	const n = 3000
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			p, err := w.Reserve(frameLen(w.Seq(), 64))
			if err != nil {
				errc <- err
				return
			}
			pattern(p, w.Seq())
			if _, err := w.Commit(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	buf := make([]byte, 64)
	for i := uint32(0); i < n; i++ {
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let the ring fill
		}
		f, err := rd.ReadIntoDeadline(time.Now().Add(scale(10*time.Second)), buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Seq != i || f.Lost != 0 || !checkPattern(f.Data, f.Seq) {
			t.Fatalf("frame %d: seq %d lost %d intact %v", i, f.Seq, f.Lost, checkPattern(f.Data, f.Seq))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The ring is full now that nobody reads; Close ends the spinning wait.
	for {
		if _, err := w.TryReserve(1); err != nil {
			break
		}
		w.Commit()
	}
	go func() { time.Sleep(20 * time.Millisecond); w.Close() }()
	if _, err := w.Reserve(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reserve spinning on a full ring, then Close: %v, want ErrClosed", err)
	}
}

// TestPingPongExact bounces numbered frames between two goroutines through
// two rings with busy-polling readers: every frame must arrive once, in
// order, intact. Readers take a frame as soon as its slot stamp shows it,
// often before the writer's head store does; a reader that then trusted
// the head went back a frame (this test caught it).
func TestPingPongExact(t *testing.T) {
	testDir(t)
	for _, spin := range []int{-1, 0} {
		ping := mustCreate(t, fmt.Sprintf("pp%d.ping", -spin), Config{Slots: 8, SlotPayload: 64})
		pong := mustCreate(t, fmt.Sprintf("pp%d.pong", -spin), Config{Slots: 8, SlotPayload: 64})
		pw, _ := ping.NewWriter()
		qw, _ := pong.NewWriter()
		pr, _ := ping.NewReader(&ReaderOptions{Spin: spin})
		qr, _ := pong.NewReader(&ReaderOptions{Spin: spin})
		// Two goroutines that never sleep: with the cores shared by other
		// work (go test runs packages in parallel), a round can cost the
		// rest of a scheduler slice. The deadline is per round, a hang
		// guard, not a bound on the whole run.
		rounds := 5000
		if spin == 0 {
			rounds = 2000 // each round trip is two futex wake-ups
		}
		dl := func() time.Time { return time.Now().Add(scale(10 * time.Second)) }
		errc := make(chan error, 1)
		go func() {
			for i := 0; i < rounds; i++ {
				f, err := pr.NextDeadline(dl())
				if err != nil {
					errc <- err
					return
				}
				if f.Seq != uint32(i) || f.Lost != 0 || !checkPattern(f.Data, f.Seq) {
					errc <- fmt.Errorf("echo side, round %d: got seq %d lost %d intact %v", i, f.Seq, f.Lost, checkPattern(f.Data, f.Seq))
					return
				}
				p, _ := qw.Reserve(len(f.Data))
				copy(p, f.Data)
				if err := pr.Release(); err != nil {
					errc <- fmt.Errorf("echo side, round %d: %v", i, err)
					return
				}
				qw.Commit()
			}
			errc <- nil
		}()
		buf := make([]byte, 64)
		for i := 0; i < rounds; i++ {
			p, _ := pw.Reserve(frameLen(uint32(i), 64))
			pattern(p, uint32(i))
			pw.Commit()
			f, err := qr.ReadIntoDeadline(dl(), buf)
			if err != nil {
				t.Fatalf("spin %d, round %d: %v (echo side: %v)", spin, i, err, drain(errc))
			}
			if f.Seq != uint32(i) || f.Lost != 0 || !checkPattern(f.Data, uint32(i)) {
				t.Fatalf("spin %d, round %d: got seq %d lost %d intact %v", spin, i, f.Seq, f.Lost, checkPattern(f.Data, uint32(i)))
			}
		}
		if err := <-errc; err != nil {
			t.Fatalf("spin %d: %v", spin, err)
		}
		if s := qr.Stats(); s.Lost != 0 || s.Overwritten != 0 || s.Frames != uint64(rounds) {
			t.Fatalf("spin %d: reader stats %+v", spin, s)
		}
	}
}

func drain(errc chan error) error {
	select {
	case err := <-errc:
		return err
	case <-time.After(time.Second):
		return errors.New("still running")
	}
}

// notifierFor creates an eventfd, registers it with w and closes it at the
// end of the test.
func notifierFor(t *testing.T, w *Writer) *Eventfd {
	t.Helper()
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	w.AddNotifier(ev)
	return ev
}

// TestRingCloseRacesCalls closes a ring while other goroutines are inside
// non-blocking and spinning calls of its Reader and Writer: each must end
// with ErrClosed, none may fault on the released mapping.
func TestRingCloseRacesCalls(t *testing.T) {
	testDir(t)
	for iter := 0; iter < 20; iter++ {
		r, err := Create(fmt.Sprintf("race%d", iter), Config{Slots: 8, SlotPayload: 64})
		if err != nil {
			t.Fatal(err)
		}
		w, _ := r.NewWriter()
		rdTry, _ := r.NewReader(nil)
		rdSpin, _ := r.NewReader(&ReaderOptions{Spin: -1})
		rdZero, _ := r.NewReader(nil)
		buf := make([]byte, 64)
		closeDuringCalls(t, iter, r.Close,
			func() error { // writer: Reserve/Commit as fast as it can
				for {
					p, err := w.Reserve(16)
					if err == nil {
						p[0] = 1
						_, err = w.Commit()
					}
					if err != nil {
						return err
					}
				}
			},
			func() error {
				for {
					if _, err := rdTry.TryReadInto(buf); err != nil && err != ErrWouldBlock {
						return err
					}
				}
			},
			func() error {
				for {
					if _, err := rdSpin.Next(context.Background()); err != nil {
						return err
					}
					rdSpin.Release()
				}
			},
			func() error {
				for {
					f, err := rdZero.TryNext()
					if err == nil {
						// Touch the slot. A frame taken as Close zeroes the
						// mapping may read as empty; Release then reports it.
						for _, b := range f.Data {
							_ = b
						}
						rdZero.Release()
					} else if err != ErrWouldBlock {
						return err
					}
				}
			})
	}
}

// closeDuringCalls runs each call (a loop that returns its first real
// error) in a goroutine, closes with close once all have started, and
// checks that every call then ends with ErrClosed (or ErrEvicted: a reader
// may see its entry released before it sees closed).
func closeDuringCalls(t *testing.T, iter int, close func() error, calls ...func() error) {
	t.Helper()
	errs := make(chan error, len(calls))
	var started sync.WaitGroup
	started.Add(len(calls))
	for _, call := range calls {
		go func() {
			started.Done()
			errs <- call()
		}()
	}
	started.Wait()
	time.Sleep(time.Duration(iter%5) * time.Millisecond)
	if err := close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range calls {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrEvicted) {
				t.Fatalf("iteration %d: call racing Close returned %v, want ErrClosed", iter, err)
			}
		case <-time.After(scale(5 * time.Second)):
			t.Fatalf("iteration %d: a call racing Close did not return", iter)
		}
	}
}

// TestHeadMovesWithoutStamps rewrites the head the way a broken or hostile
// writer could, without touching any slot: a waiting reader must notice,
// count the frames it cannot find as lost, and neither return a frame nor
// sleep for ever on a slot stamp that will never change.
func TestHeadMovesWithoutStamps(t *testing.T) {
	testDir(t)
	for _, spin := range []int{0, 1 << 12} {
		r := mustCreate(t, fmt.Sprintf("head%d", spin), Config{Slots: 4, SlotPayload: 64})
		w, _ := r.NewWriter()
		rd, _ := r.NewReader(&ReaderOptions{Spin: spin})
		buf := make([]byte, 64)
		for i := 0; i < 10; i++ {
			w.Write([]byte{byte(i)})
			if f, err := rd.ReadIntoDeadline(time.Now().Add(scale(time.Second)), buf); err != nil || f.Seq != uint32(i) {
				t.Fatalf("spin %d: frame %d: %+v %v", spin, i, f, err)
			}
		}
		// Next would be frame 10 in slot 2, which still holds frame 6.
		atomic.StoreUint32(&r.hdr.Head, 15)
		f, err := rd.ReadIntoDeadline(time.Now().Add(scale(50*time.Millisecond)), buf)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("spin %d: read after a bare head move: %+v %v, want deadline exceeded", spin, f, err)
		}
		if rd.Cursor() != 15 || rd.Stats().Lost != 5 {
			t.Fatalf("spin %d: cursor %d lost %d, want 15 and 5", spin, rd.Cursor(), rd.Stats().Lost)
		}
	}
}

// TestWaitAcrossStampZero has a waiting reader take frames 2^31-2 ..
// 2^31+2 and 2^32-2 .. 2: frames 0 and 2^31 have stamp 0, which is also a
// never-written slot's, so the wait for them watches the head instead.
func TestWaitAcrossStampZero(t *testing.T) {
	testDir(t)
	for _, base := range []uint32{1<<31 - 2, ^uint32(0) - 1} {
		for _, spin := range []int{0, -1} {
			// 8 slots hold all 5 frames: a reader descheduled for the whole
			// run (a loaded machine) still loses none.
			r := mustCreate(t, fmt.Sprintf("z%d-%d", base, spin+1), Config{Slots: 8, SlotPayload: 64, BaseSeq: base})
			w, _ := r.NewWriter()
			rd, _ := r.NewReader(&ReaderOptions{Spin: spin})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < 5; i++ {
					time.Sleep(2 * time.Millisecond)
					w.Write([]byte{byte(i)})
				}
			}()
			for i := uint32(0); i < 5; i++ {
				f, err := rd.NextDeadline(time.Now().Add(scale(2 * time.Second)))
				if err != nil || f.Seq != base+i || f.Lost != 0 || len(f.Data) != 1 || f.Data[0] != byte(i) {
					t.Fatalf("base %#x spin %d: frame %d: %+v %v", base, spin, i, f, err)
				}
				if err := rd.Release(); err != nil {
					t.Fatalf("release %d: %v", base+i, err)
				}
			}
			<-done
		}
	}
}

// TestOpenNextSlot: a Commit marks the slot of the next frame as being
// written (Writer.openNext), except under the block policy when a reader
// still holds that slot's frame.
func TestOpenNextSlot(t *testing.T) {
	testDir(t)
	for _, pol := range []Policy{Overwrite, Block} {
		r := mustCreate(t, "open"+pol.String(), Config{Slots: 4, SlotPayload: 64, Policy: pol})
		w, _ := r.NewWriter()
		rd, _ := r.NewReader(nil)
		for i := 0; i < 4; i++ {
			if _, err := w.Write([]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		sh, _ := r.slot(4)
		st := atomic.LoadUint32(&sh.Stamp)
		f, err := rd.TryNext()
		if pol == Overwrite {
			if st != 4<<1|stampWriting {
				t.Fatalf("overwrite: slot of frame 4 has stamp %#x, want it opened (%#x)", st, 4<<1|stampWriting)
			}
			if err != nil || f.Seq != 1 || f.Lost != 1 {
				t.Fatalf("overwrite: first frame %+v %v, want seq 1 after losing frame 0", f, err)
			}
			continue
		}
		if st != 0 {
			t.Fatalf("block: slot of frame 4 has stamp %#x: the writer opened a slot a reader holds", st)
		}
		if err != nil || f.Seq != 0 || f.Lost != 0 || f.Data[0] != 0 || rd.Release() != nil {
			t.Fatalf("block: first frame %+v %v", f, err)
		}
		for i := 1; i < 4; i++ {
			if f, err := rd.TryReadInto(make([]byte, 64)); err != nil || f.Seq != uint32(i) {
				t.Fatalf("block: frame %d: %+v %v", i, f, err)
			}
		}
		// The ring is empty: frame 4 goes in, and the slot of frame 5 opens.
		if _, err := w.Write([]byte{4}); err != nil {
			t.Fatal(err)
		}
		sh, _ = r.slot(5)
		if st := atomic.LoadUint32(&sh.Stamp); st != 5<<1|stampWriting {
			t.Fatalf("block: slot of frame 5 has stamp %#x, want it opened", st)
		}
	}
}

// TestSemaphoreCloseRacesCalls closes a semaphore while other goroutines
// Post, TryWait and read its Value as fast as they can: each ends with
// ErrClosed, none faults on the released mapping. (The window between a
// call's closed check and its access is a few instructions wide, so the
// munmap this replaced rarely faulted here; the test pins the contract.)
func TestSemaphoreCloseRacesCalls(t *testing.T) {
	testDir(t)
	for iter := 0; iter < 20; iter++ {
		s, err := CreateSemaphore(fmt.Sprintf("semrace%d", iter), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		closeDuringCalls(t, iter, s.Close,
			func() error {
				for {
					if err := s.Post(); err != nil {
						return err
					}
				}
			},
			func() error {
				for {
					if err := s.TryWait(); err != nil && err != ErrWouldBlock {
						return err
					}
				}
			},
			func() error {
				for {
					_ = s.Value()
					if err := s.WaitDeadline(time.Now().Add(time.Microsecond)); err != nil &&
						!errors.Is(err, os.ErrDeadlineExceeded) {
						return err
					}
				}
			})
	}
}

// A semaphore at its maximum refuses Post instead of wrapping to 0, also
// when another process stored a value past the maximum.
func TestSemaphoreOverflow(t *testing.T) {
	testDir(t)
	if _, err := CreateSemaphore("over0", MaxSemaphoreValue+1, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create above the maximum: %v, want ErrInvalid", err)
	}
	s, err := CreateSemaphore("over", MaxSemaphoreValue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Post(); !errors.Is(err, ErrOverflow) || s.Value() != MaxSemaphoreValue {
		t.Fatalf("Post at the maximum: %v, value %d", err, s.Value())
	}
	if err := s.TryWait(); err != nil {
		t.Fatal(err)
	}
	if err := s.Post(); err != nil || s.Value() != MaxSemaphoreValue {
		t.Fatalf("Post below the maximum: %v, value %d", err, s.Value())
	}
	atomic.StoreUint32(&s.h.Value, ^uint32(0)) // garbage from elsewhere
	if err := s.Post(); !errors.Is(err, ErrOverflow) || s.Value() != ^uint32(0) {
		t.Fatalf("Post on a garbage value: %v, value %d", err, s.Value())
	}
}

// A commit makes a system call only to wake a reader that sleeps: none
// while every reader is awake (polling), one or more once one sleeps on
// the futex or on an eventfd.
func TestCommitSyscallsOnlyForSleepers(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "quiet", Config{Slots: 64, SlotPayload: 64})
	w, _ := r.NewWriter()
	defer w.Close()
	spin, _ := r.NewReader(&ReaderOptions{Spin: -1})
	const frames = 5000
	got := make(chan error, 1)
	go func() {
		// It may fall behind and lose frames; it reads until the last.
		buf := make([]byte, 64)
		for {
			f, err := spin.ReadIntoDeadline(time.Now().Add(scale(10*time.Second)), buf)
			if err != nil || f.Seq == frames-1 {
				got <- err
				return
			}
		}
	}()
	before := w.wakeCalls
	for i := 0; i < frames; i++ {
		w.Write([]byte{byte(i)})
	}
	if n := w.wakeCalls - before; n != 0 {
		t.Fatalf("%d frames with only a polling reader made %d wake system calls, want 0", frames, n)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	spin.Close()

	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	w.AddNotifier(ev)
	for _, opts := range []*ReaderOptions{{}, {Notifier: ev}} {
		rd, _ := r.NewReader(opts)
		got := make(chan error, 1)
		go func() {
			_, err := rd.Next(context.Background())
			got <- err
		}()
		waitUntil(t, "the reader to sleep", func() bool { in := r.Inspect(); return in.Sleepers+in.EvSleepers == 1 })
		before := w.wakeCalls
		w.Write([]byte("wake"))
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if w.wakeCalls == before {
			t.Fatalf("a commit to a ring with a sleeping reader (eventfd %v) made no wake system call", opts.Notifier != nil)
		}
		rd.Close()
	}
}

// An evicted reader that leaves does not touch the entry, which another
// reader may hold by then: clearing its flags would forget that it sleeps
// (so its count could not be taken back if it died asleep).
func TestEvictedReaderLeavesEntryAlone(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "evictleave", Config{Slots: 4, SlotPayload: 64})
	rd, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The entry passed to another process (pid 1, alive), asleep on the futex.
	atomic.StoreUint32(&rd.e.Owner, 1)
	atomic.StoreUint32(&rd.e.Flags, 2)
	rd.Close()
	if o, fl := atomic.LoadUint32(&rd.e.Owner), atomic.LoadUint32(&rd.e.Flags); o != 1 || fl != 2 {
		t.Fatalf("after the evicted reader left: owner %d flags %d, want 1 and 2 (untouched)", o, fl)
	}
}

// TestCloseRacingRingCloseLetsGo: a Reader or Writer closed in one
// goroutine (to abort a blocked call, as their docs offer) while another
// goroutine closes the Ring. Ring.Close found the Reader or Writer already
// closing and went on to replace the mapping with zeros at once, while
// the first Close was still waking its blocked call; that Close then gave
// up the reader entry or the writer lease in the zeros, not in the ring.
// The entry stayed held under this live process's PID, with its cursor
// frozen (a block-policy writer elsewhere waits for it for as long as the
// process runs), or the lease did (every other writer gets ErrBusy naming
// this process).
func TestCloseRacingRingCloseLetsGo(t *testing.T) {
	testDir(t)
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("closerace%d", i)
		r := mustCreate(t, name, Config{Slots: 4, SlotPayload: 64, Policy: Block})
		rd, _ := r.NewReader(nil)
		w, _ := r.NewWriter()
		for j := 0; j < 4; j++ {
			w.Write([]byte{1})
		}
		// A blocked Reserve (the ring is full) and a blocked Next (on a
		// second reader that has read everything).
		rd2, _ := r.NewReader(nil)
		errc := make(chan error, 2)
		go func() { _, err := w.Reserve(1); errc <- err }()
		go func() { _, err := rd2.Next(context.Background()); errc <- err }()
		for atomic.LoadUint32(&r.hdr.SpaceWaiters) == 0 || atomic.LoadUint32(&r.hdr.Sleepers) == 0 {
			time.Sleep(time.Millisecond)
		}
		closed := make(chan struct{}, 2)
		go func() { w.Close(); closed <- struct{}{} }()
		go func() { rd2.Close(); closed <- struct{}{} }()
		for !w.closed.Load() || !rd2.closed.Load() {
			runtime.Gosched()
		}
		r.Close() // while both Closes may still be waking their calls
		<-closed
		<-closed
		for range 2 {
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Fatalf("blocked call after Close: %v, want ErrClosed", err)
			}
		}
		r2, err := Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		info := r2.Inspect()
		if info.WriterPID != 0 || len(info.Readers) != 0 {
			t.Errorf("round %d: after every Close the ring still lists writer pid %d and readers %+v (this process is %d)", i, info.WriterPID, info.Readers, os.Getpid())
		}
		r2.Close()
		rd.Close()
	}
}
