package runtime

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/edgeipc/edgeipc/runtime/control"
)

// The control plane (runtime/control) calls these methods from its own
// goroutines; they are safe for concurrent use.
var _ control.Handler = (*Runtime)(nil)

// Status implements control.Handler.
func (rt *Runtime) Status() control.StatusInfo {
	rt.mu.Lock()
	st := control.StatusInfo{
		Version: Version, PID: os.Getpid(), StartedUnixNs: rt.started.UnixNano(),
		UptimeS: time.Since(rt.started).Seconds(), ConfigFile: rt.cfg.File,
		Rings: len(rt.rings) + len(rt.pending), RingsMissing: len(rt.pending),
		Sources: len(rt.sources), Reloads: rt.reloads,
	}
	ctl := rt.ctl
	rt.mu.Unlock()
	if ctl != nil {
		st.Requests, st.BadRequests = ctl.Stats()
		st.ReplyFailures = ctl.ReplyFailures()
	}
	return st
}

// Rings implements control.Handler: one row per ring, sorted by name. A
// ring that a reload could not create (pendingRing) has a row too: its
// configured geometry, state "missing" and why.
func (rt *Runtime) Rings() []control.RingStat {
	rt.mu.Lock()
	rings := make([]*ringState, 0, len(rt.rings))
	for _, r := range rt.rings {
		rings = append(rings, r)
	}
	out := make([]control.RingStat, 0, len(rings)+len(rt.pending))
	for _, p := range rt.pending {
		out = append(out, p.stat())
	}
	rt.mu.Unlock()
	for _, r := range rings {
		out = append(out, r.stat())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Sources implements control.Handler: one row per source, in config order.
func (rt *Runtime) Sources() []control.SourceStat {
	rt.mu.Lock()
	var list []*sourceState
	for _, sc := range rt.cfg.Sources {
		if ss := rt.sources[sc.Name]; ss != nil {
			list = append(list, ss)
		}
	}
	rt.mu.Unlock()
	out := make([]control.SourceStat, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.stat())
	}
	return out
}

// Sinks implements control.Handler: one row per sink, the implicit stats
// readers (stats:RING) included, sorted by name.
func (rt *Runtime) Sinks() []control.SinkStat {
	rt.mu.Lock()
	list := make([]*sinkState, 0, len(rt.sinks))
	for _, sk := range rt.sinks {
		list = append(list, sk)
	}
	waiting := rt.waitingSinks()
	rt.mu.Unlock()
	out := make([]control.SinkStat, 0, len(list)+len(waiting))
	for _, sk := range list {
		out = append(out, sk.stat())
	}
	out = append(out, waiting...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// waitingSinks lists, as state waiting, the sinks of the configuration
// whose ring a reload could not create (rt.pending): they do not run, but
// `ctl sinks` shows every sink, as `ctl sources` shows the sources that
// wait for such a ring. Called with rt.mu held.
func (rt *Runtime) waitingSinks() []control.SinkStat {
	var out []control.SinkStat
	for n, p := range rt.pending {
		why := fmt.Sprintf("waiting for ring %s: a reload could not create it (attempt %d: %v); the runtime keeps trying", n, p.attempts, p.err)
		if rt.cfg != nil {
			for _, s := range rt.cfg.Sinks {
				if s.Ring == n {
					out = append(out, control.SinkStat{Name: s.Name, Kind: s.Kind, Ring: n, Path: s.Path, State: StateWaiting, LastError: why})
				}
			}
			if p.cfg.statsEnabled() && !hasExplicitStats(rt.cfg, n) {
				out = append(out, control.SinkStat{Name: "stats:" + n, Kind: SinkStats, Ring: n, Implicit: true, State: StateWaiting, LastError: why})
			}
		}
	}
	return out
}

func (rt *Runtime) source(name string) (*sourceState, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	ss := rt.sources[name]
	if ss == nil {
		return nil, fmt.Errorf("source %q: %w", name, control.ErrNotFound)
	}
	return ss, nil
}

// errShuttingDown answers a request to start a source during the
// shutdown's drain.
func errShuttingDown(name string) error {
	return fmt.Errorf("source %q: the runtime is shutting down", name)
}

// StartSource implements control.Handler.
func (rt *Runtime) StartSource(name string) error {
	if rt.shuttingDown() {
		return errShuttingDown(name)
	}
	ss, err := rt.source(name)
	if err != nil {
		return err
	}
	if ss.waiting() {
		return ss.errWaiting()
	}
	if !ss.start() {
		if ss.isRemoved() {
			return errRemoved(name)
		}
		return fmt.Errorf("source %q is already running or still stopping (state %s)", name, ss.getState())
	}
	rt.log.Info(fmt.Sprintf("source %s: started by control request", name))
	return nil
}

// StopSource implements control.Handler.
func (rt *Runtime) StopSource(name string) error {
	ss, err := rt.source(name)
	if err != nil {
		return err
	}
	if !ss.stop() {
		return fmt.Errorf("source %q is not running (state %s)", name, ss.getState())
	}
	// A stop hands nothing on: the pipe of a FIFO that was gone goes now
	// (its writers get EPIPE, as from any FIFO nobody reads).
	ss.mu.Lock()
	rest := ss.pending.rest
	ss.pending.rest = nil
	ss.mu.Unlock()
	ss.dropRest(rest, "when the source was stopped")
	rt.log.Info(fmt.Sprintf("source %s: stopped by control request", name))
	return nil
}

// RestartSource implements control.Handler.
func (rt *Runtime) RestartSource(name string) error {
	if rt.shuttingDown() {
		return errShuttingDown(name)
	}
	ss, err := rt.source(name)
	if err != nil {
		return err
	}
	if ss.waiting() {
		return ss.errWaiting()
	}
	// A fifo source restarts as a reload restarts it: a read end is held
	// over the gap (writers do not get EPIPE), and the record the old run
	// had begun to read is handed to the new one.
	var held *os.File
	if ss.cfg.Kind == KindFIFO {
		ss.mu.Lock()
		id := ss.fifo
		ss.mu.Unlock()
		if id != nil {
			held = holdFIFO(ss.cfg.Path, *id)
		}
	}
	ss.stop()
	if ss.cfg.Kind == KindFIFO {
		ss.mu.Lock()
		p := ss.pending
		ss.pending = fifoPending{}
		ss.held, held = held, nil
		ss.mu.Unlock()
		ss.takeCarry(p)
	}
	if !ss.start() {
		ss.releaseHeld()
		if ss.isRemoved() {
			// A reload or the shutdown removed it while it was stopping.
			return errRemoved(name)
		}
	}
	ss.set(func(ss *sourceState) { ss.restarts++ })
	rt.log.Info(fmt.Sprintf("source %s: restarted by control request", name))
	return nil
}

// errRemoved is the answer to a start or restart of a source that a reload
// or the shutdown removed meanwhile.
func errRemoved(name string) error {
	return fmt.Errorf("source %q was removed (by a reload or the shutdown) while it was being started: %w", name, control.ErrNotFound)
}
