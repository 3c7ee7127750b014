package sys

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeRange is close_range(2); a variable so that a test can take it
// away, as an older kernel does.
var closeRange = unix.CloseRange

// CloseOnExecFrom marks every open descriptor numbered lowfd or higher
// close-on-exec, so that a program this process starts next inherits none
// of them (only the ones it is handed explicitly, which os.StartProcess
// dup2s into place without the flag). Go opens its own descriptors with
// O_CLOEXEC; this catches the others: ones inherited from the parent (a
// shell, a service manager passing sockets) and ones opened without the
// flag.
//
// It uses close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11) and falls
// back to setting FD_CLOEXEC on each descriptor listed in /proc/self/fd.
func CloseOnExecFrom(lowfd int) error {
	if lowfd < 0 {
		return errors.New("sys: CloseOnExecFrom: negative descriptor")
	}
	err := closeRange(uint(lowfd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return os.NewSyscallError("close_range", err)
	}
	// Older kernel (or qemu-user without close_range): one by one.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close() // its descriptor was close-on-exec: the loop skips it
	if err != nil {
		return err
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < lowfd {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // closed meanwhile, or already marked
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return os.NewSyscallError("fcntl(F_SETFD)", err)
		}
	}
	return nil
}
