//go:build linux

package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/edgeipc/edgeipc/shm"
)

// A ring's stats reader that is evicted (its reader-table entry freed, as a
// block-policy writer frees the entry of a reader it believes dead, or as
// a process with write access to the segment may) joins again, and when it
// stops it leaves the reader table as it found it: the reader it joined
// with again is closed too. (Only the first was closed: the second entry
// kept the runtime's PID for as long as the runtime lived, and on a
// block-policy ring a reader that never moves holds the writer back.)
func TestStatsReaderRejoinsAfterEvictionAndLeaves(t *testing.T) {
	e := newEnv(t)
	_, _, stop := inproc(t, reloadRingConfig(16, 64))
	word, entries := mapReaderTable(t, e, "r")
	owner := func(i int) *uint32 { return word(i, 0) }
	pid := uint32(os.Getpid())
	mine := func() (held []int) {
		for i := range entries {
			if atomic.LoadUint32(owner(i)) == pid {
				held = append(held, i)
			}
		}
		return held
	}
	eventually(t, "the stats reader to join", func() bool { return len(mine()) == 1 })
	first := mine()[0]
	atomic.StoreUint32(owner(first), 0)
	eventually(t, "the stats reader to join again", func() bool { return len(mine()) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if held := mine(); len(held) != 0 {
		t.Fatalf("reader entries %v are still held by this process after the runtime stopped", held)
	}
}

// A ring's stats reader that is evicted joins again at the newest frame
// and counts the frames it missed meanwhile as lost (the lost of
// "edgeipc ctl sinks" and of the stats line): every frame written is read
// or counted lost. It joined again without counting them, so frames
// vanished from its counts.
func TestStatsReaderCountsFramesMissedWhileEvicted(t *testing.T) {
	e := newEnv(t)
	rt, logb, stop := inproc(t, `
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
`)
	waitReaders(t, rt, "r", 1)
	rt.mu.Lock()
	sk := rt.sinks["stats:r"]
	rt.mu.Unlock()
	if sk == nil {
		t.Fatal("no stats:r sink")
	}
	word, entries := mapReaderTable(t, e, "r")
	pid := uint32(os.Getpid())
	// caughtUp reports whether the stats reader holds an entry whose
	// cursor (at offset 12) is head (it has read everything written).
	caughtUp := func(head uint32) bool {
		for i := range entries {
			if atomic.LoadUint32(word(i, 0)) == pid && atomic.LoadUint32(word(i, 12)) == head {
				return true
			}
		}
		return false
	}
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	written := uint32(0)
	write := func(n int) {
		for range n {
			seq, err := w.WriteFrame(1, 0, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			written = seq + 1
		}
	}
	write(3)
	eventually(t, "the stats reader to read the first frames", func() bool { return caughtUp(written) })
	for i := range entries {
		if atomic.LoadUint32(word(i, 0)) == pid {
			atomic.StoreUint32(word(i, 0), 0) // evicted
		}
	}
	write(5) // it wakes, finds itself evicted and joins again
	eventually(t, "the stats reader to join again", func() bool { return caughtUp(written) })
	write(2)
	eventually(t, "the stats reader to read the last frames", func() bool { return caughtUp(written) })
	if err := stop(); err != nil { // its counts are final once it stopped
		t.Fatal(err)
	}
	frames, lost := sk.cnt.frames.Load(), sk.cnt.lost.Load()
	if frames+lost != uint64(written) || lost == 0 {
		t.Fatalf("%d frames written; the stats reader read %d and counted %d lost", written, frames, lost)
	}
	if !strings.Contains(logb.String(), "evicted from the reader table") {
		t.Fatalf("the eviction is not logged:\n%s", logb.String())
	}
}

// A recorder that is evicted from its ring's reader table (a block-policy
// writer believed it dead, or a process with write access freed its
// entry) joins again at once where it was, and goes on recording: every
// frame is in the file. It failed with the reader's error instead and
// was started again after 1 s, the delay doubling to 30 s while
// evictions kept coming; the frames overwritten meanwhile were lost. When
// it stops it leaves the reader table as it found it.
func TestRecorderRejoinsAfterEviction(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.bin")
	// No stats reader: the recorder is the only reader of this process.
	cfgText := strings.Replace(recorderConfig(out, 0), "slot_payload = 256\n", "slot_payload = 256\nstats = false\n", 1)
	cfg, err := Load(e.writeConfig(t, "c.toml", cfgText))
	if err != nil {
		t.Fatal(err)
	}
	rt, logb, stop := inprocConfig(t, cfg)
	waitReaders(t, rt, "r", 1)
	word, entries := mapReaderTable(t, e, "r")
	pid := uint32(os.Getpid())
	rt.mu.Lock()
	rec := rt.sinks["rec"]
	rt.mu.Unlock()
	mine := func() (held []int) {
		for i := range entries {
			if atomic.LoadUint32(word(i, 0)) == pid {
				held = append(held, i)
			}
		}
		return held
	}
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(prefix string, n int) {
		for i := range n {
			if _, err := w.WriteFrame(1, 0, fmt.Appendf(nil, "%s%d", prefix, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("a", 3)
	eventually(t, "3 frames recorded", func() bool { return rec.cnt.frames.Load() == 3 })
	held := mine()
	if len(held) != 1 {
		t.Fatalf("this process holds reader entries %v, want the recorder's", held)
	}
	atomic.StoreUint32(word(held[0], 0), 0) // evicted
	write("b", 3)                           // it wakes, finds itself evicted and joins again
	eventually(t, "6 frames recorded", func() bool { return rec.cnt.frames.Load() == 6 })
	write("c", 2)
	eventually(t, "8 frames recorded", func() bool { return rec.cnt.frames.Load() == 8 })
	st := rec.stat()
	// A reload that removes the recorder (the ring stays) stops it: it
	// leaves no entry behind.
	e.writeConfig(t, "c.toml", cfgText[:strings.Index(cfgText, "[[sinks]]")])
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if held = mine(); len(held) != 0 {
		t.Fatalf("reader entries %v are still held by this process after the recorder stopped", held)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st.Restarts != 0 || st.Lost != 0 {
		t.Fatalf("the recorder was started again %d times, lost %d frames; log:\n%s", st.Restarts, st.Lost, logb.String())
	}
	if got, want := strings.Join(readRecords(t, out), ","), "a0,a1,a2,b0,b1,b2,c0,c1"; got != want {
		t.Fatalf("records %q, want %q", got, want)
	}
	if !strings.Contains(logb.String(), "recorder "+out+": evicted from the reader table") {
		t.Fatalf("the eviction is not logged:\n%s", logb.String())
	}
}

// mapReaderTable maps ring's header read-write and returns word(i, off),
// the u32 at offset off of reader-table entry i, and the number of
// entries that fit the header (docs/abi.md: 64-byte entries from offset
// 256 of the 8 KiB header, each starting with its owner's PID).
func mapReaderTable(t *testing.T, e *env, ring string) (word func(i, off int) *uint32, entries int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(e.dir, "edgeipc."+ring), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	const headerSize, tableStart, entrySize = 8192, 256, 64
	mem, err := syscall.Mmap(int(f.Fd()), 0, headerSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	word = func(i, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[tableStart+entrySize*i+off])) }
	return word, (headerSize - tableStart) / entrySize
}
