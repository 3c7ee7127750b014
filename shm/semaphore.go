package shm

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// semaphore segment layout (ABI v1, see docs/abi.md):
//
//	0  magic   u32 "EIPS"
//	4  version u32 1
//	8  value   u32 (futex word)
//	12 waiters u32
const semSegmentSize = 4096

type semHeader struct {
	Magic   uint32
	Version uint32
	Value   uint32
	Waiters uint32
}

// Semaphore is a named, process-shared counting semaphore in shared memory,
// built on a futex: Post never blocks and makes a system call only when a
// waiter sleeps. It is safe for concurrent use.
type Semaphore struct {
	seg    *Segment
	h      *semHeader
	closed atomic.Bool
	local  atomic.Int32 // waiters in this process
	// idleWakes counts consecutive Posts whose wake reached nobody,
	// idleSince is when the first of them was made, and repairAt is when
	// the waiter count was last repaired (see Post).
	idleWakes atomic.Int32
	idleSince atomic.Int64
	repairAt  atomic.Int64
	// Context registrations of waits under cancellable contexts, kept
	// from one wait to the next (one per concurrent waiter): a consumer
	// that waits in a loop under one context allocates nothing per wait.
	cwMu   sync.Mutex
	cwFree []*sys.CtxWake
	cwDone bool // Close released them
}

// MaxSemaphoreValue is the largest count a Semaphore holds (SEM_VALUE_MAX
// on Linux); Post refuses to go past it.
const MaxSemaphoreValue = math.MaxInt32

// CreateSemaphore creates a new named semaphore with an initial value of
// at most MaxSemaphoreValue.
func CreateSemaphore(name string, initial uint32, opts *SegmentOptions) (*Semaphore, error) {
	if initial > MaxSemaphoreValue {
		return nil, &OpError{"create semaphore", name, fmt.Errorf("%w: initial value %d is above %d", ErrInvalid, initial, MaxSemaphoreValue)}
	}
	// Filled before it gets its name (where the filesystem allows, as a
	// ring): a creator that dies in between leaves nothing, rather than a
	// zeroed file that OpenSemaphore refuses and someone must remove.
	seg, err := createSegment(name, semSegmentSize, opts, func(mem []byte) {
		if testHookSemInit != nil {
			testHookSemInit(name)
		}
		h := (*semHeader)(unsafe.Pointer(&mem[0]))
		h.Version = ABIVersion
		atomic.StoreUint32(&h.Value, initial)
		atomic.StoreUint32(&h.Magic, semMagic)
	})
	if err != nil {
		return nil, err
	}
	return &Semaphore{seg: seg, h: (*semHeader)(unsafe.Pointer(&seg.mem[0]))}, nil
}

// OpenSemaphore opens an existing named semaphore.
func OpenSemaphore(name string, opts *SegmentOptions) (*Semaphore, error) {
	seg, err := openSegment(name, opts, int64(unsafe.Sizeof(semHeader{}))) // waits for a creator still sizing it
	if err != nil {
		return nil, err
	}
	if len(seg.mem) < int(unsafe.Sizeof(semHeader{})) {
		seg.Close()
		return nil, &OpError{"open", name, corrupt("segment size", uint64(len(seg.mem)), ">= 16 (not a semaphore)")}
	}
	h := (*semHeader)(unsafe.Pointer(&seg.mem[0]))
	var m uint32
	for i := 0; i < int(readyPolls.Load()); i++ {
		if m = atomic.LoadUint32(&h.Magic); m != 0 || seg.settled {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m != semMagic {
		seg.Close()
		return nil, &OpError{"open", name, fmt.Errorf("%w: magic %#08x is not an edgeipc semaphore", ErrCorrupt, m)}
	}
	if h.Version != ABIVersion {
		seg.Close()
		return nil, &OpError{"open", name, fmt.Errorf("%w: semaphore ABI version %d, this build speaks %d", ErrVersion, h.Version, ABIVersion)}
	}
	return &Semaphore{seg: seg, h: h}, nil
}

// RemoveSemaphore unlinks a named semaphore.
func RemoveSemaphore(name string, opts *SegmentOptions) error { return RemoveSegment(name, opts) }

// Post increments the semaphore and wakes one waiter. At
// MaxSemaphoreValue it changes nothing and returns an error wrapping
// ErrOverflow (sem_post's EOVERFLOW).
//
// A waiter killed while asleep leaves its count in the waiter word, and
// every later Post would make a wake system call for nobody. When Post's
// wakes have reached nobody for staleCheckEvery, at least staleWakes of
// them, with no Post in between that woke someone or found the word 0,
// Post resets the word to the number of this process's waiters (at most
// once per staleCheckEvery). Live waiters also leave wakes unanswered,
// between counting themselves and entering the kernel, or woken and not
// yet uncounted, but only for an instant each: a burst of Posts in such
// an instant is not a dead waiter, and taking a live waiter's count made
// it sleep through the Posts that followed. Waiters sleep at most
// maxSleep at a time, so a live waiter of another process whose count a
// reset took all the same is late by at most that much, never stuck.
func (s *Semaphore) Post() error {
	if s.closed.Load() {
		return ErrClosed
	}
	ok, woke := semPost(&s.h.Value, &s.h.Waiters)
	switch {
	case woke > 0 || woke < 0 && ok: // woke someone, or nobody was counted
		if s.idleWakes.Load() != 0 {
			s.idleWakes.Store(0)
		}
	case woke == 0:
		if n := s.idleWakes.Add(1); n == 1 {
			s.idleSince.Store(nanotime())
		} else if n >= staleWakes && nanotime()-s.idleSince.Load() >= staleCheckEvery {
			s.repairWaiters()
		}
	}
	runtime.KeepAlive(s) // the mapping lives until s is garbage (Close)
	if !ok {
		return &OpError{"post", s.seg.name, fmt.Errorf("%w (%d): wait before posting again", ErrOverflow, MaxSemaphoreValue)}
	}
	return nil
}

// repairWaiters takes back waiter counts that no sleeper holds (see Post),
// leaving as many as this process has waiters: each of those may hold one.
func (s *Semaphore) repairWaiters() {
	now := nanotime()
	if last := s.repairAt.Load(); now-last < staleCheckEvery || !s.repairAt.CompareAndSwap(last, now) {
		return
	}
	s.idleWakes.Store(0)
	keep := uint32(max(s.local.Load(), 0))
	if v := atomic.LoadUint32(&s.h.Waiters); v > keep {
		atomic.CompareAndSwapUint32(&s.h.Waiters, v, keep)
	}
}

// TryWait decrements the semaphore if it is positive and returns
// ErrWouldBlock otherwise.
func (s *Semaphore) TryWait() error {
	if s.closed.Load() {
		return ErrClosed
	}
	ok := semTryWait(&s.h.Value)
	runtime.KeepAlive(s)
	if ok {
		return nil
	}
	return ErrWouldBlock
}

// Wait decrements the semaphore, sleeping while it is zero, until ctx is
// done or the semaphore is closed.
func (s *Semaphore) Wait(ctx context.Context) error {
	return s.wait(waitSpec{ctx: ctx})
}

// WaitDeadline is Wait with a deadline instead of a context; it returns an
// error wrapping os.ErrDeadlineExceeded when the deadline passes.
func (s *Semaphore) WaitDeadline(t time.Time) error {
	return s.wait(waitSpec{deadline: t})
}

func (s *Semaphore) wait(w waitSpec) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.local.Add(1)
	defer s.local.Add(-1)
	var cw *sys.CtxWake
	if w.ctx != nil && w.ctx.Done() != nil {
		cw = s.getCtxWake()
		defer s.putCtxWake(cw)
	}
	err := errSlice
	for err == errSlice { // sleeps are bounded: see Post
		err = semWait(&s.h.Value, &s.h.Waiters, w, maxSleep(), &s.closed, cw)
	}
	if err == nil && s.closed.Load() {
		// Give the unit back: Close interrupted us.
		semPost(&s.h.Value, &s.h.Waiters)
		return ErrClosed
	}
	return err
}

// getCtxWake returns a context registration for one wait (see cwFree);
// its Interrupt wakes every sleeper on the value, who re-check.
func (s *Semaphore) getCtxWake() *sys.CtxWake {
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	if n := len(s.cwFree); n > 0 {
		cw := s.cwFree[n-1]
		s.cwFree = s.cwFree[:n-1]
		return cw
	}
	return &sys.CtxWake{Interrupt: futexWake(&s.h.Value)}
}

func (s *Semaphore) putCtxWake(cw *sys.CtxWake) {
	s.cwMu.Lock()
	if !s.cwDone {
		s.cwFree = append(s.cwFree, cw)
		cw = nil
	}
	s.cwMu.Unlock()
	if cw != nil {
		cw.Close()
	}
}

// Value returns the current count.
func (s *Semaphore) Value() uint32 {
	v := atomic.LoadUint32(&s.h.Value)
	runtime.KeepAlive(s)
	return v
}

// Name returns the semaphore's name.
func (s *Semaphore) Name() string { return s.seg.name }

// Close wakes every waiter in this process with ErrClosed, waits for them
// to return, and unmaps the semaphore. Other processes are not affected.
func (s *Semaphore) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	sys.FutexWake(&s.h.Value, math.MaxInt32)
	// Waiters re-check closed after waking: wait for them to leave before
	// unmapping the word they sleep on. One that has not run yet (a loaded
	// machine may not run a goroutine for a second) would otherwise sleep
	// on the unmapped word, where no wake reaches it, until its sleep
	// bound, and a unit it gives back on its way out would be lost. Each
	// leaves once it runs, so the bound (its own sleep bound) only guards
	// against the unforeseen.
	deadline := time.Now().Add(maxSleep())
	for d := 100 * time.Microsecond; s.local.Load() != 0 && time.Now().Before(deadline); d = min(2*d, 10*time.Millisecond) {
		sys.FutexWake(&s.h.Value, math.MaxInt32)
		time.Sleep(d)
	}
	s.cwMu.Lock()
	s.cwDone = true
	free := s.cwFree
	s.cwFree = nil
	s.cwMu.Unlock()
	for _, cw := range free {
		cw.Close()
	}
	// A Post, TryWait or Value racing Close (or a waiter that has not
	// woken yet) touches zero pages from here on, never a hole; a Post that
	// loses that race is lost with the handle.
	return retireSegment(s, s.seg)
}
