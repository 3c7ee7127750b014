package runtime

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
			case <-time.After(8 * time.Second): // the sink's bound is 2 s
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
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	e := newEnv(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
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
			w, err := shm.OpenWriter("r", e.sopts())
			if err != nil {
				t.Fatal(err)
			}
			w.WriteFrame(1, 0, []byte("new"))
			w.Close()
			if err := stop(); err != nil { // drains the ring
				t.Fatal(err)
			}
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
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFrame(1, 0, []byte("after"))
	w.Close()
	if err := stop(); err != nil { // drains the ring
		t.Fatal(err)
	}
	if got := strings.Join(readRecords(t, out), ","); got != "after" {
		t.Fatalf("records %q, want \"after\"", got)
	}
}
