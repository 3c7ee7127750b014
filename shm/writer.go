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

// evictEvery is how often a writer blocked by a full ring (block policy)
// checks whether the readers holding it back are still alive.
const evictEvery = 100 * time.Millisecond

// Writer publishes frames into a ring. A ring has at most one live Writer
// across all processes (the writer lease); the lease of a writer whose
// process died is reclaimed by the next one.
//
// A Writer is not safe for concurrent use except Close, which may be called
// from any goroutine to abort a blocked Reserve.
type Writer struct {
	r    *Ring
	h    *ringHeader
	seq  uint32 // sequence of the next frame
	me   uint32
	own  bool // closing the writer closes the ring
	held bool // a slot is reserved
	// opened: the slot of frame seq is already marked being written (by
	// the last Commit, see openNext)
	opened bool
	slot   *slotHeader
	rlen   uint32

	minCursor uint32 // block policy: cached slowest reader cursor
	joins     uint32 // block policy: Joins as loaded before the scan that set minCursor
	slowIdx   int    // block policy: reader entry that had minCursor (-1: none)
	scanHi    int    // block policy: highest reader entry seen held
	scans     int    // block policy: scans since the last full one
	spin      int    // block policy: polls of a full ring before sleeping
	idleWakes int    // consecutive commits whose wake reached no sleeper
	evSignals int    // eventfd signals since the last stale check
	wakeCalls uint64 // wake system calls made (futex wakes, eventfd signals): none unless a reader sleeps
	staleAt   int64  // nanotime of the last stale check
	evictedAt int64  // block policy: nanotime of the last eviction of dead readers (see evictDue)
	fence     uint32
	closed    atomic.Bool
	closeMu   sync.Mutex   // held by Close until the lease is released
	waiting   atomic.Int32 // goroutines waiting for space (awaitSpace)
	notifiers atomic.Pointer[[]*Eventfd]
	cw        sys.CtxWake // a context's cancellation wakes the space wait
}

// NewWriter takes the ring's writer lease. It fails with a *BusyError
// (errors.Is ErrBusy) if a live process holds it; a dead holder's lease is
// reclaimed, and a frame it left half-written is never seen by readers. A
// frame it committed but died before publishing is published (readers may
// already have taken it by its stamp), so no sequence number ever stands
// for two different frames, and readers asleep on the ring's futex are
// woken, in case it died before waking them for its last frame.
func (r *Ring) NewWriter() (*Writer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	h := r.hdr
	prev, ok := claim(&h.LeaseOwner, &h.LeaseStart, &h.LeasePidNS)
	if !ok {
		return nil, &OpError{"open writer", r.name, &BusyError{PID: int(prev)}}
	}
	atomic.AddUint32(&h.LeaseEpoch, 1)
	publish(&h.LeaseOwner)
	w := &Writer{r: r, h: h, seq: atomic.LoadUint32(&h.Head), me: uint32(os.Getpid())}
	w.cw.Interrupt = futexWake(&h.SpaceValue)
	if sh, _ := r.slot(w.seq); atomic.LoadUint32(&sh.Stamp) == w.seq<<1 && sh.Seq == w.seq {
		// The last writer died between its commit's stamp and head stores.
		w.seq++
		atomic.StoreUint32(&h.Head, w.seq)
	}
	// It may also have died between its head store and its wake: readers
	// asleep on the head it moved would sleep through its last frame
	// until their sleep bound or our first commit. (No system call when
	// nobody sleeps.)
	w.wake()
	// No cache yet: the first frame scans the reader table (readers may
	// be up to a ring behind head).
	w.minCursor = w.seq - r.g.slotCount
	w.slowIdx, w.scanHi = -1, MaxReaders-1
	r.writer = w
	return w, nil
}

// OpenWriter opens the named ring and takes its writer lease, with the
// errors of Open and NewWriter (ErrBusy). Closing the Writer closes the
// ring.
func OpenWriter(name string, opts *SegmentOptions) (*Writer, error) {
	r, err := Open(name, opts)
	if err != nil {
		return nil, err
	}
	w, err := r.NewWriter()
	if err != nil {
		r.Close()
		return nil, err
	}
	w.own = true
	return w, nil
}

// SetSpin sets how many times a Reserve that finds the ring full (block
// policy) polls the slowest reader before it sleeps: 0 (the default)
// sleeps at once, a negative value polls until there is space (lowest
// latency and highest throughput, one busy core), like ReaderOptions.Spin.
// The overwrite policy never waits.
func (w *Writer) SetSpin(n int) { w.spin = n }

// Ring returns the ring the writer publishes to.
func (w *Writer) Ring() *Ring { return w.r }

// Seq returns the sequence number the next committed frame will get.
func (w *Writer) Seq() uint32 { return w.seq }

// AddNotifier registers an eventfd to signal when readers that wait on
// eventfds are asleep (see ReaderOptions.Notifier). If such a reader
// sleeps already, e is signalled at once: the previous writer may have
// died between publishing its last frame and its wake, and a reader asleep
// on e would otherwise sleep through that frame until this writer's first
// commit or its sleep bound (a spurious wake costs the reader a look at
// the head). Adding an eventfd that is already registered changes nothing;
// eventfds closed meanwhile are dropped from the list. It returns an error
// wrapping ErrInvalid for a nil or closed eventfd, ErrClosed on a closed
// Writer.
func (w *Writer) AddNotifier(e *Eventfd) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if e == nil || e.isClosed() {
		return &OpError{"add notifier", w.r.name, fmt.Errorf("%w: nil or closed eventfd", ErrInvalid)}
	}
	for {
		old := w.notifiers.Load()
		n := liveNotifiers(old, e)
		n = append(n, e)
		if w.notifiers.CompareAndSwap(old, &n) {
			break
		}
	}
	if atomic.LoadUint32(&w.h.EvSleepers) != 0 {
		e.Signal()
	}
	return nil
}

// RemoveNotifier unregisters an eventfd added with AddNotifier (for a
// writer that outlives the readers it signals: a descriptor of a reader
// that left would otherwise be signalled for as long as the writer runs).
// It reports whether e was registered. Eventfds closed meanwhile are
// dropped too.
func (w *Writer) RemoveNotifier(e *Eventfd) bool {
	for {
		old := w.notifiers.Load()
		if old == nil {
			return false
		}
		n := liveNotifiers(old, e)
		found := false
		for _, x := range *old {
			found = found || x == e
		}
		if w.notifiers.CompareAndSwap(old, &n) {
			return found
		}
	}
}

// liveNotifiers copies the notifier list ns without drop and without
// eventfds that were closed.
func liveNotifiers(ns *[]*Eventfd, drop *Eventfd) []*Eventfd {
	var n []*Eventfd
	if ns != nil {
		for _, x := range *ns {
			if x != drop && !x.isClosed() {
				n = append(n, x)
			}
		}
	}
	return n
}

// TryReserve is Reserve that returns ErrWouldBlock instead of waiting for
// space under the block policy. Like a waiting Reserve, it frees the
// entries of readers that died (it looks every 100 ms while the ring
// stays full), so a crashed reader cannot stall a writer that only polls.
func (w *Writer) TryReserve(n int) ([]byte, error) { return w.reserve(n, waitSpec{}, true) }

// Reserve returns the payload bytes of the next slot, n bytes long, for the
// caller to fill before Commit. Under the block policy it waits (without
// limit) for the slowest reader; use ReserveContext to bound the wait. A
// second Reserve before Commit reuses the same slot. It returns an error
// matching ErrTooLarge if n exceeds the ring's SlotPayload, ErrInvalid if
// n is negative, and ErrClosed once the Writer is closed.
func (w *Writer) Reserve(n int) ([]byte, error) {
	return w.reserve(n, waitSpec{ctx: context.Background()}, false)
}

// ReserveContext is Reserve bounded by ctx: once ctx is done it returns
// an error matching ctx.Err().
func (w *Writer) ReserveContext(ctx context.Context, n int) ([]byte, error) {
	return w.reserve(n, waitSpec{ctx: ctx}, false)
}

// ReserveDeadline is Reserve bounded by a deadline: after t it returns an
// error matching os.ErrDeadlineExceeded.
func (w *Writer) ReserveDeadline(t time.Time, n int) ([]byte, error) {
	return w.reserve(n, waitSpec{deadline: t}, false)
}

func (w *Writer) reserve(n int, ws waitSpec, try bool) ([]byte, error) {
	if w.closed.Load() {
		return nil, ErrClosed
	}
	if n < 0 {
		return nil, &OpError{"reserve", w.r.name, fmt.Errorf("%w: negative payload size %d", ErrInvalid, n)}
	}
	if n > int(w.r.g.maxPayload) {
		return nil, w.tooLarge(n)
	}
	s := w.seq
	if !w.held {
		sh, _ := w.r.slot(s)
		if !w.opened {
			if w.r.g.policy == policyBlock && !w.hasSpace(s) && !(try && w.evictedRoom(s)) {
				if try {
					return nil, ErrWouldBlock
				}
				if err := w.awaitSpace(sh, s, ws); err != nil {
					return nil, err
				}
			} else {
				w.markWriting(sh, s)
			}
		}
		w.opened = false
		w.slot = sh
		w.held = true
	}
	w.rlen = uint32(n)
	if n >= ntFenceMin {
		// The caller may fill a payload this large with non-temporal
		// stores (Go's copy does from 1 MiB on amd64), which may pass
		// the odd stamp's ordinary store unless fenced (ntFence). One
		// MFENCE costs far less than the copy it guards.
		ntFence()
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(w.slot), slotHeaderBytes)), n), nil
}

// ntFenceMin is the smallest Reserve that fences for non-temporal payload
// stores: well below the 1 MiB where Go's copy switches to them, in case
// another copy routine switches earlier.
const ntFenceMin = 64 << 10

func (w *Writer) tooLarge(n int) error {
	return &OpError{"reserve", w.r.name, fmt.Errorf("%w: %d bytes, slots hold at most %d (create the ring with a larger slot size)", ErrTooLarge, n, w.r.g.maxPayload)}
}

// Commit publishes the reserved frame with type and flags 0 and returns its
// sequence number.
func (w *Writer) Commit() (uint32, error) { return w.CommitWith(0, 0) }

// CommitWith publishes the reserved frame with an application type and
// flags, stamped with CLOCK_MONOTONIC, and wakes sleeping readers.
func (w *Writer) CommitWith(typ, flags uint32) (uint32, error) {
	if w.closed.Load() {
		// Close discarded the reserved frame. The lease check below
		// cannot tell: another Writer of this process may hold the lease
		// now, under the same PID.
		w.held = false
		return 0, ErrClosed
	}
	if !w.held {
		return 0, &OpError{"commit", w.r.name, fmt.Errorf("%w: Commit without Reserve", ErrInvalid)}
	}
	if o := atomic.LoadUint32(&w.h.LeaseOwner); o != w.me {
		w.held = false
		if w.closed.Load() {
			return 0, ErrClosed // Close released the lease (and may have zeroed the mapping)
		}
		return 0, &OpError{"commit", w.r.name, fmt.Errorf("writer lease was taken over by pid %d: %w", o&^claimBit, ErrBusy)}
	}
	// The clock is read before the first store to the slot header: a
	// reader waiting for this frame polls that cache line, and a store
	// issued before the 30-odd ns of the clock read let it take the line
	// back in between, so the stores after it had to fetch it once more.
	now := nanotime()
	s := w.seq
	sh := w.slot
	sh.Length = w.rlen
	sh.Type = typ
	sh.Flags = flags
	sh.Time = now
	sh.Seq = s
	atomicx.StoreRelease(&sh.Stamp, s<<1)
	atomic.StoreUint32(&w.h.Head, s+1) // seq_cst: ordered before the loads of the sleeper counts
	w.seq = s + 1
	w.held = false
	w.wake()
	w.openNext(s + 1)
	if (w.idleWakes >= staleWakes || w.evSignals >= staleWakes) && now-w.staleAt >= staleCheckEvery {
		w.idleWakes, w.evSignals, w.staleAt = 0, 0, now
		w.repairSleepers()
	}
	return s, nil
}

// wake wakes the readers asleep on the head (futex) and, if any wait on
// eventfds, signals the registered eventfds. It makes no system call when
// nobody sleeps.
func (w *Writer) wake() {
	if n := atomic.LoadUint32(&w.h.Sleepers); n != 0 {
		w.wakeCalls++
		if woken, _ := sys.FutexWake(&w.h.Head, math.MaxInt32); woken == 0 {
			w.idleWakes++
		} else {
			w.idleWakes = 0
		}
	}
	if n := atomic.LoadUint32(&w.h.EvSleepers); n != 0 {
		if ns := w.notifiers.Load(); ns != nil {
			w.wakeCalls += uint64(len(*ns))
			for _, e := range *ns {
				e.Signal()
			}
		}
		w.evSignals++ // whether it woke anyone is unknowable here
	}
}

// openNext marks the slot of frame s as being written as soon as frame s-1
// is out, instead of at the Reserve of s. A reader waiting for frame s
// polls that slot's stamp; a mark stored while it polls would pull the
// cache line away from it once more before the commit, and that second
// round trip cost the hand-over of a frame about a quarter of its time
// between two cores. The price: while a writer holds the ring (and after
// it leaves) frame s-slotCount is already gone, so at most slotCount-1
// frames are readable. A block-policy writer opens the slot only when the
// slowest reader it last saw has released it; otherwise Reserve waits.
func (w *Writer) openNext(s uint32) {
	if w.r.g.policy == policyBlock && !w.cachedSpace(s) {
		return
	}
	sh, _ := w.r.slot(s)
	w.markWriting(sh, s)
	w.opened = true
}

// markWriting stamps slot sh as holding frame s being written, ordered
// before any store to its payload or header: a reader that copied the
// frame one lap back then sees its stamp change and discards the copy.
func (w *Writer) markWriting(sh *slotHeader, s uint32) {
	atomicx.StoreRelease(&sh.Stamp, s<<1|stampWriting)
	storeFence(&w.fence)
}

// repairSleepers takes back the sleeper counts of readers that died
// asleep: without it every later commit would make a wasted system call.
// It only ever subtracts what a dead entry is known to hold; a reader that
// is alive keeps its count even while it wakes and sleeps again during the
// scan (resetting the count instead would let that reader sleep uncounted).
func (w *Writer) repairSleepers() {
	for _, c := range []*uint32{&w.h.Sleepers, &w.h.EvSleepers} {
		// More sleepers than readers exist is an underflow or garbage.
		if v := atomic.LoadUint32(c); v > MaxReaders {
			atomic.CompareAndSwapUint32(c, v, 0)
		}
	}
	for i := 0; i < MaxReaders; i++ {
		e := w.r.reader(i)
		if o := atomic.LoadUint32(&e.Owner); o != 0 && atomic.LoadUint32(&e.Flags)&readerAsleep != 0 {
			w.reapIfDead(e, o)
		}
	}
}

// reapIfDead frees reader entry e, whose owner word read o, if its holder
// is dead, taking back the sleeper count it may have left. The entry is
// claimed first: a reader that takes it over meanwhile (and may already
// sleep in it, counted) keeps it, because its claim or ours fails.
func (w *Writer) reapIfDead(e *readerEntry, o uint32) {
	if holderAlive(o, atomic.LoadUint32(&e.Start), atomic.LoadUint32(&e.PidNS)) ||
		!atomic.CompareAndSwapUint32(&e.Owner, o, w.me|claimBit) {
		return
	}
	forgetSleeper(w.h, e)
	atomic.StoreUint32(&e.Owner, 0)
}

// forgetSleeper takes back the sleeper count of a reader entry whose holder
// is dead, once: the CAS that clears its asleep flag decides who does it.
// A reader raises its asleep flag before it counts itself and lowers it
// after it uncounts itself, so for a few instructions a dead reader may be
// flagged without a count; the count taken back then belonged to a live
// sleeper, which notices within maxSleep.
func forgetSleeper(h *ringHeader, e *readerEntry) {
	fl := atomic.LoadUint32(&e.Flags)
	if fl&readerAsleep == 0 || !atomic.CompareAndSwapUint32(&e.Flags, fl, fl&^readerAsleep) {
		return
	}
	c := &h.Sleepers
	if fl&readerEventfd != 0 {
		c = &h.EvSleepers
	}
	for {
		v := atomic.LoadUint32(c)
		if v == 0 || v > MaxReaders || atomic.CompareAndSwapUint32(c, v, v-1) {
			return
		}
	}
}

// Write copies p into the next slot and commits it with type 0: one frame
// per call, with the errors of Reserve (ErrTooLarge if p exceeds the ring's
// SlotPayload). Like Reserve, under the block policy it waits without limit
// for space; to bound the wait, fill the slot that ReserveContext or
// ReserveDeadline returns (with Copy) and call CommitWith.
func (w *Writer) Write(p []byte) (int, error) {
	if _, err := w.WriteFrame(0, 0, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteFrame copies p into the next slot and commits it with typ and
// flags, and returns its sequence number. It waits as Write does.
func (w *Writer) WriteFrame(typ, flags uint32, p []byte) (uint32, error) {
	b, err := w.Reserve(len(p))
	if err != nil {
		return 0, err
	}
	Copy(b, p)
	return w.CommitWith(typ, flags)
}

// hasSpace reports whether frame s may be written without overwriting a
// frame a live reader has not released (block policy).
func (w *Writer) hasSpace(s uint32) bool {
	if w.cachedSpace(s) {
		return true
	}
	min, _ := w.slowest(s)
	w.minCursor = min
	return s-min < w.r.g.slotCount
}

// cachedSpace reports whether the last scan of the reader table proves
// that frame s fits: the slowest cursor it saw is less than a ring behind
// s, and no reader has joined since (a reader that joins from the oldest
// frame starts behind every cursor the scan saw). Readers that advance or
// leave only make room.
func (w *Writer) cachedSpace(s uint32) bool {
	return s-w.minCursor < w.r.g.slotCount && atomic.LoadUint32(&w.h.Joins) == w.joins
}

// slowest scans the reader table for the reader furthest behind s and
// returns its cursor and entry index (-1 if none). An entry more than a
// ring behind counts (the ring is full for it): a live reader gets there by
// joining while this writer, not yet aware of it, went on, and it catches
// up by skipping what it lost; ignored, it would lose frames for as long as
// the writer stays ahead. Only a cursor ahead of s (corrupt, or a reader of
// a sequence this writer has not reached) holds nothing back.
//
// When no reader has joined since the last scan (Joins is unchanged), no
// entry past the highest one seen held can have become held, and the scan
// stops there; otherwise, and every fullScanEvery-th time (for readers
// that break the protocol and do not count their join), it covers the
// whole table.
func (w *Writer) slowest(s uint32) (uint32, int) {
	lo, idx := s, -1
	end := min(w.scanHi+1, MaxReaders)
	j := atomic.LoadUint32(&w.h.Joins) // before the loads of the entries
	if j != w.joins {
		w.joins, end = j, MaxReaders
	}
	if w.scans++; w.scans >= fullScanEvery {
		w.scans, end = 0, MaxReaders
	}
	hi := -1
	for i := 0; i < end; i++ {
		e := w.r.reader(i)
		o := atomic.LoadUint32(&e.Owner)
		if o == 0 {
			continue
		}
		hi = i
		if o&claimBit != 0 {
			continue
		}
		c := atomic.LoadUint32(&e.Cursor)
		if lag := s - c; lag <= 1<<31 && lag > s-lo {
			lo, idx = c, i
		}
	}
	if hi >= w.scanHi || end == MaxReaders {
		w.scanHi = hi
	}
	w.slowIdx = idx
	return lo, idx
}

// fullScanEvery: how often slowest scans all MaxReaders entries.
const fullScanEvery = 64

// spinSpace polls a full ring for space up to w.spin times (forever if
// negative), reading only the slowest reader's cursor until it moves, and
// reports whether space appeared. It never sleeps, so it needs no wake-up
// from the readers. It gives up early when the writer is closed or ws
// expires (waitSpace then reports why), and evicts dead readers every
// evictEvery like waitSpace.
func (w *Writer) spinSpace(s uint32, ws waitSpec) bool {
	if w.spin == 0 {
		return false
	}
	n := w.r.g.slotCount
	// Wait for a batch of free slots (an eighth of the ring) while the
	// reader is moving, rather than taking each slot as it frees: every
	// poll of its cursor pulls that cache line away from the reader, and a
	// rescan of the table costs more than a poll.
	want := n - max(1, n/8)
	for i := 0; w.spin < 0 || i < w.spin; i++ {
		if i&1023 == 1023 {
			if w.closed.Load() || ws.expired() != nil {
				return false
			}
			w.evictDue(s)
		}
		if w.slowIdx >= 0 {
			e := w.r.reader(w.slowIdx)
			lag := s - atomic.LoadUint32(&e.Cursor)
			if (lag > want && i < 64 || lag >= n && lag <= 1<<31) && atomic.LoadUint32(&e.Owner) != 0 {
				procyield(4)
				continue
			}
		}
		if w.hasSpace(s) {
			return true
		}
	}
	return false
}

// awaitSpace waits (polling, then sleeping) until frame s fits, and marks
// its slot sh being written. Close may end the wait from another goroutine
// at any moment: the wait counts itself in waiting, which Close waits to
// fall to 0 before it releases the lease, and it checks closed once more
// after it found space, so that a Reserve that Close aborted returns
// ErrClosed and never stores to the ring after the lease is gone (a writer
// that took it meanwhile may have committed frame s in that slot).
func (w *Writer) awaitSpace(sh *slotHeader, s uint32, ws waitSpec) error {
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	w.evictDue(s)
	if !w.spinSpace(s, ws) {
		if err := w.waitSpace(s, ws); err != nil {
			return err
		}
	}
	if w.closed.Load() {
		return ErrClosed
	}
	w.markWriting(sh, s)
	return nil
}

func (w *Writer) waitSpace(s uint32, ws waitSpec) error {
	h := w.h
	for {
		atomic.StoreUint32(&h.WriterWaiting, 1)
		if w.hasSpace(s) {
			atomic.StoreUint32(&h.WriterWaiting, 0)
			return nil
		}
		err := semWait(&h.SpaceValue, &h.SpaceWaiters, ws, evictEvery, &w.closed, &w.cw)
		if w.closed.Load() {
			return ErrClosed
		}
		switch err {
		case nil:
			// A unit need not bring space (space_value is shared memory:
			// another process may have stored any count there), and a
			// run of such units never sleeps into errSlice: evict on the
			// clock instead, and heed ws below.
			w.evictDue(s)
		case errSlice:
			w.evictedAt = nanotime()
			w.evictDead(s)
		default:
			atomic.StoreUint32(&h.WriterWaiting, 0)
			// The clock runs across calls: a writer whose every wait
			// is shorter than evictEvery still frees dead readers.
			w.evictDue(s)
			return err
		}
		if w.hasSpace(s) {
			atomic.StoreUint32(&h.WriterWaiting, 0)
			return nil
		}
		if err := ws.expired(); err != nil {
			atomic.StoreUint32(&h.WriterWaiting, 0)
			w.evictDue(s)
			return err
		}
	}
}

// evictedRoom is for a TryReserve that found the ring full: it frees the
// entries of dead readers when they are due (evictDue) and reports whether
// that made room for frame s.
func (w *Writer) evictedRoom(s uint32) bool {
	return w.evictDue(s) && s-w.minCursor < w.r.g.slotCount
}

// evictDue frees the entries of dead readers (evictDead) if evictEvery has
// passed since the writer last did, or since it first found the ring full,
// and reports whether it did. The clock is the writer's, not one wait's:
// a writer that only polls (TryReserve), or whose every wait is shorter
// than evictEvery (a deadline or context per frame), would otherwise never
// free them, and a crashed reader would stall it for as long as it runs.
func (w *Writer) evictDue(s uint32) bool {
	now := nanotime()
	if w.evictedAt == 0 {
		w.evictedAt = now // the first full ring waits a period, as a sleep slice does
	}
	if now-w.evictedAt < int64(evictEvery) {
		return false
	}
	w.evictedAt = now
	w.evictDead(s)
	return true
}

// evictDead frees reader entries whose processes are gone, so a crashed
// reader cannot stall a block-policy writer.
func (w *Writer) evictDead(s uint32) {
	for i := 0; i < MaxReaders; i++ {
		e := w.r.reader(i)
		if o := atomic.LoadUint32(&e.Owner); o != 0 {
			w.reapIfDead(e, o)
		}
	}
	w.minCursor, _ = w.slowest(s)
}

// Close releases the writer lease (a reserved, uncommitted frame is
// discarded) and wakes a Reserve blocked in another goroutine with
// ErrClosed. If the Writer came from OpenWriter, the ring is closed too.
func (w *Writer) Close() error { return w.close(true) }

func (w *Writer) close(detach bool) error {
	// A Close that finds another one under way (Ring.Close racing
	// Writer.Close) waits for it to have released the lease: Ring.Close
	// then zeroes the mapping, and a release made after that would miss
	// the ring and leave the lease held by this live process.
	w.closeMu.Lock()
	if w.closed.Swap(true) {
		w.closeMu.Unlock()
		return ErrClosed
	}
	// Wake our own blocked Reserve, if any (sleeping or polling), and let
	// it leave before the lease goes (see awaitSpace). At most one unit is
	// left posted: more would make the next writer's first waits spin.
	for i := 0; w.waiting.Load() != 0 && i < 1000; i++ {
		if atomic.LoadUint32(&w.h.SpaceValue) == 0 {
			semPost(&w.h.SpaceValue, &w.h.SpaceWaiters)
		}
		sys.FutexWake(&w.h.SpaceValue, math.MaxInt32)
		time.Sleep(time.Millisecond)
	}
	w.cw.Close()
	release(&w.h.LeaseOwner)
	w.closeMu.Unlock()
	if detach {
		w.r.mu.Lock()
		if w.r.writer == w {
			w.r.writer = nil
		}
		w.r.mu.Unlock()
		if w.own {
			return w.r.Close()
		}
	}
	return nil
}
