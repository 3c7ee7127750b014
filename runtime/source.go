package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/runtime/framing"
	"github.com/edgeipc/edgeipc/shm"
)

// Source states (control.SourceStat.State).
const (
	StateRunning  = "running"
	StateBackoff  = "backoff"
	StateStopped  = "stopped"
	StateFailed   = "failed"
	StateStarting = "starting"
	// StateWaiting: the source's ring does not exist, because a reload
	// could not create it (last_error says why); the source starts once
	// the runtime has created it.
	StateWaiting = "waiting"
)

// sourceState supervises one source.
type sourceState struct {
	rt  *Runtime
	cfg *SourceConfig
	// ring is the ring the source writes; nil while it waits for the ring
	// to be created (StateWaiting), in which case the source never starts:
	// apply replaces it once the ring exists.
	ring *ringState

	frames, bytes, bad atomic.Uint64
	dropped            atomic.Uint64 // fifo: bytes dropped while draining after a broken stream
	logDropped         atomic.Uint64 // exec: lines of the child's output not logged (log_rate)

	mu        sync.Mutex
	state     string
	pid       int
	restarts  int
	lastExit  string
	lastError string
	cancel    context.CancelFunc
	done      chan struct{}
	// removed is set (under mu) when a reload or the shutdown takes the
	// source out of the runtime: start refuses it from then on, so a
	// control start or restart racing the removal cannot revive it.
	removed bool
	// fifo is the FIFO a run of this fifo source opened and locked: the
	// one cleanup may remove.
	fifo *fifoID
	// held is a read end of the FIFO that the reload which started this
	// source held over the restart (apply, holdFIFO); the source closes
	// it once it has opened the FIFO itself.
	held *os.File
	// remade are the FIFOs that the source created again at once, each
	// after the one before it was removed while the source read it
	// (remakeFIFO), oldest first: read ends that hold their locks, which
	// the next runs read in turn (takeRemade). Only the last one can
	// still be at the path. releaseHeld closes them too.
	remade []remadeFIFO
	// remaking is held by remakeFIFO from its mkfifo until the FIFO is
	// in remade, and by reopenDummy: a FIFO the watch has made but not
	// yet recorded is never taken for another one.
	remaking sync.Mutex
	// carry is what the source this one replaces (same FIFO, same
	// framing) had read but not decoded when it stopped: the start of a
	// record whose rest is still in the FIFO. The first run decodes it
	// before the FIFO. pending is this source's own, set when a stop
	// ends its run, and cleared by a stop that finds it not running and
	// by the next start, so only the stop that ends a run hands it on.
	// carryCut: carry came from a FIFO that was gone (removed or
	// replaced) when the source stopped, so the rest of a record it ends
	// in is not in the FIFO this source reads.
	carry    []byte
	carryCut bool
	pending  fifoPending
	// carryRest is the pipe of a FIFO that was gone (removed or
	// replaced) when the source this one replaces stopped, with what it
	// had not yet read of it: the first run reads it (after carry, which
	// it continues) before the FIFO at the path. Taken as carry is.
	carryRest *fifoRest
	// carryRec is a record the source this one replaces had read whole
	// but not written to the ring when it stopped (its put waited for
	// room in a block ring): the first run writes it before carry.
	carryRec *framing.Record

	badLog    limiter
	logBudget lineBudget // exec: log_rate, for the stderr and stdout readers
	fifoLog   limiter    // fifo: "writers closed" after a broken stream
}

// fifoID identifies the FIFO a source reads: its device and inode.
type fifoID struct{ dev, ino uint64 }

// remadeFIFO is a read end of the FIFO id (sourceState.remade).
type remadeFIFO struct {
	f  *os.File
	id fifoID
}

// fifoPending is what a fifo source had read from its FIFO but not yet
// decoded when it stopped (framing.Decoder.Pending): ok is false when those
// bytes did not begin at a record's start. rec is the record before them,
// decoded but not yet written to the ring (nil if none).
type fifoPending struct {
	framing framing.Kind
	data    []byte
	ok      bool
	rec     *framing.Record
	cut     bool // the FIFO data came from was gone (sourceState.carryCut)
	// rest is the pipe of that FIFO, if it was gone and the source could
	// keep it: what it had not read of it yet (cut is then false).
	rest *fifoRest
}

// fifoRest is a read end of a FIFO that was gone (removed or replaced)
// while a source read it and that the source stopped before it had read
// what was in it: tail bytes of the pipe are still to be read (those in it
// when the source noticed, tailReader); cause is why it was let go
// (errFIFORemoved or errFIFOReplaced).
type fifoRest struct {
	f     *os.File
	tail  int
	cause error
}

func newSource(rt *Runtime, sc *SourceConfig, rs *ringState) *sourceState {
	state := StateStopped
	if rs == nil {
		state = StateWaiting
	}
	return &sourceState{rt: rt, cfg: sc, ring: rs, state: state}
}

// waiting reports whether the source waits for its ring to be created.
func (ss *sourceState) waiting() bool { return ss.ring == nil }

// waitFor says, in the waiting source's last error, why its ring p is
// missing.
func (ss *sourceState) waitFor(p *pendingRing) {
	why := "it does not exist"
	if p != nil {
		why = fmt.Sprintf("a reload could not create it (attempt %d: %v); the runtime keeps trying", p.attempts, p.err)
	}
	ss.set(func(ss *sourceState) {
		ss.state, ss.lastError = StateWaiting, fmt.Sprintf("waiting for ring %s: %s", ss.cfg.Ring, why)
	})
}

// errWaiting is the answer to a start or restart of a waiting source.
func (ss *sourceState) errWaiting() error {
	return fmt.Errorf("source %q waits for ring %q, which does not exist (edgeipc ctl rings says why); it starts once the runtime has created the ring", ss.cfg.Name, ss.cfg.Ring)
}

func (ss *sourceState) set(f func(ss *sourceState)) {
	ss.mu.Lock()
	f(ss)
	ss.mu.Unlock()
}

func (ss *sourceState) setState(s string) { ss.set(func(ss *sourceState) { ss.state = s }) }

// start starts the source's goroutine unless it is running, stopping,
// removed or waiting for its ring. A
// source whose last run has ended on its own (an exec child that finished
// and is not restarted, or a source that failed) is started afresh.
func (ss *sourceState) start() bool {
	if ss.waiting() {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for waited := false; ; waited = true {
		if ss.removed {
			return false
		}
		if ss.cancel == nil && ss.done != nil && !closed(ss.done) {
			return false // a stop is under way: its run has not ended yet
		}
		if ss.cancel == nil || closed(ss.done) {
			break
		}
		if waited || (ss.state != StateStopped && ss.state != StateFailed) {
			return false // running
		}
		// The run has ended on its own and says so; its goroutine is
		// returning. Wait for it (briefly) rather than answer "already
		// running" to a source that reports itself stopped, then look
		// again: a stop, a reload or another start may have come first.
		done := ss.done
		ss.mu.Unlock()
		select {
		case <-done:
		case <-time.After(finishWait):
		}
		ss.mu.Lock()
	}
	if ss.cancel != nil {
		ss.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ss.cancel, ss.done = cancel, make(chan struct{})
	ss.state = StateStarting
	// an earlier run's: not this run's stream
	ss.dropRest(ss.pending.rest, "when the source was started again after a stop")
	ss.pending = fifoPending{}
	done := ss.done
	go func() {
		defer close(done)
		var err error
		switch ss.cfg.Kind {
		case KindSynthetic:
			err = ss.runSynthetic(ctx)
		case KindExec:
			err = ss.runExec(ctx)
		case KindFIFO:
			err = ss.runFIFO(ctx)
		}
		if err != nil && ctx.Err() == nil {
			ss.set(func(ss *sourceState) { ss.state, ss.lastError = StateFailed, err.Error() })
			ss.rt.log.Error(fmt.Sprintf("source %s failed", ss.cfg.Name), "err", err)
		}
		if testHookRunReturned != nil {
			testHookRunReturned(ss.cfg.Name)
		}
	}()
	return true
}

// testHookRunReturned, if set, runs when a source's run has returned, just
// before its goroutine ends: tests widen that window there.
var testHookRunReturned func(name string)

// finishWait bounds how long start waits for the goroutine of a run that
// has ended on its own to return.
const finishWait = 5 * time.Second

// stop stops the source and waits for it (exec: SIGTERM, then SIGKILL after
// stop_timeout). It reports false if the source was not running: never
// started, stopped, or its run had ended on its own (that run's state,
// stopped or failed, is kept). If another stop is under way, it waits for
// that one to finish and reports false.
func (ss *sourceState) stop() bool {
	ss.mu.Lock()
	cancel, done := ss.cancel, ss.done
	ss.cancel = nil // done stays, for a concurrent stop to wait on
	if cancel == nil {
		// Not running: what an earlier stop left of a partial record is
		// stale (the writers may have moved on); no restart may take it.
		ss.dropRest(ss.pending.rest, "when the source was stopped")
		ss.pending = fifoPending{}
	}
	ss.mu.Unlock()
	if cancel == nil {
		if done != nil {
			<-done
		}
		return false
	}
	ended := closed(done)
	cancel()
	<-done
	if ended {
		return false
	}
	ss.set(func(ss *sourceState) { ss.state, ss.pid = StateStopped, 0 })
	return true
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// remove marks the source removed (see removed); the caller then stops it.
func (ss *sourceState) remove() { ss.set(func(ss *sourceState) { ss.removed = true }) }

// takeCarry takes what the fifo source this one replaces had read but not
// decoded: the start of a record whose rest is still in the FIFO, so that
// the record is not cut in two by the restart (its tail read as a record of
// its own, or, for len32 and msgp, as a broken stream). Bytes framed
// otherwise are dropped, counted in dropped_bytes and logged. A record it
// had decoded and not yet written to the ring is taken whatever the
// framing: it is written first.
func (ss *sourceState) takeCarry(p fifoPending) {
	if p.rec != nil {
		ss.set(func(ss *sourceState) { ss.carryRec = p.rec })
	}
	k, err := framing.ParseKind(ss.cfg.Framing)
	if p.rest != nil {
		if err == nil && k == p.framing {
			ss.set(func(ss *sourceState) { ss.carryRest = p.rest })
		} else {
			ss.dropRest(p.rest, "when a reload changed the framing")
		}
	}
	switch {
	case len(p.data) == 0 && p.ok:
	case err == nil && p.ok && k == p.framing:
		ss.set(func(ss *sourceState) { ss.carry, ss.carryCut = p.data, p.cut })
	case !p.ok:
		ss.rt.log.Info(fmt.Sprintf("source %s: the source it replaces stopped inside an over-long record it was dropping; what is left of that record in the FIFO is read afresh (as a bad record, or a broken stream)", ss.cfg.Name))
	default:
		ss.dropped.Add(uint64(len(p.data)))
		ss.rt.log.Info(fmt.Sprintf("source %s: dropped %d bytes of a partial record that the source it replaces had read (the framing changed)", ss.cfg.Name, len(p.data)))
	}
}

// releaseHeld closes the read end held over the reload that started the
// source, if any, and the FIFOs it created again that no run has taken.
func (ss *sourceState) releaseHeld() {
	ss.mu.Lock()
	h, remade, rest := ss.held, ss.remade, ss.carryRest
	ss.held, ss.remade, ss.carryRest = nil, nil, nil
	ss.mu.Unlock()
	if h != nil {
		h.Close()
	}
	ss.dropRest(rest, "when the source stopped before it had read them")
	for _, r := range remade {
		r.f.Close()
	}
}

// holds reports whether the source has a read end held over the reload or
// restart that started it.
func (ss *sourceState) holds() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.held != nil
}

func (ss *sourceState) isRemoved() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.removed
}

func (ss *sourceState) getState() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.state
}

// cleanup removes, if configured, the FIFO that the source read: only one
// it has opened and held the lock of, never one another runtime reads.
func (ss *sourceState) cleanup() {
	ss.mu.Lock()
	id := ss.fifo
	ss.mu.Unlock()
	if ss.cfg.Kind == KindFIFO && ss.cfg.RemoveOnExit && id != nil {
		if why := removeFIFO(ss.cfg.Path, *id); why != "" {
			ss.rt.log.Warn(fmt.Sprintf("source %s: remove_on_exit: FIFO %s left in place: %s", ss.cfg.Name, ss.cfg.Path, why))
		}
	}
}

func (ss *sourceState) stat() control.SourceStat {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return control.SourceStat{
		Name: ss.cfg.Name, Kind: ss.cfg.Kind, Ring: ss.cfg.Ring, State: ss.state, PID: ss.pid,
		Restarts: ss.restarts, LastExit: ss.lastExit, Frames: ss.frames.Load(), Bytes: ss.bytes.Load(),
		Bad: ss.bad.Load(), Dropped: ss.dropped.Load(), LogDropped: ss.logDropped.Load(), LastError: ss.lastError,
	}
}

// writer takes the ring's writer lease, retrying with backoff while
// another live process holds it.
func (ss *sourceState) writer(ctx context.Context) (*shm.Writer, error) {
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		w, err := ss.ring.ring.NewWriter()
		if err == nil {
			return w, nil
		}
		if !errors.Is(err, shm.ErrBusy) {
			return nil, err
		}
		ss.set(func(ss *sourceState) { ss.state, ss.lastError = StateBackoff, err.Error() })
		if ok, _ := ss.badLog.allow(10 * time.Second); ok {
			ss.rt.log.Warn(fmt.Sprintf("source %s: ring %s: %v; retrying", ss.cfg.Name, ss.cfg.Ring, err))
		}
		if !sleepCtx(ctx, b.next()) {
			return nil, ctx.Err()
		}
	}
}

// put writes one record into the ring.
func (ss *sourceState) put(ctx context.Context, w *shm.Writer, rec framing.Record) error {
	typ, flags := ss.cfg.Type, ss.cfg.Flags
	if rec.HasMeta {
		typ, flags = rec.Type, rec.Flags
	}
	buf, err := w.ReserveContext(ctx, len(rec.Data))
	if err != nil {
		return err
	}
	copy(buf, rec.Data)
	if _, err := w.CommitWith(typ, flags); err != nil {
		return err
	}
	ss.frames.Add(1)
	ss.bytes.Add(uint64(len(rec.Data)))
	ss.ring.addBytes(len(rec.Data))
	return nil
}

// badRecord counts a dropped record and logs it, at most once a second.
func (ss *sourceState) badRecord(err error) {
	ss.bad.Add(1)
	ss.set(func(ss *sourceState) { ss.lastError = err.Error() })
	if ok, n := ss.badLog.allow(time.Second); ok {
		more := ""
		if n > 0 {
			more = fmt.Sprintf(" (%d more not logged)", n)
		}
		ss.rt.log.Warn(fmt.Sprintf("source %s: dropped a record: %v%s", ss.cfg.Name, err, more))
	}
}

// cutShort says how a stream that ended with err (io.ErrUnexpectedEOF: its
// writers closed it; a read deadline: runChild's, once the child is gone,
// or a fifo source's, once its FIFO is gone) cut the record d is in.
func cutShort(d *framing.Decoder, err error) string {
	how := "the stream ended"
	if errors.Is(err, os.ErrDeadlineExceeded) {
		how = "reading stopped"
	}
	if n := d.Buffered(); n > 0 {
		return fmt.Sprintf("%s after %d bytes of it", how, n)
	}
	return how + " while an oversized record was being skipped"
}

func (ss *sourceState) decoder() (*framing.Decoder, error) {
	k, err := framing.ParseKind(ss.cfg.Framing)
	if err != nil {
		return nil, err
	}
	return framing.NewDecoder(nil, k, framing.Options{MaxRecord: ss.ring.ring.SlotPayload(), MaxSkip: ss.cfg.MaxSkip}), nil
}

// backoff doubles from min to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur *= 2
	}
	if b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runSynthetic writes frames of cfg.Size bytes at cfg.RateHz. Frames are
// written in bursts on a ticker of at least 10 ms (so 1 kHz costs 100
// wakeups a second), catching up on time rather than on ticks; after a
// stall of more than a second the backlog is dropped, not replayed. The
// first 8 bytes of each payload carry a little-endian frame counter.
func (ss *sourceState) runSynthetic(ctx context.Context) error {
	w, err := ss.writer(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	ss.set(func(ss *sourceState) { ss.state, ss.lastError = StateRunning, "" })
	rate := ss.cfg.RateHz
	iv := time.Duration(float64(time.Second) / rate)
	if iv < 10*time.Millisecond {
		iv = 10 * time.Millisecond
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	start := time.Now()
	var sent, counter uint64
	size := ss.cfg.Size
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due := uint64(time.Since(start).Seconds() * rate)
		if due > sent+uint64(rate)+1 {
			sent = due - uint64(rate) // drop the backlog beyond one second
		}
		for ; sent < due; sent++ {
			buf, err := w.ReserveContext(ctx, size)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			counter++
			for i := 0; i < 8 && i < len(buf); i++ {
				buf[i] = byte(counter >> (8 * i))
			}
			if _, err := w.CommitWith(ss.cfg.Type, ss.cfg.Flags); err != nil {
				return err
			}
			ss.frames.Add(1)
			ss.bytes.Add(uint64(size))
			ss.ring.addBytes(size)
		}
	}
}
