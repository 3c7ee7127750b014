//go:build linux

package runtime

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A reload that only writes out a default (mode = "0600" on a ring or a
// fifo source that had none; where a group is set, "0660" on a ring and
// "0620" on a fifo source) changes
// nothing: the ring keeps its segment (its frames, its readers) and the
// source keeps running. Before, the unset mode (0) and the written one
// compared different, and the reload removed and recreated the ring,
// losing its history and cutting off its readers, and restarted the
// source.
func TestReloadWrittenDefaultModeChangesNothing(t *testing.T) {
	mode := func(mode string) string { return mode }
	reloadChangesNothing(t, mode, mode, "", `mode = "0600"`)
}

// A reload that names a group by its number instead of its name (or back)
// changes nothing: the ring keeps its segment and the fifo source keeps
// running. Before, the two spellings compared different, and the reload
// removed and recreated the ring (its history lost, its readers cut off)
// and restarted the source.
func TestReloadGroupRespelledChangesNothing(t *testing.T) {
	gid := strconv.Itoa(os.Getegid())
	g, err := user.LookupGroupId(gid)
	if err != nil {
		t.Fatalf("the test needs a name for its own group %s: %v", gid, err)
	}
	group := func(group string) string { return `group = "` + group + `"` }
	reloadChangesNothing(t, group, group, g.Name, gid)
	if !sameGroup(g.Name, gid) || sameGroup(gid, "") {
		t.Errorf("sameGroup(%q, %q) = false or sameGroup(%q, \"\") = true", g.Name, gid, gid)
	}
}

// A reload that spells a ring's policy in another case ("Block", then
// "block"; the check takes either) changes nothing. Before, the policy
// was compared as written, and the reload removed and recreated the ring
// (its history lost, its readers cut off) and restarted its source.
func TestReloadPolicyRespelledChangesNothing(t *testing.T) {
	policy := func(p string) string { return `policy = "` + p + `"` }
	reloadChangesNothing(t, policy, nil, "Block", "block")
	reloadChangesNothing(t, policy, nil, "OVERWRITE", "")
}

// reloadChangesNothing starts a runtime whose ring r (fed by the synthetic
// source gen) carries the line key(from) and fifo source in (on ring f)
// the line srcKey(from) (none if srcKey is nil), reloads with key(to) and
// srcKey(to), and fails the test if the reload recreated ring r or
// stopped and started either source.
func reloadChangesNothing(t *testing.T, key, srcKey func(string) string, from, to string) {
	t.Helper()
	e := newEnv(t)
	fifo := filepath.Join(t.TempDir(), "in.fifo")
	fifoKey := func(string) string { return "" }
	if srcKey != nil {
		fifoKey = srcKey
	}
	text := func(v string) string {
		return `
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
` + key(v) + `
[rings.f]
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 100
size = 8
[[sources]]
name = "in"
kind = "fifo"
ring = "f"
path = "` + fifo + `"
` + fifoKey(v) + "\n"
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, logb, write := reloadFile(t, path, text(from))
	eventually(t, "source gen running", func() bool { return rt.sourceStat(t, "gen").State == StateRunning })
	eventually(t, "source in running", func() bool { return rt.sourceStat(t, "in").State == StateRunning })
	states := func() map[string]*sourceState {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return map[string]*sourceState{"gen": rt.sources["gen"], "in": rt.sources["in"]}
	}
	before := states()
	seg := filepath.Join(e.dir, "edgeipc.r")
	ino := inode(seg)
	readFrames(t, e, "r", 3)
	write(text(to))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logb.String(), "recreating") {
		t.Fatalf("a reload from %q to %q recreated a ring:\n%s", key(from), key(to), logb.String())
	}
	if got := inode(seg); got != ino {
		t.Fatalf("segment of ring r replaced (inode %d, was %d)", got, ino)
	}
	for n, ss := range states() {
		if ss != before[n] {
			t.Errorf("source %s was stopped and started again by the reload from %q to %q", n, key(from), key(to))
		}
	}
}

// A reload that spells the segment directory otherwise ("/run/x/" for
// "/run/x") does not say that shm_dir changed: before, it answered
// "reload applied, except that runtime.shm_dir … changed", and `edgeipc
// ctl reload` exited 1, for the directory the runtime was using.
func TestReloadSameShmDirSpelledOtherwise(t *testing.T) {
	e := newEnv(t)
	text := func(dir string) string {
		return "[control]\nenabled = false\n[runtime]\nstats_interval = \"0s\"\nshm_dir = \"" + dir + "\"\n[rings.r]\nslots = 16\nslot_payload = 64\n"
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, write := reloadFile(t, path, text(e.dir+"/"))
	for _, dir := range []string{e.dir, e.dir + "/./", e.dir + "//"} {
		write(text(dir))
		if err := reloadWithin(t, rt); err != nil {
			t.Errorf("reload with shm_dir = %q (started with %q): %v", dir, e.dir+"/", err)
		}
	}
}

// A reload that writes [control] group as its number instead of its name
// (or back) does not say that control.group changed and needs a restart:
// before, it answered "reload applied, except that control.group …", and
// `edgeipc ctl reload` exited 1, for the group the queue already had.
func TestReloadControlGroupRespelled(t *testing.T) {
	newEnv(t)
	gid := strconv.Itoa(os.Getegid())
	g, err := user.LookupGroupId(gid)
	if err != nil {
		t.Fatalf("the test needs a name for its own group %s: %v", gid, err)
	}
	text := func(group string) string {
		return "[control]\ngroup = \"" + group + "\"\n[runtime]\nstats_interval = \"0s\"\n[rings.r]\nslots = 16\nslot_payload = 64\n"
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, write := reloadFile(t, path, text(g.Name))
	write(text(gid))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatalf("reload with control group %q (started with %q): %v", gid, g.Name, err)
	}
	// A real change is still reported.
	write(text("65534"))
	if err := reloadWithin(t, rt); err == nil || !strings.Contains(err.Error(), "control.group") {
		t.Fatalf("reload with another control group: %v; want it to say control.group needs a restart", err)
	}
}

// A reload that writes out an exec source's default env (env = [], or
// takes it out again) changes nothing: the child keeps running, with its
// pid. Before, the unset env (nil) and the written one (empty) compared
// different, and the reload stopped the child and started another.
func TestReloadWrittenEmptyEnvChangesNothing(t *testing.T) {
	newEnv(t)
	text := func(env string) string {
		return "[control]\nenabled = false\n[runtime]\nstats_interval = \"0s\"\n[rings.r]\nslots = 16\nslot_payload = 64\n" +
			"[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"r\"\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 1000\"]\n" + env
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, write := reloadFile(t, path, text(""))
	eventually(t, "source x running", func() bool { st := rt.sourceStat(t, "x"); return st.State == StateRunning && st.PID != 0 })
	pid := rt.sourceStat(t, "x").PID
	for _, env := range []string{"env = []\n", ""} {
		write(text(env))
		if err := reloadWithin(t, rt); err != nil {
			t.Fatal(err)
		}
		if st := rt.sourceStat(t, "x"); st.PID != pid || st.State != StateRunning {
			t.Fatalf("after a reload to %q: source x %+v; want its child, pid %d, still running", env, st, pid)
		}
	}
}

// Every default of docs/config.md written out compares equal to the key
// left out: a reload between the two recreates no ring and restarts no
// source or sink (as the reloads above show for one key each).
func TestWrittenDefaultsCompareEqual(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "in.fifo")
	bare := `
[rings.r]
[rings.f]
[rings.s]
[[sources]]
name = "x"
kind = "exec"
ring = "r"
command = ["/bin/true"]
[[sources]]
name = "in"
kind = "fifo"
ring = "f"
path = "` + fifo + `"
framing = "len32"
[[sources]]
name = "gen"
kind = "synthetic"
ring = "s"
rate_hz = 10
[[sinks]]
kind = "recorder"
ring = "s"
path = "/var/lib/edgeipc/s.rec"
`
	written := `
[rings.r]
slots = 256
slot_payload = 4032
policy = "overwrite"
mode = "0600"
group = ""
remove_on_exit = false
stats = true
[rings.f]
slots = 0
slot_payload = 0
[rings.s]
mode = 0
[[sources]]
name = "x"
kind = "exec"
ring = "r"
command = ["/bin/true"]
type = 0
flags = 0
framing = "lines"
disabled = false
env = []
dir = ""
write = "runtime"
restart = "always"
backoff_min = "100ms"
backoff_max = "30s"
backoff_reset = "10s"
log_rate = 100
stop_timeout = "3s"
[[sources]]
name = "in"
kind = "fifo"
ring = "f"
path = "` + fifo + `"
framing = "len32"
max_skip = 1048576
mode = "0600"
group = ""
remove_on_exit = false
[[sources]]
name = "gen"
kind = "synthetic"
ring = "s"
rate_hz = 10
size = 0
[[sinks]]
name = "recorder-0"
kind = "recorder"
ring = "s"
path = "/var/lib/edgeipc/s.rec"
max_bytes = 0
`
	a, err := Parse("bare.toml", []byte(bare))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("written.toml", []byte(written))
	if err != nil {
		t.Fatal(err)
	}
	for n, r := range a.Rings {
		if !sameRing(r, b.Rings[n]) {
			t.Errorf("ring %s: %+v and %+v differ", n, *r, *b.Rings[n])
		}
	}
	for i, s := range a.Sources {
		if !sameSource(s, b.Sources[i]) {
			t.Errorf("source %s: %+v and %+v differ", s.Name, *s, *b.Sources[i])
		}
	}
	for i, s := range a.Sinks {
		if !sameSink(s, b.Sinks[i]) {
			t.Errorf("sink %s: %+v and %+v differ", s.Name, *s, *b.Sinks[i])
		}
	}
}

// An exec source's dir written another way ("D/", "D/./", "D//.") names
// the same directory: a reload that respells it keeps the child running,
// with its pid, in D. Before, the spellings compared different and the
// reload stopped the child and started another. A dir that names another
// directory still restarts it, there.
func TestReloadRespelledDirKeepsChild(t *testing.T) {
	newEnv(t)
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(d, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	text := func(dir string) string {
		return "[control]\nenabled = false\n[runtime]\nstats_interval = \"0s\"\n[rings.r]\nslots = 16\nslot_payload = 64\n" +
			"[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"r\"\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 1000\"]\ndir = " + strconv.Quote(dir) + "\n"
	}
	cwd := func(pid int) string {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, write := reloadFile(t, path, text(d))
	eventually(t, "source x running", func() bool { st := rt.sourceStat(t, "x"); return st.State == StateRunning && st.PID != 0 })
	pid := rt.sourceStat(t, "x").PID
	if got := cwd(pid); got != d {
		t.Fatalf("child runs in %s; want %s", got, d)
	}
	for _, dir := range []string{d + "/", d + "/./", d + "//.", d} {
		write(text(dir))
		if err := reloadWithin(t, rt); err != nil {
			t.Fatal(err)
		}
		if st := rt.sourceStat(t, "x"); st.PID != pid || st.State != StateRunning {
			t.Fatalf("after a reload to dir = %q (was %q): source x %+v; want its child, pid %d, still running", dir, d, st, pid)
		}
	}
	write(text(sub + "/"))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	eventually(t, "source x restarted", func() bool {
		st := rt.sourceStat(t, "x")
		return st.State == StateRunning && st.PID != 0 && st.PID != pid
	})
	if got := cwd(rt.sourceStat(t, "x").PID); got != sub {
		t.Fatalf("after a reload to dir = %q: child runs in %s; want %s", sub+"/", got, sub)
	}
}
