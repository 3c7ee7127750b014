//go:build linux

package shm

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// Cross-process tests re-execute this test binary with EDGEIPC_SHM_CHILD
// naming a function in children; the child runs it and exits.
var children = map[string]func() int{}

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	if name := os.Getenv("EDGEIPC_SHM_CHILD"); name != "" {
		f, ok := children[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child %q\n", name)
			os.Exit(3)
		}
		os.Exit(f())
	}
	code := testenv.Run(m) // fails on leaked descriptors
	if code == 0 {
		// Fail on leaked mappings: every test must close what it opens.
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if maps, err := os.ReadFile("/proc/self/maps"); err == nil {
			for _, l := range strings.Split(string(maps), "\n") {
				if strings.Contains(l, "edgeipc") {
					fmt.Fprintf(os.Stderr, "leaked mapping after tests: %s\n", l)
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}

// child starts this binary as the named child with extra environment.
func child(t testing.TB, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"EDGEIPC_SHM_CHILD=" + name}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// scale stretches timeouts under emulation (qemu-user is much slower).
func scale(d time.Duration) time.Duration {
	if runtime.GOARCH != "amd64" {
		return d * 10
	}
	return d
}

func testDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv("EDGEIPC_SHM_DIR", d)
	return d
}

func mustCreate(t testing.TB, name string, cfg Config) *Ring {
	t.Helper()
	r, err := Create(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// pattern fills p with bytes derived from seq so a reader can prove a
// frame is not torn.
func pattern(p []byte, seq uint32) {
	x := seq*2654435761 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
}

func checkPattern(p []byte, seq uint32) bool {
	x := seq*2654435761 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if p[i] != byte(x) {
			return false
		}
	}
	return true
}

// frameLen is a seq-dependent length so lengths are checked too.
func frameLen(seq uint32, max int) int { return int(seq%uint32(max)) + 1 }

func envInt(name string) int {
	var n int
	fmt.Sscan(os.Getenv(name), &n)
	return n
}
