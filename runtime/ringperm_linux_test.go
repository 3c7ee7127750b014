package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// A segment another user created under a ring's name (in /dev/shm anyone
// may) is not used: the runtime would write every frame where that user
// can read it, and its readers would take that user's forgeries for
// frames. It was attached to with a warning. Start and reload refuse it,
// name its owner and leave it as it was.
func TestForeignSegmentRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a segment to another user needs root")
	}
	e := newEnv(t)
	r, err := shm.Create("r", shm.Config{Slots: 8, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: e.dir, Mode: 0o660}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	path := shm.SegmentPath("r", e.sopts())
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	untouched := func() {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		now, _ := os.ReadFile(path)
		if st.Uid != 65534 || st.Mode&0o777 != 0o660 || string(now) != string(before) {
			t.Fatalf("the foreign segment was changed: uid %d mode %#o, content same: %v", st.Uid, st.Mode&0o777, string(now) == string(before))
		}
	}
	err = runForRefusal(t, "[control]\nenabled = false\n[rings.r]\nslots = 8\nslot_payload = 64\n")
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") || !strings.Contains(err.Error(), "edgeipc ring rm r") {
		t.Fatalf("start with another user's segment at ring r's path: %v, want a refusal naming its owner", err)
	}
	untouched()

	// A reload that adds the ring is refused, nothing changed.
	file := filepath.Join(e.dir, "rt.toml")
	os.WriteFile(file, []byte("[control]\nenabled = false\n[rings.q]\nslots = 8\nslot_payload = 64\n"), 0o600)
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	rt2, _, stop := inprocConfig(t, cfg)
	defer stop()
	os.WriteFile(file, []byte("[control]\nenabled = false\n[rings.q]\nslots = 8\nslot_payload = 64\n[rings.r]\nslots = 8\nslot_payload = 64\n"), 0o600)
	if err := rt2.Reload(); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("reload adding ring r over another user's segment: %v, want a refusal naming its owner", err)
	}
	if got := len(rt2.Rings()); got != 1 {
		t.Fatalf("%d rings after the refused reload, want 1 (q)", got)
	}
	untouched()
}

// A segment another user makes under a ring's name after the checks that
// precede opening the ring (checkRings at start and in a reload; none
// before a retry of a missing ring) is refused as well, before it is
// mapped, whatever its geometry. One of another geometry was mapped,
// removed and replaced by a root runtime, which then ran; its owner could
// have truncated it under the mapping in between (SIGBUS).
func TestForeignSegmentAfterCheckRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a segment to another user needs root")
	}
	for _, slots := range []int{8, 4} {
		t.Run(strconv.Itoa(slots)+"slots", func(t *testing.T) {
			e := newEnv(t)
			path := shm.SegmentPath("r", e.sopts())
			var before []byte
			testHookOpenRing = func(name string) {
				if name != "r" || before != nil {
					return
				}
				r, err := shm.Create("r", shm.Config{Slots: slots, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: e.dir, Mode: 0o660}})
				if err != nil {
					t.Error(err)
					return
				}
				r.Close()
				if err := os.Chown(path, 65534, 65534); err != nil {
					t.Error(err)
				}
				before, _ = os.ReadFile(path)
			}
			t.Cleanup(func() { testHookOpenRing = nil })
			cfg, err := Parse("test.toml", []byte("[control]\nenabled = false\n[rings.r]\nslots = 8\nslot_payload = 64\n"))
			if err != nil {
				t.Fatal(err)
			}
			rt, logb := newTestRuntime(t, cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err = rt.Run(ctx) // returns at once with the refusal; ctx ends a runtime that started
			if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") || !strings.Contains(err.Error(), "edgeipc ring rm r") {
				t.Fatalf("start with another user's segment put at ring r's path after the checks: %v, want a refusal naming its owner; log:\n%s", err, logb.String())
			}
			var st syscall.Stat_t
			if err := syscall.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			if now, _ := os.ReadFile(path); st.Uid != 65534 || string(now) != string(before) {
				t.Fatalf("the foreign segment was replaced or changed: uid %d, content same: %v", st.Uid, string(now) == string(before))
			}
		})
	}
}

// A segment directory every user may write is refused unless it is sticky
// (as /dev/shm is): without the sticky bit any user could remove or rename
// the runtime's segments and put their own in their place, which readers
// would open. The runtime created its rings there.
func TestSegmentDirWorldWritableRefused(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "shm")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	text := "[control]\nenabled = false\n[runtime]\nshm_dir = \"" + dir + "\"\n[rings.r]\nslots = 8\nslot_payload = 64\n"
	if err := runForRefusal(t, text); err == nil || !strings.Contains(err.Error(), "not sticky") || !strings.Contains(err.Error(), "chmod +t "+dir) {
		t.Fatalf("start with a world-writable segment directory: %v, want a refusal", err)
	}
	if _, err := os.Stat(shm.SegmentPath("r", &shm.SegmentOptions{Dir: dir})); err == nil {
		t.Fatal("the refused start created the ring")
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	_, logb, _ := inproc(t, text)
	logb.waitFor(t, "ring r: created", 1)
}

// runForRefusal runs a runtime on cfgText for at most 5 s and returns what
// Run returned: the refusal of a runtime that must not start, or nil from
// one that started (and was stopped).
func runForRefusal(t *testing.T, cfgText string) error {
	t.Helper()
	cfg, err := Parse("test.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	log, _ := NewLogger(&syncBuf{}, "text")
	rt, err := New(cfg, Options{Logger: log, IgnoreSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return rt.Run(ctx)
}
