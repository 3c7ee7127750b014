package sys

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// readFile is replaceable so tests can feed fixtures.
var readFile = os.ReadFile

// statPath names the main thread's stat file rather than /proc/PID/stat:
// qemu-user rewrites a process's view of its own /proc/PID/stat (with a
// start time of its own making), but not the task directory, so both the
// owner and an observer read the kernel's value.
func statPath(pid int) string {
	p := strconv.Itoa(pid)
	return "/proc/" + p + "/task/" + p + "/stat"
}

// ProcStartTime returns the start time of process pid in clock ticks since
// boot (field 22 of /proc/PID/stat), truncated to 32 bits, as the initial
// time namespace sees it (see bootOffsetTicks). Together with the PID it
// identifies a process across PID reuse. It returns an error wrapping
// os.ErrNotExist when the process does not exist.
func ProcStartTime(pid int) (uint32, error) {
	b, err := readFile(statPath(pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces
	// or parentheses: parse from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("sys: malformed /proc/" + strconv.Itoa(pid) + "/stat")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); start time is field 22 → index 19.
	if len(fields) < 20 {
		return 0, errors.New("sys: short /proc/" + strconv.Itoa(pid) + "/stat")
	}
	v, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, errors.New("sys: bad start time in /proc/" + strconv.Itoa(pid) + "/stat")
	}
	return uint32(v) - bootOffsetTicks(), nil
}

// userHZ is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// architecture Linux runs edgeipc on.
const userHZ = 100

// bootOffsetTicks returns the boottime offset of this process's time
// namespace in clock ticks (0 outside one). The kernel adds the reader's
// offset to the start times in /proc/PID/stat, so a process in a time
// namespace (unshare --time, a container restored by CRIU) and one
// outside read different start times for the same process, and each took
// the other's holders for dead processes whose PID had been reused.
// Start times are stored and compared with the reader's offset taken off:
// the value the initial namespace sees, give or take the one tick the
// kernel's rounding of an offset that is not a whole tick can add.
var bootOffsetTicks = sync.OnceValue(func() uint32 {
	b, err := readFile("/proc/self/timens_offsets")
	if err != nil {
		return 0
	}
	return parseBootOffset(b)
})

// parseBootOffset reads the boottime line of /proc/self/timens_offsets
// ("boottime <seconds> <nanoseconds>") as clock ticks, rounded down.
func parseBootOffset(b []byte) uint32 {
	for _, l := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(l)
		if len(f) != 3 || string(f[0]) != "boottime" {
			continue
		}
		sec, err1 := strconv.ParseInt(string(f[1]), 10, 64)
		nsec, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0
		}
		const tick = 1e9 / userHZ
		ns := sec*1e9 + nsec
		t := ns / tick
		if ns%tick < 0 {
			t-- // rounded down, as the kernel's division of the sum is
		}
		return uint32(t)
	}
	return 0
}

// ProcessAlive reports whether the process identified by pid and start (as
// returned by ProcStartTime, to within a tick) still exists. A start of 0 matches any process
// with that pid. Zombies count as dead (a process whose main thread alone
// has exited, with pthread_exit, is not one).
//
// When /proc does not show the process (mounted with hidepid=1 or 2, which
// hides other users' processes), the kernel is asked whether the PID exists
// at all: a process that exists counts as alive, since its start time
// cannot be checked. Taking a live holder for dead would hand a ring a
// second writer.
func ProcessAlive(pid int, start uint32) bool {
	if pid <= 0 {
		return false
	}
	b, err := readFile(statPath(pid))
	if err != nil {
		return unix.Kill(pid, 0) != unix.ESRCH
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 {
		return false
	}
	if fields[0][0] == 'X' {
		return false
	}
	// A zombie is dead, but the main thread of a live process shows Z
	// too once it has called pthread_exit (a C or Python holder whose
	// other threads go on): num_threads (field 20) tells them apart, 1 for
	// a process that has exited, the live threads plus the main one else.
	if fields[0][0] == 'Z' && string(fields[17]) == "1" {
		return false
	}
	if start == 0 {
		return true
	}
	v, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return false
	}
	// Within a tick: the holder and this process may see the start
	// through time namespaces whose offsets are not whole ticks (see
	// bootOffsetTicks). A new process with a reused PID started within a
	// tick of the dead holder is taken for it: the safe mistake, which
	// keeps the entry held until that process exits.
	d := uint32(v) - bootOffsetTicks() - start
	return d == 0 || d == 1 || d == ^uint32(0)
}

// SelfStartTime returns ProcStartTime(os.Getpid()), computed once.
var SelfStartTime = sync.OnceValue(func() uint32 {
	s, _ := ProcStartTime(os.Getpid())
	return s
})

// SelfPidNS returns the low 32 bits of the inode of this process's PID
// namespace (from /proc/self/ns/pid), or 0 if it cannot be read. Two
// processes can check each other's liveness by PID only when these match.
var SelfPidNS = sync.OnceValue(func() uint32 {
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	// "pid:[4026531836]"
	i := bytes.IndexByte([]byte(l), '[')
	j := bytes.IndexByte([]byte(l), ']')
	if i < 0 || j <= i {
		return 0
	}
	v, err := strconv.ParseUint(l[i+1:j], 10, 64)
	if err != nil {
		return 0
	}
	return uint32(v)
})
