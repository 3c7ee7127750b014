package sched

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeipc/edgeipc/internal/sys"
	"golang.org/x/sys/unix"
)

// SetThread sets the scheduling policy and priority of the calling OS
// thread, which Linux schedules on its own: other threads of the process,
// and so other goroutines, keep theirs. It wires the calling goroutine to
// its thread for the rest of the goroutine's life (runtime.LockOSThread,
// never undone), so that the goroutine keeps the policy and the thread
// exits with it instead of going back to Go's pool to run other goroutines.
// Real-time policies take priorities 1..99 and need CAP_SYS_NICE or an
// RLIMIT_RTPRIO at least that high, and are refused all the same by a
// seccomp filter (systemd's RestrictRealtime=yes) or a cpu cgroup without
// real-time runtime; the error says which. Other policies take priority 0. A
// thread in idle leaves it only with CAP_SYS_NICE or an RLIMIT_NICE that
// allows its nice value (20 for nice 0).
func SetThread(p Policy, priority int) error {
	switch p {
	case Other, FIFO, RR, Batch, Idle:
	default:
		// SCHED_DEADLINE (6) takes a runtime, deadline and period that
		// only sched_setattr carries: sched_setscheduler says EINVAL.
		return fmt.Errorf("sched: unknown policy %v: use other, fifo, rr, batch or idle", p)
	}
	if p == FIFO || p == RR {
		if priority < 1 || priority > 99 {
			return fmt.Errorf("sched: priority %d for %v: must be 1..99", priority, p)
		}
	} else if priority != 0 {
		return fmt.Errorf("sched: priority %d for %v: must be 0 (only fifo and rr have priorities)", priority, p)
	}
	// Before the call: threads Go starts from now on come from its
	// template thread, not from this one with its new policy.
	runtime.LockOSThread()
	// Keep SCHED_RESET_ON_FORK as it is (systemd's
	// CPUSchedulingResetOnFork= sets it): only a privileged thread may
	// clear it, and the policy argument without it would.
	cur, err := sys.SchedGetscheduler(0)
	if err != nil {
		return err
	}
	if err := sys.SchedSetscheduler(0, int(p)|cur&resetOnFork, priority); err != nil {
		if errors.Is(err, unix.EPERM) && p != FIFO && p != RR {
			// The kernel asks a privilege for these only of a thread
			// that leaves idle; any other refusal comes from a filter.
			if need, have := leaveIdleLimit(); cur&^resetOnFork == sys.SchedIdle && p != Idle && have < need {
				return fmt.Errorf("%w: leaving idle for %v needs CAP_SYS_NICE or RLIMIT_NICE >= %d, the thread's nice value (it is %d; systemd: LimitNICE=%d)", ErrPermission, p, need, have, need)
			}
			return fmt.Errorf("%w: %v refused, which the kernel grants any thread that does not leave idle (this one runs %v): %s",
				ErrPermission, p, Policy(cur&^resetOnFork), filterCause())
		}
		if errors.Is(err, unix.EPERM) {
			return rtRefused(p, priority)
		}
		return err
	}
	return nil
}

// rtRefused explains an EPERM from switching to a real-time policy, on
// the thread that was refused (SetThread holds it). The kernel grants one
// for that thread's CAP_SYS_NICE (in the initial user namespace) or an
// RLIMIT_RTPRIO that high, and then still refuses it when the thread's cpu
// cgroup has no real-time runtime (CONFIG_RT_GROUP_SCHED).
func rtRefused(p Policy, priority int) error {
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl)
	capable, _ := sys.HasCapability(unix.CAP_SYS_NICE)
	// An idle thread also needs the RLIMIT_NICE that leaving idle for
	// other takes, whatever its RLIMIT_RTPRIO.
	if cur, err := sys.SchedGetscheduler(0); err == nil && cur&^resetOnFork == sys.SchedIdle && !(capable && !inUserNamespace()) {
		if need, have := leaveIdleLimit(); have < need {
			rt := ""
			if rl.Cur < uint64(priority) {
				rt = fmt.Sprintf(", and %v priority %d needs RLIMIT_RTPRIO >= %d as well (it is %d; systemd: LimitRTPRIO=%d)", p, priority, priority, rl.Cur, priority)
			}
			return fmt.Errorf("%w: %v priority %d refused: this thread runs idle, and leaving idle needs CAP_SYS_NICE or RLIMIT_NICE >= %d, the thread's nice value (it is %d; systemd: LimitNICE=%d)%s",
				ErrPermission, p, priority, need, have, need, rt)
		}
	}
	switch {
	case rl.Cur >= uint64(priority) || capable && !inUserNamespace():
		return rtRefusedAllowed(p, priority, rl.Cur)
	case capable:
		return fmt.Errorf("%w: %v priority %d needs CAP_SYS_NICE in the host's user namespace, and this process has it only in its own (a rootless container), or RLIMIT_RTPRIO >= %d (it is %d; podman/docker: --ulimit rtprio=%d)",
			ErrPermission, p, priority, priority, rl.Cur, priority)
	}
	return fmt.Errorf("%w: %v priority %d needs CAP_SYS_NICE or RLIMIT_RTPRIO >= %d (it is %d; systemd: LimitRTPRIO=%d or AmbientCapabilities=CAP_SYS_NICE)",
		ErrPermission, p, priority, priority, rl.Cur, priority)
}

// rtRefusedAllowed explains an EPERM for a real-time policy that the
// thread's capability or RLIMIT_RTPRIO allows. The kernel then refuses it
// when the thread's cpu cgroup has no real-time runtime
// (CONFIG_RT_GROUP_SCHED); a seccomp filter (systemd's
// RestrictRealtime=yes, a container's profile) or a security module
// refuses it before the kernel looks. The error blamed the cgroup alone,
// and said its cpu.rt_runtime_us was 0 without reading it.
func rtRefusedAllowed(p Policy, priority int, rtprio uint64) error {
	cg := cpuCgroup()
	rt, file := cgroupRTRuntime()
	cgroupFix := fmt.Sprintf("its cpu cgroup %s has no real-time runtime (kernel built with CONFIG_RT_GROUP_SCHED; cpu.rt_runtime_us is 0 there): give the cgroup and its parents some (docker run --cpu-rt-runtime=950000; cgroup v1: write cpu.rt_runtime_us) or run it in the root cpu cgroup", cg)
	var causes []string
	if file != "" && rt == 0 {
		causes = append(causes, cgroupFix)
	}
	if seccompFiltered() {
		causes = append(causes, "this thread runs under a seccomp filter, which may refuse real-time policies (systemd RestrictRealtime=yes or SystemCallFilter=, a container's seccomp profile): lift that for this program (systemd: RestrictRealtime=no)")
	}
	if file == "" {
		causes = append(causes, cgroupFix)
	}
	if len(causes) == 0 {
		causes = append(causes, fmt.Sprintf("not its cpu cgroup %s (%s is %d): %s", cg, file, rt, filterCause()))
	}
	return fmt.Errorf("%w: %v priority %d refused although this thread has CAP_SYS_NICE or RLIMIT_RTPRIO %d: %s",
		ErrPermission, p, priority, rtprio, strings.Join(causes, "; or "))
}

// cgroupRTRuntime returns the real-time runtime, in microseconds, that
// the kernel grants the calling thread's cpu cgroup, and the file it read
// it from: -1 (unlimited) from /proc/sys/kernel/sched_rt_runtime_us when
// the kernel enforces no real-time runtime at all, else the cgroup's
// cpu.rt_runtime_us. The file is "" where neither says (a kernel without
// CONFIG_RT_GROUP_SCHED, a container that sees its host's cgroup paths).
func cgroupRTRuntime() (us int64, file string) {
	const global = "/proc/sys/kernel/sched_rt_runtime_us"
	if b, err := os.ReadFile(global); err == nil && strings.TrimSpace(string(b)) == "-1" {
		return -1, global
	}
	path, v1 := cpuCgroupPath()
	if path == "" {
		return 0, ""
	}
	tries := []string{"/sys/fs/cgroup" + path + "/cpu.rt_runtime_us", "/sys/fs/cgroup/unified" + path + "/cpu.rt_runtime_us"}
	if v1 {
		tries = []string{"/sys/fs/cgroup/cpu" + path + "/cpu.rt_runtime_us", "/sys/fs/cgroup/cpu,cpuacct" + path + "/cpu.rt_runtime_us"}
	}
	for _, f := range tries {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return n, f
		}
	}
	return 0, ""
}

// filterCause names what refuses a system call that the kernel itself
// would grant: a seccomp filter, if one runs on the thread, else a
// security module.
func filterCause() string {
	if seccompFiltered() {
		return "this thread runs under a seccomp filter, which refuses it unless a security module does (systemd SystemCallFilter=, a container's seccomp profile): lift that for this program"
	}
	return "a security module (SELinux, AppArmor) refuses it; look for the denial in the audit log (journalctl -k)"
}

// seccompFiltered reports whether a seccomp filter runs on the calling
// thread's system calls (Seccomp: 2 in its status).
func seccompFiltered() bool {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			return strings.TrimSpace(v) == "2"
		}
	}
	return false
}

// leaveIdleLimit returns the RLIMIT_NICE that the kernel asks of an idle
// thread before it lets it leave idle without CAP_SYS_NICE (20 minus the
// thread's nice value, what getpriority returns), and the limit it has.
func leaveIdleLimit() (need, have uint64) {
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0) // this thread
	if err != nil {
		prio = 20 // nice 0
	}
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NICE, &rl)
	return uint64(prio), rl.Cur
}

// inUserNamespace reports whether this process runs in a user namespace
// other than the initial one, whose uid_map maps every uid to itself.
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// cpuCgroup names the calling thread's cpu cgroup (v1 cpu controller, else
// the v2 group) as /proc shows it, or "(unknown)".
func cpuCgroup() string {
	if path, _ := cpuCgroupPath(); path != "" {
		return path
	}
	return "(unknown)"
}

// cpuCgroupPath returns the calling thread's cpu cgroup as /proc shows it,
// and whether it is a group of the v1 cpu controller (else of v2), or "".
func cpuCgroupPath() (path string, v1 bool) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "", false
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			path = parts[2]
		}
		if slices.Contains(strings.Split(parts[1], ","), "cpu") {
			return parts[2], true
		}
	}
	return path, false
}

// Thread returns the calling thread's policy and priority.
func Thread() (Policy, int, error) {
	p, err := sys.SchedGetscheduler(0)
	if err != nil {
		return 0, 0, err
	}
	prio, err := sys.SchedGetparam(0)
	return Policy(p &^ resetOnFork), prio, err
}

// resetOnFork is SCHED_RESET_ON_FORK, ORed into a policy: children and
// threads the thread creates start in SCHED_OTHER.
const resetOnFork = 0x40000000

// maxCPUs is CPU_SETSIZE, the CPUs a unix.CPUSet holds on every
// architecture (its words are 64 bits on 64-bit targets, 32 on 32-bit).
const maxCPUs = 1024

// SetAffinity pins the calling OS thread to cpus. Like SetThread it wires
// the calling goroutine to that thread for the rest of its life. A CPU
// that is offline, absent or outside the process's cpuset is an error, and
// the affinity is left as it was (the kernel alone would drop such CPUs
// from the mask without a word). A thread needs no privilege to set its
// own affinity; a seccomp filter (systemd SystemCallFilter=~@resources) or
// a security module that refuses it makes an error wrapping ErrPermission
// that names the filter.
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
	runtime.LockOSThread()
	// Reading a mask fails (EINVAL) where the kernel has more than
	// maxCPUs CPUs: the result cannot be checked there.
	var old unix.CPUSet
	oldErr := unix.SchedGetaffinity(0, &old)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return unavailableCPUs(cpus, cpus)
		}
		if errors.Is(err, unix.EPERM) {
			// The kernel asks no capability of a thread that sets its
			// own affinity (CAP_SYS_NICE is for other users' threads),
			// and a cpuset drops CPUs or says EINVAL: a filter refused.
			return fmt.Errorf("%w: pinning this thread to CPUs %v refused (sched_setaffinity: %w), which the kernel grants any thread for itself (systemd's SystemCallFilter=~@resources refuses it): %s",
				ErrPermission, cpus, err, filterCause())
		}
		return fmt.Errorf("sched: sched_setaffinity: %w", err)
	}
	// The kernel keeps the CPUs of the mask that are online and in the
	// thread's cpuset and drops the others without an error.
	var got unix.CPUSet
	if oldErr != nil || unix.SchedGetaffinity(0, &got) != nil {
		return nil
	}
	var missing []int
	for _, c := range cpus {
		if !got.IsSet(c) && !slices.Contains(missing, c) {
			missing = append(missing, c)
		}
	}
	if missing != nil {
		unix.SchedSetaffinity(0, &old)
		return unavailableCPUs(cpus, missing)
	}
	return nil
}

// unavailableCPUs is the error for CPUs that are offline, absent or not
// in the process's cpuset.
func unavailableCPUs(cpus, missing []int) error {
	online := "?"
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		online = strings.TrimSpace(string(b))
	}
	return fmt.Errorf("sched: CPUs %v: %v not online or not in this thread's cpuset, affinity unchanged (online: %s; cpuset: %s; the cpuset comes from docker --cpuset-cpus, systemd AllowedCPUs=, the cgroup's cpuset.cpus)",
		cpus, missing, online, cpusetCPUs())
}

// cpusetCPUs names the calling thread's cpuset cgroup and the CPUs it
// allows (cpuset.effective_cpus in v1, cpuset.cpus.effective in v2), or
// says it could not read them.
func cpusetCPUs() string {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "(unknown)"
	}
	var tries []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "cpuset") {
			tries = append([]string{"/sys/fs/cgroup/cpuset" + parts[2] + "/cpuset.effective_cpus"}, tries...)
		} else if parts[1] == "" {
			tries = append(tries, "/sys/fs/cgroup"+parts[2]+"/cpuset.cpus.effective", "/sys/fs/cgroup/unified"+parts[2]+"/cpuset.cpus.effective")
		}
	}
	for _, f := range tries {
		if b, err := os.ReadFile(f); err == nil {
			return fmt.Sprintf("%s allows %s", filepath.Dir(f), strings.TrimSpace(string(b)))
		}
	}
	return "(unknown)"
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
// It needs CAP_IPC_LOCK (in the host's user namespace: in a rootless
// container only the limit counts) or an RLIMIT_MEMLOCK larger than the
// process's address space (a Go process reserves hundreds of megabytes it
// has not touched yet). Give it CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK: under
// a finite one every later mapping counts against the limit, and the Go
// runtime dies ("out of memory") when its heap outgrows it.
//
// Locking makes every accessible page the process has mapped resident,
// touched or not: a small Go program on linux/amd64 went from 2 MB to 42 MB
// resident, 32 MB of it runtime metadata that Go maps but touches
// sparsely (measured with VmRSS before and after). Count on that on a
// board with little RAM.
func LockMemory() error {
	// The kernel checks CAP_IPC_LOCK of the thread that calls mlockall,
	// and capabilities are per thread: explain the refusal from the same
	// thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOMEM) {
			var rl unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl)
			// The kernel counts CAP_IPC_LOCK only in the initial user
			// namespace, as it does CAP_SYS_NICE.
			if capable, _ := sys.HasCapability(unix.CAP_IPC_LOCK); capable && inUserNamespace() {
				return fmt.Errorf("%w: mlockall needs CAP_IPC_LOCK in the host's user namespace, and this process has it only in its own (a rootless container), or a larger RLIMIT_MEMLOCK (it is %d bytes; podman/docker: --ulimit memlock=-1): %v",
					ErrPermission, rl.Cur, err)
			}
			return fmt.Errorf("%w: mlockall needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK (it is %d bytes; systemd: LimitMEMLOCK=infinity): %v",
				ErrPermission, rl.Cur, err)
		}
		return fmt.Errorf("sched: mlockall: %w", err)
	}
	return nil
}

// UnlockMemory undoes LockMemory.
func UnlockMemory() error { return unix.Munlockall() }
