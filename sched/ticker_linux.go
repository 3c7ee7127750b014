package sched

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
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
// Waits park in the netpoller (no OS thread is held) and honour contexts;
// a real-time goroutine is woken from there by Go's scheduler, which
// needs a free P (see the package documentation).
//
// A Ticker is for one goroutine; Stats and Close may be called from any.
type Ticker struct {
	f        *os.File
	rc       syscall.RawConn
	period   time.Duration
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
}

// NewTicker starts a ticker whose first tick is one period from now. On
// 32-bit targets a period is at most 2^31-1 seconds (about 68 years).
func NewTicker(period time.Duration) (*Ticker, error) {
	if period <= 0 {
		return nil, fmt.Errorf("sched: ticker period %v must be positive", period)
	}
	ts := unix.NsecToTimespec(int64(period))
	if ts.Nano() != int64(period) { // 32-bit targets: tv_sec is 32 bits
		return nil, fmt.Errorf("sched: ticker period %v is longer than this system's timers take (%v)", period, time.Duration(math.MaxInt32)*time.Second)
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
	f := os.NewFile(uintptr(fd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &Ticker{f: f, rc: rc, period: period}
	t.cw.Interrupt = sys.ReadDeadlineWake(f)
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

// Period returns the ticker's period.
func (t *Ticker) Period() time.Duration { return t.period }

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
	// Overruns before ticks, and Stats reads them the other way round:
	// it never returns more overruns than ticks.
	if exp > 1 {
		missed = exp - 1
		t.overruns.Add(missed)
	}
	t.ticks.Add(exp)
	return missed, nil
}

// Stats returns the ticks that elapsed and the overruns counted so far. It
// may be called from any goroutine (a metrics reporter) while another
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
	err := t.f.Close() // ends a Wait in progress
	t.cw.Close()
	return err
}
