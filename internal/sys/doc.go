// Package sys is the one place in edgeipc that issues raw system calls that
// golang.org/x/sys does not wrap: futex, POSIX message queues, eventfd
// helpers and process identity; and the process's one shared inotify
// instance (WatchInode).
//
// Each wrapper validates its input, retries EINTR where the call is
// restartable, keeps its pointer arguments alive with runtime.KeepAlive and
// wraps errno values with os.NewSyscallError so callers can match them with
// errors.Is.
//
// Only Linux is supported; on other systems the exported functions return an
// error wrapping ErrNotSupported.
package sys
