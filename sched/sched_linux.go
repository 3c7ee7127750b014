package sched

import (
	"errors"
	"fmt"

	"github.com/edgeipc/edgeipc/internal/sys"
	"golang.org/x/sys/unix"
)

// ErrPermission is wrapped by errors from calls the process lacks the
// capability or resource limit for.
var ErrPermission = errors.New("sched: permission denied")

// SetThread sets the scheduling policy and priority of the calling OS
// thread. Call runtime.LockOSThread first and keep the goroutine locked:
// Linux schedules threads, and Go moves goroutines between them.
// Real-time policies take priorities 1..99 and need CAP_SYS_NICE or an
// RLIMIT_RTPRIO at least that high; other policies take priority 0.
func SetThread(p Policy, priority int) error {
	if p == FIFO || p == RR {
		if priority < 1 || priority > 99 {
			return fmt.Errorf("sched: priority %d for %v: must be 1..99", priority, p)
		}
	} else if priority != 0 {
		return fmt.Errorf("sched: priority %d for %v: must be 0 (only fifo and rr have priorities)", priority, p)
	}
	if err := sys.SchedSetscheduler(0, int(p), priority); err != nil {
		if errors.Is(err, unix.EPERM) && p != FIFO && p != RR {
			return fmt.Errorf("%w: switching to %v needs CAP_SYS_NICE here (a thread in idle, or with a lowered priority, cannot go back without it)", ErrPermission, p)
		}
		if errors.Is(err, unix.EPERM) {
			var rl unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl)
			return fmt.Errorf("%w: %v priority %d needs CAP_SYS_NICE or RLIMIT_RTPRIO >= %d (it is %d; systemd: LimitRTPRIO=%d or AmbientCapabilities=CAP_SYS_NICE)",
				ErrPermission, p, priority, priority, rl.Cur, priority)
		}
		return err
	}
	return nil
}

// Thread returns the calling thread's policy and priority.
func Thread() (Policy, int, error) {
	p, err := sys.SchedGetscheduler(0)
	if err != nil {
		return 0, 0, err
	}
	prio, err := sys.SchedGetparam(0)
	return Policy(p &^ 0x40000000), prio, err // mask SCHED_RESET_ON_FORK
}

// maxCPUs is CPU_SETSIZE, the CPUs a unix.CPUSet holds on every
// architecture (its words are 64 bits on 64-bit targets, 32 on 32-bit).
const maxCPUs = 1024

// SetAffinity pins the calling OS thread (lock it first) to cpus.
func SetAffinity(cpus ...int) error {
	if len(cpus) == 0 {
		return errors.New("sched: SetAffinity needs at least one CPU")
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= maxCPUs {
			return fmt.Errorf("sched: CPU %d out of range (0 to %d)", c, maxCPUs-1)
		}
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("sched: CPUs %v: none of them is online or allowed (see /sys/devices/system/cpu/online and cgroup cpusets)", cpus)
		}
		return fmt.Errorf("sched: sched_setaffinity: %w", err)
	}
	return nil
}

// Affinity returns the CPUs the calling thread may run on.
func Affinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched: sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// LockMemory locks the process's current and future pages in RAM
// (mlockall(MCL_CURRENT|MCL_FUTURE)), so page faults cannot add latency.
// It needs CAP_IPC_LOCK or an RLIMIT_MEMLOCK larger than the process.
func LockMemory() error {
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOMEM) {
			var rl unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl)
			return fmt.Errorf("%w: mlockall needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK (it is %d bytes; systemd: LimitMEMLOCK=infinity): %v",
				ErrPermission, rl.Cur, err)
		}
		return fmt.Errorf("sched: mlockall: %w", err)
	}
	return nil
}

// UnlockMemory undoes LockMemory.
func UnlockMemory() error { return unix.Munlockall() }
