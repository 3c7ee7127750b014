package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// latHist is a log-linear latency histogram: each power of two of
// nanoseconds is split into 8 buckets (≤ 12.5% error), no allocation.
type latHist struct {
	n uint64
	// The sum of the latencies, in 128 bits (sumHi, sum): a frame's stamp
	// is whatever its writer stored, and a few stamped far in the past
	// overflow 64 bits.
	sumHi, sum uint64
	max        uint64
	count      [64 * 8]uint64
}

func latBucket(ns uint64) int {
	if ns < 8 {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // 3..63
	m := (ns >> (e - 3)) & 7
	return (e-2)*8 + int(m)
}

// latUpper is the upper bound (ns) of bucket i.
func latUpper(i int) uint64 {
	if i < 8 {
		return uint64(i)
	}
	e := i/8 + 2
	m := uint64(i % 8)
	return (8+m+1)<<(e-3) - 1
}

// add counts one latency (from latency: 0 … math.MaxInt64).
func (h *latHist) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	u := uint64(ns)
	h.n++
	var carry uint64
	h.sum, carry = bits.Add64(h.sum, u, 0)
	h.sumHi += carry
	if u > h.max {
		h.max = u
	}
	h.count[latBucket(u)]++
}

func (h *latHist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	// Each latency is at most MaxInt64, so the mean is too and
	// sumHi < n: Div64 cannot overflow.
	mean, _ := bits.Div64(h.sumHi, h.sum, h.n)
	return time.Duration(mean)
}

// latency is the time from stamp, a frame's Time, to now (both
// CLOCK_MONOTONIC ns): 0 for a stamp in the future, math.MaxInt64 for one
// further in the past than that. A writer may have stamped anything, and
// now - stamp overflows for a stamp far below zero.
func latency(now, stamp int64) int64 {
	if stamp >= now {
		return 0
	}
	// now > stamp, so the difference is below 2^64 and uint64 holds it.
	return int64(min(uint64(now)-uint64(stamp), math.MaxInt64))
}

func (h *latHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q*float64(h.n) + 0.5)
	if want < 1 {
		want = 1
	}
	var c uint64
	for i, k := range h.count {
		c += k
		if c >= want {
			u := latUpper(i)
			if u > h.max {
				u = h.max
			}
			return time.Duration(u)
		}
	}
	return time.Duration(h.max)
}

// window is what a stats reader saw since the last report.
type window struct {
	frames, bytes, lost, torn uint64
	lat                       latHist
}

// statsReader is the built-in "stats" sink: a reader that measures rate,
// latency (shm.Now() - Frame.Time on arrival) and loss of one ring.
type statsReader struct {
	mu     sync.Mutex
	cur    window
	last   window // the last completed window
	lastD  time.Duration
	since  time.Time
	total  window // totals since start (lat unused)
	rd     *shm.Reader
	reader bool

	corruptLog limiter // "skipped a corrupt slot", at most once a second
	evictLog   limiter // "evicted from the reader table", at most once a second
}

func newStatsReader() *statsReader { return &statsReader{since: time.Now()} }

// run reads the ring until ctx is done, adding what it reads to the
// current window and to cnt (the sink's counters for the control plane).
func (s *statsReader) run(ctx context.Context, ring *shm.Ring, log *slog.Logger, cnt *sinkCounters) error {
	rd, err := ring.NewReader(&shm.ReaderOptions{From: shm.Newest})
	if err != nil {
		return err
	}
	// Whichever reader is current when run returns: after an eviction it
	// is the one joined again.
	defer func() { rd.Close() }()
	s.mu.Lock()
	s.rd = rd
	s.reader = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.rd, s.reader = nil, false
		s.mu.Unlock()
	}()
	for {
		f, err := rd.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, shm.ErrClosed) {
				return nil
			}
			if errors.Is(err, shm.ErrCorrupt) {
				// The reader moved past the slot: count it lost, read on.
				cnt.lost.Add(1)
				s.mu.Lock()
				s.cur.lost++
				s.mu.Unlock()
				noteCorrupt(&s.corruptLog, log, "stats reader of ring "+ring.Name(), err)
				continue
			}
			if errors.Is(err, shm.ErrEvicted) {
				// A writer freed this reader's entry (it believed it
				// dead): join again at the newest frame, and count the
				// frames published since the last one read as lost
				// (none if the head went back: a new writer restarted
				// the sequence).
				from := rd.Cursor()
				rd.Close()
				again, err := ring.NewReader(&shm.ReaderOptions{From: shm.Newest})
				if err != nil {
					return err // (closing rd again is harmless)
				}
				rd = again
				missed := uint64(0)
				if d := int32(rd.Cursor() - from); d > 0 {
					missed = uint64(d)
				}
				cnt.lost.Add(missed)
				s.mu.Lock()
				s.rd = rd
				s.cur.lost += missed
				s.mu.Unlock()
				if log != nil {
					if ok, n := s.evictLog.allow(time.Second); ok {
						more := ""
						if n > 0 {
							more = fmt.Sprintf(" (%d more not logged)", n)
						}
						log.Warn(fmt.Sprintf("stats reader of ring %s: evicted from the reader table (a writer believed it dead); joined again at the newest frame, %d frames missed counted as lost%s", ring.Name(), missed, more))
					}
				}
				continue
			}
			return err
		}
		lat := latency(shm.Now(), f.Time)
		n := len(f.Data)
		torn := rd.Release() != nil
		if torn {
			cnt.lost.Add(uint64(f.Lost) + 1)
		} else {
			cnt.lost.Add(uint64(f.Lost))
			cnt.frames.Add(1)
			cnt.bytes.Add(uint64(n))
		}
		s.mu.Lock()
		s.cur.lost += uint64(f.Lost)
		if torn {
			s.cur.torn++
		} else {
			s.cur.frames++
			s.cur.bytes += uint64(n)
			s.cur.lat.add(lat)
		}
		s.mu.Unlock()
	}
}

// roll closes the current window and returns it.
func (s *statsReader) roll() (window, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	d := now.Sub(s.since)
	s.since = now
	s.last, s.lastD = s.cur, d
	s.total.frames += s.cur.frames
	s.total.bytes += s.cur.bytes
	s.total.lost += s.cur.lost
	s.total.torn += s.cur.torn
	s.cur = window{}
	return s.last, d
}

// peek returns the current window so far, leaving it open: a snapshot
// (SIGUSR1) must not cut short the window of the next periodic line.
func (s *statsReader) peek() window {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// seen returns the bytes of the frames read, and the count of frames found
// torn, since the reader started.
func (s *statsReader) seen() (bytes, torn uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total.bytes + s.cur.bytes, s.total.torn + s.cur.torn
}

// fmtDur renders a latency compactly (µs below 10 ms).
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return d.Round(time.Second).String()
}
