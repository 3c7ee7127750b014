//go:build linux

package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// Reloads that rearrange a running configuration, each checked with real
// rings, sources and sinks.

const scenarioHead = `
[control]
enabled = false
[runtime]
stats_interval = "0s"
`

// ringTable is a [rings.NAME] table of 16 slots of 64 bytes, plus extra.
func ringTable(name, extra string) string {
	return fmt.Sprintf("[rings.%s]\nslots = 16\nslot_payload = 64\n%s\n", name, extra)
}

// synthSource is a synthetic source stamping frame type typ.
func synthSource(name, ring string, typ int) string {
	return fmt.Sprintf("[[sources]]\nname = %q\nkind = \"synthetic\"\nring = %q\nrate_hz = 200\nsize = 8\ntype = %d\n", name, ring, typ)
}

// wantTypes checks that the next frames of ring are all of type typ.
func wantTypes(t *testing.T, e *env, ring string, typ uint32) {
	t.Helper()
	for _, f := range newFrames(t, e, ring, 5) {
		if f.Type != typ {
			t.Fatalf("ring %s: frame of type %d, want %d", ring, f.Type, typ)
		}
	}
}

// Two sources swap rings: each ring gets the other's frames, each writer
// lease is taken by the new source (the old one released it first), and
// the rings' byte counts follow their new writers.
func TestReloadSwapsSourcesBetweenRings(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "c.toml")
	rings := ringTable("a", "") + ringTable("b", "")
	rt, _, write := reloadFile(t, path, scenarioHead+rings+synthSource("x", "a", 1)+synthSource("y", "b", 2))
	wantTypes(t, e, "a", 1)
	wantTypes(t, e, "b", 2)
	write(scenarioHead + rings + synthSource("x", "b", 1) + synthSource("y", "a", 2))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	eventually(t, "x and y to run", func() bool {
		return rt.sourceStat(t, "x").State == StateRunning && rt.sourceStat(t, "y").State == StateRunning
	})
	wantTypes(t, e, "a", 2)
	wantTypes(t, e, "b", 1)
	for _, n := range []string{"a", "b"} {
		row, _ := ringRow(rt, n)
		before := row.Bytes
		eventually(t, "ring "+n+"'s bytes to grow", func() bool { row, _ := ringRow(rt, n); return row.Bytes > before })
	}
}

// A ring renamed (with remove_on_exit) takes its source and its recorder
// along: the old segment is removed, the new one written, and the
// recorder goes on appending to its file, from the new ring.
func TestReloadRenamesRing(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	path, rec := filepath.Join(dir, "c.toml"), filepath.Join(dir, "rec.bin")
	sink := func(ring string) string {
		return fmt.Sprintf("[[sinks]]\nname = \"rec\"\nkind = \"recorder\"\nring = %q\npath = %q\n", ring, rec)
	}
	rt, _, write := reloadFile(t, path, scenarioHead+ringTable("old", "remove_on_exit = true")+synthSource("gen", "old", 3)+sink("old"))
	wantTypes(t, e, "old", 3)
	eventually(t, "records from ring old", func() bool { return len(readRecords(t, rec)) > 0 })
	write(scenarioHead + ringTable("new", "remove_on_exit = true") + synthSource("gen", "new", 3) + sink("new"))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shm.SegmentPath("old", e.sopts())); !os.IsNotExist(err) {
		t.Fatalf("segment of the renamed ring: %v, want it removed", err)
	}
	if rs := rt.Rings(); len(rs) != 1 || rs[0].Name != "new" {
		t.Fatalf("rings after the rename: %+v", rs)
	}
	wantTypes(t, e, "new", 3)
	n := len(readRecords(t, rec))
	eventually(t, "records from ring new", func() bool { return len(readRecords(t, rec)) > n })
}

// A source keeps its name and changes its kind: fifo (remove_on_exit) →
// exec → synthetic → fifo. Each step stops the old kind (the FIFO is
// removed) and the new one writes the ring.
func TestReloadChangesSourceKind(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	path, fifo := filepath.Join(dir, "c.toml"), filepath.Join(e.dir, "in.fifo")
	script := writeScript(t, dir, "tick.sh", "while :; do echo exec; sleep 0.02; done\n")
	kinds := map[string]string{
		"fifo":      fmt.Sprintf("[[sources]]\nname = \"s\"\nkind = \"fifo\"\nring = \"r\"\npath = %q\nremove_on_exit = true\ntype = 1\n", fifo),
		"exec":      fmt.Sprintf("[[sources]]\nname = \"s\"\nkind = \"exec\"\nring = \"r\"\ncommand = [%q]\ntype = 2\n", script),
		"synthetic": "[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"r\"\nrate_hz = 200\nsize = 8\ntype = 3\n",
	}
	cfg := func(kind string) string { return scenarioHead + ringTable("r", "") + kinds[kind] }
	rt, logb, write := reloadFile(t, path, cfg("fifo"))
	logb.waitFor(t, "source s: reading FIFO", 1)
	// A writer that keeps writing the FIFO until the step is over.
	feed := func() (stop func()) {
		done, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			fd, err := syscall.Open(fifo, syscall.O_WRONLY, 0)
			if err != nil {
				t.Errorf("open %s: %v", fifo, err)
				return
			}
			defer syscall.Close(fd)
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				syscall.Write(fd, []byte("fifo\n"))
			}
		}()
		return func() { close(done); <-stopped }
	}
	stop := feed()
	wantTypes(t, e, "r", 1)
	stop()
	for i, kind := range []string{"exec", "synthetic", "fifo"} {
		write(cfg(kind))
		if err := reloadWithin(t, rt); err != nil {
			t.Fatalf("reload to kind %s: %v", kind, err)
		}
		if st := rt.sourceStat(t, "s"); st.Kind != kind {
			t.Fatalf("source s after the reload to %s: %+v", kind, st)
		}
		if kind == "fifo" {
			logb.waitFor(t, "source s: reading FIFO", 2)
			stop := feed()
			wantTypes(t, e, "r", 1)
			stop()
			continue
		}
		if _, err := os.Lstat(fifo); !os.IsNotExist(err) {
			t.Fatalf("step %d: the FIFO of the fifo source (remove_on_exit) is still there: %v", i, err)
		}
		wantTypes(t, e, "r", uint32(i+2))
	}
}

// A ring's policy switches overwrite → block while readers are attached,
// and back block → overwrite while its writer is held up by a reader that
// does not read: each reload ends (the blocked writer is stopped), the
// ring is recreated with the new policy and its source writes it.
func TestReloadSwitchesPolicyWithReaders(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "c.toml")
	cfg := func(policy string) string {
		return scenarioHead + ringTable("r", fmt.Sprintf("policy = %q", policy)) + synthSource("gen", "r", 4)
	}
	rt, _, write := reloadFile(t, path, cfg("overwrite"))
	idle, err := shm.OpenReader("r", e.sopts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitReaders(t, rt, "r", 2) // the runtime's stats reader and idle
	write(cfg("block"))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	if row, _ := ringRow(rt, "r"); row.Policy != "block" {
		t.Fatalf("ring r after the switch to block: %+v", row)
	}
	wantTypes(t, e, "r", 4)

	// A reader of the block ring that never reads: the writer fills the
	// ring and waits for it.
	stalled, err := shm.OpenReader("r", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	eventually(t, "the writer to wait for the stalled reader", func() bool {
		row, _ := ringRow(rt, "r")
		return row.MaxLag >= 15
	})
	write(cfg("overwrite"))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	if row, _ := ringRow(rt, "r"); row.Policy != "overwrite" {
		t.Fatalf("ring r after the switch back to overwrite: %+v", row)
	}
	wantTypes(t, e, "r", 4)
}

// recorded reads a recorder file's records as (seq, lost) pairs.
func recorded(t *testing.T, path string) (seqs, lost []uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for len(b) >= 4+RecordHeaderSize {
		l := binary.LittleEndian.Uint32(b)
		seqs = append(seqs, binary.LittleEndian.Uint32(b[4:]))
		lost = append(lost, binary.LittleEndian.Uint32(b[16:]))
		b = b[4+l:]
	}
	return seqs, lost
}

// A recorder whose path changes goes on in the new file where the old
// file ended: every frame the ring published is in one file or the other,
// or counted as lost in the first record of the new one (a small ring,
// lapped while the reload runs). Before, the new recorder began at the
// ring's newest frame, and the frames published while the reload went
// from one recorder to the other were in neither file, with no lost count
// to show it.
func TestReloadChangesRecorderPath(t *testing.T) {
	for _, slots := range []int{4096, 16} {
		t.Run(fmt.Sprintf("%d slots", slots), func(t *testing.T) {
			newEnv(t)
			dir := t.TempDir()
			path, one, two := filepath.Join(dir, "c.toml"), filepath.Join(dir, "one.rec"), filepath.Join(dir, "two.rec")
			// A writer that publishes all the time (not in bursts, as the
			// synthetic source does), so that frames come while the reload
			// goes from one recorder to the other.
			flood := writeScript(t, dir, "flood.sh", "while :; do echo x; done\n")
			cfg := func(rec string) string {
				return scenarioHead + fmt.Sprintf("[rings.r]\nslots = %d\nslot_payload = 64\n", slots) +
					fmt.Sprintf("[[sources]]\nname = \"flood\"\nkind = \"exec\"\nring = \"r\"\ncommand = [%q]\n", flood) +
					fmt.Sprintf("[[sinks]]\nname = \"rec\"\nkind = \"recorder\"\nring = \"r\"\npath = %q\n", rec)
			}
			rt, _, write := reloadFile(t, path, cfg(one))
			eventually(t, "records in the first file", func() bool { s, _ := recorded(t, one); return len(s) > 100 })
			write(cfg(two))
			if err := reloadWithin(t, rt); err != nil {
				t.Fatal(err)
			}
			eventually(t, "records in the second file", func() bool { s, _ := recorded(t, two); return len(s) > 100 })
			s1, _ := recorded(t, one)
			s2, l2 := recorded(t, two)
			last, first := s1[len(s1)-1], s2[0]
			if first-last-1 != l2[0] {
				t.Fatalf("the first file ends at frame %d, the second begins at frame %d with lost %d: %d frames in neither file and not counted as lost",
					last, first, l2[0], first-last-1-l2[0])
			}
		})
	}
}
