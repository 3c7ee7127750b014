package cli

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// errOutputGone ends a streaming command (sub, hz) whose output's reader
// has gone: `edgeipc sub cam | head -1`. It is not a failure: the command
// leaves its ring and exits 0.
var errOutputGone = errors.New("the reader of the output has gone")

// quietEPIPE makes a write to a pipe whose reader has gone fail with EPIPE
// instead of killing the process with SIGPIPE (Go's default for stdout and
// stderr), so that a streaming command can leave its ring (release its
// reader slot) before it exits. Never undone: the process exits soon after.
func quietEPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// outputGone reports whether err is a write to an output whose reader has
// gone.
func outputGone(err error) bool {
	return errors.Is(err, errOutputGone) || errors.Is(err, syscall.EPIPE)
}

// outputClosed reports whether f is a pipe or socket whose reader has gone
// (poll says POLLERR or POLLHUP), without writing to it: a command that has
// nothing to write, such as sub on a silent ring, would otherwise not learn
// it until the next frame. Anything else (a file, a terminal, not a file at
// all) is never closed.
func outputClosed(f *os.File) bool {
	if f == nil {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: 0}}
		if n, err := unix.Poll(p, 0); err == nil && n == 1 {
			closed = p[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0
		}
	})
	return closed
}

// stdoutFile returns the file behind a command's stdout, or nil if it is
// not one (tests write into buffers).
func stdoutFile(w io.Writer) *os.File {
	if o, ok := w.(*outWriter); ok {
		w = o.w
	}
	if c, ok := w.(*ctxWriter); ok {
		w = c.w
	}
	f, _ := w.(*os.File)
	return f
}
