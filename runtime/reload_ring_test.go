package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func reloadRingConfig(slots, payload int) string {
	return fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = %d
slot_payload = %d
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 100
size = 8
`, slots, payload)
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

// A ring whose recreation failed in a reload (here: its directory was
// gone) is created by the next reload of the same file, with its source;
// that reload must not report success while the ring is missing.
func TestReloadRecreatesMissingRing(t *testing.T) {
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
	// The ring changes geometry while its directory is away: the old ring
	// is closed and the new one cannot be created.
	if err := os.Rename(shmDir, shmDir+".away"); err != nil {
		t.Fatal(err)
	}
	write(reloadRingConfig(32, 64))
	if err := rt.Reload(); err == nil {
		t.Fatal("reload succeeded without the segment directory")
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
