package shm

import (
	"context"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// waitSpec is how long a blocking call may wait: a context, or a bare
// deadline (no allocation), or neither (forever).
type waitSpec struct {
	ctx      context.Context
	deadline time.Time
}

// expired returns the error to give up with, or nil.
func (w waitSpec) expired() error {
	if w.ctx != nil {
		return w.ctx.Err()
	}
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// timeout returns how long the next sleep may last (0 = no limit, capped by
// max when max > 0), or an error when already expired.
func (w waitSpec) timeout(max time.Duration) (time.Duration, error) {
	var dl time.Time
	if w.ctx != nil {
		if err := w.ctx.Err(); err != nil {
			return 0, err
		}
		dl, _ = w.ctx.Deadline()
	} else {
		dl = w.deadline
	}
	t := max
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			if w.ctx != nil {
				return 0, context.DeadlineExceeded
			}
			return 0, os.ErrDeadlineExceeded
		}
		if t == 0 || d < t {
			t = d
		}
	}
	return t, nil
}

// futexSleep sleeps while *addr == val, until a wake, the wait's deadline,
// its context's cancellation, or max (if > 0). A cancelled context wakes
// every sleeper on addr; they re-check their conditions and sleep again.
// cw, if not nil, is the sleeper's own CtxWake (Interrupt wakes addr): it
// keeps one registration per context, so a loop that sleeps under one
// context allocates nothing per sleep (the Semaphore keeps one per
// concurrent waiter); nil registers for this sleep alone.
func futexSleep(addr *uint32, val uint32, w waitSpec, max time.Duration, cw *sys.CtxWake) error {
	if w.ctx != nil && w.ctx.Done() != nil {
		if cw != nil {
			cw.Begin(w.ctx) // before the check of ctx in timeout
			defer cw.End()
		} else {
			// A wake that lands before this thread is queued on the futex
			// is lost (the word itself does not change), so the
			// cancellation keeps waking, backing off, until the sleeper is
			// back.
			var back atomic.Bool
			fired := make(chan struct{})
			stop := context.AfterFunc(w.ctx, func() {
				defer close(fired)
				for d := 20 * time.Microsecond; !back.Load(); d = min(2*d, 10*time.Millisecond) {
					sys.FutexWake(addr, math.MaxInt32)
					time.Sleep(d)
				}
			})
			defer func() {
				back.Store(true)
				if !stop() {
					<-fired
				}
			}()
		}
	}
	t, err := w.timeout(max)
	if err != nil {
		return err
	}
	if testHookBeforeFutexWait != nil {
		testHookBeforeFutexWait()
	}
	if err := sys.FutexWait(addr, val, t); err != nil && err != errTimedOut {
		return err
	}
	return w.expired()
}

// futexWake returns a CtxWake Interrupt that wakes every sleeper on addr.
func futexWake(addr *uint32) func() {
	return func() { sys.FutexWake(addr, math.MaxInt32) }
}

// testHookBeforeFutexWait, set only by tests, runs just before a sleep
// enters the kernel: the window in which a wake-up is lost.
var testHookBeforeFutexWait func()

// testHookRingInit, set only by tests, runs when Create has allocated
// the segment of the named ring and before it initialises the ring.
var testHookRingInit func(name string)

// testHookSemInit, set only by tests, runs when CreateSemaphore has
// allocated the segment and before it fills it.
var testHookSemInit func(name string)

// testHookAfterJoin, set only by tests, runs when NewReader has made its
// entry visible and before it reads the head again.
var testHookAfterJoin func()

// Semaphore operations on a (value, waiters) pair of words in shared
// memory. Used by the named Semaphore and by the block policy.

// semPost increments value and wakes one waiter. It refuses, returning
// false, when value is already MaxSemaphoreValue or above (another process
// may have stored anything there): a count that wrapped to 0 would lose
// every unit. woke is how many sleepers the wake reached, -1 if waiters
// was 0 and no wake was made.
func semPost(value, waiters *uint32) (posted bool, woke int) {
	for {
		v := atomic.LoadUint32(value)
		if v >= MaxSemaphoreValue {
			return false, -1
		}
		if atomic.CompareAndSwapUint32(value, v, v+1) {
			break
		}
	}
	if atomic.LoadUint32(waiters) == 0 {
		return true, -1
	}
	n, _ := sys.FutexWake(value, 1)
	return true, n
}

// decrSaturating subtracts 1 from *c unless it is 0: a count reset by a
// repair must not wrap to 2^32-1. Semaphore.Post's repair resets waiter
// counts; a writer's repair can take a live sleeper's count
// (forgetSleeper: a reader killed flagged asleep but not yet counted, or
// already uncounted). A plain subtract then wrapped the sleeper count,
// which the next sleeper's add made 0, so that the writer woke nobody and
// each sleep lasted maxSleep until a repair reset the garbage (seen in
// TestSoak/block). Clamped, the loss is one late wake.
func decrSaturating(c *uint32) {
	for {
		v := atomic.LoadUint32(c)
		if v == 0 || atomic.CompareAndSwapUint32(c, v, v-1) {
			return
		}
	}
}

func semTryWait(value *uint32) bool {
	for {
		v := atomic.LoadUint32(value)
		if v == 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(value, v, v-1) {
			return true
		}
	}
}

// semWait decrements value, sleeping while it is zero. max bounds the time
// it sleeps (0 = none); when that elapses semWait returns errSlice so the
// caller can do housekeeping and call again. The slice is measured from
// the call, not from each sleep: a signal ends a timed futex sleep early
// (EINTR), and restarting the slice at each one would postpone the
// housekeeping for as long as signals keep coming. closed, if not nil,
// aborts with ErrClosed.
func semWait(value, waiters *uint32, w waitSpec, max time.Duration, closed *atomic.Bool, cw *sys.CtxWake) error {
	start := time.Now()
	for {
		if semTryWait(value) {
			return nil
		}
		if closed != nil && closed.Load() {
			return ErrClosed
		}
		slice := max // 0: no limit
		if max > 0 {
			if slice = max - time.Since(start); slice <= 0 {
				return errSlice
			}
		}
		atomic.AddUint32(waiters, 1)
		var err error
		if atomic.LoadUint32(value) == 0 && (closed == nil || !closed.Load()) {
			err = futexSleep(value, 0, w, slice, cw)
		}
		decrSaturating(waiters)
		if err != nil {
			if semTryWait(value) { // posted as the wait ended: take it
				return nil
			}
			return err
		}
		if max > 0 && time.Since(start) >= max {
			if semTryWait(value) {
				return nil
			}
			return errSlice
		}
	}
}
