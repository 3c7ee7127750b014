//go:build linux

package runtime

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

func ringStat(t *testing.T, rt *Runtime, name string) control.RingStat {
	t.Helper()
	for _, r := range rt.Rings() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no ring %s", name)
	return control.RingStat{}
}

const statsRingConfig = `
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 64
slot_payload = 128
`

// A ring's bytes and byte rate follow its writer across reloads: the
// runtime's source removed while another process writes the ring (its
// bytes then are those the stats reader reads), and the stats reader
// replaced. Before, the runtime's own byte count, once above 0, stayed the
// ring's for good: bytes froze and bytes_per_s read 0 while frames flowed;
// and a replaced stats reader, counting from 0 again, made the window
// after it read 0, or only what it read beyond its predecessor's total.
func TestRingBytesAcrossReloads(t *testing.T) {
	e := newEnv(t)
	path := e.writeConfig(t, "c.toml", statsRingConfig+`
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 100
size = 16
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, _, _ := inprocConfig(t, cfg)
	eventually(t, "a byte rate on ring r", func() bool { return ringStat(t, rt, "r").BytesPerS > 0 })

	e.writeConfig(t, "c.toml", statsRingConfig)
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	var quit atomic.Bool
	done := make(chan struct{})
	go func() { // 100 frames of 100 bytes a second
		defer close(done)
		p := make([]byte, 100)
		for !quit.Load() {
			w.WriteFrame(1, 0, p)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { quit.Store(true); <-done; w.Close() }()
	before := ringStat(t, rt, "r").Bytes
	eventually(t, "the other writer's byte rate", func() bool {
		r := ringStat(t, rt, "r")
		return r.BytesPerS > 2000 && r.Bytes > before
	})

	// An explicit stats sink replaces the implicit stats reader.
	e.writeConfig(t, "c.toml", statsRingConfig+`
[[sinks]]
name = "st"
kind = "stats"
ring = "r"
`)
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if r := ringStat(t, rt, "r"); r.BytesPerS < 2000 { // 10 kB/s
			t.Fatalf("ring r after its stats reader was replaced: %+v", r)
		}
	}
}
