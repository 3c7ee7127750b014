package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeipc/edgeipc/shm"
)

// inode returns the inode number of path (not followed), 0 if it is gone.
func inode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// A second runtime with the same control queue fails before it creates,
// attaches to or starts anything: the first runtime's rings and FIFOs
// survive it (even with remove_on_exit) and its sources are not started
// twice. The first runtime still removes them on its own clean exit.
func TestSecondRuntimeTouchesNothing(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	starts := filepath.Join(e.dir, "starts")
	script := writeScript(t, e.dir, "child.sh", fmt.Sprintf("echo started >> %q\nexec sleep 600\n", starts))
	cfg := e.writeConfig(t, "c.toml", fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
remove_on_exit = true
[rings.x]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "in"
kind = "fifo"
ring = "r"
path = %q
remove_on_exit = true
[[sources]]
name = "sh"
kind = "exec"
ring = "x"
write = "child"
command = [%q]
`, fifo, script))
	a := startChild(t, cfg)
	a.log.waitFor(t, "runtime ready", 1)
	a.log.waitFor(t, "source in: reading FIFO", 1)
	eventually(t, "the exec child to start", func() bool { b, _ := os.ReadFile(starts); return len(b) > 0 })
	seg := shm.SegmentPath("r", e.sopts())
	segIno, fifoIno := inode(seg), inode(fifo)

	b := startChild(t, cfg)
	if code := b.exit(t); code != 1 {
		t.Fatalf("second runtime: exit code %d, want 1; log:\n%s", code, b.log.String())
	}
	if !strings.Contains(b.log.String(), "another runtime is serving") {
		t.Fatalf("second runtime does not say why it failed:\n%s", b.log.String())
	}
	if strings.Contains(b.log.String(), "ring r:") || strings.Contains(b.log.String(), "source ") {
		t.Fatalf("second runtime touched rings or sources before failing:\n%s", b.log.String())
	}
	if got := inode(seg); got == 0 || got != segIno {
		t.Fatalf("ring r's segment was removed or replaced by the second runtime (inode %d, was %d)", got, segIno)
	}
	if got := inode(fifo); got == 0 || got != fifoIno {
		t.Fatalf("the FIFO was removed or replaced by the second runtime (inode %d, was %d)", got, fifoIno)
	}
	if b, _ := os.ReadFile(starts); strings.Count(string(b), "started") != 1 {
		t.Fatalf("the exec child was started %d times, want once", strings.Count(string(b), "started"))
	}
	// The first runtime still works, and cleans up on its own exit.
	w := openWriter(t, fifo)
	fmt.Fprintln(w, "after")
	if f := readFrames(t, e, "r", 1); string(f[0].Data) != "after" {
		t.Fatalf("frame %q", f[0].Data)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.exit(t); code != 0 {
		t.Fatalf("first runtime: exit code %d", code)
	}
	if inode(seg) != 0 || inode(fifo) != 0 {
		t.Fatalf("remove_on_exit: segment or FIFO left after the first runtime's clean exit")
	}
}

// Runtimes that do not share a control queue (here the second has none)
// cannot exclude each other, but each holds a lock on the rings and FIFOs
// it manages: a second runtime uses a locked ring without removing it on
// exit, refuses to read a locked FIFO and to recreate a locked ring.
func TestRuntimeDoesNotRemoveWhatAnotherManages(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	body := fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "in"
kind = "fifo"
ring = "r"
path = %q
remove_on_exit = true
`, fifo)
	a := startChild(t, e.writeConfig(t, "a.toml", body))
	a.log.waitFor(t, "source in: reading FIFO", 1)
	seg := shm.SegmentPath("r", e.sopts())
	segIno, fifoIno := inode(seg), inode(fifo)

	b := startChild(t, e.writeConfig(t, "b.toml", body+"[control]\nenabled = false\n"))
	b.log.waitFor(t, "runtime ready", 1)
	b.log.waitFor(t, "ring r: another edgeipc runtime manages it", 1)
	b.log.waitFor(t, "is read by another edgeipc runtime", 1)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.exit(t); code != 0 {
		t.Fatalf("second runtime: exit code %d", code)
	}
	if got := inode(seg); got != segIno {
		t.Fatalf("ring r's segment was removed by the runtime that did not manage it (inode %d, was %d)", got, segIno)
	}
	if got := inode(fifo); got != fifoIno {
		t.Fatalf("the FIFO was removed by the runtime that did not read it (inode %d, was %d)", got, fifoIno)
	}

	// Another geometry: the ring is in use, so it is not recreated.
	c := startChild(t, e.writeConfig(t, "c.toml", strings.Replace(body, "slots = 16", "slots = 32", 1)+"[control]\nenabled = false\n"))
	if code := c.exit(t); code != 1 {
		t.Fatalf("runtime with another geometry: exit code %d, want 1", code)
	}
	if !strings.Contains(c.log.String(), "another edgeipc runtime manages it, so it is not recreated") {
		t.Fatalf("no reason given:\n%s", c.log.String())
	}
	if got := inode(seg); got != segIno {
		t.Fatalf("ring r was recreated under the runtime that manages it")
	}

	w := openWriter(t, fifo)
	fmt.Fprintln(w, "still")
	if f := readFrames(t, e, "r", 1); string(f[0].Data) != "still" {
		t.Fatalf("frame %q", f[0].Data)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.exit(t); code != 0 {
		t.Fatalf("first runtime: exit code %d", code)
	}
	if inode(seg) != 0 || inode(fifo) != 0 {
		t.Fatalf("remove_on_exit: segment or FIFO left after the managing runtime's clean exit")
	}
}
