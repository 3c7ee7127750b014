package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// HasCapability reports whether the calling OS thread has capability c (a
// unix.CAP_* number) in its effective set (capget for the calling
// thread). Being root is not the same thing: containers drop capabilities
// from root.
//
// Linux keeps capabilities per thread: capset, or prctl(PR_CAPBSET_DROP),
// made on one thread changes that thread alone, and the kernel checks the
// capabilities of the thread that makes a system call. (Go's
// syscall.Setuid and friends change every thread.) Go moves goroutines
// between threads, so a caller that asks about the thread that made, or
// will make, a system call locks its goroutine to its thread
// (runtime.LockOSThread) around both.
func HasCapability(c int) (bool, error) {
	if c < 0 || c >= 64 {
		return false, nil
	}
	// Pid 0 is the calling thread; version 3 fills two words of 32
	// capabilities each.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, os.NewSyscallError("capget", err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0, nil
}
