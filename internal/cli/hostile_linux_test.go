package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

// Tests of the commands that read rings other processes write (sub, hz,
// ring inspect, ring ls) against contents a buggy or hostile writer put
// into the segment: the test writes them straight into the mapping,
// following docs/abi.md, as such a writer would.

// ABI offsets (docs/abi.md).
const (
	abiHead       = 128
	abiHeaderSize = 8192
)

// foreignFrame is one frame a foreign writer commits.
type foreignFrame struct {
	time int64
	data []byte
	// badLen, if not 0, is stored as the slot's length instead of
	// len(data): a header that breaks the ABI (a length beyond the slot).
	badLen uint32
}

// writeForeignFrames commits frames as sequence numbers first, first+1, ...
// into the ring mem (slot size slotSize, slots slots), then moves the head
// past them and wakes sleeping readers. The frames are committed last to
// first, so that a reader polling the first frame's slot sees the whole
// batch at once. Of a batch longer than the ring only the last slots
// frames are written: the others would be overwritten at once (lost).
func writeForeignFrames(t *testing.T, mem []byte, slots, slotSize int, first uint32, frames []foreignFrame) {
	t.Helper()
	u32 := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	for i := len(frames) - 1; i >= max(0, len(frames)-slots); i-- {
		s := first + uint32(i)
		off := abiHeaderSize + int(s&uint32(slots-1))*slotSize
		if len(frames[i].data) > slotSize-64 {
			t.Fatalf("frame %d: %d bytes do not fit a slot of %d", i, len(frames[i].data), slotSize)
		}
		atomic.StoreUint32(u32(off), s<<1|1)
		copy(mem[off+64:], frames[i].data)
		*u32(off + 4) = uint32(len(frames[i].data))
		if frames[i].badLen != 0 {
			*u32(off + 4) = frames[i].badLen
		}
		*u32(off + 8) = 0
		*u32(off + 12) = 0
		*(*int64)(unsafe.Pointer(&mem[off+16])) = frames[i].time
		*u32(off + 24) = s
		atomic.StoreUint32(u32(off), s<<1)
	}
	atomic.StoreUint32(u32(abiHead), first+uint32(len(frames)))
	// FUTEX_WAKE (1), without FUTEX_PRIVATE_FLAG: the word is shared.
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(u32(abiHead))), 1, math.MaxInt32, 0, 0, 0)
}

// joined reports whether ring has exactly one reader and it has finished
// joining (its cursor is chosen: frames written from now on are its).
func joined(ring *shm.Ring) bool {
	rs := ring.Inspect().Readers
	return len(rs) == 1 && !rs[0].Joining
}

// foreignSlots is the slot count of the rings these tests write into.
const foreignSlots = 16

// foreignRing creates a ring of foreignSlots 64-byte slots in a fresh
// directory, as `edgeipc ring create` does, and opens it for the test to
// write into. It returns the ring, its name, its directory and its slot
// size.
func foreignRing(t *testing.T, prefix string) (*shm.Ring, string, string, int) {
	t.Helper()
	dir := t.TempDir()
	name := uniqueName(prefix)
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "16", "--slot-size", "64", "--dir", dir), 0, "ring create")
	ring, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	return ring, name, dir, ring.Inspect().SlotSize
}

// startCLI runs an edgeipc command in the background until ctx ends. Its
// stdout is the returned pipe, its stderr errb; done gets its exit code.
func startCLI(ctx context.Context, errb io.Writer, args ...string) (stdout *io.PipeReader, done <-chan int) {
	pr, pw := io.Pipe()
	c := make(chan int, 1)
	go func() {
		code := MainEnv(ctx, &Env{Stdin: strings.NewReader(""), Stdout: pw, Stderr: errb}, args)
		pw.Close()
		c <- code
	}()
	return pr, c
}

// TestHzGarbageTimestamps: a writer whose timestamp_ns is garbage (far in
// the past: a C writer that stamps with the wrong clock, or memory
// overwritten) made hz's latency sum overflow, so that a window of such
// frames reported a negative mean latency, below its maximum and below
// zero; the mean must stay between 0 and the maximum whatever the stamps.
func TestHzGarbageTimestamps(t *testing.T) {
	ring, name, dir, slotSize := foreignRing(t, "hzstamps")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb runLogWriter
	pr, done := startCLI(ctx, &errb, "hz", name, "--window", "100ms", "--json", "--dir", dir)
	eventually(t, "hz to join the ring", func() bool { return joined(ring) })

	// Eight frames stamped 2^62 ns (146 years) before the clock's zero,
	// and one stamped at the most negative time there is.
	var batch []foreignFrame
	for i := 0; i < 8; i++ {
		batch = append(batch, foreignFrame{time: -1 << 62, data: []byte("abcd")})
	}
	batch = append(batch, foreignFrame{time: math.MinInt64, data: []byte("e")})
	writeForeignFrames(t, ring.Segment().Bytes(), foreignSlots, slotSize, 0, batch)

	sc := bufio.NewScanner(pr)
	var frames uint64
	busiest := uint64(0)
	// A bound on the windows read, not on time: hz that never sees the
	// frames must fail the test, not hang it.
	for windows := 0; frames < uint64(len(batch)) && windows < 600 && sc.Scan(); windows++ {
		var hw hzWindow
		if err := json.Unmarshal(sc.Bytes(), &hw); err != nil {
			t.Fatalf("hz line %q: %v", sc.Text(), err)
		}
		frames += hw.Frames
		busiest = max(busiest, hw.Frames)
		if hw.Lost != 0 {
			t.Errorf("hz window lost frames: %+v", hw)
		}
		if hw.Frames == 0 {
			continue
		}
		// Every frame is at least 2^62 ns old.
		if hw.LatencyMeanNs < 1<<62 || hw.LatencyMaxNs < hw.LatencyMeanNs {
			t.Errorf("hz window of frames stamped 2^62 ns and more in the past: mean latency %d ns, max %d ns; want both at least 2^62 = %d and mean <= max (%+v)",
				hw.LatencyMeanNs, hw.LatencyMaxNs, int64(1<<62), hw)
		}
	}
	cancel()
	go io.Copy(io.Discard, pr) // let hz finish its last window
	if code := <-done; code != ExitInterrupted {
		t.Errorf("hz: exit %d, want %d; stderr:\n%s", code, ExitInterrupted, errb.String())
	}
	if frames != uint64(len(batch)) || busiest < 2 {
		t.Fatalf("hz saw %d frames (at most %d in a window), want %d with at least 2 in one window", frames, busiest, len(batch))
	}
}

// TestSubHzSkipCorruptSlot: one slot whose header breaks the ABI (a
// length beyond the slot, consistently stamped) made sub and hz exit 1
// with the reader's error, ending the stream for every good frame after
// it. They now skip it, report it (sub on stderr, hz in "corrupt") and
// carry on; and sub reports at exit the frames it lost after the last one
// it printed (here: a head that jumped past slots never written), which it
// used to report only with a next frame that never came.
func TestSubHzSkipCorruptSlot(t *testing.T) {
	ring, name, dir, slotSize := foreignRing(t, "corruptslot")
	mem := ring.Segment().Bytes()
	now := shm.Now()
	batch := []foreignFrame{
		{time: now, data: []byte("first")},
		{time: now, data: []byte("garbage"), badLen: 1 << 20},
		{time: now, data: []byte("second")},
	}

	t.Run("sub", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var errb runLogWriter
		pr, done := startCLI(ctx, &errb, "sub", name, "--framing", "lines", "--dir", dir)
		eventually(t, "sub to join the ring", func() bool { return joined(ring) })
		writeForeignFrames(t, mem, foreignSlots, slotSize, 0, batch)
		sc := bufio.NewScanner(pr)
		var got []string
		for len(got) < 2 && sc.Scan() {
			got = append(got, sc.Text())
		}
		if strings.Join(got, ",") != "first,second" {
			t.Fatalf("sub printed %q, want the two good frames around the corrupt slot; stderr:\n%s", got, errb.String())
		}
		go io.Copy(io.Discard, pr)
		// The head moves 40 frames on, past slots nobody wrote: all lost,
		// and no frame after them to carry the count.
		u32 := (*uint32)(unsafe.Pointer(&mem[abiHead]))
		atomic.StoreUint32(u32, 3+40)
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(u32)), 1, math.MaxInt32, 0, 0, 0)
		eventually(t, "sub to pass the unwritten slots", func() bool {
			rs := ring.Inspect().Readers
			return len(rs) == 1 && rs[0].Cursor == 43
		})
		cancel()
		if code := <-done; code != ExitInterrupted {
			t.Errorf("sub: exit %d, want %d; stderr:\n%s", code, ExitInterrupted, errb.String())
		}
		stderr := errb.String()
		for _, want := range []string{"sub: skipped a corrupt slot:", "slot 1 length", "lost 40 frames after seq 2"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("sub's stderr lacks %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("hz", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var errb runLogWriter
		pr, done := startCLI(ctx, &errb, "hz", name, "--window", "100ms", "--json", "--dir", dir)
		eventually(t, "hz to join the ring", func() bool { return joined(ring) })
		writeForeignFrames(t, mem, foreignSlots, slotSize, 43, batch)
		sc := bufio.NewScanner(pr)
		var frames, bad uint64
		for windows := 0; (frames < 2 || bad < 1) && windows < 600 && sc.Scan(); windows++ {
			var hw hzWindow
			if err := json.Unmarshal(sc.Bytes(), &hw); err != nil {
				t.Fatalf("hz line %q: %v", sc.Text(), err)
			}
			frames += hw.Frames
			bad += hw.Corrupt
		}
		cancel()
		go io.Copy(io.Discard, pr)
		if code := <-done; code != ExitInterrupted {
			t.Errorf("hz: exit %d, want %d; stderr:\n%s", code, ExitInterrupted, errb.String())
		}
		if frames != 2 || bad != 1 {
			t.Errorf("hz counted %d frames and %d corrupt slots, want 2 and 1; stderr:\n%s", frames, bad, errb.String())
		}
	})
}
