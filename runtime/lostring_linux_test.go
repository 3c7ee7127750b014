package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeipc/edgeipc/shm"
)

// A ring the runtime manages whose segment is removed behind it (edgeipc
// ring rm --force) is created again within about a second, and its
// source restarted on it: a reader that opens the name gets frames again.
// The same when another ring is put in its place. Before, the runtime went
// on writing into the unlinked segment for as long as it ran, where no
// new reader could reach the frames.
func TestRingRemovedBehindRuntimeIsCreatedAgain(t *testing.T) {
	e := newEnv(t)
	rt, logb, stop := inproc(t, ringConfig(16, 64, "overwrite", ""))
	defer stop()
	readFrames(t, e, "r", 2)
	path := filepath.Join(e.dir, "edgeipc.r")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "ring r: its segment was removed or replaced behind the runtime", 1)
	// (A file system may give the new file the inode number of the
	// removed one: the log and the geometry tell the rings apart.)
	logb.waitFor(t, "ring r: created", 2)
	eventually(t, "ring r's file", func() bool { return inode(path) != 0 })
	if got := newFrames(t, e, "r", 2); len(got) != 2 {
		t.Fatalf("read %d frames from the ring created again; want 2", len(got))
	}
	if st := rt.sourceStat(t, "gen"); st.State != StateRunning {
		t.Fatalf("source gen %s after the ring was created again; want running", st.State)
	}

	// Another ring (another geometry) in its place is replaced by the
	// configured one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := shm.Create("r", shm.Config{Slots: 8, SlotPayload: 64, Segment: *e.sopts()})
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	logb.waitFor(t, "ring r: its segment was removed or replaced behind the runtime", 2)
	logb.waitFor(t, "ring r: created", 3)
	eventually(t, "ring r of the configured geometry again", func() bool {
		r, err := shm.Open("r", e.sopts())
		if err != nil {
			return false
		}
		defer r.Close()
		return r.Slots() == 16 && r.SlotPayload() == 64
	})
	newFrames(t, e, "r", 2)
	if strings.Contains(logb.String(), "geometry or permissions changed") {
		t.Errorf("the log says the configuration changed the ring:\n%s", logb.String())
	}
}
