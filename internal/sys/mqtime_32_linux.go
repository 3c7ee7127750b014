//go:build linux && (arm || 386 || mips || mipsle)

package sys

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On 32-bit ports the original mq_timedsend/mq_timedreceive take a
// timespec with a 32-bit time_t, which cannot name a time after
// 2038-01-19T03:14:07Z: from then on every deadline would lie in the past.
// A deadline goes through the *_time64 syscalls (Linux 5.1, every 32-bit
// port), which take struct __kernel_timespec; only a kernel without them
// (ENOSYS, remembered) gets the old call, with the deadline clamped to
// 2038. Calls without a deadline use the old syscalls, which every kernel
// has and which then see no time at all.

// noTime64 is set once a *_time64 call returned ENOSYS.
var noTime64 atomic.Bool

func mqTimedSend(fd uintptr, p unsafe.Pointer, n int, prio uintptr, ts *timespec64) (uintptr, unix.Errno) {
	if ts != nil && !noTime64.Load() {
		r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND_TIME64, fd, uintptr(p), uintptr(n), prio, uintptr(unsafe.Pointer(ts)), 0)
		if e != unix.ENOSYS {
			return r, e
		}
		noTime64.Store(true)
	}
	var old unix.Timespec
	r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(p), uintptr(n), prio,
		uintptr(unsafe.Pointer(timespec32(ts, &old))), 0)
	return r, e
}

func mqTimedReceive(fd uintptr, p unsafe.Pointer, n int, prio *uint32, ts *timespec64) (uintptr, unix.Errno) {
	if ts != nil && !noTime64.Load() {
		r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE_TIME64, fd, uintptr(p), uintptr(n),
			uintptr(unsafe.Pointer(prio)), uintptr(unsafe.Pointer(ts)), 0)
		if e != unix.ENOSYS {
			return r, e
		}
		noTime64.Store(true)
	}
	var old unix.Timespec
	r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, fd, uintptr(p), uintptr(n),
		uintptr(unsafe.Pointer(prio)), uintptr(unsafe.Pointer(timespec32(ts, &old))), 0)
	return r, e
}

// timespec32 converts ts for the old syscalls: clamped to the last second
// a 32-bit time_t holds; nil stays nil.
func timespec32(ts *timespec64, old *unix.Timespec) *unix.Timespec {
	if ts == nil {
		return nil
	}
	const maxSec = 1<<31 - 1
	if ts.Sec > maxSec {
		old.Sec, old.Nsec = maxSec, 0
	} else {
		old.Sec, old.Nsec = int32(ts.Sec), int32(ts.Nsec)
	}
	return old
}

// mqTime64Missing reports whether the kernel lacked the *_time64 mq
// syscalls (only known after a call with a deadline).
func mqTime64Missing() bool { return noTime64.Load() }
