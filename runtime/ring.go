package runtime

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// rateWindow is the span over which a ring's frame and byte rates are
// measured; the runtime samples every ring this often.
const rateWindow = time.Second

// ringState is one ring the runtime owns.
type ringState struct {
	// name is cfg.Name. It never changes, so the control plane reads it
	// without a lock; cfg itself is replaced by every reload (under the
	// runtime's mu) and read only on the main loop or under that lock.
	name    string
	cfg     *RingConfig
	dir     string
	ring    *shm.Ring
	created bool
	// lock is a descriptor of the segment holding its flock: this runtime
	// manages the ring (ownlock_linux.go). nil if another runtime does.
	lock  *os.File
	stats atomic.Pointer[statsReader] // the ring's stats reader, if one runs

	mu       sync.Mutex
	lastHead uint32
	frames   uint64 // frames published since the runtime opened the ring
	bytes    uint64 // bytes written by the runtime's own source
	// ownWriter: a source of the runtime writes the ring (set by apply);
	// otherwise a child or another process does, and its bytes are those
	// the ring's stats reader reads.
	ownWriter bool
	// The current rate window began at winStart with winFrames frames,
	// winOwn bytes of the runtime's source, and winSeen bytes read by
	// stats reader winStats; rateHz and bytesPerS are those of the last
	// completed window.
	winStart          time.Time
	winFrames, winOwn uint64
	winStats          *statsReader
	winSeen           uint64
	rateHz, bytesPerS float64
}

// openRing attaches to or creates a ring and takes its lock. A ring whose
// geometry, policy or header does not match the config is removed and
// created again (logged), unless another runtime manages it: that is an
// error. A ring another runtime manages is used without its lock, so this
// runtime never removes it.
//
// A segment that belongs to another user is refused before it is mapped
// (the shm config's Owners), whatever its geometry: see foreignSegment.
func (rt *Runtime) openRing(rc *RingConfig, dir string) (*ringState, error) {
	if testHookOpenRing != nil {
		testHookOpenRing(rc.Name)
	}
	sc := rc.shmConfig(dir)
	path := shm.SegmentPath(rc.Name, &sc.Segment)
	r, created, err := shm.OpenOrCreate(rc.Name, sc)
	if oe := (*shm.OwnerError)(nil); errors.As(err, &oe) {
		return nil, fmt.Errorf("ring %s: %s", rc.Name, foreignSegment(oe.Path, oe.UID))
	}
	if err != nil && (errors.Is(err, os.ErrExist) || errors.Is(err, shm.ErrCorrupt) || errors.Is(err, shm.ErrVersion)) {
		if lockedElsewhere(path) {
			return nil, fmt.Errorf("ring %s: existing segment does not match the config (%w), and another edgeipc runtime manages it, so it is not recreated: make the config match, or stop that runtime first", rc.Name, err)
		}
		rt.log.Warn(fmt.Sprintf("ring %s: existing segment does not match the config (%v); removing and recreating it", rc.Name, err))
		if rerr := shm.Remove(rc.Name, &sc.Segment); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return nil, fmt.Errorf("ring %s: %w", rc.Name, rerr)
		}
		r, err = shm.Create(rc.Name, sc)
		created = true
	}
	if err != nil {
		return nil, fmt.Errorf("ring %s: %w", rc.Name, err)
	}
	lock, err := lockRing(r)
	if err != nil {
		if created {
			r.Remove()
		}
		r.Close()
		return nil, fmt.Errorf("ring %s: lock: %w", rc.Name, err)
	}
	verb := "attached to existing"
	if created {
		verb = "created"
	}
	rt.log.Info(fmt.Sprintf("ring %s: %s (%d slots x %d B, %s, %s)", rc.Name, verb, r.Slots(), r.SlotPayload(), r.Policy(), path))
	if lock != nil && !created {
		// A segment left by an earlier run has the mode and group of the
		// configuration it was created by.
		msg, err := applyRingPerms(lock, rc)
		if err != nil {
			lock.Close()
			r.Close()
			return nil, fmt.Errorf("ring %s: cannot give the existing segment the configured mode and group: %w", rc.Name, err)
		}
		if msg != "" {
			rt.log.Info(fmt.Sprintf("ring %s: %s", rc.Name, msg))
		}
	}
	if lock == nil {
		rt.log.Warn(fmt.Sprintf("ring %s: another edgeipc runtime manages it (it holds the segment's lock); this runtime uses the ring but never removes or recreates it", rc.Name))
	}
	return &ringState{name: rc.Name, cfg: rc, dir: dir, ring: r, created: created, lock: lock, lastHead: r.Head(), winStart: time.Now()}, nil
}

// testHookOpenRing, if set, runs as openRing begins: tests put a file in
// the ring's way there, after the checks of checkRings.
var testHookOpenRing func(name string)

// foreignSegment says why the runtime does not use the segment at path,
// which belongs to uid. The segment directory is usually /dev/shm, where
// anyone may create files: a segment another user made under a ring's
// name would let that user read every frame the runtime writes into it,
// forge frames for its readers, and truncate it under the runtime's
// mapping (SIGBUS). The runtime uses only segments it owns (root too:
// root's frames are no less private).
func foreignSegment(path string, uid int) string {
	return fmt.Sprintf("the existing segment %s belongs to uid %d, not to this runtime (uid %d): that user could read and forge its frames, so the runtime does not use it; remove it (as that user or root: %s) or give the ring another name",
		path, uid, os.Geteuid(), shm.RemoveCommand(path))
}

// lockRing takes the lock of r's segment on a duplicate of its descriptor
// (so it is the very file mapped, whatever its path names now). It returns
// nil, and no error, if another runtime holds the lock.
func lockRing(r *shm.Ring) (*os.File, error) {
	f, err := r.File()
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := withFd(f, func(fd int) error { ok, err = tryLock(fd); return err }); err != nil {
		f.Close()
		return nil, err
	}
	if !ok {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// withFd calls fn with f's descriptor without switching f to blocking mode.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// close unmaps the ring and releases its lock. With remove set it first
// removes the segment, but only if this runtime manages the ring (holds its
// lock) and the path still names the segment it has mapped; it returns why
// it left the segment in place ("" if it removed it or was not asked to).
func (rs *ringState) close(remove bool) (kept string) {
	if remove && rs.lock == nil {
		kept = "another edgeipc runtime manages it"
	}
	if rs.lock != nil {
		if remove {
			path := rs.ring.Segment().Path()
			withFd(rs.lock, func(fd int) error {
				if !sameFile(path, fd) {
					kept = "the path names another file now"
				} else if err := rs.ring.Remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
					kept = err.Error()
				}
				return nil
			})
		}
		rs.lock.Close()
	}
	rs.ring.Close()
	return kept
}

// segmentLost reports whether the ring's path no longer names the segment
// the runtime has mapped (it was removed, or replaced by another file).
// Only for a ring this runtime manages (holds the lock of).
func (rs *ringState) segmentLost() bool {
	if rs.lock == nil {
		return false
	}
	path := rs.ring.Segment().Path()
	lost := false
	withFd(rs.lock, func(fd int) error {
		lost = !sameFile(path, fd)
		return nil
	})
	return lost
}

// sample folds the head's movement into the frame count and, once the
// rate window is complete, computes the rates over it. The runtime calls it
// every rateWindow (so the 32-bit head never wraps unseen) and before every
// report, whether or not the periodic stats line is on.
func (rs *ringState) sample() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	h := rs.ring.Head()
	rs.frames += uint64(h - rs.lastHead) // wrap-safe
	rs.lastHead = h
	now := time.Now()
	el := now.Sub(rs.winStart)
	if el < rateWindow {
		return
	}
	rs.rateHz = float64(rs.frames-rs.winFrames) / el.Seconds()
	// Each count against its own start: which one is the ring's can
	// change in a reload (its source removed, or replaced by a child
	// that writes the ring itself), and a stats reader that is replaced
	// (a reload) starts from 0.
	s := rs.stats.Load()
	var seen uint64
	if s != nil {
		seen, _ = s.seen()
	}
	var b uint64
	switch {
	case rs.ownWriter:
		b = rs.bytes - rs.winOwn
	case s == nil:
	case s != rs.winStats:
		b = seen
	case seen >= rs.winSeen:
		b = seen - rs.winSeen
	}
	rs.bytesPerS = float64(b) / el.Seconds()
	rs.winStart, rs.winFrames, rs.winOwn, rs.winStats, rs.winSeen = now, rs.frames, rs.bytes, s, seen
}

// seenBytes is the ring's byte count: what the runtime's own source wrote,
// or, when a child (or another process) writes the ring itself, what its
// stats reader has read.
func (rs *ringState) seenBytes() uint64 {
	if rs.ownWriter {
		return rs.bytes
	}
	if s := rs.stats.Load(); s != nil {
		b, _ := s.seen()
		return b
	}
	return 0
}

func (rs *ringState) addBytes(n int) {
	rs.mu.Lock()
	rs.bytes += uint64(n)
	rs.mu.Unlock()
}

// stat samples the ring and builds the control plane's RingStat: frames
// and bytes up to now, rates over the last completed rate window.
func (rs *ringState) stat() control.RingStat {
	rs.sample()
	info := rs.ring.Inspect()
	rs.mu.Lock()
	st := control.RingStat{
		Name: rs.name, Slots: rs.ring.Slots(), SlotPayload: rs.ring.SlotPayload(),
		Policy: rs.ring.Policy().String(), Frames: rs.frames, Bytes: rs.seenBytes(), RateHz: rs.rateHz,
		BytesPerS: rs.bytesPerS, State: RingOK,
	}
	rs.mu.Unlock()
	if s := rs.stats.Load(); s != nil {
		_, st.Torn = s.seen()
	}
	for _, r := range info.Readers {
		if !r.Alive || r.Joining {
			continue // a joining reader's cursor is not set yet
		}
		st.Readers++
		if r.Lag > st.MaxLag {
			st.MaxLag = r.Lag
		}
		st.Lost += uint64(r.Lost)
	}
	return st
}

// Ring states (control.RingStat.State).
const (
	RingOK = "ok"
	// RingMissing: a reload removed the ring's old segment and could not
	// create the new one; the runtime tries again with backoff.
	RingMissing = "missing"
)

// stat is the control plane's row for a pending ring (the caller holds
// the runtime's mu).
func (p *pendingRing) stat() control.RingStat {
	return control.RingStat{
		Name: p.cfg.Name, Slots: p.cfg.Slots, SlotPayload: p.cfg.SlotPayload, Policy: p.cfg.Policy,
		State: RingMissing, LastError: p.why(),
	}
}

// why says why the ring is missing and when it is tried again (the caller
// holds the runtime's mu).
func (p *pendingRing) why() string {
	next := time.Until(p.next).Round(100 * time.Millisecond)
	return fmt.Sprintf("a reload removed its old segment and could not create the new one (attempt %d: %v); next attempt in %v", p.attempts, p.err, max(next, 0))
}
