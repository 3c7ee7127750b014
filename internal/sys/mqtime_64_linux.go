//go:build linux && !(arm || 386 || mips || mipsle)

package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On 64-bit ports the mq syscalls take struct __kernel_timespec directly:
// deadlines hold until the year 292277026596.

func mqTimedSend(fd uintptr, p unsafe.Pointer, n int, prio uintptr, ts *timespec64) (uintptr, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(p), uintptr(n), prio, uintptr(unsafe.Pointer(ts)), 0)
	return r, e
}

func mqTimedReceive(fd uintptr, p unsafe.Pointer, n int, prio *uint32, ts *timespec64) (uintptr, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, fd, uintptr(p), uintptr(n),
		uintptr(unsafe.Pointer(prio)), uintptr(unsafe.Pointer(ts)), 0)
	return r, e
}

// mqTime64Missing reports whether the kernel lacked the *_time64 mq
// syscalls; 64-bit ports never need them.
func mqTime64Missing() bool { return false }
