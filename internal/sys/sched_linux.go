package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Scheduling policies (linux/sched.h).
const (
	SchedOther = 0
	SchedFIFO  = 1
	SchedRR    = 2
	SchedBatch = 3
	SchedIdle  = 5
)

// SchedSetscheduler sets the policy and static priority of thread tid (0 =
// the calling thread). x/sys only has sched_setattr, which qemu-user does
// not emulate; sched_setscheduler works everywhere.
func SchedSetscheduler(tid, policy, priority int) error {
	param := struct{ prio int32 }{int32(priority)}
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(policy), uintptr(unsafe.Pointer(&param)))
	runtime.KeepAlive(&param)
	if e != 0 {
		return os.NewSyscallError("sched_setscheduler", e)
	}
	return nil
}

// SchedGetscheduler returns the policy of thread tid (0 = calling thread).
func SchedGetscheduler(tid int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if e != 0 {
		return 0, os.NewSyscallError("sched_getscheduler", e)
	}
	return int(r), nil
}

// SchedGetparam returns the static priority of thread tid.
func SchedGetparam(tid int) (int, error) {
	var param struct{ prio int32 }
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_GETPARAM, uintptr(tid), uintptr(unsafe.Pointer(&param)), 0)
	runtime.KeepAlive(&param)
	if e != 0 {
		return 0, os.NewSyscallError("sched_getparam", e)
	}
	return int(param.prio), nil
}
