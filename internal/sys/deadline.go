package sys

import (
	"context"
	"os"
	"time"
)

// ReadDeadline is a read deadline on a pollable file, armed for one wait:
// ArmReadDeadline sets it, and a cancellation of the wait's context moves
// it into the past so the blocked read returns.
type ReadDeadline struct {
	f     *os.File
	stop  func() bool
	fired chan struct{}
}

// ArmReadDeadline sets f's read deadline to dl (zero: none) and, if ctx
// (which may be nil) can be cancelled, arms that cancellation. Call Disarm
// when the read is over. Without a cancellable context nothing allocates.
func ArmReadDeadline(ctx context.Context, f *os.File, dl time.Time) ReadDeadline {
	f.SetReadDeadline(dl) // set before arming: the cancellation must win
	d := ReadDeadline{f: f}
	if ctx != nil && ctx.Done() != nil {
		fired := make(chan struct{})
		d.fired = fired
		d.stop = context.AfterFunc(ctx, func() {
			f.SetReadDeadline(time.Unix(1, 0))
			close(fired)
		})
	}
	return d
}

// Disarm waits out a cancellation callback that already started and clears
// the deadline, so one wait's deadline or cancellation never leaks into the
// next read of f.
func (d ReadDeadline) Disarm() {
	if d.stop != nil && !d.stop() {
		<-d.fired
	}
	d.f.SetReadDeadline(time.Time{})
}
