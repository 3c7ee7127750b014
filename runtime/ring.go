package runtime

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// ringState is one ring the runtime owns.
type ringState struct {
	cfg     *RingConfig
	dir     string
	ring    *shm.Ring
	created bool

	mu       sync.Mutex
	lastHead uint32
	frames   uint64 // frames published since the runtime opened the ring
	bytes    uint64 // bytes written by the runtime's own source (or seen by stats)
	// rate over the last sample window
	rateHz  float64
	sampled time.Time
}

// openRing attaches to or creates a ring. A ring whose geometry, policy or
// header does not match the config is removed and created again (logged).
func (rt *Runtime) openRing(rc *RingConfig, dir string) (*ringState, error) {
	sc := rc.shmConfig(dir)
	r, created, err := shm.OpenOrCreate(rc.Name, sc)
	if err != nil && (errors.Is(err, os.ErrExist) || errors.Is(err, shm.ErrCorrupt) || errors.Is(err, shm.ErrVersion)) {
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
	verb := "attached to existing"
	if created {
		verb = "created"
	}
	rt.log.Info(fmt.Sprintf("ring %s: %s (%d slots x %d B, %s, %s)", rc.Name, verb, r.Slots(), r.SlotPayload(), r.Policy(), shm.SegmentPath(rc.Name, &sc.Segment)))
	return &ringState{cfg: rc, dir: dir, ring: r, created: created, lastHead: r.Head(), sampled: time.Now()}, nil
}

// close unmaps the ring and removes its segment if remove is set.
func (rs *ringState) close(remove bool) {
	if remove {
		rs.ring.Remove()
	}
	rs.ring.Close()
}

// sample folds the head's movement into the frame count and rate.
func (rs *ringState) sample() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	h := rs.ring.Head()
	d := h - rs.lastHead // wrap-safe
	rs.lastHead = h
	rs.frames += uint64(d)
	now := time.Now()
	if el := now.Sub(rs.sampled); el > 0 {
		rs.rateHz = float64(d) / el.Seconds()
	}
	rs.sampled = now
}

func (rs *ringState) addBytes(n int) {
	rs.mu.Lock()
	rs.bytes += uint64(n)
	rs.mu.Unlock()
}

// stat builds the control plane's RingStat; w/d is the stats reader's last
// window, if any.
func (rs *ringState) stat(w window, d time.Duration) control.RingStat {
	info := rs.ring.Inspect()
	rs.mu.Lock()
	st := control.RingStat{
		Name: rs.cfg.Name, Slots: rs.ring.Slots(), SlotPayload: rs.ring.SlotPayload(),
		Policy: rs.ring.Policy().String(), Frames: rs.frames, Bytes: rs.bytes, RateHz: rs.rateHz,
	}
	rs.mu.Unlock()
	if d > 0 {
		st.BytesPerS = float64(w.bytes) / d.Seconds()
		if st.Bytes == 0 {
			st.Bytes = w.bytes
		}
	}
	for _, r := range info.Readers {
		if !r.Alive {
			continue
		}
		st.Readers++
		if r.Lag > st.MaxLag {
			st.MaxLag = r.Lag
		}
		st.Lost += uint64(r.Lost)
	}
	return st
}
