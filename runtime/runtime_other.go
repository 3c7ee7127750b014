//go:build !linux

package runtime

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"

	"github.com/edgeipc/edgeipc/shm"
)

// checkOS returns the error New and Run return on systems other than Linux.
// The runtime is built on Linux facilities (shared-memory rings in /dev/shm,
// futexes, POSIX message queues, PR_SET_PDEATHSIG and pidfds for its
// children); on other systems the package compiles, so that programs
// importing it build, but a runtime cannot be created.
func checkOS() error {
	return fmt.Errorf("runtime: the edgeipc runtime needs Linux, this is %s/%s: %w", goruntime.GOOS, goruntime.GOARCH, shm.ErrNotSupported)
}

// The Linux-only parts of the runtime, which New's error keeps anything
// from reaching here: each fails with checkOS's error, or does nothing.

type spawner struct{}

func newSpawner(func(format string, args ...any)) *spawner { return &spawner{} }
func (s *spawner) loop()                                   {}
func (s *spawner) quit()                                   {}
func (s *spawner) killAll()                                {}

func (ss *sourceState) runExec(context.Context) error { return checkOS() }
func (ss *sourceState) runFIFO(context.Context) error { return checkOS() }
func removeFIFO(string, fifoID) string                { return checkOS().Error() }
func holdFIFO(string, fifoID) *os.File                { return nil }

func (ss *sourceState) dropRest(r *fifoRest, _ string) {
	if r != nil {
		r.f.Close()
	}
}

func (rt *Runtime) checkRings(*Config, []string, []string, []string) error {
	return checkOS()
}
func applyRingPerms(*os.File, *RingConfig) (string, error) { return "", checkOS() }
func tryLock(int) (bool, error)                            { return false, checkOS() }
func lockedElsewhere(string) bool                          { return false }
func sameFile(string, int) bool                            { return false }
