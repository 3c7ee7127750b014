package runtime

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

// forgedFrame is one frame a foreign writer commits into a ring's mapping;
// badLen, if not 0, is stored as the slot's length instead of len(data):
// a header that breaks the ring ABI (a length beyond the slot). time, if
// not 0, is its timestamp instead of shm.Now().
type forgedFrame struct {
	data   []byte
	badLen uint32
	time   int64
}

// forgeFrames commits frames as sequence numbers first, first+1, ... into
// ring, straight into its mapping as docs/abi.md lays it out (as a buggy
// or hostile writer with access to the segment would), then moves the
// head past them and wakes sleeping readers.
func forgeFrames(t *testing.T, ring *shm.Ring, first uint32, frames []forgedFrame) {
	t.Helper()
	const headOff, headerSize = 128, 8192 // docs/abi.md
	mem := ring.Segment().Bytes()
	slots, slotSize := ring.Slots(), ring.Inspect().SlotSize
	u32 := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	for i := len(frames) - 1; i >= 0; i-- {
		s := first + uint32(i)
		off := headerSize + int(s&uint32(slots-1))*slotSize
		atomic.StoreUint32(u32(off), s<<1|1)
		copy(mem[off+64:], frames[i].data)
		*u32(off + 4) = uint32(len(frames[i].data))
		if frames[i].badLen != 0 {
			*u32(off + 4) = frames[i].badLen
		}
		*u32(off + 8) = 0
		*u32(off + 12) = 0
		stamp := frames[i].time
		if stamp == 0 {
			stamp = shm.Now()
		}
		*(*int64)(unsafe.Pointer(&mem[off+16])) = stamp
		*u32(off + 24) = s
		atomic.StoreUint32(u32(off), s<<1)
	}
	atomic.StoreUint32(u32(headOff), first+uint32(len(frames)))
	// FUTEX_WAKE (1), without FUTEX_PRIVATE_FLAG: the word is shared.
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(u32(headOff))), 1, math.MaxInt32, 0, 0, 0)
}

// TestSinksSkipCorruptSlot: a slot whose header breaks the ring ABI (a
// length beyond the slot, consistently stamped: a buggy C writer, or a
// member of the ring's group) stopped the recorder and the stats reader
// with the reader's error. The recorder, started again at the first frame
// its file did not hold, met the same slot again, and again, with a
// longer backoff each time: it recorded nothing more as long as the ring
// held that slot, and for good once the writer went quiet. The stats
// reader lost every frame published while it waited. Both now skip the
// slot, count it lost (in the lost of the recorder's next record too) and
// read on, as edgeipc sub and hz do.
func TestSinksSkipCorruptSlot(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.bin")
	rt, logb, stop := inproc(t, recorderConfig(out, 0))
	waitReaders(t, rt, "r", 2)
	ring, err := shm.Open("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	forgeFrames(t, ring, 0, []forgedFrame{
		{data: []byte("first")},
		{data: []byte("garbage"), badLen: 1 << 20},
		{data: []byte("second")},
	})
	sinks := func() (rec, stats [2]uint64, restarts int) {
		for _, s := range rt.Sinks() {
			switch s.Name {
			case "rec":
				rec, restarts = [2]uint64{s.Frames, s.Lost}, restarts+s.Restarts
			case "stats:r":
				stats, restarts = [2]uint64{s.Frames, s.Lost}, restarts+s.Restarts
			}
		}
		return
	}
	eventually(t, "both sinks to read the two good frames", func() bool {
		rec, stats, _ := sinks()
		return rec[0] == 2 && stats[0] == 2
	})
	rec, stats, restarts := sinks()
	if rec[1] != 1 || stats[1] != 1 || restarts != 0 {
		t.Fatalf("recorder: %d frames, %d lost; stats reader: %d frames, %d lost; %d restarts; want 2 frames and 1 lost each, no restart; log:\n%s",
			rec[0], rec[1], stats[0], stats[1], restarts, logb.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	seqs, lost := recordHeads(t, out)
	if got := strings.Join(readRecords(t, out), ","); got != "first,second" || seqs[1] != 2 || lost[1] != 1 {
		t.Fatalf("records %q, frames %v, lost %v; want first and second, frames 0 and 2, the second with lost 1", got, seqs, lost)
	}
	if !strings.Contains(logb.String(), "corrupt") {
		t.Fatalf("the log does not mention the corrupt slot:\n%s", logb.String())
	}
}

// TestStatsGarbageTimestamps: a writer whose stamps are garbage (far in
// the past: a C writer that stamps with the wrong clock, or memory
// overwritten) made the stats reader's latency figures wrong: the sum of
// the latencies overflowed (eight frames 2^62 ns old wrapped it), and
// now - stamp overflowed for a stamp far below zero, which then counted
// as no latency at all; the periodic line reported a mean far below every
// frame's latency and below its own maximum. As edgeipc hz does, the
// stats reader now sums in 128 bits and takes a stamp further in the past
// than int64 reaches as the largest latency.
func TestStatsGarbageTimestamps(t *testing.T) {
	e := newEnv(t)
	rt, _, _ := inproc(t, "[control]\nenabled = false\n[runtime]\nstats_interval = \"0s\"\n[rings.r]\nslots = 16\nslot_payload = 64\n")
	waitReaders(t, rt, "r", 1) // the stats reader
	ring, err := shm.Open("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	var batch []forgedFrame
	for range 8 {
		batch = append(batch, forgedFrame{data: []byte("abcd"), time: -1 << 62})
	}
	batch = append(batch, forgedFrame{data: []byte("e"), time: math.MinInt64})
	forgeFrames(t, ring, 0, batch)
	rt.mu.Lock()
	s := rt.rings["r"].stats.Load()
	rt.mu.Unlock()
	var w window
	eventually(t, "the stats reader to read the 9 frames", func() bool { w = s.peek(); return w.frames == 9 })
	mean, p99 := w.lat.mean(), w.lat.quantile(0.99)
	if mean < 1<<62 || p99 < 1<<62 || w.lat.max != math.MaxInt64 || uint64(mean) > w.lat.max {
		t.Fatalf("9 frames stamped 2^62 ns and more in the past: latency mean %d ns, p99 %d ns, max %d ns; want mean and p99 at least 2^62 = %d, max %d, and mean <= max",
			mean, p99, w.lat.max, int64(1<<62), int64(math.MaxInt64))
	}
}

// A recorder whose path names a terminal (a serial line put there by
// mistake) refuses it, and the runtime does not take it as its
// controlling terminal. The runtime runs as a session leader without one
// (systemd starts services so): the recorder opened the path without
// O_NOCTTY, which made the terminal the runtime's, and a hangup on the
// line (or a ^C on it) then signalled the runtime. The child here is
// such a session leader and the path a pseudo-terminal.
func TestRecorderTerminalPathNotTaken(t *testing.T) {
	e := newEnv(t)
	ptmx, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here (/dev/ptmx: %v)", err)
	}
	defer unix.Close(ptmx)
	if err := unix.IoctlSetPointerInt(ptmx, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(ptmx, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts := fmt.Sprintf("/dev/pts/%d", n)
	cfg := e.writeConfig(t, "c.toml", recorderConfig(pts, 0))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c := startChildCmd(t, cmd, cfg)
	c.log.waitFor(t, "not a regular file", 1)
	// tty_nr, the seventh field of /proc/PID/stat (the fifth after the
	// command's closing parenthesis): 0 without a controlling terminal.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 5 {
		t.Fatalf("/proc/PID/stat: %q", b)
	}
	if f[4] != "0" {
		t.Fatalf("the runtime took %s as its controlling terminal (tty_nr %s)", pts, f[4])
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, c.log.String())
	}
}

// A recorder whose path names something other than a regular file
// refuses it without opening it: opening a device can act (/dev/watchdog
// arms the board's watchdog, which reboots it unless fed). Before, the
// recorder opened the path and refused it after. Seen here through
// inotify's IN_OPEN on a FIFO that has a reader, so that an open for
// writing would succeed.
func TestRecorderNonRegularPathNotOpened(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "rec.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	rd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rd)
	in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, fifo, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	_, logb, stop := inproc(t, recorderConfig(fifo, 0))
	defer stop()
	logb.waitFor(t, "not a regular file", 1)
	buf := make([]byte, 4096)
	if n, err := unix.Read(in, buf); n > 0 {
		t.Fatalf("the recorder opened %s before refusing it (inotify: %d bytes of events)", fifo, n)
	} else if err != unix.EAGAIN {
		t.Fatalf("inotify read: %d, %v", n, err)
	}
}
