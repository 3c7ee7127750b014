//go:build !linux

package bench

import (
	"fmt"
	"syscall"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// errAffinity is what pinProcess and AllowedCPUs return on systems other
// than Linux: they use sched_setaffinity(2) and sched_getaffinity(2).
var errAffinity = fmt.Errorf("CPU affinity needs Linux: %w", sys.ErrNotSupported)

func pinProcess(cpu int) error { return errAffinity }

// AllowedCPUs returns an error wrapping sys.ErrNotSupported.
func AllowedCPUs() ([]int, error) { return nil, errAffinity }

// setDeathSignal does nothing: only Linux has PR_SET_PDEATHSIG.
func setDeathSignal(a *syscall.SysProcAttr) {}
