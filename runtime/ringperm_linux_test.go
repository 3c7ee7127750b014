package runtime

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeipc/edgeipc/shm"
)

// TestReattachAppliesModeAndGroup: a ring segment left by an earlier run
// (remove_on_exit = false, the default) is reattached with the mode and
// group of the configuration the runtime starts with now, as a new segment
// would be created and as a reused FIFO is narrowed or widened
// (docs/config.md: mode and group are the segment's). The runtime used to
// reattach it as it was: a ring made "0660" for a group of readers by a
// restart stayed 0600, and they could not open it.
func TestReattachAppliesModeAndGroup(t *testing.T) {
	e := newEnv(t)
	r, err := shm.Create("r", shm.Config{Slots: 8, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: e.dir}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	path := shm.SegmentPath("r", e.sopts())
	perms := func() (uint32, uint32) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Mode & 0o7777, st.Gid
	}
	run := func(ringTable string) string {
		t.Helper()
		_, logb, stop := inproc(t, "[rings.r]\nslots = 8\nslot_payload = 64\n"+ringTable)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logb.String(), "ring r: attached to existing") {
			t.Fatalf("the runtime did not reattach to ring r:\n%s", logb.String())
		}
		return logb.String()
	}

	log := run("mode = \"0660\"\n")
	if m, _ := perms(); m != 0o660 {
		t.Fatalf("after a start with mode = \"0660\" the segment is %#o, want 0660; log:\n%s", m, log)
	}
	if !strings.Contains(log, "ring r: the existing segment had mode 0600") {
		t.Errorf("the change is not logged:\n%s", log)
	}
	if os.Geteuid() == 0 {
		// Root can give it a group it is not in.
		run("group = \"65534\"\n")
		if m, g := perms(); m != 0o660 || g != 65534 {
			t.Fatalf("after a start with group = \"65534\" the segment is %#o, gid %d; want 0660, gid 65534", m, g)
		}
	} else {
		run("group = \"" + strconv.Itoa(os.Getegid()) + "\"\n")
		if m, g := perms(); m != 0o660 || int(g) != os.Getegid() {
			t.Fatalf("after a start with our own group the segment is %#o, gid %d; want 0660, gid %d", m, g, os.Getegid())
		}
	}
	log = run("")
	if m, _ := perms(); m != 0o600 {
		t.Fatalf("after a start with the default mode the segment is %#o, want 0600", m)
	}
	// Unchanged: nothing to log.
	if log = run(""); strings.Contains(log, "existing segment had") {
		t.Errorf("a segment that already has the configured mode was changed:\n%s", log)
	}
}
