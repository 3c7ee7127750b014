package sys

import (
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations. x/sys has no constants for them. The private flag (128)
// is deliberately never used: edgeipc futex words live in memory shared
// between processes, and a private wake does not reach another process.
const (
	futexWait = 0
	futexWake = 1
)

// maxFutexTimeout caps one futex sleep: on 32-bit ARM a timespec's seconds
// are 32 bits, and a timeout of 2^31 s or more would wrap negative (EINVAL).
const maxFutexTimeout = 24 * time.Hour

// FutexWait sleeps while *addr == val, for at most timeout (a timeout <= 0
// waits without limit; one above a day sleeps a day). It returns nil when
// woken or when *addr != val on entry (EAGAIN), and unix.ETIMEDOUT when the
// timeout expired. EINTR is reported as nil: callers always re-check their
// condition (and their own deadline).
func FutexWait(addr *uint32, val uint32, timeout time.Duration) error {
	var tsp *unix.Timespec
	var ts unix.Timespec
	timeout = min(timeout, maxFutexTimeout)
	if timeout > 0 {
		ts = unix.NsecToTimespec(int64(timeout))
		tsp = &ts
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(tsp)), 0, 0)
	runtime.KeepAlive(addr)
	runtime.KeepAlive(tsp)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR:
		return nil
	case unix.ETIMEDOUT:
		return unix.ETIMEDOUT
	default:
		return os.NewSyscallError("futex_wait", e)
	}
}

// FutexWake wakes at most n waiters sleeping on addr (in any process) and
// returns how many were woken.
func FutexWake(addr *uint32, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	if n > 1<<30 {
		n = 1 << 30
	}
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(n), 0, 0, 0)
	runtime.KeepAlive(addr)
	if e != 0 {
		return 0, os.NewSyscallError("futex_wake", e)
	}
	return int(r), nil
}
