package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/edgeipc/edgeipc/internal/units"
	"github.com/edgeipc/edgeipc/shm"
)

func init() {
	Register(&Command{
		Name:  "hz",
		Usage: "hz RING [--window D] [--count N] [--json] [--wait] [--dir DIR]",
		Short: "measure a ring's frame rate, throughput, latency and loss",
		Long: `hz joins the ring as a reader (starting with the next frame written) and
prints, for every window: frames per second, bytes per second, the mean
and maximum latency from the writer's commit to this reader (both stamped
with CLOCK_MONOTONIC, so they compare across processes), and the frames
this reader lost because the writer overwrote them (overwrite policy).

hz reads frames in place without copying them, so it can keep up with
fast writers; under the block policy it is a reader like any other and
holds the writer back if it falls behind.

hz exits 0 after --count windows, 130 on SIGINT or SIGTERM (also while a
consumer that reads nothing holds up its output), 0 when the
reader of its output goes away ('edgeipc hz cam0 --json | head -3', noticed
at the end of the window), and 1 if the ring is removed while it measures
(a window without frames on a ring whose file is gone and whose writer is
dead). A ring that does not exist is an error (exit 1), unless --wait is
given: then hz waits for it to be created and starts measuring then.

With --json every window is one JSON object on its own line:
{"window_ns", "frames", "bytes", "frames_per_s", "bytes_per_s",
"latency_mean_ns", "latency_max_ns", "lost", "corrupt"}. "corrupt" counts
slots skipped because their header breaks the ring ABI (a length beyond
the slot: a buggy writer, or another process writing the segment); the
table reports them on stderr, one line per window that had any.

Examples:
  edgeipc hz cam0
  edgeipc hz imu0 --window 100ms --count 50 --json > imu0-rate.jsonl`,
		Flags: func(fs *flag.FlagSet) {
			fs.Duration("window", time.Second, "length of one measurement window")
			fs.Var(uintValue{n: new(uint64), max: math.MaxUint64, want: "0 (run until interrupted) or a positive count"}, "count", "exit 0 after this many windows (0: run until interrupted)")
			fs.Bool("json", false, "print one JSON object per window")
			fs.Bool("wait", false, "wait for the ring to be created if it does not exist yet")
			dirFlag(fs, new(string))
		},
		Run: runHz,
	})
}

// hzWindow is one measurement window.
type hzWindow struct {
	WindowNs      int64   `json:"window_ns"`
	Frames        uint64  `json:"frames"`
	Bytes         uint64  `json:"bytes"`
	FramesPerSec  float64 `json:"frames_per_s"`
	BytesPerSec   float64 `json:"bytes_per_s"`
	LatencyMeanNs int64   `json:"latency_mean_ns"`
	LatencyMaxNs  int64   `json:"latency_max_ns"`
	Lost          uint64  `json:"lost"`
	Corrupt       uint64  `json:"corrupt"`
}

func runHz(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	args, err := reparse(env, "hz", fs, args)
	if err != nil {
		return err
	}
	name, err := oneRingArg("hz", "RING", args)
	if err != nil {
		return err
	}
	window := getFlag[time.Duration](fs, "window")
	if window < time.Millisecond {
		return Usagef("bad --window %v: use at least 1ms, e.g. --window 1s", window)
	}
	count := getFlag[uint64](fs, "count")
	asJSON := getFlag[bool](fs, "json")

	sopts := &shm.SegmentOptions{Dir: getFlag[string](fs, "dir")}
	rd, err := openReader(ctx, name, sopts, &shm.ReaderOptions{From: shm.Newest}, getFlag[bool](fs, "wait"), 0)
	if err != nil {
		return err
	}
	defer rd.Close()
	gone := newRemovedWatch(rd.Ring())
	quietEPIPE()
	// A write blocked on a full pipe ends with SIGINT or SIGTERM too:
	// env.Stdout gives up then (MainEnv).
	err = hzLoop(ctx, env, rd, name, window, count, asJSON, gone)
	if outputGone(err) {
		return nil // `edgeipc hz cam | head -3`: done, not failed
	}
	return err
}

// hzLoop measures count windows (0: until interrupted) and prints one line
// or JSON object for each.
func hzLoop(ctx context.Context, env *Env, rd *shm.Reader, name string, window time.Duration, count uint64, asJSON bool, gone *removedWatch) error {
	if !asJSON {
		fmt.Fprintf(env.Stdout, "%9s %12s %12s %12s %12s %8s\n", "WINDOW", "FRAMES/S", "BYTES/S", "LAT MEAN", "LAT MAX", "LOST")
	}
	quiet := false // the note on empty windows was given
	for n := uint64(0); count == 0 || n < count; n++ {
		w, err := hzMeasure(ctx, rd, window)
		if err != nil {
			return err
		}
		if w.Frames == 0 && w.Lost == 0 && w.Corrupt == 0 && gone.removed() {
			return fmt.Errorf("ring %s was removed while hz measured it: no frame can arrive on it any more; run hz again once the ring is created again", name)
		}
		// Say once (on stderr) why a window is empty when it is for want
		// of a writer, and again after frames came and went.
		if w.Frames == 0 && w.Lost == 0 && w.Corrupt == 0 {
			if !quiet {
				fmt.Fprintf(env.Stderr, "hz: no frame in this window; ring %s writer: %s\n", name, subWriter(rd))
				quiet = true
			}
		} else {
			quiet = false
		}
		if w.Corrupt > 0 && !asJSON {
			fmt.Fprintf(env.Stderr, "hz: skipped %s of ring %s in this window\n", plural(w.Corrupt, "corrupt slot"), name)
		}
		if asJSON {
			b, _ := json.Marshal(w)
			b = append(b, '\n')
			if _, err := env.Stdout.Write(b); err != nil {
				return err
			}
			continue
		}
		mean, most := "-", "-" // no frame, no latency (not 0s)
		if w.Frames > 0 {
			mean, most = round3(time.Duration(w.LatencyMeanNs)).String(), round3(time.Duration(w.LatencyMaxNs)).String()
		}
		if _, err := fmt.Fprintf(env.Stdout, "%8.3fs %12.1f %10s/s %12s %12s %8d\n",
			float64(w.WindowNs)/1e9, w.FramesPerSec, units.Bytes(w.BytesPerSec), mean, most, w.Lost); err != nil {
			return err
		}
	}
	return nil
}

// round3 rounds d to three significant digits (1.138544ms to 1.14ms), so
// that the latency columns stay short and aligned.
func round3(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for v := d / 1000; v > 0; v /= 10 {
		unit *= 10
	}
	return d.Round(unit)
}

// hzMeasure reads frames for one window and returns the window's figures.
func hzMeasure(ctx context.Context, rd *shm.Reader, window time.Duration) (hzWindow, error) {
	var w hzWindow
	start := shm.Now()
	end := start + int64(window)
	if end < start {
		// --window near the largest duration: start+window overflows,
		// and a negative end would close the window after one frame.
		end = math.MaxInt64
	}
	wctx, cancel := context.WithDeadline(ctx, time.Now().Add(window))
	defer cancel()
	// The sum of the latencies, in 128 bits: a frame's stamp is whatever
	// its writer stored, and a few stamped far in the past overflow int64.
	var latHi, latLo uint64
	for {
		f, err := rd.TryNext()
		if errors.Is(err, shm.ErrWouldBlock) {
			f, err = rd.Next(wctx)
		}
		if errors.Is(err, shm.ErrCorrupt) {
			// The reader moved past the slot: count it, measure on.
			w.Corrupt++
			if shm.Now() >= end {
				break
			}
			continue
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				break
			}
			return w, err
		}
		now := shm.Now()
		size, lat := len(f.Data), latency(now, f.Time)
		w.Lost += uint64(f.Lost)
		if err := rd.Release(); err != nil {
			if !errors.Is(err, shm.ErrOverwritten) {
				return w, err
			}
			// Overwritten while we looked at it: its header may be torn.
			w.Lost++
		} else {
			w.Frames++
			w.Bytes += uint64(size)
			var carry uint64
			latLo, carry = bits.Add64(latLo, uint64(lat), 0)
			latHi += carry
			w.LatencyMaxNs = max(w.LatencyMaxNs, lat)
		}
		if now >= end {
			break
		}
	}
	w.WindowNs = shm.Now() - start
	secs := float64(w.WindowNs) / 1e9
	w.FramesPerSec = float64(w.Frames) / secs
	w.BytesPerSec = float64(w.Bytes) / secs
	if w.Frames > 0 {
		// Each latency is at most MaxInt64, so the mean is too and
		// latHi < w.Frames: Div64 cannot overflow.
		mean, _ := bits.Div64(latHi, latLo, w.Frames)
		w.LatencyMeanNs = int64(mean)
	}
	return w, nil
}

// latency is the time from stamp, a frame's timestamp_ns, to now (both
// CLOCK_MONOTONIC): 0 for a stamp in the future, math.MaxInt64 for one
// further in the past than that. A foreign writer may have stamped
// anything, and now-stamp overflows for a stamp far below zero.
func latency(now, stamp int64) int64 {
	if stamp >= now {
		return 0
	}
	// now > stamp, so the difference is below 2^64 and uint64 holds it.
	return int64(min(uint64(now)-uint64(stamp), math.MaxInt64))
}
