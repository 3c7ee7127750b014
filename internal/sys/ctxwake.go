package sys

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CtxWake turns the cancellation of a context into interrupts of a wait,
// for one waiter at a time, with one context.AfterFunc registration kept
// from one wait to the next for as long as the context stays the same: a
// loop that blocks on every frame under one long-lived context allocates
// when it first waits, not at every wait (a registration per wait costs
// four allocations).
//
// Interrupt, set before the first Begin, is what a cancellation does while
// a wait is in progress. It is repeated, backing off from 20 µs to 10 ms,
// until the wait is over: an interrupt that lands just before the waiter
// blocks (a futex wake) is lost.
//
// Close releases the registration; a CtxWake that is not closed keeps its
// owner reachable from the context until the context is cancelled.
type CtxWake struct {
	Interrupt func()

	mu      sync.Mutex
	closed  bool
	done    <-chan struct{} // Done of the registered context; nil: none
	stop    func() bool
	fired   chan struct{} // closed when the registered callback has returned
	started atomic.Bool   // the registered callback has started
	in      atomic.Bool   // a wait is in progress
}

// Begin marks a wait under ctx, whose Done channel is not nil, in progress
// and makes sure that cancelling ctx interrupts it. The caller checks
// ctx.Err() after Begin, before it blocks, and calls End when the wait is
// over. A wait without a cancellable context must not call Begin: a
// cancellation of the context registered earlier would interrupt it.
func (c *CtxWake) Begin(ctx context.Context) {
	done := ctx.Done()
	c.mu.Lock()
	if done != c.done && !c.closed {
		c.disarm()
		fired := make(chan struct{})
		c.done, c.fired = done, fired
		c.started.Store(false)
		c.stop = context.AfterFunc(ctx, func() {
			c.started.Store(true)
			defer close(fired)
			for d := 20 * time.Microsecond; c.in.Load(); d = min(2*d, 10*time.Millisecond) {
				c.Interrupt()
				time.Sleep(d)
			}
		})
	}
	c.mu.Unlock()
	c.in.Store(true)
}

// End marks the wait over.
func (c *CtxWake) End() { c.in.Store(false) }

// Settle is for a wait without a cancellable context, before it starts:
// it waits out a callback of the registered context that started during an
// earlier wait and may still interrupt (for a read deadline: move the
// deadline of this wait into the past).
func (c *CtxWake) Settle() {
	if !c.started.Load() {
		return // nothing ran: a callback that starts now finds no wait
	}
	c.mu.Lock()
	if c.started.Load() {
		c.disarm() // spent: the context is cancelled
	}
	c.mu.Unlock()
}

// disarm drops the registration; a callback that already started runs
// only while a wait is in progress, and is waited for, so that it never
// interrupts a wait under another context. c.mu is held.
func (c *CtxWake) disarm() {
	if c.stop != nil && !c.stop() {
		<-c.fired
	}
	c.done, c.stop, c.fired = nil, nil, nil
	c.started.Store(false)
}

// Close drops the registration; later Begins register nothing. A wait in
// progress under a cancelled context is interrupted until it is over
// before Close returns.
func (c *CtxWake) Close() {
	c.mu.Lock()
	c.closed = true
	c.disarm()
	c.mu.Unlock()
}

// ReadDeadlineWake returns an Interrupt that moves f's read deadline into
// the past, for a waiter that blocks reading f through the netpoller. Such
// a waiter calls Begin first, then sets its own deadline, then checks
// ctx.Err(): a cancellation that lands in between is seen by the check, one
// after it moves the deadline. A wait without a cancellable context calls
// Settle before it sets its deadline.
func ReadDeadlineWake(f *os.File) func() {
	return func() { f.SetReadDeadline(time.Unix(1, 0)) }
}
