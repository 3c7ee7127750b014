package runtime

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Which rings and FIFOs a runtime manages.
//
// A runtime holds flock(LOCK_EX) on every ring segment and FIFO it manages,
// on a descriptor of the object itself. The kernel drops the lock when the
// runtime exits, however it exits, so the lock says exactly "a live edgeipc
// runtime manages this". A runtime that finds an object locked by another
// one never removes or recreates it (a ring is attached without the lock;
// a FIFO is refused, since two readers would split its records), and
// remove_on_exit removes only objects this runtime holds the lock on: ones
// it created, or took over from a runtime that has died.
//
// Nothing else in edgeipc takes these locks: readers, writers and the CLI
// are not affected by them.
// Any process with a descriptor of the object can take the lock, though,
// also with a write-only one: a FIFO's writer can. So a FIFO is taken to
// be another runtime's only if some process also reads it (unreadLock).

// tryLock takes flock(LOCK_EX|LOCK_NB) on fd. It reports false, with no
// error, if another open file description holds the lock.
func tryLock(fd int) (bool, error) {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		}
		return false, os.NewSyscallError("flock", err)
	}
}

// lockedElsewhere reports whether the file at path exists and another
// runtime holds its lock. The file is opened read-only and non-blocking
// (a FIFO opens at once and nothing is read from it) without following a
// symlink.
func lockedElsewhere(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	ok, err := tryLock(fd)
	return err == nil && !ok
}

// sameFile reports whether path (not followed) names the file open as fd.
func sameFile(path string, fd int) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
