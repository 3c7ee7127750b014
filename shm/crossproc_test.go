//go:build linux

package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func init() {
	children["writer"] = childWriter
	children["crash-writer"] = childCrashWriter
	children["idle-reader"] = childIdleReader
	children["ev-writer"] = childEventfdWriter
	children["memfd-writer"] = childMemfdWriter
	children["sem"] = childSemaphore
	children["sleeper"] = childSleeper
}

// childSleeper joins EDGEIPC_RING and blocks in Next.
func childSleeper() int {
	rd, err := OpenReader(os.Getenv("EDGEIPC_RING"), nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Println("sleeping")
	rd.Next(context.Background())
	return 0
}

// childWriter writes EDGEIPC_N pattern frames to EDGEIPC_RING as fast as it
// can, after an optional delay (EDGEIPC_DELAY_MS).
func childWriter() int {
	w, err := OpenWriter(os.Getenv("EDGEIPC_RING"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer w.Close()
	if d := envInt("EDGEIPC_DELAY_MS"); d > 0 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	max := w.Ring().SlotPayload()
	for i := 0; i < envInt("EDGEIPC_N"); i++ {
		s := w.Seq()
		p, err := w.Reserve(frameLen(s, max))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child reserve:", err)
			return 1
		}
		pattern(p, s)
		if _, err := w.Commit(); err != nil {
			fmt.Fprintln(os.Stderr, "child commit:", err)
			return 1
		}
	}
	if ms := envInt("EDGEIPC_LINGER_MS"); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond) // until killed: no SIGCHLD
	}
	return 0
}

// childCrashWriter commits EDGEIPC_N frames, reserves one more, scribbles
// half of it, says "reserved" and waits to be killed.
func childCrashWriter() int {
	w, err := OpenWriter(os.Getenv("EDGEIPC_RING"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	for i := 0; i < envInt("EDGEIPC_N"); i++ {
		s := w.Seq()
		p, _ := w.Reserve(32)
		pattern(p, s)
		w.Commit()
	}
	p, _ := w.Reserve(32)
	for i := range p[:16] {
		p[i] = 0xEE
	}
	fmt.Println("reserved")
	time.Sleep(time.Hour)
	return 0
}

// childIdleReader joins EDGEIPC_RING, says "joined" and never reads.
func childIdleReader() int {
	rd, err := OpenReader(os.Getenv("EDGEIPC_RING"), nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	_ = rd
	fmt.Println("joined")
	time.Sleep(time.Hour)
	return 0
}

func childEventfdWriter() int {
	ev, err := EventfdFromFile(os.NewFile(3, "eventfd"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	w, err := OpenWriter(os.Getenv("EDGEIPC_RING"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer w.Close()
	w.AddNotifier(ev)
	time.Sleep(50 * time.Millisecond)
	w.Write([]byte("over eventfd"))
	return 0
}

func childMemfdWriter() int {
	r, err := OpenFile(os.NewFile(3, "ring"), "memfd")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer r.Close()
	w, err := r.NewWriter()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	for i := 0; i < 10; i++ {
		w.Write([]byte(fmt.Sprintf("memfd %d", i)))
	}
	return 0
}

// childSemaphore waits on EDGEIPC_SEM.in and posts EDGEIPC_SEM.out N times.
func childSemaphore() int {
	in, err := OpenSemaphore(os.Getenv("EDGEIPC_SEM")+".in", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer in.Close()
	out, err := OpenSemaphore(os.Getenv("EDGEIPC_SEM")+".out", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < envInt("EDGEIPC_N"); i++ {
		if err := in.Wait(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "child wait:", err)
			return 1
		}
		out.Post()
	}
	return 0
}

// waitLine reads stdout of cmd until want or EOF.
func waitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == want {
				done <- true
				return
			}
		}
		done <- false
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("child exited before saying %q", want)
		}
	case <-time.After(scale(20 * time.Second)):
		t.Fatalf("child did not say %q", want)
	}
}

func startChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

func TestCrossProcessStream(t *testing.T) {
	for _, pol := range []Policy{Overwrite, Block} {
		t.Run(pol.String(), func(t *testing.T) {
			testDir(t)
			name := "xstream-" + pol.String()
			r := mustCreate(t, name, Config{Slots: 16, SlotPayload: 512, Policy: pol})
			rd, err := r.NewReader(&ReaderOptions{From: Oldest})
			if err != nil {
				t.Fatal(err)
			}
			const n = 20000
			cmd := child(t, "writer", "EDGEIPC_RING="+name, fmt.Sprint("EDGEIPC_N=", n))
			startChild(t, cmd)
			buf := make([]byte, 512)
			ctx, cancel := context.WithTimeout(context.Background(), scale(60*time.Second))
			defer cancel()
			var got, lost uint64
			next := uint32(0)
			for next != n {
				f, err := rd.ReadInto(ctx, buf)
				if err != nil {
					t.Fatalf("after %d frames: %v", got, err)
				}
				if len(f.Data) != frameLen(f.Seq, 512) || !checkPattern(f.Data, f.Seq) {
					t.Fatalf("torn frame %d returned", f.Seq)
				}
				if f.Seq-f.Lost != next {
					t.Fatalf("frame %d with lost %d follows %d", f.Seq, f.Lost, next-1)
				}
				got++
				lost += uint64(f.Lost)
				next = f.Seq + 1
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v", err)
			}
			if got+lost != n {
				t.Fatalf("got %d + lost %d != %d", got, lost, n)
			}
			if pol == Block && lost != 0 {
				t.Fatalf("block policy lost %d frames", lost)
			}
			t.Logf("%v: %d frames read, %d lost", pol, got, lost)
		})
	}
}

func TestWriterCrashTakeover(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "crash", Config{Slots: 8, SlotPayload: 64})
	rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
	cmd := child(t, "crash-writer", "EDGEIPC_RING=crash", "EDGEIPC_N=3")
	out, _ := cmd.StdoutPipe()
	startChild(t, cmd)
	waitLine(t, out, "reserved")

	_, err := r.NewWriter()
	var be *BusyError
	if !errors.As(err, &be) || be.PID != cmd.Process.Pid {
		t.Fatalf("writer while child holds the lease: %v (child pid %d)", err, cmd.Process.Pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	w, err := r.NewWriter()
	if err != nil {
		t.Fatalf("lease of a dead writer not reclaimed: %v", err)
	}
	if w.Seq() != 3 {
		t.Fatalf("new writer starts at %d, want 3", w.Seq())
	}
	buf := make([]byte, 64)
	for want := uint32(0); want < 3; want++ {
		f, err := rd.TryReadInto(buf)
		if err != nil || f.Seq != want || !checkPattern(f.Data, f.Seq) {
			t.Fatalf("frame %d: %+v %v", want, f, err)
		}
	}
	if f, err := rd.TryReadInto(buf); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("half-written frame became visible: %+v %v", f, err)
	}
	p, _ := w.Reserve(32)
	pattern(p, 3)
	w.Commit()
	f, err := rd.TryReadInto(buf)
	if err != nil || f.Seq != 3 || !checkPattern(f.Data, 3) || f.Lost != 0 {
		t.Fatalf("frame from the new writer: %+v %v", f, err)
	}
	if r.Inspect().WriterEpoch != 2 {
		t.Fatalf("epoch %d, want 2", r.Inspect().WriterEpoch)
	}
	w.Close()
}

// TestReaderCrashDoesNotStallBlockWriter, for a writer that sleeps on a full
// ring and one that polls it (SetSpin(-1)): both honour their context and
// evict a reader that was killed.
func TestReaderCrashDoesNotStallBlockWriter(t *testing.T) {
	for _, spin := range []int{0, -1} {
		t.Run(fmt.Sprintf("spin=%d", spin), func(t *testing.T) { readerCrashBlockWriter(t, spin) })
	}
}

// fullBlockRing creates a 4-slot block-policy ring name, starts a child
// reader that joins it and reads nothing, and fills the ring from the
// returned writer (which the test closes, or the ring's cleanup does).
func fullBlockRing(t *testing.T, name string) (*Ring, *Writer, *exec.Cmd) {
	t.Helper()
	testDir(t)
	r := mustCreate(t, name, Config{Slots: 4, SlotPayload: 64, Policy: Block})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	cmd := child(t, "idle-reader", "EDGEIPC_RING="+name)
	out, _ := cmd.StdoutPipe()
	startChild(t, cmd)
	waitLine(t, out, "joined")
	for i := 0; i < 4; i++ {
		if _, err := w.TryReserve(1); err != nil {
			t.Fatal(err)
		}
		w.Commit()
	}
	return r, w, cmd
}

func readerCrashBlockWriter(t *testing.T, spin int) {
	r, w, cmd := fullBlockRing(t, "rcrash")
	w.SetSpin(spin)
	if _, err := w.TryReserve(1); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("ring with a live idle reader is not full: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if _, err := w.ReserveContext(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("writer did not wait for the live reader: %v", err)
	}
	cancel()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ctx, cancel = context.WithTimeout(context.Background(), scale(10*time.Second))
	defer cancel()
	if _, err := w.ReserveContext(ctx, 1); err != nil {
		t.Fatalf("writer still stalled by a dead reader: %v", err)
	}
	w.Commit()
	if n := len(r.Inspect().Readers); n != 0 {
		t.Fatalf("dead reader not evicted: %d readers", n)
	}
}

// TestShortReservesEvictDeadReader: a block-policy writer that only polls
// (TryReserve, as an event loop does) or waits less than the eviction
// period at a time (ReserveDeadline, ReserveContext with a budget per
// frame, dropping the frame when it runs out) is not stalled for ever by
// a reader that crashed. Dead readers' entries were freed only after a
// single Reserve had waited 100 ms: TryReserve never freed them, and a
// Reserve bounded to 20 ms never waited that long, so they failed for as
// long as the writer ran.
func TestShortReservesEvictDeadReader(t *testing.T) {
	for _, form := range []string{"try", "deadline", "context"} {
		t.Run(form, func(t *testing.T) {
			r, w, cmd := fullBlockRing(t, "shortcrash-"+form)
			reserve := func() error {
				var err error
				switch form {
				case "try":
					_, err = w.TryReserve(1)
					if errors.Is(err, ErrWouldBlock) {
						time.Sleep(5 * time.Millisecond)
					}
				case "deadline":
					_, err = w.ReserveDeadline(time.Now().Add(20*time.Millisecond), 1)
				case "context":
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					_, err = w.ReserveContext(ctx, 1)
					cancel()
				}
				return err
			}
			if err := reserve(); err == nil {
				t.Fatal("ring with a live idle reader is not full")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			limit := time.Now().Add(scale(10 * time.Second))
			for {
				err := reserve()
				if err == nil {
					break
				}
				if !errors.Is(err, ErrWouldBlock) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatal(err)
				}
				if time.Now().After(limit) {
					t.Fatalf("Reserve (%s) still fails (%v) long after the only reader died: %+v", form, err, r.Inspect())
				}
			}
			if _, err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if n := len(r.Inspect().Readers); n != 0 {
				t.Fatalf("dead reader not evicted: %d readers", n)
			}
		})
	}
}

// TestFutexWakeAcrossProcesses: only the other process's wake may end the
// sleep. The bound on one sleep (maxSleep) is lifted, and the writer stays
// alive after its frame: the SIGCHLD of its exit interrupts the futex wait
// too (EINTR), and either would hide a wake that never crossed the process
// boundary (a private futex, a wrong address).
func TestFutexWakeAcrossProcesses(t *testing.T) {
	testDir(t)
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour))
	r := mustCreate(t, "futex", Config{Slots: 8, SlotPayload: 512})
	rd, _ := r.NewReader(nil)
	cmd := child(t, "writer", "EDGEIPC_RING=futex", "EDGEIPC_N=1", "EDGEIPC_DELAY_MS=100", "EDGEIPC_LINGER_MS=3600000")
	startChild(t, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	start := time.Now()
	f, err := rd.Next(ctx)
	if err != nil || time.Since(start) > scale(10*time.Second) {
		t.Fatalf("reader asleep on the futex was not woken (only its context's end found the frame?): %v after %v", err, time.Since(start))
	}
	if !checkPattern(f.Data, 0) {
		t.Fatal("bad payload")
	}
	rd.Release()
}

// TestEventfdAcrossProcesses: only the child's signal may end the wait
// (the bound on one sleep, maxSleep, is lifted).
func TestEventfdAcrossProcesses(t *testing.T) {
	testDir(t)
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour))
	r := mustCreate(t, "evx", Config{Slots: 8, SlotPayload: 64})
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	rd, _ := r.NewReader(&ReaderOptions{Notifier: ev})
	f, err := ev.File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := child(t, "ev-writer", "EDGEIPC_RING=evx")
	cmd.ExtraFiles = []*os.File{f}
	startChild(t, cmd)
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	start := time.Now()
	fr, err := rd.Next(ctx)
	if err != nil || string(fr.Data) != "over eventfd" {
		t.Fatalf("%q %v", fr.Data, err)
	}
	if d := time.Since(start); d > scale(10*time.Second) {
		t.Fatalf("the eventfd reader was not woken: the frame was found after %v, at its context's end", d)
	}
	rd.Release()
}

func TestMemfdRingAcrossProcesses(t *testing.T) {
	r, err := CreateMemfd("memfd", Config{Slots: 16, SlotPayload: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
	f, err := r.File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := child(t, "memfd-writer")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v", err)
	}
	f.Close()
	buf := make([]byte, 64)
	for i := 0; i < 10; i++ {
		fr, err := rd.TryReadInto(buf)
		if err != nil || string(fr.Data) != fmt.Sprintf("memfd %d", i) {
			t.Fatalf("frame %d: %q %v", i, fr.Data, err)
		}
	}
}

func TestSemaphoreAcrossProcesses(t *testing.T) {
	testDir(t)
	in, err := CreateSemaphore("s.in", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := CreateSemaphore("s.out", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const n = 200
	cmd := child(t, "sem", "EDGEIPC_SEM=s", fmt.Sprint("EDGEIPC_N=", n))
	startChild(t, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), scale(30*time.Second))
	defer cancel()
	for i := 0; i < n; i++ {
		in.Post()
		if err := out.Wait(ctx); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if in.Value() != 0 || out.Value() != 0 {
		t.Fatalf("values %d %d after balanced posts and waits", in.Value(), out.Value())
	}
}

func TestSemaphoreForms(t *testing.T) {
	testDir(t)
	s, err := CreateSemaphore("forms", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.TryWait() != nil || s.TryWait() != nil {
		t.Fatal("TryWait on a positive semaphore failed")
	}
	if err := s.TryWait(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryWait at zero: %v", err)
	}
	if err := s.WaitDeadline(time.Now().Add(10 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitDeadline: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Wait(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("Close did not unblock Wait")
	}
	if _, err := OpenSemaphore("nosuch", nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	if _, err := Open("forms", nil); err == nil {
		t.Fatal("opened a semaphore as a ring")
	}
}

// A reader killed in its sleep leaves the sleeper count behind; the writer
// (or the next reader to take its entry) must take exactly that count back:
// no wake system call on every commit, and no live sleeper left uncounted.
func TestStaleSleeperCountRepaired(t *testing.T) {
	testDir(t)
	r := mustCreate(t, "stale", Config{Slots: 8, SlotPayload: 64})
	w, _ := r.NewWriter()
	killSleeper := func(want uint32) {
		t.Helper()
		cmd := child(t, "sleeper", "EDGEIPC_RING=stale")
		out, _ := cmd.StdoutPipe()
		startChild(t, cmd)
		waitLine(t, out, "sleeping")
		waitUntil(t, fmt.Sprintf("the child to sleep (sleepers = %d)", want), func() bool { return r.Inspect().Sleepers == want })
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if got := r.Inspect().Sleepers; got != want {
			t.Fatalf("sleepers after the kill: %d, want %d (left behind)", got, want)
		}
	}

	// The writer repairs it after a run of wakes that reached nobody.
	killSleeper(1)
	for i := 0; i < staleWakes+1; i++ {
		w.Write([]byte{1})
	}
	if got := r.Inspect().Sleepers; got != 0 {
		t.Fatalf("stale sleeper count not repaired by the writer: %d", got)
	}

	// A reader that takes over the dead entry repairs it at once.
	killSleeper(1)
	rd, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Inspect().Sleepers; got != 0 {
		t.Fatalf("stale sleeper count not repaired by the reader taking the entry: %d", got)
	}

	// With a dead sleeper and a live one, only the dead one's count goes,
	// and the live one still wakes.
	killSleeper(1)
	errc := make(chan error, 1)
	go func() {
		_, err := rd.Next(context.Background())
		errc <- err
	}()
	waitUntil(t, "two sleepers", func() bool { return r.Inspect().Sleepers == 2 })
	w.repairSleepers()
	if got := r.Inspect().Sleepers; got != 1 {
		t.Fatalf("sleepers after repair with one live sleeper: %d, want 1", got)
	}
	w.Write([]byte("wake"))
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("live sleeper not woken after the repair")
	}
	// A count that went below zero (more sleepers than readers) is reset.
	rd.Release()
	atomic.StoreUint32(&r.hdr.Sleepers, ^uint32(0))
	w.repairSleepers()
	if got := r.Inspect().Sleepers; got != 0 {
		t.Fatalf("underflowed sleeper count: %d after repair", got)
	}
}

// TestSleepIsBounded: a sleeper whose wake-up is lost (here: its count is
// zeroed behind its back, as a foreign writer or a mistimed repair could)
// still sees the frame within maxSleep, for the futex and the eventfd.
func TestSleepIsBounded(t *testing.T) {
	testDir(t)
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(500 * time.Millisecond))
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	// One ring per wake-up kind: the lost wake-up is simulated by zeroing
	// the sleeper count under the sleeping reader, as a repair that took
	// a live sleeper's count does. Its own decrement then must leave the
	// count at 0: it left 2^32-1, which the next sleeper's add made 0, so
	// that every later sleep lasted maxSleep (TestSoak/block saw it).
	for _, eventfd := range []bool{false, true} {
		name, opts := "bounded-futex", (*ReaderOptions)(nil)
		if eventfd {
			name, opts = "bounded-eventfd", &ReaderOptions{Notifier: ev}
		}
		r := mustCreate(t, name, Config{Slots: 8, SlotPayload: 64})
		count := &r.hdr.Sleepers
		if eventfd {
			count = &r.hdr.EvSleepers
		}
		w, err := r.NewWriter()
		if err != nil {
			t.Fatal(err)
		}
		rd, err := r.NewReader(opts)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			_, err := rd.Next(context.Background())
			got <- err
		}()
		waitUntil(t, "the reader to sleep", func() bool { return atomic.LoadUint32(count) != 0 })
		if in := r.Inspect(); in.Sleepers+in.EvSleepers != 1 || (in.EvSleepers == 1) != eventfd {
			t.Fatalf("Inspect: sleepers %d, ev_sleepers %d; want the one sleeper counted as eventfd=%v", in.Sleepers, in.EvSleepers, eventfd)
		}
		atomic.StoreUint32(count, 0)
		w.Write([]byte("x")) // no wake: nobody is counted
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(maxSleep() + scale(5*time.Second)):
			t.Fatalf("reader (eventfd %v) still asleep %v after a lost wake-up", eventfd, maxSleep()+scale(5*time.Second))
		}
		if c := atomic.LoadUint32(count); c != 0 {
			t.Fatalf("sleeper count %d (eventfd %v) after the reader woke, want 0", c, eventfd)
		}
		rd.Close()
		w.Close()
	}
}

// waitUntil polls cond every millisecond and fails the test if it has not
// become true within scale(10s).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(scale(10 * time.Second))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", scale(10*time.Second), what)
		}
		time.Sleep(time.Millisecond)
	}
}
