//go:build linux

package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

func recorderConfig(path string, maxBytes int64) string {
	return fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 64
slot_payload = 256
[[sinks]]
name = "rec"
kind = "recorder"
ring = "r"
path = %q
max_bytes = %d
`, path, maxBytes)
}

// readRecords parses a recorder file; it fails on a truncated record.
func readRecords(t *testing.T, path string) (payloads []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%s: %d stray bytes at the end", path, len(b))
		}
		l := binary.LittleEndian.Uint32(b)
		if l < RecordHeaderSize || len(b) < int(4+l) {
			t.Fatalf("%s: record %d: length %d, %d bytes left", path, len(payloads), l, len(b)-4)
		}
		payloads = append(payloads, string(b[4+RecordHeaderSize:4+l]))
		b = b[4+l:]
	}
	return payloads
}

// waitReaders waits until the ring has at least n live readers.
func waitReaders(t *testing.T, rt *Runtime, ring string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d readers on ring %s", n, ring), func() bool {
		for _, r := range rt.Rings() {
			if r.Name == ring {
				return r.Readers >= n
			}
		}
		return false
	})
}

// max_bytes: records that fit exactly are kept; the first frame that does
// not fit (here larger than max_bytes itself, or one past the boundary)
// ends the recording, as the warning says: a smaller frame after it was
// appended, leaving a hole in the file that no lost count showed.
func TestRecorderMaxBytesStops(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int64
		frames   []string
		want     string
	}{
		// 2 * (4+24+10) = 76: both fit exactly, nothing after.
		{"boundary", 76, []string{"0123456789", "abcdefghij", "", "x"}, "0123456789,abcdefghij"},
		{"frame larger than max_bytes", 100, []string{"a", strings.Repeat("B", 200), "c", ""}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.dir, "rec.bin")
			rt, logb, stop := inproc(t, recorderConfig(out, tc.maxBytes))
			waitReaders(t, rt, "r", 2) // the recorder and the stats reader
			w, err := shm.OpenWriter("r", e.sopts())
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for _, p := range tc.frames {
				if _, err := w.WriteFrame(1, 0, []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			logb.waitFor(t, "reached max_bytes", 1)
			if err := stop(); err != nil { // drains the ring
				t.Fatal(err)
			}
			if got := strings.Join(readRecords(t, out), ","); got != tc.want {
				t.Fatalf("records %q, want %q", got, tc.want)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("file: %v %v", fi.Mode(), err)
			}
		})
	}
}

// A recorder stops (shutdown, or a reload that changes it) while a writer
// the runtime does not stop keeps its ring busy: here another process's
// writer, past max_bytes. The recorder looked at drain and ctx only when
// it wrote a record or found the ring empty, so with frames always there
// and none written it never stopped, and the shutdown waited for the
// writer; the drain also read on as long as new frames came.
func TestRecorderStopsBesideBusyWriter(t *testing.T) {
	for _, maxBytes := range []int64{1 << 10, 0} {
		t.Run(fmt.Sprint("max_bytes=", maxBytes), func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.dir, "rec.bin")
			rt, _, stop := inproc(t, recorderConfig(out, maxBytes))
			waitReaders(t, rt, "r", 2)
			w, err := shm.OpenWriter("r", e.sopts())
			if err != nil {
				t.Fatal(err)
			}
			var quit atomic.Bool
			done := make(chan struct{})
			go func() {
				defer close(done)
				var p []byte // zero-length frames keep the file small
				if maxBytes > 0 {
					p = make([]byte, 200)
				}
				for !quit.Load() {
					w.WriteFrame(1, 0, p)
				}
			}()
			defer func() { quit.Store(true); <-done; w.Close() }()
			time.Sleep(300 * time.Millisecond)
			errc := make(chan error, 1)
			go func() { errc <- stop() }()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(8 * time.Second): // the drain's bound is 9 s (shutdown_timeout less 1 s)
				quit.Store(true)
				<-errc
				t.Fatal("the runtime did not stop within 8 s while a writer kept the recorder's ring busy")
			}
			readRecords(t, out)
		})
	}
}

// A full disk stops the recorder (logged), leaves the file a whole number
// of records, and nothing else: another ring's source goes on. The
// failed write used to leave part of a record at the end of the file, and
// a later run appended after it, so a replay read every later record
// misframed.
func TestRecorderDiskFull(t *testing.T) {
	e := newEnv(t)
	dir := smallTmpfs(t, "64k")
	out := filepath.Join(dir, "rec.bin")
	cfg := recorderConfig(out, 0) + `
[rings.tick]
slots = 16
slot_payload = 64
[[sources]]
name = "tick"
kind = "synthetic"
ring = "tick"
rate_hz = 200
size = 8
`
	record := func(frames int) (*Runtime, *syncBuf) {
		rt, logb, stop := inproc(t, cfg)
		waitReaders(t, rt, "r", 2)
		w, err := shm.OpenWriter("r", e.sopts())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		p := make([]byte, 200)
		for i := range frames {
			w.WriteFrame(1, 0, p)
			if i%32 == 31 {
				time.Sleep(10 * time.Millisecond) // the ring holds 63
			}
		}
		if frames > 1000 {
			logb.waitFor(t, "no space left on device", 1)
			before := rt.sourceStat(t, "tick").Frames
			eventually(t, "the other ring's source to go on", func() bool { return rt.sourceStat(t, "tick").Frames > before+5 })
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		return rt, logb
	}
	record(2000) // 2000 records of 228 bytes do not fit 64 KiB
	n := len(readRecords(t, out))
	if n == 0 {
		t.Fatal("nothing recorded")
	}
	// Room again: the next run appends whole records after the old ones.
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, "size=256k"); err != nil {
		t.Fatal(err)
	}
	record(10)
	if m := len(readRecords(t, out)); m != n+10 {
		t.Fatalf("%d records after %d and 10 more", m, n)
	}
}

// A recorder file that ends in part of a record (a power loss or a kill in
// the middle of a write) is cut back to its last whole record before the
// recorder appends, so that every record after stays readable. A file that
// is not a recorder file is refused and left as it was.
func TestRecorderExistingFile(t *testing.T) {
	rec := func(payload string) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(RecordHeaderSize+len(payload)))
		b = append(b, make([]byte, RecordHeaderSize)...)
		return append(b, payload...)
	}
	for _, tc := range []struct {
		name, want, log string
		content         []byte
	}{
		{"partial last record", "one,two,new", "cut 10 bytes of a partial last record",
			append(append(rec("one"), rec("two")...), rec("three")[:10]...)},
		{"partial length", "one,new", "cut 2 bytes", append(rec("one"), 7, 0)},
		{"whole records", "one,new", "", rec("one")},
		{"not a recorder file", "", "is not a recorder file", []byte("hello, this is a text file\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.dir, "rec.bin")
			if err := os.WriteFile(out, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			rt, logb, stop := inproc(t, recorderConfig(out, 0))
			if tc.want == "" {
				logb.waitFor(t, tc.log, 1)
				stop()
				if b, _ := os.ReadFile(out); !bytes.Equal(b, tc.content) {
					t.Fatalf("the refused file was changed: %q", b)
				}
				return
			}
			waitReaders(t, rt, "r", 2) // the recorder and the stats reader
			writeThenStop(t, e, "r", "new", stop)
			if got := strings.Join(readRecords(t, out), ","); got != tc.want {
				t.Fatalf("records %q, want %q", got, tc.want)
			}
			if tc.log != "" && !strings.Contains(logb.String(), tc.log) {
				t.Fatalf("log does not say %q:\n%s", tc.log, logb.String())
			}
		})
	}
}

// A recorder that fails (here: its directory is missing) is started again
// with backoff: once the directory exists it records, without a restart of
// the runtime or a reload.
func TestRecorderStartsAgainAfterFailure(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "later")
	out := filepath.Join(dir, "rec.bin")
	rt, logb, stop := inproc(t, recorderConfig(out, 0))
	logb.waitFor(t, "sink rec (recorder on ring r) stopped; starting it again in 1s", 1)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, rt, "r", 2) // the recorder is back, beside the stats reader
	writeThenStop(t, e, "r", "after", stop)
	if got := strings.Join(readRecords(t, out), ","); got != "after" {
		t.Fatalf("records %q, want \"after\"", got)
	}
}

// ctlSinks asks the runtime for its sinks over the control queue.
func ctlSinks(t *testing.T, cl *control.Client) []control.SinkStat {
	t.Helper()
	r, err := cl.Call(t.Context(), "sinks")
	if err != nil || !r.OK {
		t.Fatalf("sinks: %+v %v", r, err)
	}
	return r.Sinks
}

// ctlSink is the row of sink name in the runtime's "sinks" reply.
func ctlSink(t *testing.T, cl *control.Client, name string) control.SinkStat {
	t.Helper()
	for _, s := range ctlSinks(t, cl) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sink %q in the sinks reply", name)
	return control.SinkStat{}
}

func dialRuntime(t *testing.T, e *env) *control.Client {
	t.Helper()
	cl, err := control.Dial(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// The control plane's "sinks" command lists a recorder, a declared stats
// sink and a ring's implicit stats reader, sorted by name, with what each
// has read: every frame written is counted once, as read (in the
// recorder's case: written to its file) or lost to overwrite.
func TestSinksOverControl(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.bin")
	rt, _, stop := inproc(t, fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 8
slot_payload = 64
[rings.q]
slots = 16
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "q"
rate_hz = 200
size = 8
[[sinks]]
name = "st"
kind = "stats"
ring = "r"
[[sinks]]
name = "rec"
kind = "recorder"
ring = "r"
path = %q
`, out))
	cl := dialRuntime(t, e)
	waitReaders(t, rt, "r", 2) // the recorder and the stats sink

	got := ctlSinks(t, cl)
	want := []control.SinkStat{
		{Name: "rec", Kind: "recorder", Ring: "r", State: "running", Path: out},
		{Name: "st", Kind: "stats", Ring: "r", State: "running"},
		{Name: "stats:q", Kind: "stats", Ring: "q", Implicit: true, State: "running"},
	}
	if len(got) != len(want) {
		t.Fatalf("sinks %+v, want %d", got, len(want))
	}
	for i := range want {
		g := got[i]
		if g.Name == "stats:q" {
			g.Frames, g.Bytes, g.Lost = 0, 0, 0 // it reads the running source's frames
		}
		if g != want[i] {
			t.Fatalf("sink %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	// Frames count up: the implicit reader's from the synthetic source...
	before := ctlSink(t, cl, "stats:q").Frames
	eventually(t, "stats:q to count frames", func() bool {
		s := ctlSink(t, cl, "stats:q")
		return s.Frames > before && s.Bytes == 8*s.Frames
	})
	// ...and those of ring r from what the test writes.
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	written := uint64(0)
	for i := range 5 {
		if _, err := w.WriteFrame(1, 0, []byte(fmt.Sprintf("frame %d", i))); err != nil {
			t.Fatal(err)
		}
		written++
	}
	for _, name := range []string{"rec", "st"} {
		eventually(t, name+" to count 5 frames", func() bool {
			s := ctlSink(t, cl, name)
			return s.Frames == 5 && s.Bytes == 5*7 && s.Lost == 0
		})
	}

	// Bursts far larger than the ring (8 slots) until both readers have
	// lost frames to overwrite; then every frame written is either read
	// or counted lost.
	p := make([]byte, 32)
	eventually(t, "both sinks to lose frames to a writer lapping them", func() bool {
		for range 2000 {
			w.WriteFrame(1, 0, p)
			written++
		}
		return ctlSink(t, cl, "rec").Lost > 0 && ctlSink(t, cl, "st").Lost > 0
	})
	var rec control.SinkStat
	for _, name := range []string{"rec", "st"} {
		eventually(t, fmt.Sprintf("%s: frames + lost = %d frames written", name, written), func() bool {
			s := ctlSink(t, cl, name)
			if name == "rec" {
				rec = s
			}
			return s.Frames+s.Lost == written
		})
	}
	if rec.Skipped != 0 || rec.Restarts != 0 || rec.LastError != "" || rec.State != "running" {
		t.Fatalf("rec: %+v", rec)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The file holds the frames counted, and its records' lost fields add
	// up to the loss counted.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var n, lost uint64
	for len(b) >= 4+RecordHeaderSize {
		lost += uint64(binary.LittleEndian.Uint32(b[4+12:]))
		b = b[4+binary.LittleEndian.Uint32(b):]
		n++
	}
	if n != rec.Frames || lost != rec.Lost || len(b) != 0 {
		t.Fatalf("file: %d records with %d lost (%d stray bytes); ctl said %d frames, %d lost", n, lost, len(b), rec.Frames, rec.Lost)
	}
}

// A recorder whose directory is missing shows as backoff in the "sinks"
// reply, with the error and its restarts; once the directory exists it
// runs again and records. The error stays as the last one.
func TestSinksShowRecorderBackoff(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "later")
	out := filepath.Join(dir, "rec.bin")
	rt, logb, _ := inproc(t, strings.Replace(recorderConfig(out, 0), "[control]\nenabled = false\n", "", 1))
	cl := dialRuntime(t, e)
	var s control.SinkStat
	eventually(t, "the recorder to be in backoff after a restart", func() bool {
		s = ctlSink(t, cl, "rec")
		return s.State == "backoff" && s.Restarts > 0
	})
	if !strings.Contains(s.LastError, out) || !strings.Contains(s.LastError, "no such file or directory") || s.Path != out || s.Frames != 0 {
		t.Fatalf("rec in backoff: %+v", s)
	}
	// The periodic stats line shows it too; the implicit stats reader is
	// in the ring's line, not a sink line of its own.
	rt.logStats("test")
	logb.waitFor(t, "sink   rec      recorder  backoff  frames 0 lost 0 restarts", 1)
	if strings.Contains(logb.String(), "sink   stats:r") {
		t.Fatalf("the implicit stats reader has a sink line:\n%s", logb.String())
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, rt, "r", 2) // the recorder is back, beside the stats reader
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteFrame(1, 0, []byte("after"))
	eventually(t, "the recorder to run again and record", func() bool {
		s = ctlSink(t, cl, "rec")
		return s.State == "running" && s.Frames == 1 && s.Bytes == 5
	})
	if s.Restarts == 0 || !strings.Contains(s.LastError, "no such file or directory") {
		t.Fatalf("rec running again: %+v", s)
	}
}

// The recorder's list of buffered record ends allocates nothing once it
// has grown to its working size: records are pushed one by one and
// dropped in runs as the buffered writer reaches the file. As a slice
// trimmed from the front it moved to a new array every few hundred frames
// (over 400 allocations in 240,000 64-byte frames).
func TestRecordEndsAllocatesNothing(t *testing.T) {
	var e recordEnds
	var end, written, done int64
	cycle := func() {
		for i := 0; i < 3000; i++ { // about what a 256 KiB buffer holds
			end += 88
			e.push(end, uint32(end/88), 0)
		}
		written = end - 40*88 // the buffer wrote all but the last 40
		e.advance(written, func(x int64, after, _ uint32) {
			if x <= done || x > written || after != uint32(x/88) {
				t.Fatalf("end %d (frame after it %d) out of order (last %d, written %d)", x, after, done, written)
			}
			done = x
		})
	}
	cycle()
	// The count is the whole process's, and under qemu the fork watchdog
	// (internal/qemuwatch) allocates a burst every 2 s: armv7 in CI saw
	// 1.0 per cycle once. The least of three measures is the recorder's
	// own (the old code's 5 a cycle show in every one).
	a := testing.AllocsPerRun(100, cycle)
	for try := 1; try < 3 && a != 0; try++ {
		a = min(a, testing.AllocsPerRun(100, cycle))
	}
	if a != 0 {
		t.Fatalf("%.1f allocations per 3000 records, want 0", a)
	}
	if done != written || len(e.ends) != 40 {
		t.Fatalf("after the cycles: last whole end %d, want %d; %d ends pending, want 40", done, written, len(e.ends))
	}
}

// recordHeads parses a recorder file into each record's sequence and lost
// count; it fails on a truncated record.
func recordHeads(t *testing.T, path string) (seqs, lost []uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 {
		if len(b) < 4+RecordHeaderSize {
			t.Fatalf("%s: %d bytes at the end are not a record", path, len(b))
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < RecordHeaderSize || len(b) < 4+n {
			t.Fatalf("%s: record of %d bytes with %d left", path, n, len(b)-4)
		}
		seqs = append(seqs, binary.LittleEndian.Uint32(b[4:]))
		lost = append(lost, binary.LittleEndian.Uint32(b[4+12:]))
		b = b[4+n:]
	}
	return seqs, lost
}

// A recorder started again after a failure (here a full disk) goes on at
// the first frame its file does not hold whole: every frame written is in
// the file or counted lost in the record after the gap. It went on at the
// newest frame, so the frames of the failed write and those published
// while it waited to start again were in neither.
func TestRecorderResumesAfterFailure(t *testing.T) {
	e := newEnv(t)
	dir := smallTmpfs(t, "64k")
	out := filepath.Join(dir, "rec.bin")
	rt, logb, stop := inproc(t, recorderConfig(out, 0))
	waitReaders(t, rt, "r", 2)
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := make([]byte, 200)
	var last uint32
	write := func(n int) {
		for i := range n {
			if last, err = w.WriteFrame(1, 0, p); err != nil {
				t.Fatal(err)
			}
			if i%16 == 15 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	for !strings.Contains(logb.String(), "no space left on device") {
		write(16)
	}
	// Room again, and frames while the recorder waits to start again.
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, "size=4m"); err != nil {
		t.Fatal(err)
	}
	write(20)
	waitReaders(t, rt, "r", 2) // started again
	write(20)
	if err := stop(); err != nil { // drains the ring
		t.Fatal(err)
	}
	seqs, lost := recordHeads(t, out)
	if len(seqs) == 0 {
		t.Fatal("nothing recorded")
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1+lost[i] {
			t.Fatalf("record %d: frame %d with lost %d after frame %d: %d frames in neither the file nor a lost count",
				i, seqs[i], lost[i], seqs[i-1], seqs[i]-seqs[i-1]-1-lost[i])
		}
	}
	if seqs[len(seqs)-1] != last {
		t.Fatalf("the last record is frame %d, the last frame written %d", seqs[len(seqs)-1], last)
	}
	var gaps uint32
	for _, l := range lost {
		gaps += l
	}
	t.Logf("%d records, %d frames counted lost across the failure", len(seqs), gaps)
}

// smallTmpfs mounts a tmpfs of the given size (mount's size=) on a new
// temporary directory, for a disk that fills up, and returns it.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// writeThenStop writes one frame into ring through a writer of its own,
// then stops the runtime, which drains the ring into its sinks.
func writeThenStop(t *testing.T, e *env, ring, payload string, stop func() error) {
	t.Helper()
	w, err := shm.OpenWriter(ring, e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFrame(1, 0, []byte(payload))
	w.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Two recorders whose paths name one file (here through a symlinked
// directory, which the config check cannot see) used to both append to
// it: their buffered writes, which end in the middle of records,
// interleaved, and the file could not be read past the first cut. The
// second now finds the file locked by the first, goes to backoff saying
// so, and the file holds whole records of the first one only.
func TestRecorderRefusesFileOfAnotherRecorder(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	out, alias := filepath.Join(dir, "all.rec"), filepath.Join(link, "all.rec")
	ring := func(name string) string {
		return fmt.Sprintf("[rings.%s]\nslots = 4096\nslot_payload = 1024\n", name)
	}
	sink := func(name, ring, path string) string {
		return fmt.Sprintf("[[sinks]]\nname = %q\nkind = \"recorder\"\nring = %q\npath = %q\n", name, ring, path)
	}
	rt, logb, stop := inproc(t, "[runtime]\nstats_interval = \"0s\"\n"+ring("a")+ring("b")+sink("ra", "a", out)+sink("rb", "b", alias))
	cl := dialRuntime(t, e)
	var refused, other control.SinkStat
	eventually(t, "one of the recorders to run and the other to be refused the file", func() bool {
		a, b := ctlSink(t, cl, "ra"), ctlSink(t, cl, "rb")
		if b.State == "running" && a.State != "running" {
			a, b = b, a
		}
		other, refused = a, b
		return a.State == "running" && b.State == "backoff"
	})
	if !strings.Contains(refused.LastError, "is appended to by another recorder") {
		t.Fatalf("%s refused with %q", refused.Name, refused.LastError)
	}
	ringOf := map[string]string{"ra": "a", "rb": "b"}
	waitReaders(t, rt, ringOf[other.Name], 2)
	// Both rings busy with frames of 1000 bytes: interleaved writes of two
	// recorders would cut records apart.
	p := make([]byte, 1000)
	for _, r := range []string{"a", "b"} {
		w, err := shm.OpenWriter(r, e.sopts())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for i := range 3000 {
			p[0] = byte(i)
			if _, err := w.WriteFrame(1, 0, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := stop(); err != nil { // drains the ring into the file
		t.Fatal(err)
	}
	seqs, _ := recordHeads(t, out) // fails on a record cut apart
	if len(seqs) == 0 {
		t.Fatalf("nothing recorded; log:\n%s", logb.String())
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("record %d: frame %d after frame %d: records of two rings in one file", i, seqs[i], seqs[i-1])
		}
	}
}

// A recorder that loses frames to overwrite and then to a full disk counts
// each lost frame once in "edgeipc ctl sinks". It counted a frame's loss
// when it read the frame, and the records cut off after the failed write
// were read again when it started again, their loss now in the lost of
// the first record after the cut: counted twice, so that frames + lost
// came to more than the frames written, and to more than the file's
// records and lost fields say.
func TestRecorderCountsLostOnceAcrossFailure(t *testing.T) {
	e := newEnv(t)
	dir := smallTmpfs(t, "64k")
	out := filepath.Join(dir, "rec.bin")
	rt, logb, stop := inproc(t, strings.Replace(recorderConfig(out, 0), "[control]\nenabled = false\n", "", 1))
	cl := dialRuntime(t, e)
	waitReaders(t, rt, "r", 2)
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := make([]byte, 200)
	var written uint64
	burst := func() {
		for range 200 { // more than the ring's 64 slots: the recorder loses some
			if _, err := w.WriteFrame(1, 0, p); err != nil {
				t.Fatal(err)
			}
			written++
		}
		time.Sleep(20 * time.Millisecond)
	}
	for !strings.Contains(logb.String(), "no space left on device") {
		burst()
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, "size=4m"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the recorder to run again", func() bool { return ctlSink(t, cl, "rec").Restarts > 0 })
	waitReaders(t, rt, "r", 2)
	burst()
	burst()
	// Every frame written is recorded or lost: wait until the recorder
	// has seen them all (the last one recorded), then compare.
	var rec control.SinkStat
	eventually(t, "the recorder to account for every frame written", func() bool {
		rec = ctlSink(t, cl, "rec")
		return rec.Frames+rec.Lost >= written
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	seqs, lost := recordHeads(t, out)
	var inFile uint64
	for _, l := range lost {
		inFile += uint64(l)
	}
	if rec.Frames+rec.Lost != written || rec.Frames != uint64(len(seqs)) || rec.Lost != inFile {
		t.Fatalf("%d frames written; ctl sinks: %d frames, %d lost; the file: %d records, %d lost", written, rec.Frames, rec.Lost, len(seqs), inFile)
	}
}

// recorderRing creates a ring of slots 64-byte slots in dir for a Recorder
// that a test runs on its own, and its writer; both close at the end of
// the test.
func recorderRing(t *testing.T, dir string, slots int) (*shm.Ring, *shm.Writer) {
	t.Helper()
	r, err := shm.Create("rec", shm.Config{Slots: slots, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return r, w
}

// TestRecorderRecordsFramesPublishedDuringScan: a recorder checks the
// records already in its file before it joins its ring, which takes a
// while for a large file on an SD card. The frames published meanwhile
// were neither recorded nor counted as lost: the reader joined at the
// newest frame. The recording now starts at the head when the recorder
// started: those frames are recorded if the ring still holds them, and
// counted in the first record's lost if not.
func TestRecorderRecordsFramesPublishedDuringScan(t *testing.T) {
	for _, c := range []struct {
		name   string
		during int // frames published while the recorder checks its file
	}{{"held", 5}, {"lapped", 20}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r, w := recorderRing(t, dir, 8)
			write := func(n int) {
				for range n {
					if _, err := w.WriteFrame(1, 0, []byte("frame")); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(3)                       // before the recorder starts: not its to record
			scanned := make(chan struct{}) // the hook's writes happen before the test's
			afterRecorderScan = func() { write(c.during); close(scanned) }
			t.Cleanup(func() { afterRecorderScan = nil })
			out := filepath.Join(dir, "rec.bin")
			rec := &Recorder{Path: out}
			drain := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- rec.Run(context.Background(), r, drain) }()
			<-scanned
			eventually(t, "the recorder to join", func() bool { return len(r.Inspect().Readers) == 1 })
			// Read up to the head before the last two frames: in an
			// 8-slot ring they would otherwise overwrite frames the
			// recorder has not read yet, a loss this test does not make.
			eventually(t, "the recorder to catch up", func() bool {
				rs := r.Inspect().Readers
				return len(rs) == 1 && rs[0].Lag == 0
			})
			write(2)
			close(drain)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			seqs, lost := recordHeads(t, out)
			if len(seqs) == 0 {
				t.Fatalf("nothing recorded")
			}
			first, last := seqs[0], seqs[len(seqs)-1]
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 || lost[i] != 0 {
					t.Fatalf("records %v (lost %v): not one run of frames", seqs, lost)
				}
			}
			if last != uint32(3+c.during+1) || lost[0] != first-3 || uint32(len(seqs))+lost[0] != uint32(c.during+2) {
				t.Fatalf("recorded %d..%d, the first with %d lost; want every frame from 3 to %d recorded or counted as lost", first, last, lost[0], 3+c.during+1)
			}
			if c.during <= 6 && first != 3 {
				t.Fatalf("recorded from %d, want from 3: the ring held every frame published during the check", first)
			}
		})
	}
}

// A recording moved away while the recorder opened and scanned it (a
// rotation that comes as the runtime starts): the watch, made after the
// scan, was on the new name's inode, and nothing woke the recorder until
// its periodic check (an hour away here). The first flush now checks the
// path, and the recording goes on in a new file there.
func TestRecorderMovedDuringScan(t *testing.T) {
	interval := recorderCheckInterval
	recorderCheckInterval = time.Hour
	t.Cleanup(func() { recorderCheckInterval = interval })
	dir := t.TempDir()
	r, w := recorderRing(t, dir, 16)
	out := filepath.Join(dir, "rec.bin")
	var once sync.Once
	afterRecorderScan = func() {
		once.Do(func() {
			if err := os.Rename(out, out+".1"); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(func() { afterRecorderScan = nil })
	rec := &Recorder{Path: out}
	drain := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- rec.Run(context.Background(), r, drain) }()
	eventually(t, "the recorder to join", func() bool { return len(r.Inspect().Readers) == 1 })
	eventually(t, "a new file at the path", func() bool { _, err := os.Stat(out); return err == nil })
	for i := range 3 {
		if _, err := w.WriteFrame(1, 0, fmt.Appendf(nil, "a%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	close(drain)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(readRecords(t, out), ","); got != "a0,a1,a2" {
		t.Fatalf("records in the new file %q, want \"a0,a1,a2\"", got)
	}
}

// A recorder file moved away (a rotation: mv env.rec env.rec.1) or removed
// while the recorder runs: the recorder went on appending to the file it
// had open, so the recording went on in the moved file, or in a removed
// one that no directory showed and whose space was never given back,
// while ctl sinks counted the frames as recorded. It now notices and goes
// on in a new file at the path, every frame in one file or the other:
// woken by inotify (the periodic check an hour away here), or without it
// at the periodic check.
func TestRecorderNewFileWhenMoved(t *testing.T) {
	for _, tc := range []struct{ mode, how string }{{"inotify", "renamed"}, {"inotify", "removed"}, {"periodic", "renamed"}, {"periodic", "removed"}} {
		how := tc.how
		t.Run(tc.mode+"/"+how, func(t *testing.T) {
			interval := recorderCheckInterval
			if tc.mode == "inotify" {
				recorderCheckInterval = time.Hour
			} else {
				inotifyOff.Store(true)
			}
			t.Cleanup(func() { recorderCheckInterval = interval; inotifyOff.Store(false) }) // (after the runtime stops: inproc's cleanup runs first)
			e := newEnv(t)
			out := filepath.Join(e.dir, "rec.bin")
			rt, logb, stop := inproc(t, recorderConfig(out, 0))
			waitReaders(t, rt, "r", 2)
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
			recorded := func() uint64 {
				for _, s := range rt.Sinks() {
					if s.Name == "rec" {
						return s.Frames
					}
				}
				return 0
			}
			write("a", 5)
			eventually(t, "5 frames recorded", func() bool { return recorded() == 5 })
			old := out + ".1"
			if how == "renamed" {
				err = os.Rename(out, old)
			} else {
				err = os.Remove(out)
			}
			if err != nil {
				t.Fatal(err)
			}
			write("b", 3)
			eventually(t, "a new file at the path", func() bool { _, err := os.Stat(out); return err == nil })
			write("c", 2)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			all := "a0,a1,a2,a3,a4,b0,b1,b2,c0,c1"
			got := strings.Join(readRecords(t, out), ",")
			if how == "renamed" {
				// Every frame is in one file or the other, in order (the
				// b frames in either: the move is noticed within a second).
				if got = strings.Join(append(readRecords(t, old), readRecords(t, out)...), ","); got != all {
					t.Fatalf("records %q, want %q; log:\n%s", got, all, logb.String())
				}
			} else if !strings.HasSuffix(all, ","+got) || !strings.HasSuffix(got, "c0,c1") {
				// The new file holds the frames after those that went into
				// the removed file.
				t.Fatalf("records in the new file %q, want the frames from some b on; log:\n%s", got, logb.String())
			}
			if !strings.Contains(logb.String(), "recording into a new file there") {
				t.Fatalf("the log does not say the recorder started a new file:\n%s", logb.String())
			}
			// Without inotify, the log says so, for the first file and
			// for the new one; with it, never.
			warn := "recorder " + out + ": cannot watch it with inotify (" + errInotifyOff.Error() + "); checking every"
			if n, want := strings.Count(logb.String(), warn), map[string]int{"inotify": 0, "periodic": 2}[tc.mode]; n != want {
				t.Fatalf("the log has %d warnings %q, want %d:\n%s", n, warn, want, logb.String())
			}
		})
	}
}

// A recording that reached max_bytes, moved away: the recorder starts a
// new file at the path and records again (max_bytes is per file).
func TestRecorderNewFileWhenFullMoved(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.bin")
	rt, logb, stop := inproc(t, recorderConfig(out, 3*(4+RecordHeaderSize+2))) // 3 records of 2 bytes
	waitReaders(t, rt, "r", 2)
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
	write("a", 5)
	logb.waitFor(t, "reached max_bytes", 1)
	if err := os.Rename(out, out+".1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new file at the path", func() bool { _, err := os.Stat(out); return err == nil })
	write("b", 2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(readRecords(t, out+".1"), ","); got != "a0,a1,a2" {
		t.Fatalf("records in the moved file %q, want \"a0,a1,a2\"", got)
	}
	if got := strings.Join(readRecords(t, out), ","); got != "b0,b1" {
		t.Fatalf("records in the new file %q, want \"b0,b1\"; log:\n%s", got, logb.String())
	}
}

// A recorder behind its ring (here a disk made slow by a sleep before
// every record) drains it on shutdown for what shutdown_timeout leaves,
// and says how many frames it could not record when that ran out; a
// reload that removes it drains for 2 s and says the same. The drain was
// cut at 2 s whatever shutdown_timeout was, and the frames left in the
// ring were neither recorded nor counted: the next run starts at the
// newest frame.
func TestRecorderDrainBoundAndLeftCount(t *testing.T) {
	const frames = 60 // fewer than the ring's 64 slots: none lost to overwrite
	for _, tc := range []struct {
		name     string
		timeout  string // shutdown_timeout
		reload   bool   // stop the recorder by a reload that removes it
		all      bool   // the drain records every frame
		logWants string
	}{
		{"shutdown drains past 2s", "30s", false, true, ""},
		{"shutdown cut by shutdown_timeout", "2s", false, false, "was cut short by shutdown_timeout"},
		{"reload cut at 2s", "30s", true, false, "was cut short after 2s (a reload's bound)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.dir, "rec.bin")
			cfgText := strings.Replace(recorderConfig(out, 0), "[runtime]\n", "[runtime]\nshutdown_timeout = \""+tc.timeout+"\"\n", 1)
			path := e.writeConfig(t, "c.toml", cfgText)
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			// 60 records at 100 ms each: the drain needs more than 6 s, well
			// past the 2 s of a reload and the 1.5 s of shutdown_timeout = 2s.
			testHookRecord = func() { time.Sleep(100 * time.Millisecond) }
			t.Cleanup(func() { testHookRecord = nil })
			rt, logb, stop := inprocConfig(t, cfg)
			waitReaders(t, rt, "r", 2)
			w, err := shm.OpenWriter("r", e.sopts())
			if err != nil {
				t.Fatal(err)
			}
			var first uint32
			for i := range frames {
				seq, err := w.WriteFrame(1, 0, []byte(fmt.Sprint(i)))
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = seq
				}
			}
			w.Close()
			if tc.reload {
				e.writeConfig(t, "c.toml", cfgText[:strings.Index(cfgText, "[[sinks]]")])
				if err := rt.Reload(); err != nil {
					t.Fatal(err)
				}
			} else if err := stop(); err != nil {
				t.Logf("shutdown: %v", err) // its bound, not what is tested here
			}
			got := readRecords(t, out)
			for i, p := range got {
				if p != fmt.Sprint(i) {
					t.Fatalf("record %d holds frame %q", i, p)
				}
			}
			log := logb.String()
			if tc.all {
				if len(got) != frames || strings.Contains(log, "not recorded") {
					t.Fatalf("%d of %d frames recorded by the shutdown's drain; log:\n%s", len(got), frames, log)
				}
				return
			}
			want := fmt.Sprintf("%d frames in the ring (from frame %d) were not recorded", frames-len(got), first+uint32(len(got)))
			if !strings.Contains(log, tc.logWants) || !strings.Contains(log, want) {
				t.Fatalf("%d of %d frames recorded; the log does not say %q, %q:\n%s", len(got), frames, tc.logWants, want, log)
			}
		})
	}
}

// A recorder that failed after it had been recording (here: its
// directory moved away, and no new file can be made at the path) and
// that the shutdown or a reload stops while it waits to start again says
// how many frames published since the failure it did not record, as a
// drain cut short does. They were in no file and no lost count: the run
// started again that would have counted them never came. A reload that
// hands over to a recorder with another path (same name, same ring)
// says the new one starts at them, and it records them.
func TestRecorderStoppedInBackoffCountsNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		how      string // "shutdown", "remove" (a reload removes it), "handover" (a reload changes its path)
		logWants string
	}{
		{"shutdown", "shutdown", "recorder rec: stopped by the shutdown after a failure (recorder: open "},
		{"reload removes it", "remove", "recorder rec: stopped by a reload after a failure (recorder: open "},
		{"reload hands over", "handover", "recorder rec: stopped by a reload after a failure (recorder: open "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			sub := filepath.Join(e.dir, "sub")
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			out, other := filepath.Join(sub, "rec.bin"), filepath.Join(e.dir, "other.bin")
			cfgText := recorderConfig(out, 0)
			cfg, err := Load(e.writeConfig(t, "c.toml", cfgText))
			if err != nil {
				t.Fatal(err)
			}
			rt, logb, stop := inprocConfig(t, cfg)
			waitReaders(t, rt, "r", 2)
			w, err := shm.OpenWriter("r", e.sopts())
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			write := func(prefix string, n int) (first uint32) {
				for i := range n {
					seq, err := w.WriteFrame(1, 0, fmt.Appendf(nil, "%s%d", prefix, i))
					if err != nil {
						t.Fatal(err)
					}
					if i == 0 {
						first = seq
					}
				}
				return first
			}
			recorded := func() uint64 {
				for _, s := range rt.Sinks() {
					if s.Name == "rec" {
						return s.Frames
					}
				}
				return 0
			}
			write("a", 3)
			eventually(t, "3 frames recorded", func() bool { return recorded() == 3 })
			if err := os.Rename(sub, sub+".away"); err != nil {
				t.Fatal(err)
			}
			logb.waitFor(t, "sink rec (recorder on ring r) stopped; starting it again in", 1)
			first := write("b", 5)
			switch tc.how {
			case "shutdown":
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			case "remove":
				e.writeConfig(t, "c.toml", cfgText[:strings.Index(cfgText, "[[sinks]]")])
				if err := rt.Reload(); err != nil {
					t.Fatal(err)
				}
			case "handover":
				e.writeConfig(t, "c.toml", strings.Replace(cfgText, out, other, 1))
				if err := rt.Reload(); err != nil {
					t.Fatal(err)
				}
				eventually(t, "5 frames recorded into the new file", func() bool { return recorded() == 5 })
			}
			if got := strings.Join(readRecords(t, filepath.Join(sub+".away", "rec.bin")), ","); got != "a0,a1,a2" {
				t.Fatalf("the moved file holds %q", got)
			}
			want := fmt.Sprintf("5 frames of ring r (from frame %d, the first its file does not hold) were not recorded", first)
			if l := logb.String(); !strings.Contains(l, tc.logWants) || !strings.Contains(l, want) || !strings.Contains(l, "not_recorded=5") {
				t.Fatalf("the log does not say %q, %q:\n%s", tc.logWants, want, l)
			}
			if tc.how == "handover" {
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(readRecords(t, other), ","); got != "b0,b1,b2,b3,b4" {
					t.Fatalf("the new file holds %q", got)
				}
			}
		})
	}
}

// A recorder whose write fails in the shutdown's drain (here a full disk)
// says how many frames it did not record: those of the failed write and
// the rest of the drain. Its drain ended with the error, and they were in
// no file and no lost count.
func TestRecorderDiskFullInDrainCountsNotRecorded(t *testing.T) {
	e := newEnv(t)
	dir := smallTmpfs(t, "64k")
	out := filepath.Join(dir, "rec.bin")
	// The recorder waits before recording a frame while gate is set, so
	// that the frames below are still to be written when the drain begins.
	var gated atomic.Bool
	gate := make(chan struct{})
	testHookRecord = func() {
		if gated.Load() {
			<-gate
		}
	}
	t.Cleanup(func() { testHookRecord = nil })
	rt, logb, stop := inproc(t, recorderConfig(out, 0))
	waitReaders(t, rt, "r", 2)
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Frames of 200 bytes: tmpfs gives a file whole pages, and what the
	// drain writes must need a page more than the file has.
	write := func(prefix string, n int) (first uint32) {
		for i := range n {
			p := fmt.Appendf(nil, "%s%d", prefix, i)
			seq, err := w.WriteFrame(1, 0, append(p, make([]byte, 200-len(p))...))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = seq
			}
		}
		return first
	}
	write("a", 3)
	eventually(t, "3 frames recorded", func() bool {
		for _, s := range rt.Sinks() {
			if s.Name == "rec" {
				return s.Frames == 3
			}
		}
		return false
	})
	// Fill the disk.
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := fill.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	if _, err := fill.Write(make([]byte, 1)); err == nil {
		t.Fatal("the disk is not full")
	}
	fill.Close()
	gated.Store(true)
	first := write("b", 30)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The shutdown has taken the sink off the list: its drain begins.
	eventually(t, "the shutdown to stop the recorder", func() bool {
		for _, s := range rt.Sinks() {
			if s.Name == "rec" {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond)
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	log := logb.String()
	if strings.Contains(log, "starting it again in") {
		t.Logf("the recorder failed before its drain began (it waited to start again when the shutdown came)")
	}
	// The drain's write fills the file's last page, and fails past it.
	var got []string
	for _, p := range readRecords(t, out) {
		got = append(got, strings.TrimRight(p, "\x00"))
	}
	k := len(got) - 3 // the frames of the drain in the file
	if k < 0 || k >= 30 || strings.Join(got[:3], ",") != "a0,a1,a2" {
		t.Fatalf("the file holds %q", got)
	}
	for i, p := range got[3:] {
		if p != fmt.Sprint("b", i) {
			t.Fatalf("the file holds %q", got)
		}
	}
	want := fmt.Sprintf("%d frames of ring r (from frame %d, the first its file does not hold) were not recorded", 30-k, first+uint32(k))
	if !strings.Contains(log, "recorder rec: stopped by the shutdown after a failure (recorder: write ") || !strings.Contains(log, "no space left on device") || !strings.Contains(log, want) {
		t.Fatalf("the log does not say %q:\n%s", want, log)
	}
}

// A recorder whose path cannot be checked for a reason other than "not
// found" (here ENOTDIR: the directory on the path moved away and a
// regular file put in its place) says so, and goes on appending to its
// file; once the path can be checked again and names the file, nothing
// changed. It said the path "was removed", closed its file, failed to
// open a new one and went to backoff, starting again every few seconds.
func TestRecorderPathUncheckable(t *testing.T) {
	e := newEnv(t)
	sub := filepath.Join(e.dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(sub, "rec.bin")
	rt, logb, stop := inproc(t, recorderConfig(out, 0))
	waitReaders(t, rt, "r", 2)
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
	rec := func() control.SinkStat {
		for _, s := range rt.Sinks() {
			if s.Name == "rec" {
				return s
			}
		}
		t.Fatal("no sink rec")
		return control.SinkStat{}
	}
	write("a", 5)
	eventually(t, "5 frames recorded", func() bool { return rec().Frames == 5 })
	away := sub + ".away"
	if err := os.Rename(sub, away); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sub, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	write("b", 3)
	eventually(t, "the recorder to check its path", func() bool {
		l := logb.String()
		return strings.Contains(l, "cannot check that the path") || strings.Contains(l, "the path was removed")
	})
	if l := logb.String(); !strings.Contains(l, "cannot check that the path still names the file recorded to: lstat "+out+": not a directory") {
		t.Fatalf("the log does not say why the path could not be checked:\n%s", l)
	}
	eventually(t, "8 frames recorded", func() bool { return rec().Frames == 8 })
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, sub); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "the path can be checked again", 1)
	write("c", 2)
	eventually(t, "10 frames recorded", func() bool { return rec().Frames == 10 })
	if s := rec(); s.Restarts != 0 || s.State != StateRunning || strings.Contains(logb.String(), "recording into a new file") {
		t.Fatalf("the recorder started a new file or again (%s, %d restarts):\n%s", s.State, s.Restarts, logb.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(readRecords(t, out), ","), "a0,a1,a2,a3,a4,b0,b1,b2,c0,c1"; got != want {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// A recorder checks the records already in its file before it appends,
// which for a large file of small records on an SD card reads the whole
// file and takes minutes. The shutdown (or a reload) that came meanwhile
// waited for the check to end: past shutdown_timeout, the runtime exited
// 1 saying the shutdown did not finish, and a reload held up the control
// plane's reloads as long. The check now ends with the stop's bound (the
// file is left as it was), and the frames published since the recorder
// started are logged as not recorded, as those of a drain cut short. A
// sleep before each window of the check stands for the slow disk.
func TestRecorderStopDuringFileCheck(t *testing.T) {
	for _, how := range []string{"shutdown", "reload"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.dir, "rec.bin")
			// Records of 28 bytes (a header, no payload) over 40 windows.
			var b []byte
			for len(b) < 40*scanWindow {
				b = binary.LittleEndian.AppendUint32(b, RecordHeaderSize)
				b = append(b, make([]byte, RecordHeaderSize)...)
			}
			if err := os.WriteFile(out, b, 0o600); err != nil {
				t.Fatal(err)
			}
			var windows atomic.Int32
			testHookScanWindow = func() {
				windows.Add(1)
				time.Sleep(250 * time.Millisecond) // 10 s for the whole file
			}
			t.Cleanup(func() { testHookScanWindow = nil })
			cfgText := strings.Replace(recorderConfig(out, 0), "[runtime]\n", "[runtime]\nshutdown_timeout = \"2s\"\n", 1)
			cfg, err := Load(e.writeConfig(t, "c.toml", cfgText))
			if err != nil {
				t.Fatal(err)
			}
			rt, logb, stop := inprocConfig(t, cfg)
			eventually(t, "the check of the file to begin", func() bool { return windows.Load() > 0 })
			// Frames published meanwhile are the recorder's to record
			// (it starts at the frames published from its start): the
			// stop says it did not.
			w, err := shm.OpenWriter("r", e.sopts())
			if err != nil {
				t.Fatal(err)
			}
			for range 7 {
				if _, err := w.WriteFrame(1, 0, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			if how == "reload" {
				e.writeConfig(t, "c.toml", cfgText[:strings.Index(cfgText, "[[sinks]]")])
				if err := rt.Reload(); err != nil {
					t.Fatal(err)
				}
			} else if err := stop(); err != nil {
				t.Fatalf("shutdown: %v; log:\n%s", err, logb.String())
			}
			if n := windows.Load(); n >= 40 {
				t.Fatalf("the %s waited for the check of all %d windows of the file", how, n)
			}
			if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("the file changed (%d bytes of %d; %v)", len(got), len(b), err)
			}
			by := map[string]string{"shutdown": "the shutdown", "reload": "a reload"}[how]
			want := "recorder rec: stopped by " + by + " while it checked the records already in its file: 7 frames of ring r (from frame 0, the first its file does not hold) were not recorded"
			if l := logb.String(); !strings.Contains(l, want) {
				t.Fatalf("the log does not say %q:\n%s", want, l)
			}
		})
	}
}
