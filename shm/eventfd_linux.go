package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// Eventfd is a Linux eventfd used as a wake-up for readers that live in a
// netpoller loop: a goroutine waiting on it parks without holding an OS
// thread, and waits honour contexts and deadlines.
//
// A writer signals the eventfds added with Writer.AddNotifier whenever a
// reader using ReaderOptions.Notifier is asleep. To share one between
// processes, pass File() to the child (exec.Cmd.ExtraFiles) or over a Unix
// socket, and rebuild it with EventfdFromFile.
//
// One goroutine at a time may wait on an Eventfd (a signal wakes one
// waiter, and a read deadline belongs to the file, not to a waiter): a
// second concurrent Wait returns an error wrapping ErrInvalid, and a Reader
// refuses a Notifier that another open Reader uses. Give every waiting
// Reader its own Eventfd and add each to the writer.
type Eventfd struct {
	f       *os.File
	rc      syscall.RawConn
	closed  atomic.Bool
	waiting atomic.Bool  // a goroutine is in Wait
	readers atomic.Int32 // open Readers using it as their Notifier
	buf     [8]byte
	one     [8]byte
	rerr    error
	readFn  func(fd uintptr) bool
	sigFn   func(fd uintptr) bool
	cw      sys.CtxWake // a context's cancellation ends the read
}

// NewEventfd creates an eventfd (EFD_NONBLOCK|EFD_CLOEXEC).
func NewEventfd() (*Eventfd, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, &OpError{"eventfd", "", os.NewSyscallError("eventfd2", err)}
	}
	return newEventfd(os.NewFile(uintptr(fd), "eventfd"))
}

// EventfdFromFile adopts an eventfd inherited from or sent by another
// process. It takes ownership of f. It makes the eventfd non-blocking
// (O_NONBLOCK, for the netpoller): the flag belongs to the open file
// description, which every copy of f shares, in other processes too, so a
// program that reads the same eventfd with blocking reads gets EAGAIN
// from then on; give it an eventfd of its own. A descriptor that is not an
// eventfd is refused (ErrInvalid) and left as it was.
func EventfdFromFile(f *os.File) (*Eventfd, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, &OpError{"eventfd", "", err}
	}
	nfd := -1
	var derr error
	rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	f.Close()
	if derr != nil {
		return nil, &OpError{"eventfd", "", os.NewSyscallError("fcntl", derr)}
	}
	// Anything else (a pipe, /dev/null, a regular file) would read as
	// "signalled" at once, and a reader would spin on it. Checked before
	// O_NONBLOCK is set: the flag belongs to the open file description,
	// which the refused file shares with its other holders.
	if what := notEventfd(nfd); what != "" {
		unix.Close(nfd)
		return nil, &OpError{"eventfd", "", fmt.Errorf("%w: descriptor is %s, not an eventfd", ErrInvalid, what)}
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, &OpError{"eventfd", "", os.NewSyscallError("fcntl", err)}
	}
	return newEventfd(os.NewFile(uintptr(nfd), "eventfd"))
}

// fdLinkDir is where a descriptor's kind is read (a variable so that a
// test can take /proc away).
var fdLinkDir = "/proc/self/fd/"

// notEventfd describes what the non-blocking descriptor fd is if it is not
// an eventfd, and returns "" if it is. /proc names the kind; without /proc
// (a bare container) the descriptor must be an anonymous inode that
// accepts an 8-byte write of 0, which only an eventfd does (for an eventfd
// it adds nothing).
func notEventfd(fd int) string {
	if l, err := os.Readlink(fdLinkDir + strconv.Itoa(fd)); err == nil {
		if l != "anon_inode:[eventfd]" {
			return l
		}
		return ""
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || uint32(fs.Type) != unix.ANON_INODE_FS_MAGIC {
		return fmt.Sprintf("not an anonymous inode (file system type %#x)", uint32(fs.Type))
	}
	var zero [8]byte
	if n, err := unix.Write(fd, zero[:]); err != nil || n != 8 {
		return fmt.Sprintf("an anonymous inode that refuses an eventfd write (%v)", err)
	}
	return ""
}

func newEventfd(f *os.File) (*Eventfd, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &OpError{"eventfd", "", err}
	}
	e := &Eventfd{f: f, rc: rc}
	e.cw.Interrupt = sys.ReadDeadlineWake(f)
	e.one[0] = 1 // little-endian uint64 1
	e.readFn = func(fd uintptr) bool {
		_, err := unix.Read(int(fd), e.buf[:])
		if err == unix.EAGAIN {
			return false
		}
		e.rerr = err
		return true
	}
	e.sigFn = func(fd uintptr) bool {
		unix.Write(int(fd), e.one[:]) // EAGAIN only if the counter is saturated: still signalled
		return true
	}
	return e, nil
}

// File returns a duplicate descriptor for handing to another process.
func (e *Eventfd) File() (*os.File, error) {
	var nfd int
	var derr error
	if err := e.rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	return os.NewFile(uintptr(nfd), "eventfd"), nil
}

// Signal adds one to the counter, waking a waiter. It never blocks.
func (e *Eventfd) Signal() error {
	if e.closed.Load() {
		return ErrClosed
	}
	return e.rc.Write(e.sigFn)
}

// TryWait consumes the counter if it is non-zero and returns ErrWouldBlock
// otherwise.
func (e *Eventfd) TryWait() error {
	if e.closed.Load() {
		return ErrClosed
	}
	// Its own buffer: e.buf belongs to Wait, which may run concurrently.
	var r struct {
		buf [8]byte
		got bool
	}
	err := e.rc.Control(func(fd uintptr) {
		_, err := unix.Read(int(fd), r.buf[:])
		r.got = err == nil
	})
	if err != nil {
		return err
	}
	if !r.got {
		return ErrWouldBlock
	}
	return nil
}

// Wait blocks until the counter is non-zero, then resets it. It returns
// an error matching ctx.Err() once ctx is done, and ErrClosed after Close.
func (e *Eventfd) Wait(ctx context.Context) error { return e.wait(waitSpec{ctx: ctx}) }

// WaitDeadline is Wait with a deadline: after t it returns an error
// matching os.ErrDeadlineExceeded.
func (e *Eventfd) WaitDeadline(t time.Time) error { return e.wait(waitSpec{deadline: t}) }

func (e *Eventfd) wait(w waitSpec) error { return e.waitMax(w, 0) }

// waitMax is wait that also returns nil after max (if > 0) without a
// signal: the caller re-checks its condition and may wait again.
func (e *Eventfd) waitMax(w waitSpec, max time.Duration) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if !e.waiting.CompareAndSwap(false, true) {
		return &OpError{"eventfd wait", "", fmt.Errorf("%w: another goroutine is waiting on this eventfd; give each waiter its own", ErrInvalid)}
	}
	defer e.waiting.Store(false)
	// Begin (or Settle) before the deadline is set, the deadline before
	// ctx is checked: see sys.ReadDeadlineWake.
	if w.ctx != nil && w.ctx.Done() != nil {
		e.cw.Begin(w.ctx)
		defer e.cw.End()
	} else {
		e.cw.Settle()
	}
	dl := w.deadline
	if w.ctx != nil {
		dl, _ = w.ctx.Deadline()
	}
	short := false // the deadline is max, not the caller's
	if max > 0 {
		if m := time.Now().Add(max); dl.IsZero() || m.Before(dl) {
			dl, short = m, true
		}
	}
	e.f.SetReadDeadline(dl)
	defer e.f.SetReadDeadline(time.Time{})
	if w.ctx != nil {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	e.rerr = nil
	err := e.rc.Read(e.readFn)
	if err == nil {
		err = e.rerr
	}
	if err != nil {
		if e.closed.Load() || errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if w.ctx != nil && w.ctx.Err() != nil {
				return w.ctx.Err()
			}
			if short {
				return nil
			}
			if w.ctx != nil {
				return context.DeadlineExceeded
			}
		}
		return err
	}
	return nil
}

func (e *Eventfd) isClosed() bool { return e.closed.Load() }

// useFor makes e the notifier of one Reader; false if another open Reader
// has it. done gives it back.
func (e *Eventfd) useFor() bool { return e.readers.CompareAndSwap(0, 1) }
func (e *Eventfd) done()        { e.readers.Store(0) }

// Close closes the eventfd, unblocking waiters with ErrClosed.
func (e *Eventfd) Close() error {
	if e.closed.Swap(true) {
		return ErrClosed
	}
	err := e.f.Close() // ends a read in progress
	e.cw.Close()
	return err
}
