package shm

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgeipc/edgeipc/internal/atomicx"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// Start says where a new reader begins.
type Start int

const (
	// Newest starts at the next frame the writer publishes (default).
	Newest Start = iota
	// Oldest starts at the oldest frame still in the ring (late-joiner
	// history).
	Oldest
)

// ParseStart parses "newest" or "oldest".
func ParseStart(s string) (Start, error) {
	switch s {
	case "newest", "":
		return Newest, nil
	case "oldest":
		return Oldest, nil
	}
	return 0, fmt.Errorf("%w: start %q: use newest or oldest", ErrInvalid, s)
}

// ReaderOptions configures a Reader.
type ReaderOptions struct {
	// From is where the reader starts.
	From Start
	// Spin is how many times a blocking read polls the ring before it
	// sleeps: 0 sleeps at once, a negative value never sleeps (lowest
	// latency, one busy core).
	Spin int
	// Notifier, if set, is the eventfd this reader sleeps on instead of the
	// futex, so that the wait parks in the netpoller. The writer must have
	// the same eventfd (or a descriptor for it) registered with
	// Writer.AddNotifier.
	Notifier *Eventfd
}

// Frame is one frame read from a ring.
type Frame struct {
	Seq   uint32 // sequence number (wraps at 2^32)
	Time  int64  // CLOCK_MONOTONIC nanoseconds when the writer committed it
	Type  uint32 // application frame type
	Flags uint32 // application flags
	// Lost is the number of frames this reader missed just before this
	// one (overwrite policy, or a block-policy reader that joined From
	// Oldest as the writer reused its first slots), so Seq - Lost - 1 was
	// the previous frame read.
	Lost uint32
	// Data is the payload. From Next/TryNext it aliases the ring and is
	// valid until Release; from ReadInto it is the caller's buffer.
	Data []byte
}

// ReaderStats counts what a reader saw.
type ReaderStats struct {
	Frames      uint64 `json:"frames"`      // frames returned
	Lost        uint64 `json:"lost"`        // frames skipped because the writer lapped the reader
	Overwritten uint64 `json:"overwritten"` // frames returned then found overwritten at Release
	Corrupt     uint64 `json:"corrupt"`     // slots skipped because their header was invalid
}

// Reader consumes frames from a ring at its own pace. Each Reader holds one
// entry of the ring's reader table. A Reader is not safe for concurrent use,
// except Close, which may be called from any goroutine to abort a blocked
// read with ErrClosed.
type Reader struct {
	r   *Ring
	h   *ringHeader
	e   *readerEntry
	me  uint32
	own bool

	cursor    uint32 // next sequence to read
	knownHead uint32 // a head value seen: frames before it are published
	checkHead bool   // next must read the head, not infer "nothing new" from the slot
	held      bool
	heldSlot  *slotHeader
	pending   uint32 // lost frames not yet reported in a Frame
	spin      int
	ev        *Eventfd
	stats     ReaderStats
	fence     uint32

	closed   atomic.Bool
	closeMu  sync.Mutex   // held by Close until the entry is released
	sleeping atomic.Int32 // goroutines in sleep
	cw       sys.CtxWake  // a context's cancellation wakes the futex sleep
}

// NewReader joins the ring's reader table. It returns an error matching
// ErrNoReaderSlot while all MaxReaders entries are held by live readers,
// and ErrClosed on a closed Ring.
func (r *Ring) NewReader(opts *ReaderOptions) (*Reader, error) {
	var o ReaderOptions
	if opts != nil {
		o = *opts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if o.Notifier != nil && !o.Notifier.useFor() {
		return nil, &OpError{"open reader", r.name, fmt.Errorf("%w: the Notifier is already another open Reader's: a signal wakes one waiter, so give each Reader its own Eventfd", ErrInvalid)}
	}
	var e *readerEntry
	me := uint32(os.Getpid())
	for i := 0; i < MaxReaders; i++ {
		c := r.reader(i)
		// Another reader of this process: its PID and start time are
		// ours. An entry with our PID but another start time was left
		// by a dead process whose PID we were given: claim checks it.
		if atomic.LoadUint32(&c.Owner) == me && atomic.LoadUint32(&c.Start) == sys.SelfStartTime() {
			continue
		}
		if prev, ok := claim(&c.Owner, &c.Start, &c.PidNS); ok {
			if prev != 0 {
				forgetSleeper(r.hdr, c) // its holder may have died asleep
			}
			e = c
			break
		}
	}
	if e == nil {
		if o.Notifier != nil {
			o.Notifier.done()
		}
		return nil, &OpError{"open reader", r.name, fmt.Errorf("%w: all %d entries are held by live readers; close one (edgeipc ring inspect %s lists them) and try again", ErrNoReaderSlot, MaxReaders, r.name)}
	}
	rd := &Reader{r: r, h: r.hdr, e: e, me: uint32(os.Getpid()), spin: o.Spin, ev: o.Notifier}
	rd.cw.Interrupt = futexWake(&r.hdr.Head)
	head := atomic.LoadUint32(&r.hdr.Head)
	start := head
	if o.From == Oldest {
		start = r.oldest(head)
	}
	rd.cursor, rd.knownHead = start, start
	atomic.StoreUint32(&e.Cursor, start)
	atomic.StoreUint32(&e.Lost, 0)
	atomic.StoreUint32(&e.Frames, 0)
	var fl uint32
	if o.Notifier != nil {
		fl = readerEventfd
	}
	atomic.StoreUint32(&e.Flags, fl)
	publish(&e.Owner)
	// Tell a block-policy writer that caches its space check to look at
	// the table again: this reader may start behind what it last saw.
	atomic.AddUint32(&r.hdr.Joins, 1)
	if testHookAfterJoin != nil {
		testHookAfterJoin()
	}
	// Frames committed between the head load above and now were written
	// while this reader may have been invisible to the writer. From
	// Oldest, the oldest frames may be gone already: start after them
	// instead of reporting them lost (a writer sees the join within a
	// frame or two from here on). From Newest, they are the first frames
	// after the newest at the join, and still in their slots unless the
	// writer went a whole ring further (reusing frame head's slot takes
	// frame head+slots): read them, or they are skipped unseen although
	// the reader was already listed when they came.
	if h2 := atomic.LoadUint32(&r.hdr.Head); h2 != head {
		s2 := h2
		if o.From == Oldest {
			s2 = r.oldest(h2)
		} else if h2-head < r.g.slotCount {
			s2 = start
		}
		if d := s2 - start; d != 0 && d < 1<<31 {
			rd.cursor, rd.knownHead = s2, s2
			atomic.StoreUint32(&e.Cursor, s2)
			rd.letWriterGo() // it may wait for the cursor stored above
		}
	}
	r.readers[rd] = struct{}{}
	return rd, nil
}

// oldest returns the oldest sequence still in the ring given head. The
// frame one ring behind head is gone if a writer already opened its slot
// for frame head (see Writer.openNext): start after it then, rather than
// report it lost.
func (r *Ring) oldest(head uint32) uint32 {
	base := r.hdr.BaseSeq
	if head-base < r.g.slotCount {
		return base
	}
	o := head - r.g.slotCount
	if sh, _ := r.slot(o); atomic.LoadUint32(&sh.Stamp) != o<<1 {
		o++
	}
	return o
}

// OpenReader opens the named ring and joins it as a reader, with the
// errors of Open and NewReader. Closing the Reader closes the ring.
func OpenReader(name string, sopts *SegmentOptions, opts *ReaderOptions) (*Reader, error) {
	r, err := Open(name, sopts)
	return ownReader(r, err, opts)
}

// ownReader joins ring r, just opened (unless err), as a reader whose
// Close closes r too.
func ownReader(r *Ring, err error, opts *ReaderOptions) (*Reader, error) {
	if err != nil {
		return nil, err
	}
	rd, err := r.NewReader(opts)
	if err != nil {
		r.Close()
		return nil, err
	}
	rd.own = true
	return rd, nil
}

// Ring returns the ring being read.
func (rd *Reader) Ring() *Ring { return rd.r }

// Stats returns what this reader has seen so far.
func (rd *Reader) Stats() ReaderStats { return rd.stats }

// Cursor returns the sequence number of the next frame to be read.
func (rd *Reader) Cursor() uint32 { return rd.cursor }

// Lag returns how many published frames this reader has not read yet.
func (rd *Reader) Lag() uint32 { return lagOf(atomic.LoadUint32(&rd.h.Head), rd.cursor) }

// lagOf is head - cursor, or 0 when the cursor is ahead: a reader may take
// a frame through its slot stamp just before the writer's head store shows.
func lagOf(head, cursor uint32) uint32 {
	if l := head - cursor; l < 1<<31 {
		return l
	}
	return 0
}

// TryNext returns the next frame without waiting, or ErrWouldBlock. The
// frame's Data aliases shared memory: call Release when done with it.
// Release reports ErrOverwritten if the writer reused the slot meanwhile,
// in which case Data must be discarded. A frame still held from an earlier
// call is released first (any ErrOverwritten of it is not reported: call
// Release yourself when it matters).
func (rd *Reader) TryNext() (Frame, error) {
	var f Frame
	if sh, p, k := rd.peek(); k == peekReady {
		rd.hold(&f, sh, p)
		return f, nil
	}
	if rd.closed.Load() {
		return Frame{}, ErrClosed
	}
	if rd.held {
		rd.Release()
	}
	return rd.next()
}

// Next waits for the next frame until ctx is done (see TryNext). A frame
// that is there when the wait ends is returned rather than ctx's error, so
// a consumer that cancels once its producer has exited still gets the
// producer's last frames. Otherwise its errors match ctx.Err(), ErrClosed
// (Close, in any goroutine) or ErrEvicted (the writer took this reader for
// dead: open a new Reader).
func (rd *Reader) Next(ctx context.Context) (Frame, error) {
	return rd.wait(waitSpec{ctx: ctx})
}

// NextDeadline waits for the next frame until t; it returns an error
// matching os.ErrDeadlineExceeded after t, and otherwise the errors of
// Next.
func (rd *Reader) NextDeadline(t time.Time) (Frame, error) {
	return rd.wait(waitSpec{deadline: t})
}

func (rd *Reader) wait(ws waitSpec) (Frame, error) {
	var f Frame
	for {
		switch sh, p, k := rd.peek(); k {
		case peekReady:
			rd.hold(&f, sh, p)
			return f, nil
		case peekEmpty:
			if err := rd.await(ws); err != nil {
				return Frame{}, err
			}
			continue
		}
		f, err := rd.TryNext()
		if err != ErrWouldBlock {
			return f, err
		}
		if err := rd.await(ws); err != nil {
			return Frame{}, err
		}
	}
}

// await returns when the frame at the cursor may have been published (or
// with the error that ended the wait): it polls first, if asked to, then
// sleeps. It consumes nothing; the caller looks again.
func (rd *Reader) await(ws waitSpec) error {
	// The poll watches the stamp of the slot the next frame will land in:
	// that cache line has to come over from the writer anyway, while the
	// head's would be an extra transfer. The head is still looked at now
	// and then, in case the sequence jumped (a new writer, a rewritten
	// ring).
	c := rd.cursor
	sh, _ := rd.r.slot(c)
	want := c << 1
	// Frames 0 and 2^31 have stamp 0, which is also a zeroed slot's: for
	// them the poll watches the head only. (Their "being written" stamp,
	// 1, cannot mean "published" either: it is what Create stores in every
	// slot, so a reader waiting for frame 0 of a new ring that took it as
	// such would never sleep and never see its deadline or context.)
	byHead := want == 0
	var done <-chan struct{}
	if rd.spin != 0 && ws.ctx != nil {
		done = ws.ctx.Done()
	}
	for i := 0; rd.spin < 0 || i < rd.spin; i++ {
		// The stamp alone is not frame c (shared memory may hold any
		// seq under it): stop polling only for what peek would take, or
		// the caller finds nothing and polls again, deaf to ws.
		if !byHead && atomic.LoadUint32(&sh.Stamp) == want && sh.Seq == c || rd.closed.Load() {
			return nil
		}
		procyield(1)
		if i&headPollEvery == headPollEvery || byHead && i&63 == 63 {
			if h := atomic.LoadUint32(&rd.h.Head); h != c && h != c-1 {
				rd.checkHead = true
				return nil
			}
			if err := rd.pollDone(done, ws); err != nil {
				return err
			}
		}
	}
	// Whatever ends a sleep, next looks at the head: a sleep is slow
	// anyway, and a head that moved without the stamp showing it (a
	// writer that broke the protocol, a reader 2^31 frames behind) must
	// not leave the reader answering "nothing new" for ever.
	//
	// A head of c-1 means nothing new too: we took frame c-1 by its stamp
	// and the writer has not stored its head yet, or died before it did
	// (then only a new writer moves the head). Sleep on that value rather
	// than return at once: the caller would find nothing, come back here
	// and spin, deaf to its deadline, for as long as no writer comes.
	rd.checkHead = true
	h := atomic.LoadUint32(&rd.h.Head)
	if rd.closed.Load() || h != c && h != c-1 {
		return nil
	}
	if err := rd.sleep(ws, h); err != nil && !rd.closed.Load() {
		// A frame published as the wait ended (the producer's last
		// frame, then a cancel because it exited) is returned, not lost
		// behind the error: the caller looks again.
		if atomic.LoadUint32(&rd.h.Head) != h {
			return nil
		}
		return err
	}
	return nil
}

// headPollEvery+1 is how many polls of the next slot's stamp a spinning
// reader makes between looks at the head (tens of microseconds): the
// stamp shows every frame, the head is only needed to notice a sequence
// that jumped, and each look costs the writer a cache-line transfer.
const headPollEvery = 1023

func (rd *Reader) pollDone(done <-chan struct{}, ws waitSpec) error {
	select {
	case <-done:
		return ws.ctx.Err()
	default:
	}
	if ws.ctx == nil && !ws.deadline.IsZero() && !time.Now().Before(ws.deadline) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// sleep blocks until the head moves from h (or may have), using the futex
// or the eventfd. The sleeper count is raised before the head is
// re-checked, so a writer that publishes after the check sees it and wakes.
func (rd *Reader) sleep(ws waitSpec, h uint32) error {
	// Close wakes the futex (or eventfd) until no goroutine of this Reader
	// is in here; this count is raised before closed is checked below.
	rd.sleeping.Add(1)
	defer rd.sleeping.Add(-1)
	hdr := rd.h
	fl := atomic.LoadUint32(&rd.e.Flags)
	// Mark this entry asleep before counting ourselves: a writer that finds
	// the count stale checks these flags before resetting it.
	atomic.StoreUint32(&rd.e.Flags, fl|readerAsleep)
	defer atomic.StoreUint32(&rd.e.Flags, fl)
	if rd.ev != nil {
		atomic.AddUint32(&hdr.EvSleepers, 1)
		var err error
		if atomic.LoadUint32(&hdr.Head) == h && !rd.closed.Load() {
			err = rd.ev.waitMax(ws, maxSleep())
		}
		decrSaturating(&hdr.EvSleepers)
		return err
	}
	atomic.AddUint32(&hdr.Sleepers, 1)
	var err error
	if atomic.LoadUint32(&hdr.Head) == h && !rd.closed.Load() {
		err = futexSleep(&hdr.Head, h, ws, maxSleep(), &rd.cw)
	}
	decrSaturating(&hdr.Sleepers)
	return err
}

// next finds the frame at the cursor, skipping frames the writer has
// overwritten. Nothing read from shared memory is used unchecked: the slot
// index comes from the local mask, the length is bounded by the local
// geometry, and the slot's stamp and sequence must name the wanted frame.
func (rd *Reader) next() (Frame, error) {
	if o := atomic.LoadUint32(&rd.e.Owner); o != rd.me {
		return Frame{}, &OpError{"read", rd.r.name, ErrEvicted}
	}
	g := &rd.r.g
	for attempt := 0; attempt < 64; attempt++ {
		c := rd.cursor
		sh, p := rd.r.slot(c)
		st := atomic.LoadUint32(&sh.Stamp)
		// Fast path: the slot already holds frame c (its stamp and
		// sequence say so), which proves c was committed: no need to read
		// the head, whose cache line the writer dirties on every commit.
		// A zero stamp is also what a never-written slot holds, so frames
		// 0 and 2^31 take the slow path.
		if c<<1 != 0 && st == c<<1 && sh.Seq == c {
			if c == rd.knownHead {
				rd.knownHead = c + 1
			}
			if f, err, done := rd.take(sh, p, st); done {
				return f, err
			}
			continue // reused while we looked: take skipped it
		}
		if c == rd.knownHead {
			if rd.nothingNew(c, st) { // see peek
				return Frame{}, ErrWouldBlock
			}
			rd.checkHead = false
			h := atomic.LoadUint32(&rd.h.Head)
			if h == c {
				return Frame{}, ErrWouldBlock
			}
			lag := h - c
			if lag == ^uint32(0) {
				// We took frame c-1 through its stamp, and the writer's
				// head store for it has not shown yet: nothing new.
				return Frame{}, ErrWouldBlock
			}
			if lag > 1<<31 {
				// The head is behind us: a new writer restarted the
				// sequence, or shared memory was rewritten. Follow it.
				rd.knownHead = h
				rd.advance(h)
				return Frame{}, ErrWouldBlock
			}
			if lag > g.slotCount {
				skip := lag - g.slotCount
				rd.pending += skip
				rd.stats.Lost += uint64(skip)
				atomic.AddUint32(&rd.e.Lost, skip)
				c = h - g.slotCount
				rd.advance(c)
			}
			rd.knownHead = h
		}
		sh, p = rd.r.slot(c)
		st = atomic.LoadUint32(&sh.Stamp)
		if st != c<<1 || sh.Seq != c {
			// Lapped: the writer reused this slot after we read head.
			rd.skip(c, 1)
			rd.knownHead = c + 1 // force a head re-read
			rd.checkHead = true
			continue
		}
		if f, err, done := rd.take(sh, p, st); done {
			return f, err
		}
	}
	return Frame{}, ErrWouldBlock
}

// take returns frame rd.cursor from its slot, whose stamp read st, after
// bounding its length. done is false if the slot was reused meanwhile and
// skipped: the caller goes round again.
func (rd *Reader) take(sh *slotHeader, p unsafe.Pointer, st uint32) (f Frame, err error, done bool) {
	c := rd.cursor
	g := &rd.r.g
	n := sh.Length
	if n > g.maxPayload {
		loadFence(&rd.fence)
		if atomic.LoadUint32(&sh.Stamp) == st {
			// A consistent but impossible header: skip the slot.
			rd.stats.Corrupt++
			rd.advance(c + 1)
			return Frame{}, &OpError{"read", rd.r.name, corrupt(fmt.Sprintf("slot %d length", c&g.mask), uint64(n), fmt.Sprintf("<= %d", g.maxPayload))}, true
		}
		rd.skip(c, 1)
		return Frame{}, nil, false
	}
	f = Frame{Seq: c, Time: sh.Time, Type: sh.Type, Flags: sh.Flags, Data: unsafe.Slice((*byte)(p), n), Lost: rd.pending}
	rd.pending = 0
	rd.held = true
	rd.heldSlot = sh
	rd.stats.Frames++
	return f, nil, true
}

func (rd *Reader) skip(c, n uint32) {
	rd.pending += n
	rd.stats.Lost += uint64(n)
	atomic.AddUint32(&rd.e.Lost, n)
	rd.advance(c + n)
}

func (rd *Reader) advance(c uint32) {
	rd.cursor = c
	if rd.r.g.policy == policyBlock {
		// seq_cst: a waiting writer is woken only if this store is ordered
		// before Release's load of writer_waiting.
		atomic.StoreUint32(&rd.e.Cursor, c)
	} else {
		atomicx.StoreRelease(&rd.e.Cursor, c) // only read by tools
	}
}

// Release ends the use of the frame returned by Next or TryNext and
// advances the reader (under the block policy, it lets a waiting writer
// reuse the slot). It returns ErrOverwritten if the frame's slot was
// reused while it was held: the bytes seen may be torn. Under the
// overwrite policy that happens when the writer laps a slow reader; under
// the block policy only to a reader that joined From Oldest as the writer
// was reusing the slot of the frame it started at. On a Reader closed
// while it held the frame it returns ErrClosed and changes nothing.
func (rd *Reader) Release() error {
	if !rd.held {
		return nil
	}
	rd.held = false
	if rd.closed.Load() {
		// Close gave up the reader entry, and another reader may hold it
		// now: storing this cursor there would be storing it into theirs.
		return ErrClosed
	}
	c := rd.cursor
	var err error
	loadFence(&rd.fence)
	if atomic.LoadUint32(&rd.heldSlot.Stamp) != c<<1 {
		rd.stats.Overwritten++
		atomic.AddUint32(&rd.e.Lost, 1)
		err = ErrOverwritten
	}
	rd.consumed(c)
	return err
}

// consumed moves the reader past frame c: it publishes the cursor, now and
// then the frame count, and lets a block-policy writer waiting for space
// go on.
func (rd *Reader) consumed(c uint32) {
	rd.advance(c + 1)
	if rd.stats.Frames&63 == 0 {
		atomic.StoreUint32(&rd.e.Frames, uint32(rd.stats.Frames))
	}
	rd.letWriterGo()
}

// letWriterGo wakes a block-policy writer waiting for space after this
// reader's cursor moved on.
func (rd *Reader) letWriterGo() {
	if rd.r.g.policy == policyBlock && atomic.LoadUint32(&rd.h.WriterWaiting) != 0 &&
		atomic.CompareAndSwapUint32(&rd.h.WriterWaiting, 1, 0) {
		semPost(&rd.h.SpaceValue, &rd.h.SpaceWaiters)
	}
}

// TryReadInto copies the next frame into buf without waiting. The returned
// Frame's Data is buf[:n]. A torn frame is never returned: frames
// overwritten during the copy are skipped and counted as lost.
func (rd *Reader) TryReadInto(buf []byte) (Frame, error) {
	var f Frame
	if sh, p, k := rd.peek(); k == peekReady && rd.copyFrame(&f, sh, p, buf) {
		return f, nil
	}
	return rd.tryReadInto(buf)
}

func (rd *Reader) tryReadInto(buf []byte) (Frame, error) {
	for {
		f, err := rd.TryNext()
		if err != nil {
			return f, err
		}
		if f, err, ok := rd.copyOut(f, buf); ok {
			return f, err
		}
	}
}

// ReadInto waits (until ctx is done) for the next frame and copies it into
// buf; like Next, it returns a frame that is there when the wait ends
// rather than ctx's error. If buf is too small it returns ErrShortBuffer and the frame is not
// consumed; Frame.Data is nil and the needed size is in the error.
func (rd *Reader) ReadInto(ctx context.Context, buf []byte) (Frame, error) {
	return rd.readWait(buf, waitSpec{ctx: ctx})
}

// ReadIntoDeadline is ReadInto with a deadline: after t it returns an
// error matching os.ErrDeadlineExceeded.
func (rd *Reader) ReadIntoDeadline(t time.Time, buf []byte) (Frame, error) {
	return rd.readWait(buf, waitSpec{deadline: t})
}

func (rd *Reader) readWait(buf []byte, ws waitSpec) (Frame, error) {
	var f Frame
	for {
		switch sh, p, k := rd.peek(); k {
		case peekReady:
			if rd.copyFrame(&f, sh, p, buf) {
				return f, nil
			}
		case peekEmpty:
			if err := rd.await(ws); err != nil {
				return Frame{}, err
			}
			continue
		}
		f, err := rd.tryReadInto(buf)
		if err != ErrWouldBlock {
			return f, err
		}
		if err := rd.await(ws); err != nil {
			return Frame{}, err
		}
	}
}

type peekResult uint8

const (
	peekOther peekResult = iota // for the general path
	peekReady                   // frame c is in its slot
	peekEmpty                   // nothing new
)

// peek looks at the slot under the cursor, and only there: it answers
// peekReady when the slot holds frame c (stamp and sequence name it, the
// length is valid, the reader entry is still ours), peekEmpty when the
// slot still holds the frame one lap back or frame c is being written
// (either proves head <= c), and peekOther for anything the general path
// must sort out: a held frame, a closed reader, frames 0 and 2^31 (whose
// stamp, 0, is also a never-written slot's), a lapped reader, a corrupt
// slot, a head that moved without the stamp showing it (checkHead).
// Not reading the head leaves its cache line with the writer, who stores
// to it on every commit: a reader that polls it costs a ping-pong a
// quarter of its round trip.
func (rd *Reader) peek() (*slotHeader, unsafe.Pointer, peekResult) {
	c := rd.cursor
	if rd.held || c<<1 == 0 || rd.closed.Load() {
		return nil, nil, peekOther
	}
	sh, p := rd.r.slot(c)
	if st := atomic.LoadUint32(&sh.Stamp); st != c<<1 {
		if c == rd.knownHead && rd.nothingNew(c, st) {
			return nil, nil, peekEmpty
		}
		return nil, nil, peekOther
	}
	if sh.Seq != c || sh.Length > rd.r.g.maxPayload || atomic.LoadUint32(&rd.e.Owner) != rd.me {
		return nil, nil, peekOther
	}
	if c == rd.knownHead {
		rd.knownHead = c + 1
	}
	return sh, p, peekReady
}

// nothingNew reports whether stamp st of frame c's slot proves head <= c:
// the slot still holds the frame one lap back, or frame c is being written.
// It is not trusted after the head may have moved without the stamp
// showing it (checkHead, set by await), nor for frames 0 and 2^31, whose
// stamp 0 is also a never-written slot's.
func (rd *Reader) nothingNew(c, st uint32) bool {
	return !rd.checkHead && c<<1 != 0 && (st == c<<1|stampWriting || st == (c-rd.r.g.slotCount)<<1)
}

// hold fills f with the frame peek found ready, zero-copy.
func (rd *Reader) hold(f *Frame, sh *slotHeader, p unsafe.Pointer) {
	// f is filled field by field, not built and copied: a whole-struct
	// copy right after narrow stores stalls on store forwarding, and it
	// cost a ping-pong hop a few nanoseconds twice over.
	n := min(sh.Length, rd.r.g.maxPayload) // the writer may have changed it since peek; Release reports that
	f.Seq, f.Time, f.Type, f.Flags, f.Lost = rd.cursor, sh.Time, sh.Type, sh.Flags, rd.pending
	f.Data = unsafe.Slice((*byte)(p), n)
	rd.pending = 0
	rd.held = true
	rd.heldSlot = sh
	rd.stats.Frames++
}

// copyFrame copies the frame peek found ready into buf, consumes it and
// fills f. It fails, consuming nothing and leaving f alone, if buf is too
// short or the writer reused the slot during the copy:
// the general path then reports the short buffer or counts the loss.
func (rd *Reader) copyFrame(f *Frame, sh *slotHeader, p unsafe.Pointer, buf []byte) bool {
	c := rd.cursor
	n := sh.Length
	if uint64(n) > uint64(len(buf)) || n > rd.r.g.maxPayload {
		return false
	}
	t, typ, fl := sh.Time, sh.Type, sh.Flags
	Copy(buf[:n], unsafe.Slice((*byte)(p), n))
	loadFence(&rd.fence)
	if atomic.LoadUint32(&sh.Stamp) != c<<1 {
		return false
	}
	f.Seq, f.Time, f.Type, f.Flags, f.Lost, f.Data = c, t, typ, fl, rd.pending, buf[:n]
	rd.pending = 0
	rd.stats.Frames++
	rd.consumed(c)
	return true
}

func (rd *Reader) copyOut(f Frame, buf []byte) (Frame, error, bool) {
	if len(f.Data) > len(buf) {
		rd.held = false // not consumed: leave the cursor on this frame
		rd.stats.Frames--
		rd.pending += f.Lost
		return Frame{}, fmt.Errorf("%w: frame %d has %d bytes, buffer %d", ErrShortBuffer, f.Seq, len(f.Data), len(buf)), true
	}
	n := Copy(buf, f.Data)
	if err := rd.Release(); err == ErrClosed {
		return Frame{}, err, true
	} else if err != nil {
		// Torn copy: count it lost and carry the loss to the next frame.
		rd.stats.Frames--
		rd.stats.Overwritten--
		rd.pending += f.Lost + 1
		rd.stats.Lost++
		return Frame{}, nil, false
	}
	f.Data = buf[:n]
	return f, nil, true
}

// Close leaves the reader table and wakes a read blocked in another
// goroutine with ErrClosed. If the Reader came from OpenReader, the ring is
// closed too.
func (rd *Reader) Close() error { return rd.close(true) }

func (rd *Reader) close(detach bool) error {
	// A Close that finds another one under way (Ring.Close racing
	// Reader.Close) waits for it to have left the table: Ring.Close then
	// zeroes the mapping, and a release made after that would miss the
	// ring and leave the entry held by this live process, its cursor
	// frozen (a block-policy writer would wait for it).
	rd.closeMu.Lock()
	if rd.closed.Swap(true) {
		rd.closeMu.Unlock()
		return ErrClosed
	}
	// A goroutine that is reading rather than sleeping sees closed within a
	// few instructions; if it was past that check it may still store its
	// cursor into the entry after the release below, which the entry's next
	// holder overwrites on its first read. Ring.Close leaves zero pages
	// where the mapping was, so it never faults.
	for i := 0; rd.sleeping.Load() != 0 && i < 2000; i++ {
		sys.FutexWake(&rd.h.Head, math.MaxInt32)
		if rd.ev != nil {
			rd.ev.Signal()
		}
		time.Sleep(500 * time.Microsecond)
	}
	rd.cw.Close()
	// (rd.stats belongs to the reading goroutine: not read here.)
	if atomic.LoadUint32(&rd.e.Owner) == rd.me { // evicted: the entry is another's now
		atomic.StoreUint32(&rd.e.Flags, 0)
	}
	release(&rd.e.Owner)
	if rd.ev != nil {
		rd.ev.done()
	}
	rd.letWriterGo() // a block-policy writer may be waiting on us
	rd.closeMu.Unlock()
	if detach {
		rd.r.mu.Lock()
		delete(rd.r.readers, rd)
		rd.r.mu.Unlock()
		if rd.own {
			return rd.r.Close()
		}
	}
	return nil
}
