//go:build linux

package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// reloadRingConfig is ringConfig with the default policy and nothing more.
func reloadRingConfig(slots, payload int) string {
	return ringConfig(slots, payload, "overwrite", "")
}

// A reload to a ring that shm refuses to create (too large: the config's
// per-key checks pass) must keep the running configuration: before, the
// reload removed the old ring and stopped its source, then failed to
// create the new ring, and ran on without either.
func TestReloadOversizedRingKeepsRunning(t *testing.T) {
	e := newEnv(t)
	path := e.writeConfig(t, "c.toml", reloadRingConfig(16, 64))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, logb, _ := inprocConfig(t, cfg)
	e.writeConfig(t, "c.toml", reloadRingConfig(1<<24, 64<<20))
	// 64-bit: "too large"; 32-bit: "does not fit a 32-bit address space".
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "rings.r") ||
		!strings.Contains(err.Error(), "too large") && !strings.Contains(err.Error(), "does not fit a 32-bit address space") {
		t.Fatalf("reload to a 1 PiB ring: %v", err)
	}
	if !strings.Contains(logb.String(), "keeping the running configuration") {
		t.Fatalf("the reload does not say that it keeps the running configuration:\n%s", logb.String())
	}
	if rs := rt.Rings(); len(rs) != 1 || rs[0].Name != "r" || rs[0].Slots != 16 {
		t.Fatalf("rings after the failed reload: %+v", rs)
	}
	// (It may still be starting, as it was when the reload came.)
	eventually(t, "source gen to run after the failed reload", func() bool { return rt.sourceStat(t, "gen").State == StateRunning })
	readFrames(t, e, "r", 3)
}

// A reload that changes a ring while the segment directory is gone is
// refused, before it removes the old ring; the next reload of the same
// file, once the directory is back, recreates the ring, with its source.
// (Before the check, the first reload removed the ring and stopped its
// source, and the second had to create it again.)
func TestReloadWithoutShmDirRefused(t *testing.T) {
	e := newEnv(t)
	shmDir := filepath.Join(e.dir, "shm")
	if err := os.Mkdir(shmDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EDGEIPC_SHM_DIR", shmDir)
	e.dir = shmDir // for readFrames
	cfgDir := t.TempDir()
	path := filepath.Join(cfgDir, "c.toml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadRingConfig(16, 64))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, _, _ := inprocConfig(t, cfg)
	// The source starts on its own goroutine: wait for it, so that the
	// check after the refused reload sees what the reload left.
	eventually(t, "source gen running", func() bool { return rt.sourceStat(t, "gen").State == StateRunning })
	// The ring changes geometry while its directory is away: the reload
	// is refused, and the ring and its source run on.
	if err := os.Rename(shmDir, shmDir+".away"); err != nil {
		t.Fatal(err)
	}
	write(reloadRingConfig(32, 64))
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "segment directory") {
		t.Fatalf("reload without the segment directory: %v", err)
	}
	if row, _ := ringRow(rt, "r"); row.Slots != 16 || row.State != RingOK {
		t.Fatalf("ring r after the refused reload: %+v", row)
	}
	if st := rt.sourceStat(t, "gen"); st.State != StateRunning {
		t.Fatalf("source gen after the refused reload: %+v", st)
	}
	if err := os.Rename(shmDir+".away", shmDir); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); err != nil {
		t.Fatalf("second reload of the same file: %v", err)
	}
	if rs := rt.Rings(); len(rs) != 1 || rs[0].Name != "r" || rs[0].Slots != 32 {
		t.Fatalf("rings after the second reload: %+v", rs)
	}
	if st := rt.sourceStat(t, "gen"); st.State != StateRunning && st.State != StateStarting {
		t.Fatalf("source gen after the second reload: %+v", st)
	}
	readFrames(t, e, "r", 3)
}

// tmpfsEnv is newEnv with the segments on a tmpfs of the given size
// ("1m") mounted for the test; config files go to cfgDir, outside it. It
// skips the test where a tmpfs cannot be mounted.
func tmpfsEnv(t *testing.T, size string) (e *env, cfgDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	e = newEnv(t)
	cfgDir = e.dir
	dir := filepath.Join(cfgDir, "shm")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	e.dir = dir
	return e, cfgDir
}

// ringConfig is a config with no control queue and no stats line, ring r
// of the given slots, slot_payload and policy written by a synthetic
// source gen, and extra appended.
func ringConfig(slots, payload int, policy, extra string) string {
	return fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = %d
slot_payload = %d
policy = %q
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 100
size = 8
%s`, slots, payload, policy, extra)
}

// reloadFile starts an in-process runtime on the config text written to
// path, and returns it with its log and a function that writes path anew.
func reloadFile(t *testing.T, path, text string) (*Runtime, *syncBuf, func(string)) {
	t.Helper()
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(text)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, logb, _ := inprocConfig(t, cfg)
	return rt, logb, write
}

// ringRow is ring name's row in rt.Rings() (ok false: none).
func ringRow(rt *Runtime, name string) (row control.RingStat, ok bool) {
	for _, r := range rt.Rings() {
		if r.Name == name {
			return r, true
		}
	}
	return row, false
}

// stillRuns checks that ring r still has 16 slots and gen writes it: the
// runtime is as it was before a reload that was refused.
func stillRuns(t *testing.T, rt *Runtime) {
	t.Helper()
	row, ok := ringRow(rt, "r")
	if !ok || row.Slots != 16 || row.State != RingOK {
		t.Fatalf("ring r after the refused reload: %+v (present %v); rings %+v", row, ok, rt.Rings())
	}
	eventually(t, "source gen to run", func() bool { return rt.sourceStat(t, "gen").State == StateRunning })
	before := row.Frames
	eventually(t, "ring r to get frames", func() bool { row, _ := ringRow(rt, "r"); return row.Frames > before })
}

// A reload to rings that do not fit the free space of the segment
// directory is refused before anything changes: the ring that would have
// been recreated keeps its segment and its source, the ring that would
// have been added is not created. Before, the reload removed the old ring
// and stopped its source, then failed to create the new ring, and ran on
// without either until a later reload.
func TestReloadRingNoSpaceChangesNothing(t *testing.T) {
	e, cfgDir := tmpfsEnv(t, "1m")
	path := filepath.Join(cfgDir, "c.toml")
	rt, logb, write := reloadFile(t, path, ringConfig(16, 64, "overwrite", ""))
	// 256 slots of 4 KiB: 1 MiB and more, which the tmpfs does not have.
	write(ringConfig(256, 4096, "overwrite", "[rings.extra]\nslots = 16\nslot_payload = 64\n"))
	err := rt.Reload()
	if err == nil || !strings.Contains(err.Error(), "ring r") || !strings.Contains(err.Error(), "free") ||
		!strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("reload to a ring larger than the free space: %v", err)
	}
	logb.waitFor(t, "keeping the running configuration", 1)
	if strings.Contains(logb.String(), "recreating it") {
		t.Fatalf("the refused reload removed ring r:\n%s", logb.String())
	}
	if _, err := os.Stat(shm.SegmentPath("extra", e.sopts())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused reload created ring extra: %v", err)
	}
	stillRuns(t, rt)
	readFrames(t, e, "r", 3)
}

// The space of a ring the reload removes (remove_on_exit) counts as free
// for the rings it recreates, which apply creates after the removal: the
// check refused a reload that only fits once the removed ring is gone.
func TestReloadRemovedRingFreesSpace(t *testing.T) {
	e, cfgDir := tmpfsEnv(t, "1m")
	path := filepath.Join(cfgDir, "c.toml")
	// old: 64 slots of 10 KiB, 640 KiB of the 1 MiB tmpfs.
	rt, _, write := reloadFile(t, path, ringConfig(16, 64, "overwrite", "[rings.old]\nslots = 64\nslot_payload = 10176\nremove_on_exit = true\n"))
	// r grows to 64 slots of 8 KiB (512 KiB), which fits only once old is removed.
	write(ringConfig(64, 8128, "overwrite", ""))
	if err := rt.Reload(); err != nil {
		t.Fatalf("reload that removes ring old and grows ring r into its space: %v", err)
	}
	if row, ok := ringRow(rt, "r"); !ok || row.State != RingOK || row.Slots != 64 {
		t.Fatalf("ring r after the reload: %+v (listed %v)", row, ok)
	}
	if _, ok := ringRow(rt, "old"); ok {
		t.Fatal("ring old is still listed after the reload removed it")
	}
	if _, err := os.Stat(shm.SegmentPath("old", e.sopts())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ring old's segment (remove_on_exit) after the reload: %v", err)
	}
	readFrames(t, e, "r", 3)
}

// Something in the way of a ring a reload recreates (here the path of its
// segment was replaced by a symlink) is found before anything changes: the
// reload is refused and says what is in the way. Before, the old segment
// was closed, the symlink refused, and the ring and its source were gone.
func TestReloadRingPathInTheWay(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, write := reloadFile(t, path, ringConfig(16, 64, "overwrite", ""))
	seg := shm.SegmentPath("r", e.sopts())
	if err := os.Remove(seg); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(e.dir, "elsewhere"), seg); err != nil {
		t.Fatal(err)
	}
	write(ringConfig(32, 64, "overwrite", ""))
	err := rt.Reload()
	if err == nil || !strings.Contains(err.Error(), "in the way") || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("reload with a symlink in the way of ring r: %v", err)
	}
	stillRuns(t, rt)
	// Once it is out of the way the same file reloads.
	if err := os.Remove(seg); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if row, _ := ringRow(rt, "r"); row.Slots != 32 {
		t.Fatalf("ring r after the second reload: %+v", row)
	}
	readFrames(t, e, "r", 3)
}

// A ring whose new segment cannot be created although the check before
// the reload found room (a reader still maps the old segment, so its
// memory stays in use after the reload removed it) is shown as missing,
// with why, its source as waiting, and it is created, and its source
// started, once there is room: before, the ring stayed missing (and its
// source was not even listed) until a later reload.
func TestReloadRingCreatedOnceThereIsRoom(t *testing.T) {
	e, cfgDir := tmpfsEnv(t, "1m")
	path := filepath.Join(cfgDir, "c.toml")
	// 64 slots of 8 KiB: half the tmpfs.
	rt, logb, write := reloadFile(t, path, ringConfig(64, 8128, "overwrite", ""))
	rd, err := shm.OpenReader("r", e.sopts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// ... and a recorder on it: while the ring is missing, it and the
	// ring's stats reader are listed as waiting too.
	rec := fmt.Sprintf("[[sinks]]\nname = \"rec\"\nkind = \"recorder\"\nring = \"r\"\npath = %q\n", filepath.Join(cfgDir, "r.rec"))
	write(ringConfig(64, 8128, "block", rec))
	err = rt.Reload()
	if err == nil || !strings.Contains(err.Error(), "reload applied, except that ring r could not be created") {
		t.Fatalf("reload that cannot create ring r: %v", err)
	}
	row, ok := ringRow(rt, "r")
	if !ok || row.State != RingMissing || !strings.Contains(row.LastError, "free") || row.Policy != "block" {
		t.Fatalf("ring r while it cannot be created: %+v (listed %v)", row, ok)
	}
	if s := rt.Status(); s.Rings != 1 || s.RingsMissing != 1 {
		t.Fatalf("status while ring r is missing: rings %d, missing %d; want 1, 1", s.Rings, s.RingsMissing)
	}
	st := rt.sourceStat(t, "gen")
	if st.State != StateWaiting || !strings.Contains(st.LastError, "waiting for ring r") {
		t.Fatalf("source gen while its ring is missing: %+v", st)
	}
	if sinks := rt.Sinks(); len(sinks) != 2 || sinks[0].Name != "rec" || sinks[1].Name != "stats:r" ||
		sinks[0].State != StateWaiting || sinks[1].State != StateWaiting || !sinks[1].Implicit ||
		sinks[0].Path != filepath.Join(cfgDir, "r.rec") || !strings.Contains(sinks[0].LastError, "waiting for ring r") {
		t.Fatalf("sinks while ring r is missing: %+v; want rec and stats:r, waiting for ring r", sinks)
	}
	if err := rt.StartSource("gen"); err == nil || !strings.Contains(err.Error(), "waits for ring") {
		t.Fatalf("start of a source whose ring is missing: %v", err)
	}
	if err := rt.RestartSource("gen"); err == nil || !strings.Contains(err.Error(), "waits for ring") {
		t.Fatalf("restart of a source whose ring is missing: %v", err)
	}
	rd.Close() // the old segment's memory is free now
	eventually(t, "ring r to be created", func() bool { row, _ := ringRow(rt, "r"); return row.State == RingOK })
	if row, _ := ringRow(rt, "r"); row.Policy != "block" {
		t.Fatalf("ring r once created: %+v", row)
	}
	logb.waitFor(t, "ring r: created on attempt", 1)
	eventually(t, "source gen to run", func() bool { return rt.sourceStat(t, "gen").State == StateRunning })
	eventually(t, "sink rec to run", func() bool {
		for _, sk := range rt.Sinks() {
			if sk.Name == "rec" {
				return sk.State == StateRunning
			}
		}
		return false
	})
	readFrames(t, e, "r", 3)
	if s := rt.Status(); s.Reloads != 1 || s.Rings != 1 || s.RingsMissing != 0 {
		t.Fatalf("status once ring r exists: %+v; want 1 reload, 1 ring, none missing", s)
	}
}

// unprivileged prepares to run a child runtime as nobody: a copy of the
// test binary it may execute, and e.dir (the segment directory) and a
// config directory it owns. It skips the test unless it runs as root.
func unprivileged(t *testing.T, e *env) (cmd *exec.Cmd, cfgDir string, uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a runtime as another user needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	bin := filepath.Join(t.TempDir(), "runtime.test")
	cfgDir = t.TempDir()
	for _, d := range []string{filepath.Dir(bin), cfgDir, e.dir} {
		// t.TempDir's parent, the test's own directory, is 0700.
		if err := os.Chmod(filepath.Dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{cfgDir, e.dir} {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	in, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, in, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}}
	return cmd, cfgDir, uid, gid
}

// A reload run by an unprivileged runtime (nobody) that it cannot carry
// out is refused before anything changes: a ring given to a group the
// runtime is not a member of, a segment directory it may not write, a
// config file it may not read. Before, the first two removed the ring and
// then failed to create it again (fchown, or the file's creation, was
// refused), and the ring and its source were gone.
func TestReloadUnprivilegedRefused(t *testing.T) {
	e := newEnv(t)
	cmd, cfgDir, uid, gid := unprivileged(t, e)
	other := ""
	nobody, _ := user.LookupId(strconv.Itoa(uid))
	mine, _ := nobody.GroupIds()
	for _, g := range []string{"daemon", "adm", "sys", "bin", "mail", "users"} {
		if gr, err := user.LookupGroup(g); err == nil && !slices.Contains(mine, gr.Gid) {
			other = g
			break
		}
	}
	if other == "" {
		t.Skip("no group that nobody is not a member of")
	}
	path := filepath.Join(cfgDir, "c.toml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	write(ringConfig(16, 64, "overwrite", ""))
	c := startChildCmd(t, cmd, path)
	c.log.waitFor(t, "runtime ready", 1)
	seg := shm.SegmentPath("r", e.sopts())
	ino := inode(seg)
	refused := 0
	reloadRefused := func(why string) {
		t.Helper()
		c.cmd.Process.Signal(syscall.SIGHUP)
		refused++
		c.log.waitFor(t, "reload failed; keeping the running configuration", refused)
		if !strings.Contains(c.log.String(), why) {
			t.Fatalf("the refused reload does not say %q:\n%s", why, c.log.String())
		}
		if got := inode(seg); got != ino {
			t.Fatalf("ring r's segment was removed or replaced by the refused reload (inode %d, was %d)", got, ino)
		}
		newFrames(t, e, "r", 3)
	}

	write(strings.Replace(ringConfig(16, 64, "overwrite", ""), "policy = \"overwrite\"", fmt.Sprintf("policy = \"overwrite\"\ngroup = %q", other), 1))
	reloadRefused("is not a member of it")

	write(ringConfig(32, 64, "overwrite", ""))
	if err := os.Chmod(e.dir, 0o500); err != nil {
		t.Fatal(err)
	}
	reloadRefused("cannot create files in it")
	if err := os.Chmod(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	reloadRefused("permission denied")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}

	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "reloaded "+path, 1)
	r, err := shm.Open("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	if r.Slots() != 32 {
		t.Fatalf("ring r has %d slots after the last reload, want 32", r.Slots())
	}
	r.Close()
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
