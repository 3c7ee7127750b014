package bench

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// pinProcess restricts every thread of this process to cpu. Threads the Go
// runtime creates later inherit the mask of the thread that creates them.
// The kernel decides whether cpu may be used: not runtime.NumCPU, which
// counts the CPUs of the mask the process started with (a bench peer
// inherits its parent's mask of one CPU, so every CPU but 0 would look
// out of range).
func pinProcess(cpu int) error {
	if cpu < 0 || cpu >= len(unix.CPUSet{})*strconv.IntSize {
		return unix.EINVAL
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return unix.SchedSetaffinity(0, &set)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}

// AllowedCPUs returns the CPUs this process may run on (its affinity
// mask), in increasing order: the values --cpu accepts.
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var out []int
	for cpu := 0; cpu < len(set)*strconv.IntSize; cpu++ {
		if set.IsSet(cpu) {
			out = append(out, cpu)
		}
	}
	return out, nil
}

// setDeathSignal makes the child get SIGKILL when the thread that starts
// it exits (see startPeer).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
