package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fifoRuntime runs a runtime with one len32 fifo source "fifo" on ring "f"
// and waits until the source reads the FIFO.
func fifoRuntime(t *testing.T, fifo string) (*Runtime, *syncBuf) {
	t.Helper()
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.f]
slots = 16
slot_payload = 64
[[sources]]
name = "fifo"
kind = "fifo"
ring = "f"
path = %q
framing = "len32"
max_skip = 1024
`, fifo))
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	return rt, logb
}

// openWriter opens the FIFO for writing and keeps it open until the test
// closes it (or the test ends).
func openWriter(t *testing.T, fifo string) *os.File {
	t.Helper()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// brokenLength is a len32 header far beyond max_skip: it breaks the stream.
var brokenLength = binary.LittleEndian.AppendUint32(nil, 1<<30)

// After a broken stream the source drains the FIFO until its writers close
// and then reopens its keep-alive write end. If the path no longer names
// the FIFO by then, the source fails with an error that says so, instead of
// reading EOF from a regular file (or nothing from another FIFO) forever.
func TestFIFOReplacedDuringDrain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, path string)
		want    string
	}{
		{"regular file", func(t *testing.T, path string) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("not a fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "is no longer a FIFO"},
		{"another FIFO", func(t *testing.T, path string) {
			tmp := path + ".new"
			if err := unix.Mkfifo(tmp, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "is now another FIFO"},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "no longer exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fifo := filepath.Join(e.dir, "in.fifo")
			rt, logb := fifoRuntime(t, fifo)
			w := openWriter(t, fifo)
			if _, err := w.Write(brokenLength); err != nil {
				t.Fatal(err)
			}
			logb.waitFor(t, "stream broken", 1)
			tc.replace(t, fifo)
			w.Close() // the last writer leaves: the drain ends
			eventually(t, "the source to fail", func() bool { return rt.sourceStat(t, "fifo").State == StateFailed })
			st := rt.sourceStat(t, "fifo")
			if !strings.Contains(st.LastError, fifo+" "+tc.want) || !strings.Contains(st.LastError, "edgeipc ctl restart") {
				t.Fatalf("last error %q; want it to say %q and how to recover", st.LastError, fifo+" "+tc.want)
			}
			if n := strings.Count(logb.String(), "reading new records"); n != 0 {
				t.Fatalf("the source resumed reading %d times from a path that is no longer its FIFO", n)
			}
			if n := strings.Count(logb.String(), "\n"); n > 20 {
				t.Fatalf("%d log lines for one broken stream", n)
			}
		})
	}
}
