package sched

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// Ticker fires every period on CLOCK_MONOTONIC using a timerfd, and counts
// overruns: periods that elapsed while nobody waited. Ticks fall at the
// start plus whole periods (the kernel's absolute deadlines: no drift).
// CLOCK_MONOTONIC does not jump with the wall clock and stops while the
// system is suspended: time spent suspended is neither ticks nor overruns.
//
// Where a wait sleeps depends on the calling thread's policy. On a
// real-time thread (fifo or rr, as SetThread sets it, or deadline) Wait and
// WaitDeadline sleep in the kernel, in ppoll on that thread, so the
// timer's expiry wakes the thread itself at its priority. Any other
// goroutine parks in the netpoller and holds no OS thread; a thread of
// normal priority wakes it, which CPU load from other processes can delay
// past the next tick. Both honour contexts, deadlines and Close, and
// after either a goroutine needs a free P of Go's scheduler to run (see
// the package documentation).
//
// A Ticker is for one goroutine; Period, Reset, Stats and Close may be
// called from any.
type Ticker struct {
	f        *os.File
	rc       syscall.RawConn
	period   atomic.Int64  // a time.Duration: Reset changes it from any goroutine
	ticks    atomic.Uint64 // Stats reads them from any goroutine
	overruns atomic.Uint64
	buf      [8]byte
	n        int
	rerr     error
	readFn   func(fd uintptr) bool
	tryFn    func(fd uintptr) // readFn for TryWait: ready says whether it read
	ready    bool
	cw       sys.CtxWake // a context's cancellation ends the read
	closed   atomic.Bool

	// A wait in the kernel (a real-time thread): ppoll on the timerfd
	// and wake, an eventfd that Close and a context's cancellation
	// write. wake is used only inside rc.Control, which keeps Close from
	// closing it under a waiter.
	wake   int
	wbuf   [8]byte
	pfds   [2]unix.PollFd
	ts     unix.Timespec
	kctx   context.Context // the wait's context, nil for WaitDeadline
	kdl    time.Time       // the wait's deadline, zero for none
	kerr   error
	pollFn func(fd uintptr)
	// closes wake when a Ticker is collected without Close, as os.File
	// does the timerfd
	wakeCleanup runtime.Cleanup

	// Reset's state, under resetMu: the new schedule, the timerfd's
	// count it reads (a buffer of its own, for a Reset beside a wait)
	// and the error of its callback, resetFn, under rc.Control.
	resetMu   sync.Mutex
	resetSpec unix.ItimerSpec
	resetBuf  [8]byte
	resetErr  error
	resetFn   func(fd uintptr)
}

// wakeOne is the eventfd increment that ends a wait in the kernel.
var wakeOne = func() (b [8]byte) { binary.NativeEndian.PutUint64(b[:], 1); return }()

// NewTicker starts a ticker whose first tick is one period from now. On
// 32-bit targets a period is at most 2^31-1 seconds (about 68 years).
func NewTicker(period time.Duration) (*Ticker, error) {
	ts, err := periodTimespec(period)
	if err != nil {
		return nil, err
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	spec := unix.ItimerSpec{Interval: ts, Value: ts}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("timerfd_settime", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wake)
		return nil, err
	}
	t := &Ticker{f: f, rc: rc, wake: wake}
	t.period.Store(int64(period))
	t.resetFn = t.resetTimer
	moveDeadline := sys.ReadDeadlineWake(f)
	t.cw.Interrupt = func() {
		moveDeadline()
		unix.Write(t.wake, wakeOne[:]) // CtxWake.Close waits out this callback before Close closes wake
	}
	t.pollFn = t.pollKernel
	t.wakeCleanup = runtime.AddCleanup(t, func(fd int) { unix.Close(fd) }, wake)
	t.readFn = func(fd uintptr) bool {
		n, err := unix.Read(int(fd), t.buf[:])
		if err == unix.EAGAIN {
			return false
		}
		t.n, t.rerr = n, err
		return true
	}
	t.tryFn = func(fd uintptr) { t.ready = t.readFn(fd) }
	return t, nil
}

// periodTimespec checks a ticker's period and returns it as the
// timerfd takes it.
func periodTimespec(period time.Duration) (unix.Timespec, error) {
	if period <= 0 {
		return unix.Timespec{}, fmt.Errorf("sched: ticker period %v must be positive", period)
	}
	ts := unix.NsecToTimespec(int64(period))
	if ts.Nano() != int64(period) { // 32-bit targets: tv_sec is 32 bits
		return unix.Timespec{}, fmt.Errorf("sched: ticker period %v is longer than this system's timers take (%v)", period, time.Duration(math.MaxInt32)*time.Second)
	}
	return ts, nil
}

// Period returns the ticker's period, as NewTicker or the last Reset set
// it.
func (t *Ticker) Period() time.Duration { return time.Duration(t.period.Load()) }

// Reset gives the ticker a new period and starts its schedule again, as
// time.Ticker.Reset does: the next tick is one period from now, and ticks
// fall at whole periods after it. A period that NewTicker would refuse
// (not positive, or too long for this system) is an error, as there, and
// leaves the ticker as it was; after Close, Reset returns ErrClosed.
//
// Ticks that were due and that no wait had taken are dropped: no later
// wait returns them. Stats is not cleared; it counts each of them as a
// tick and as an overrun (a period that elapsed while nobody waited). A
// tick that falls due in the moment between that count and the new
// schedule (one system call apart) is dropped without being counted.
//
// Reset may be called from any goroutine, also while another waits: the
// wait then returns at the first tick of the new schedule. It allocates
// nothing.
func (t *Ticker) Reset(period time.Duration) error {
	ts, err := periodTimespec(period)
	if err != nil {
		return err
	}
	if t.closed.Load() {
		return ErrClosed
	}
	t.resetMu.Lock()
	defer t.resetMu.Unlock()
	t.resetSpec = unix.ItimerSpec{Interval: ts, Value: ts}
	t.resetErr = nil
	if err := t.rc.Control(t.resetFn); err != nil {
		if t.closed.Load() {
			return ErrClosed
		}
		return err
	}
	if t.resetErr != nil {
		return t.resetErr
	}
	t.period.Store(int64(period))
	return nil
}

// resetTimer is Reset's part under rc.Control: it counts the ticks due on
// the old schedule, then arms the timerfd (fd) with the new one (which
// clears the kernel's count).
func (t *Ticker) resetTimer(fd uintptr) {
	n, err := unix.Read(int(fd), t.resetBuf[:])
	switch {
	case err == unix.EAGAIN:
	case err != nil:
		t.resetErr = os.NewSyscallError("read timerfd", err)
		return
	case n != 8:
		t.resetErr = fmt.Errorf("sched: short timerfd read (%d bytes)", n)
		return
	default:
		// Ticks before overruns, as in expirations.
		exp := binary.NativeEndian.Uint64(t.resetBuf[:])
		t.ticks.Add(exp)
		t.overruns.Add(exp)
	}
	if err := unix.TimerfdSettime(int(fd), 0, &t.resetSpec, nil); err != nil {
		t.resetErr = os.NewSyscallError("timerfd_settime", err)
	}
}

// Wait blocks until the next tick and returns how many periods were missed
// since the previous Wait (0 when the caller keeps up). It returns ctx's
// error if ctx ends first.
func (t *Ticker) Wait(ctx context.Context) (missed uint64, err error) {
	// Begin (or Settle) before the deadline is set, the deadline before
	// ctx is checked: see sys.ReadDeadlineWake. One registration serves
	// every Wait under the same context.
	if ctx.Done() != nil {
		t.cw.Begin(ctx)
		defer t.cw.End()
	} else {
		t.cw.Settle()
	}
	dl, _ := ctx.Deadline()
	if onRealtimeThread() {
		missed, err = t.waitKernel(ctx, dl)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if cerr := ctx.Err(); cerr != nil {
				return 0, cerr
			}
			return 0, context.DeadlineExceeded
		}
		return missed, err
	}
	t.f.SetReadDeadline(dl)
	defer t.f.SetReadDeadline(time.Time{})
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	missed, err = t.read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if cerr := ctx.Err(); cerr != nil {
			return 0, cerr
		}
		// The only read deadline is ctx's, and the netpoller's timer
		// can fire a moment before ctx's own.
		return 0, context.DeadlineExceeded
	}
	return missed, err
}

// WaitDeadline is Wait with a deadline instead of a context: after d it
// returns an error wrapping os.ErrDeadlineExceeded.
func (t *Ticker) WaitDeadline(d time.Time) (missed uint64, err error) {
	t.cw.Settle()
	if onRealtimeThread() {
		return t.waitKernel(nil, d)
	}
	t.f.SetReadDeadline(d)
	defer t.f.SetReadDeadline(time.Time{})
	return t.read()
}

// TryWait takes a tick that is already due without waiting: it returns
// the periods missed as Wait does, or ErrWouldBlock while the next tick
// is still ahead.
func (t *Ticker) TryWait() (missed uint64, err error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	t.rerr, t.ready = nil, false
	if err := t.rc.Control(t.tryFn); err != nil {
		if t.closed.Load() {
			return 0, ErrClosed
		}
		return 0, err
	}
	if !t.ready {
		return 0, ErrWouldBlock
	}
	return t.expirations()
}

// onRealtimeThread reports whether the calling thread runs a real-time
// policy (fifo, rr or deadline), whose waits must sleep in the kernel.
func onRealtimeThread() bool {
	p, err := sys.SchedGetscheduler(0)
	switch p &^ resetOnFork {
	case sys.SchedFIFO, sys.SchedRR, schedDeadline:
		return err == nil
	}
	return false
}

// schedDeadline is SCHED_DEADLINE, which SetThread cannot set but a
// thread may have (chrt -d).
const schedDeadline = 6

// waitKernel waits for a tick in ppoll on the calling thread, until dl
// (none if zero), ctx's cancellation (nil: none) or Close.
func (t *Ticker) waitKernel(ctx context.Context, dl time.Time) (missed uint64, err error) {
	t.kctx, t.kdl, t.kerr, t.rerr = ctx, dl, nil, nil
	cerr := t.rc.Control(t.pollFn)
	t.kctx = nil
	if cerr != nil || errors.Is(t.kerr, ErrClosed) {
		if t.closed.Load() {
			return 0, ErrClosed
		}
		return 0, cerr
	}
	if t.kerr != nil {
		return 0, t.kerr
	}
	return t.expirations()
}

// pollKernel is waitKernel's part under rc.Control: the timerfd (fd) and
// wake stay open until it returns. It leaves a read for expirations, or
// kerr.
func (t *Ticker) pollKernel(fd uintptr) {
	// Wakes left over from earlier waits go first; Close and a
	// cancellation set their flag before they write, so one that this
	// read takes is seen below.
	unix.Read(t.wake, t.wbuf[:])
	for {
		if t.closed.Load() {
			t.kerr = ErrClosed
			return
		}
		if t.kctx != nil {
			if err := t.kctx.Err(); err != nil {
				t.kerr = err
				return
			}
		}
		var ts *unix.Timespec
		if !t.kdl.IsZero() {
			d := time.Until(t.kdl)
			if d <= 0 {
				t.kerr = os.ErrDeadlineExceeded
				return
			}
			// A day at most per ppoll: a 32-bit timespec holds it.
			t.ts = unix.NsecToTimespec(int64(min(d, 24*time.Hour)))
			ts = &t.ts
		}
		t.pfds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		t.pfds[1] = unix.PollFd{Fd: int32(t.wake), Events: unix.POLLIN}
		_, err := unix.Ppoll(t.pfds[:], ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.kerr = os.NewSyscallError("ppoll", err)
			return
		}
		if t.pfds[1].Revents != 0 {
			unix.Read(t.wake, t.wbuf[:]) // the flags are checked above
		}
		if t.pfds[0].Revents != 0 && t.readFn(fd) {
			return
		}
	}
}

// read waits in the netpoller (under the read deadline the caller set)
// for the timerfd and takes its expirations.
func (t *Ticker) read() (missed uint64, err error) {
	t.rerr = nil
	if err := t.rc.Read(t.readFn); err != nil {
		if t.closed.Load() {
			return 0, ErrClosed
		}
		return 0, err
	}
	return t.expirations()
}

// expirations accounts for the timerfd read that readFn made.
func (t *Ticker) expirations() (missed uint64, err error) {
	if t.rerr != nil {
		return 0, os.NewSyscallError("read timerfd", t.rerr)
	}
	if t.n != 8 {
		return 0, fmt.Errorf("sched: short timerfd read (%d bytes)", t.n)
	}
	exp := binary.NativeEndian.Uint64(t.buf[:]) // the kernel writes a u64 in host order
	// Ticks before overruns, and Stats reads them the other way round:
	// the overruns it reads were counted after ticks at least as many, so
	// it never returns more overruns than ticks.
	t.ticks.Add(exp)
	if exp > 1 {
		missed = exp - 1
		t.overruns.Add(missed)
	}
	return missed, nil
}

// Stats returns the ticks counted so far and, of those, the overruns:
// ticks that no wait returned, because they fell due while nobody waited
// (Wait's missed periods) or Reset dropped them. Ticks minus overruns is
// the number of ticks waits returned. Reset clears neither. Stats may be
// called from any goroutine (a metrics reporter) while another
// waits; the two counts are read one after the other, not as one snapshot,
// but overruns never exceed ticks.
func (t *Ticker) Stats() (ticks, overruns uint64) {
	overruns = t.overruns.Load()
	return t.ticks.Load(), overruns
}

// Close stops the ticker; a Wait in progress, and any later Wait or
// Close, returns ErrClosed.
func (t *Ticker) Close() error {
	if t.closed.Swap(true) {
		return ErrClosed
	}
	unix.Write(t.wake, wakeOne[:]) // ends a wait in the kernel
	err := t.f.Close()             // ends a wait in the netpoller, waits for one in the kernel
	t.cw.Close()                   // waits out a cancellation that may still write wake
	t.wakeCleanup.Stop()
	unix.Close(t.wake)
	return err
}
