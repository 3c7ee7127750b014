package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/internal/units"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/runtime/sdnotify"
	"github.com/edgeipc/edgeipc/shm"
)

// Version is reported by the control plane's status command; the CLI sets
// it from its link-time stamp.
var Version = "dev"

// Options tune a Runtime beyond its Config.
type Options struct {
	// Logger receives the runtime's log (default: text on stderr).
	Logger *slog.Logger
	// StatsInterval overrides [runtime] stats_interval when > 0; it must
	// be at least MinStatsInterval (New refuses a shorter one).
	StatsInterval time.Duration
	// IgnoreSignals leaves SIGHUP/SIGUSR1/SIGTERM/SIGINT alone (for programs
	// that embed the runtime and handle signals themselves; cancel the
	// context to stop, call Reload to reload).
	IgnoreSignals bool
	// Notifier sends systemd notifications (default sdnotify.FromEnv()).
	Notifier *sdnotify.Notifier
	// HUP, if set, is a channel the caller gave signal.Notify for SIGHUP
	// before it read the configuration: until a program handles SIGHUP,
	// Go's default for it is to end the process, so a SIGHUP while the
	// configuration is read would kill the runtime. Run stops the channel
	// once it handles SIGHUP itself; a SIGHUP that came on it makes one
	// reload once the runtime is ready. Not used with IgnoreSignals.
	HUP chan os.Signal
}

// Runtime owns rings, supervises sources, runs sinks, serves control and
// handles signals. Create it with New and start it with Run.
type Runtime struct {
	opts    Options
	log     *slog.Logger
	notify  *sdnotify.Notifier
	started time.Time

	mu      sync.Mutex // guards cfg, rings, pending, sources, sinks, reloads
	cfg     *Config
	rings   map[string]*ringState
	pending map[string]*pendingRing // rings of cfg a reload could not create (apply)
	sources map[string]*sourceState
	sinks   map[string]*sinkState
	reloads int
	// handover maps a recorder that a reload replaces by one of the same
	// name on the same ring to the first frame it did not record: where
	// the new one starts (apply, startWanted).
	handover map[string]uint32
	// lostSegment names the rings whose segment was removed or replaced
	// behind the runtime, for the apply that creates them again
	// (recreateLostRings): apply counts them as changed.
	lostSegment map[string]bool
	// lostRetryAt is when recreateLostRings may try again after it failed.
	lostRetryAt time.Time
	// held maps the path of a FIFO whose source a reload restarts to a
	// read end held over the restart, until startWanted gives it to the
	// new source (apply, holdFIFO).
	held map[string]*os.File
	// echoUntil: see echoWindow (set and read by Run's goroutine only).
	echoUntil time.Time
	// carry maps the path of such a FIFO to what its old source had read
	// but not decoded when it stopped, for the new source (startWanted).
	carry map[string]fifoPending

	spawn *spawner
	ctl   *control.Server
	// What Run set up from the first configuration and a reload does not
	// change (docs/config.md, "Reload"): the segment directory of every
	// ring, and the control plane.
	shmDir  string
	ctlConf ControlConfig
	reloadc chan chan error
	beatc   chan chan struct{}
	running bool
	// busyUntil (UnixNano, 0 = not busy) is set while the main loop runs
	// a reload or the shutdown: the watchdog pings without a heartbeat
	// until then (see watchdog).
	busyUntil atomic.Int64
	wdOn      bool          // the systemd watchdog is on (set before Run's loop)
	stopping  chan struct{} // closed when the shutdown begins
	exited    chan struct{} // closed when Run returns
}

// New prepares a runtime for cfg; nothing is created until Run. On systems
// other than Linux it returns an error wrapping shm.ErrNotSupported.
func New(cfg *Config, opts Options) (*Runtime, error) {
	if err := checkOS(); err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("runtime: nil config")
	}
	if err := cfg.CheckEnv(); err != nil {
		return nil, err
	}
	if si := opts.StatsInterval; si > 0 && si < MinStatsInterval {
		return nil, fmt.Errorf("runtime: Options.StatsInterval %v: at least %v (or 0: the configuration's)", si, MinStatsInterval)
	}
	if opts.Logger == nil {
		opts.Logger, _ = NewLogger(os.Stderr, "text")
	}
	if opts.Notifier == nil {
		opts.Notifier = sdnotify.FromEnv()
	}
	return &Runtime{
		opts: opts, log: opts.Logger, notify: opts.Notifier, cfg: cfg,
		rings: map[string]*ringState{}, pending: map[string]*pendingRing{}, sources: map[string]*sourceState{}, sinks: map[string]*sinkState{},
		reloadc: make(chan chan error), beatc: make(chan chan struct{}), stopping: make(chan struct{}), exited: make(chan struct{}),
	}, nil
}

// effectiveShmDir is the segment directory of the config's rings,
// cleaned as cleanPath does (".." parts stay, as shm takes them):
// "/run/edgeipc/" is "/run/edgeipc", so that a reload that spells the same
// directory otherwise does not say it changed.
func (c *Config) effectiveShmDir() string {
	if c.Runtime.ShmDir != "" {
		return cleanPath(c.Runtime.ShmDir)
	}
	if d := os.Getenv("EDGEIPC_SHM_DIR"); d != "" {
		return cleanPath(d)
	}
	return shm.DefaultDir
}

func (rt *Runtime) statsInterval() time.Duration {
	if rt.opts.StatsInterval > 0 {
		return rt.opts.StatsInterval
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.cfg.Runtime.StatsInterval.D()
}

// Run creates the rings, starts sources, sinks and the control server, and
// serves until ctx is done or SIGTERM/SIGINT arrives; then it shuts down
// and returns nil. An error means the runtime could not start (nothing it
// created is left behind) or could not shut down within [runtime]
// shutdown_timeout: the process groups of the children still running were
// then SIGKILLed and the rest of the shutdown given at most killGrace more.
// A child that is not gone by then (a process of its group stuck in the
// kernel, or of another user) is still reaped after Run has returned, once
// its group is empty; the goroutines of its source and of the shutdown
// (which then closes the rest, as configured) end then, and the log says
// so when Run returns. Signals arriving during the shutdown are logged and
// ignored. On systems other than Linux it returns New's error.
func (rt *Runtime) Run(ctx context.Context) error {
	if err := checkOS(); err != nil {
		return err
	}
	rt.mu.Lock()
	if rt.running {
		rt.mu.Unlock()
		return errors.New("runtime: Run called twice")
	}
	rt.running = true
	defer close(rt.exited)
	cfg := rt.cfg
	rt.shmDir, rt.ctlConf = cfg.effectiveShmDir(), cfg.Control
	rt.mu.Unlock()
	rt.started = time.Now()

	rt.spawn = newSpawner(func(format string, args ...any) { rt.log.Warn(fmt.Sprintf(format, args...)) })
	go rt.spawn.loop()
	defer rt.spawn.quit()

	var sigc, usr1c, termc chan os.Signal
	if !rt.opts.IgnoreSignals {
		// Buffered: signal.Notify never blocks and drops what does not fit.
		// Each signal has a channel of its own, so that those queued while
		// the main loop is busy (a reload waits for sources to stop) cannot
		// crowd out another: SIGHUPs a SIGTERM, or SIGUSR1s a SIGHUP. One
		// pending SIGUSR1 stands for any number (one snapshot is as good).
		sigc = make(chan os.Signal, 8)
		signal.Notify(sigc, syscall.SIGHUP)
		defer signal.Stop(sigc)
		if h := rt.opts.HUP; h != nil {
			signal.Stop(h)
			select {
			case <-h:
				sigc <- syscall.SIGHUP // sigc has room: it is new
			default:
			}
		}
		usr1c = make(chan os.Signal, 1)
		signal.Notify(usr1c, syscall.SIGUSR1)
		defer signal.Stop(usr1c)
		termc = make(chan os.Signal, 2)
		signal.Notify(termc, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(termc)
	}

	// Claim the control queue first: a second runtime with the same queue
	// fails here, before it creates, attaches to or starts anything.
	if cfg.controlEnabled() {
		if err := rt.startControl(ctx, cfg); err != nil {
			return err
		}
	}
	if err := rt.apply(nil, cfg, time.Time{}); err != nil {
		// apply has removed the rings it created and started nothing.
		rt.closeControl()
		return err
	}
	rt.log.Info(fmt.Sprintf("edgeipc runtime ready: %s (config %s, segments in %s, pid %d)",
		cfg.Summary(), cfgName(cfg), rt.shmDir, os.Getpid()))
	rt.notifyf(sdnotify.Ready, sdnotify.Status("running: "+cfg.Summary()), fmt.Sprintf("MAINPID=%d", os.Getpid()))

	wdCtx, wdStop := context.WithCancel(context.Background())
	defer wdStop()
	if wd := sdnotify.WatchdogInterval(); wd > 0 && rt.notify.Enabled() {
		rt.wdOn = true
		go rt.watchdog(wdCtx, wd/2)
	}

	// Sample every ring's head each rateWindow: ctl's frame counts and
	// rates stay current whether or not the stats line is logged.
	sampleTick := time.NewTicker(rateWindow)
	defer sampleTick.Stop()
	var stats statsTicker
	defer stats.stop()
	stats.set(rt.statsInterval())
	// Rings a reload could not create are tried again when due.
	ringRetry := time.NewTimer(time.Hour)
	defer ringRetry.Stop()
	for {
		if at, ok := rt.nextRingRetry(); ok {
			ringRetry.Reset(time.Until(at))
		} else {
			ringRetry.Stop()
		}
		select {
		case <-ctx.Done():
			// edgeipc run ends ctx on the same SIGTERM or SIGINT the
			// runtime is told of: name the signal when it is here.
			select {
			case sig := <-termc:
				return rt.stop(sig.String(), sigc, usr1c, termc)
			default:
			}
			// Not here yet: signal.NotifyContext's channel and termc are
			// served one after the other, in either order. A SIGINT or
			// SIGTERM that follows within echoWindow is that same signal,
			// not a second one.
			why := "context done"
			if c := context.Cause(ctx); c != nil && c != ctx.Err() {
				why = c.Error() // "interrupt signal received"
				rt.echoUntil = time.Now().Add(echoWindow)
			}
			return rt.stop(why, sigc, usr1c, termc)
		case sig := <-termc:
			return rt.stop(sig.String(), sigc, usr1c, termc)
		case <-sigc:
			select {
			case tsig := <-termc: // a shutdown takes precedence over queued HUPs
				return rt.stop(tsig.String(), sigc, usr1c, termc)
			default:
			}
			rt.log.Info("SIGHUP: reloading the configuration")
			rt.doReload()
			// SIGHUPs that came while it ran (a storm, or an editor
			// saving twice) make one more reload, which reads the file as
			// it is now, rather than one each.
			for n := rt.foldHUPs(sigc, termc); n > 0; n = rt.foldHUPs(sigc, termc) {
				rt.log.Info(fmt.Sprintf("SIGHUP (%d during the reload): reloading the configuration once more", n))
				rt.doReload()
			}
			stats.set(rt.statsInterval())
		case <-usr1c:
			rt.logStatsWindow("SIGUSR1 stats", false)
		case reply := <-rt.reloadc:
			reply <- rt.doReload()
			stats.set(rt.statsInterval())
		case reply := <-rt.beatc:
			close(reply)
		case <-stats.c:
			rt.logStats("stats")
		case <-sampleTick.C:
			rt.sampleRings()
			rt.recreateLostRings()
		case <-ringRetry.C:
			rt.retryRings()
		}
	}
}

// foldHUPs takes the SIGHUPs queued on sigc without waiting and returns
// how many there were (the caller answers them with one reload). With a
// SIGTERM or SIGINT queued it takes nothing and returns 0: the main loop
// shuts down first.
func (rt *Runtime) foldHUPs(sigc, termc chan os.Signal) int {
	n := 0
	for len(termc) == 0 {
		select {
		case <-sigc:
			n++
		default:
			return n
		}
	}
	return n
}

// statsTicker drives the periodic stats line; set changes its interval
// (0 = off), as a reload of stats_interval does.
type statsTicker struct {
	t  *time.Ticker
	iv time.Duration
	c  <-chan time.Time
}

func (s *statsTicker) set(iv time.Duration) {
	if iv == s.iv {
		return
	}
	s.stop()
	s.iv = iv
	if iv > 0 {
		s.t = time.NewTicker(iv)
		s.c = s.t.C
	}
}

func (s *statsTicker) stop() {
	if s.t != nil {
		s.t.Stop()
	}
	s.t, s.c = nil, nil
}

func cfgName(c *Config) string {
	if c.File == "" {
		return "built-in"
	}
	return c.File
}

func (rt *Runtime) notifyf(states ...string) {
	if err := rt.notify.Notify(states...); err != nil {
		rt.log.Warn("sd_notify failed", "err", err)
	}
}

// busyMargin is added to the bound of a reload or shutdown (the longest
// stop_timeout, the shutdown_timeout) for the rest of its work.
const busyMargin = 10 * time.Second

// setBusy tells the watchdog that the main loop is busy with a reload or
// the shutdown, which is bounded by d (0: no longer busy). Starting, it
// pings systemd from the main loop itself, so no ping is missed while the
// watchdog goroutine still waits for a heartbeat.
func (rt *Runtime) setBusy(d time.Duration) {
	if d <= 0 {
		rt.busyUntil.Store(0)
		return
	}
	rt.busyUntil.Store(time.Now().Add(d).UnixNano())
	if rt.wdOn {
		rt.notifyf(sdnotify.Watchdog)
	}
}

func (rt *Runtime) busy() bool {
	u := rt.busyUntil.Load()
	return u != 0 && time.Now().UnixNano() < u
}

// watchdog pings systemd every period while the main loop answers a
// heartbeat: a wedged main loop stops the pings and systemd restarts us.
// While the main loop runs a reload or the shutdown (which wait for
// sources to stop) it pings without a heartbeat, but only until the bound
// given to setBusy: a reload that takes longer is wedged.
func (rt *Runtime) watchdog(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if rt.busy() {
			rt.notifyf(sdnotify.Watchdog)
			continue
		}
		reply := make(chan struct{})
		select {
		case rt.beatc <- reply:
		case <-time.After(period):
			if rt.busy() { // a reload began while we waited
				rt.notifyf(sdnotify.Watchdog)
				continue
			}
			rt.log.Warn("watchdog: main loop did not answer; not pinging systemd")
			continue
		case <-ctx.Done():
			return
		}
		select {
		case <-reply:
			rt.notifyf(sdnotify.Watchdog)
		case <-time.After(period):
		case <-ctx.Done():
			return
		}
	}
}

// ctlQueue is the control queue name of a [control] table.
func ctlQueue(c ControlConfig) string {
	q := c.Queue
	if env := os.Getenv(control.EnvQueue); env != "" {
		q = env
	}
	return control.QueueName(q)
}

// startControl creates (claims) the control queue and serves it. Run calls
// it before anything else is created: requests that arrive while the rings
// and sources are being set up see them appear.
func (rt *Runtime) startControl(ctx context.Context, cfg *Config) error {
	srv, err := control.NewServer(rt, control.ServerOptions{
		Queue: ctlQueue(cfg.Control),
		Mode:  os.FileMode(cfg.Control.Mode),
		Group: cfg.Control.Group,
		Logf: func(format string, args ...any) {
			rt.log.Info(fmt.Sprintf(format, args...)) // the server's messages start with "control: "
		},
	})
	if err != nil {
		return fmt.Errorf("control plane: %w (set [control] enabled = false to run without it)", err)
	}
	rt.mu.Lock()
	rt.ctl = srv
	rt.mu.Unlock()
	// Served until closeControl, not until ctx ends: ctx ends when the
	// shutdown begins, and `edgeipc ctl status` during the drain (up to
	// shutdown_timeout) went unanswered until the client's timeout.
	go func() {
		if err := srv.Serve(context.WithoutCancel(ctx)); err != nil {
			rt.log.Error("control server stopped", "err", err)
		}
	}()
	return nil
}

// shuttingDown reports whether the shutdown has begun.
func (rt *Runtime) shuttingDown() bool {
	select {
	case <-rt.stopping:
		return true
	default:
		return false
	}
}

// stop shuts down and reports the result of Run; signals arriving on sigc,
// usr1c or termc meanwhile are logged.
func (rt *Runtime) stop(why string, sigc, usr1c, termc <-chan os.Signal) error {
	close(rt.stopping)
	rt.log.Info("shutting down (" + why + ")")
	// A signal already queued is the one that started this (edgeipc run
	// also cancels ctx on SIGINT/SIGTERM): not a second one.
	for drained := false; !drained; {
		select {
		case <-sigc:
		case <-usr1c:
		case <-termc:
		default:
			drained = true
		}
	}
	rt.notifyf(sdnotify.Stopping, sdnotify.Status("stopping ("+why+")"))
	rt.mu.Lock()
	to := rt.cfg.Runtime.ShutdownTimeout.D()
	rt.mu.Unlock()
	rt.setBusy(to + busyMargin)
	if !rt.shutdown(to, sigc, usr1c, termc) {
		return fmt.Errorf("runtime: shutdown did not finish within %v (shutdown_timeout); the children still running were killed", to)
	}
	rt.log.Info("stopped")
	return nil
}

// echoWindow is how long after a shutdown that began with a context ended
// by a signal (edgeipc run's signal.NotifyContext) the runtime's own
// delivery of that signal is taken for it rather than for a second one.
const echoWindow = time.Second

// killGrace is how long the shutdown goes on after shutdown_timeout, once
// the children still running have been SIGKILLed: enough for their stops
// to return and the rings to be closed (and removed, as configured).
const killGrace = time.Second

// drainReserve is how long before shutdown_timeout runs out (a quarter of
// it, at most) the sinks' drain ends, so that the shutdown still flushes
// and closes everything within it.
const drainReserve = time.Second

// shutdown stops sources, drains sinks, closes and (as configured) removes
// rings and FIFOs, and closes the control server. If that takes longer
// than timeout, it SIGKILLs the process group of every child still running
// and waits at most killGrace more. It reports whether everything finished
// within timeout. Signals arriving on sigc, usr1c or termc meanwhile are
// logged.
func (rt *Runtime) shutdown(timeout time.Duration, sigc, usr1c, termc <-chan os.Signal) bool {
	done := make(chan struct{})
	// Sinks drain for what is left of timeout once sources have stopped,
	// less drainReserve for the rest (flushing, closing rings).
	drainBy := time.Now().Add(timeout - min(drainReserve, timeout/4))
	go func() {
		defer close(done)
		empty := &Config{Rings: map[string]*RingConfig{}}
		if err := rt.apply(nil, empty, drainBy); err != nil {
			rt.log.Error("shutdown", "err", err)
		}
	}()
	ok := true
	deadline := time.After(timeout)
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case sig := <-sigc:
			rt.log.Warn(fmt.Sprintf("%s ignored: already shutting down (within shutdown_timeout = %v; SIGKILL to force)", sigName(sig), timeout))
		case sig := <-usr1c:
			rt.log.Warn(fmt.Sprintf("%s ignored: already shutting down (within shutdown_timeout = %v; SIGKILL to force)", sigName(sig), timeout))
		case sig := <-termc:
			if time.Now().Before(rt.echoUntil) {
				rt.echoUntil = time.Time{} // the signal that ended ctx
				continue
			}
			rt.log.Warn(fmt.Sprintf("%s ignored: already shutting down (within shutdown_timeout = %v; SIGKILL to force)", sigName(sig), timeout))
		case <-deadline:
			ok = false
			waiting = false
			rt.log.Error(fmt.Sprintf("shutdown_timeout (%v) reached; sending SIGKILL to the children still running", timeout))
			rt.spawn.killAll()
			select {
			case <-done:
			case <-time.After(killGrace):
			}
		}
	}
	rt.closeControl()
	return ok
}

// sigName is the SIG* name of one of the signals Run handles.
func sigName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	}
	return sig.String()
}

// closeControl closes the control server, which removes its queue.
func (rt *Runtime) closeControl() {
	rt.mu.Lock()
	ctl := rt.ctl
	rt.ctl = nil
	rt.mu.Unlock()
	if ctl != nil {
		ctl.Close()
	}
}

// ErrNotRunning is returned by Reload when Run has not been called or has
// returned.
var ErrNotRunning = errors.New("runtime: not running")

// Reload re-reads the configuration file and applies the difference (what
// SIGHUP does). It is safe to call from any goroutine while Run runs; a
// call while Run is still starting waits for it. Before Run or after it
// returned (or once the shutdown has begun) it fails with ErrNotRunning.
func (rt *Runtime) Reload() error {
	rt.mu.Lock()
	running := rt.running
	rt.mu.Unlock()
	if !running {
		return fmt.Errorf("%w: Reload called before Run", ErrNotRunning)
	}
	reply := make(chan error, 1)
	select {
	case rt.reloadc <- reply:
	case <-rt.stopping:
		return fmt.Errorf("%w: the runtime is shutting down", ErrNotRunning)
	case <-rt.exited:
		return fmt.Errorf("%w: Run has returned", ErrNotRunning)
	case <-time.After(ReloadTurnTimeout):
		return errors.New("runtime: main loop busy; reload not started")
	}
	return <-reply
}

// doReload runs on the main loop.
func (rt *Runtime) doReload() (err error) {
	rt.mu.Lock()
	old := rt.cfg
	rt.mu.Unlock()
	if old.File == "" {
		err := errors.New("reload: the runtime runs the built-in config; there is no file to re-read (to reload, run it from a file: edgeipc run --print-default > edgeipc.toml, then edgeipc run -c edgeipc.toml)")
		rt.log.Warn(err.Error())
		return err
	}
	rt.notifyf(sdnotify.Reloading, sdnotify.MonotonicUsec(shm.Now()), sdnotify.Status("reloading "+old.File))
	// `systemctl reload` only sends the SIGHUP and succeeds whatever
	// happens next: the status line `systemctl status` shows is where a
	// failed reload is seen without reading the log.
	defer func() {
		rt.mu.Lock()
		sum := rt.cfg.Summary()
		rt.mu.Unlock()
		status := "running: " + sum
		if err != nil {
			why := err.Error() // "reload refused, …", "reload applied, except …"
			if !strings.HasPrefix(why, "reload ") {
				why = "reload failed, running configuration kept: " + why
			}
			status += "; " + time.Now().Format("15:04:05") + " " + why
		}
		rt.notifyf(sdnotify.Ready, sdnotify.Status(status))
	}()
	// Stopping sources waits up to their stop_timeout (in parallel).
	rt.setBusy(rt.maxStopTimeout() + busyMargin)
	defer rt.setBusy(0)
	nc, err := loadForReload(old.File)
	if err != nil {
		rt.log.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	var pending *ringsPendingError
	if err := rt.apply(old, nc, time.Time{}); errors.As(err, &pending) {
		// Applied, except for rings that could not be created (logged).
	} else if err != nil {
		err = fmt.Errorf("reload refused, nothing changed: %w", err)
		rt.log.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	rt.mu.Lock()
	rt.reloads++
	rt.mu.Unlock()
	rt.log.Info(fmt.Sprintf("reloaded %s: %s", nc.File, nc.Summary()))
	var except []string
	if pending != nil {
		except = append(except, pending.Error())
	}
	if keys := rt.needRestart(nc); len(keys) > 0 {
		except = append(except, fmt.Sprintf("%s changed: the runtime keeps the values it started with until it is restarted", strings.Join(keys, ", ")))
	}
	if len(except) > 0 {
		err := fmt.Errorf("reload applied, except that %s", strings.Join(except, "; and "))
		rt.log.Warn(err.Error())
		return err
	}
	return nil
}

// maxStopTimeout is the longest stop_timeout of the running sources.
func (rt *Runtime) maxStopTimeout() time.Duration {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var d time.Duration
	for _, ss := range rt.sources {
		d = max(d, ss.cfg.StopTimeout.D())
	}
	return d
}

// needRestart lists the keys of nc, with their running and new values,
// that a reload does not apply: the segment directory and the control
// plane are set up once, by Run.
func (rt *Runtime) needRestart(nc *Config) []string {
	var keys []string
	changed := func(key, running, wanted string) {
		if running != wanted {
			keys = append(keys, fmt.Sprintf("%s (running %q, file %q)", key, running, wanted))
		}
	}
	changed("runtime.shm_dir", rt.shmDir, nc.effectiveShmDir())
	was := &Config{Control: rt.ctlConf}
	changed("control.enabled", fmt.Sprint(was.controlEnabled()), fmt.Sprint(nc.controlEnabled()))
	if was.controlEnabled() && nc.controlEnabled() {
		changed("control.queue", ctlQueue(rt.ctlConf), ctlQueue(nc.Control))
		mode := func(c ControlConfig) string {
			switch {
			case c.Mode != 0:
				return fmt.Sprintf("%#o", uint32(c.Mode))
			case c.Group != "":
				return "0620"
			}
			return "0600"
		}
		changed("control.mode", mode(rt.ctlConf), mode(nc.Control))
		if !sameGroup(rt.ctlConf.Group, nc.Control.Group) {
			changed("control.group", rt.ctlConf.Group, nc.Control.Group)
		}
	}
	return keys
}

// apply moves the runtime from old (nil = nothing running) to nc: it stops
// what is gone or changed, recreates changed rings, creates new rings and
// starts new or changed sources and sinks. Unchanged sources keep running.
//
// Before it changes anything it checks that every ring it is about to
// create can be created (checkRings); if one cannot, it returns that error
// and nothing changes. New rings are created next, before anything is
// stopped; if one cannot be created after all, the rings created in this
// step are removed and nothing else changes. A changed ring whose old
// segment has been removed and whose new one still cannot be created (the
// check cannot foresee everything: readers that still map the old segment
// keep its memory) becomes pending: apply goes on with the rest, and
// returns a *ringsPendingError; the main loop tries the ring again with
// backoff (retryRings), its sources wait (StateWaiting) and its sources
// and sinks start once it exists. A reload tries a pending ring again at
// once, with its new configuration.
//
// The sinks it stops drain until drainBy (the shutdown: what is left of
// shutdown_timeout), or for reloadDrain once sources have stopped when
// drainBy is zero (a reload).
func (rt *Runtime) apply(old, nc *Config, drainBy time.Time) error {
	if old == nil {
		rt.mu.Lock()
		if len(rt.rings) > 0 || len(rt.pending) > 0 {
			old = rt.cfg
		} else {
			old = &Config{Rings: map[string]*RingConfig{}}
		}
		rt.mu.Unlock()
	}
	// Classify rings. A ring of the old config that the runtime does not
	// have and is not trying to create again is added again.
	rt.mu.Lock()
	have := make(map[string]bool, len(rt.rings))
	for n := range rt.rings {
		have[n] = true
	}
	pending := make(map[string]bool, len(rt.pending))
	for n := range rt.pending {
		pending[n] = true
	}
	rt.mu.Unlock()
	var added, removed, changed, retry []string
	for n, r := range nc.Rings {
		o, ok := old.Rings[n]
		switch {
		case pending[n]:
			retry = append(retry, n)
		case !ok || !have[n]:
			added = append(added, n)
		case !sameRing(o, r) || rt.lostSegment[n]:
			changed = append(changed, n)
		}
	}
	for n := range old.Rings {
		if _, ok := nc.Rings[n]; !ok {
			removed = append(removed, n)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	sort.Strings(changed)
	sort.Strings(retry)
	gone := map[string]bool{}
	for _, n := range append(append([]string{}, removed...), changed...) {
		gone[n] = true
	}

	// 0. Check that the rings to create can be created.
	if err := rt.checkRings(nc, added, changed, removed); err != nil {
		return err
	}

	// 1. Create added rings (all or nothing).
	var made []*ringState
	for _, n := range added {
		rs, err := rt.openRing(nc.Rings[n], rt.shmDir)
		if err != nil {
			for _, m := range made {
				m.close(m.created)
			}
			return err
		}
		made = append(made, rs)
	}

	// 2. Stop sources and sinks that are gone, changed, or on a gone ring.
	rt.mu.Lock()
	var stopSrc []*sourceState
	newSrc := map[string]*SourceConfig{}
	for _, s := range nc.Sources {
		newSrc[s.Name] = s
	}
	for name, ss := range rt.sources {
		ncfg, ok := newSrc[name]
		if !ok || !sameSource(ss.cfg, ncfg) || gone[ss.cfg.Ring] {
			ss.remove()
			stopSrc = append(stopSrc, ss)
			delete(rt.sources, name)
		}
	}
	var stopSink []*sinkState
	wantSink := map[string]*SinkConfig{}
	for _, s := range nc.Sinks {
		wantSink[s.Name] = s
	}
	for name, sk := range rt.sinks {
		ncfg, ok := wantSink[name]
		want := ok && sameSink(sk.cfg, ncfg) && !gone[sk.cfg.Ring]
		if sk.implicit {
			r, ok := nc.Rings[sk.cfg.Ring]
			want = ok && r.statsEnabled() && !gone[sk.cfg.Ring] && !hasExplicitStats(nc, sk.cfg.Ring)
		}
		if !want {
			stopSink = append(stopSink, sk)
			delete(rt.sinks, name)
		}
	}
	rt.mu.Unlock()
	// A FIFO that the new configuration reads too (a fifo source on the
	// same path: the same source with another type, framing, mode…) is
	// kept, whatever remove_on_exit says, so that writers holding it open
	// reach the new source; and a read end of it is held while its source
	// restarts, so that their writes meanwhile do not fail with EPIPE.
	keepFIFO := map[string]bool{}
	for _, s := range nc.Sources {
		if s.Kind == KindFIFO {
			keepFIFO[s.Path] = true
		}
	}
	held := map[string]*os.File{}
	for _, ss := range stopSrc {
		if ss.cfg.Kind != KindFIFO || !keepFIFO[ss.cfg.Path] {
			continue
		}
		ss.mu.Lock()
		id := ss.fifo
		ss.mu.Unlock()
		if id != nil {
			if h := holdFIFO(ss.cfg.Path, *id); h != nil {
				held[ss.cfg.Path] = h
			}
		}
	}
	var wg sync.WaitGroup
	for _, ss := range stopSrc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.stop()
			if !(ss.cfg.Kind == KindFIFO && keepFIFO[ss.cfg.Path]) {
				ss.mu.Lock()
				rest := ss.pending.rest
				ss.pending = fifoPending{}
				ss.mu.Unlock()
				why := "when a reload removed the source"
				if !drainBy.IsZero() {
					why = "at the shutdown"
				}
				ss.dropRest(rest, why)
				ss.cleanup()
			}
		}()
	}
	wg.Wait()
	carry := map[string]fifoPending{}
	for _, ss := range stopSrc {
		if ss.cfg.Kind == KindFIFO && keepFIFO[ss.cfg.Path] {
			ss.mu.Lock()
			carry[ss.cfg.Path] = ss.pending
			ss.pending = fifoPending{} // the new source's now
			ss.mu.Unlock()
		}
	}
	by := drainBy
	if by.IsZero() {
		by = time.Now().Add(reloadDrain)
	}
	for _, sk := range stopSink {
		if sk.stats != nil {
			sk.ring.stats.CompareAndSwap(sk.stats, nil)
		}
		wg.Add(1)
		go func() { defer wg.Done(); sk.stop(by) }()
	}
	wg.Wait()
	// A recorder replaced by one of the same name on the same ring (its
	// path or max_bytes changed) hands over: the new one starts where it
	// stopped, so that no frame falls between the two files unseen.
	rt.mu.Lock()
	rt.handover = map[string]uint32{}
	for _, sk := range stopSink {
		rec, ok := sk.sink.(*Recorder)
		handover := false
		if n := wantSink[sk.cfg.Name]; ok && rec.nextOK && n != nil && n.Kind == SinkRecorder && n.Ring == sk.cfg.Ring && !gone[n.Ring] {
			rt.handover[sk.cfg.Name] = rec.next
			handover = true
		}
		if !ok || rec.left == 0 {
			continue
		}
		if rec.leftWhy != "" {
			// It was stopped failed, or in the check of its file: say
			// how many frames no file holds and no lost count shows.
			what := fmt.Sprintf("recorder %s: stopped by %%s %s: %d frames of ring %s (from frame %d, the first its file does not hold) were not recorded", sk.cfg.Name, rec.leftWhy, rec.left, sk.cfg.Ring, rec.leftFrom)
			switch {
			case !drainBy.IsZero():
				rt.log.Warn(fmt.Sprintf(what, "the shutdown")+"; the next run starts at the newest frame", "not_recorded", rec.left)
			case handover:
				rt.log.Info(fmt.Sprintf(what, "a reload")+"; the recorder that replaces it starts at them, and counts those the ring no longer holds in its first record's lost", "not_recorded", rec.left)
			default:
				rt.log.Warn(fmt.Sprintf(what, "a reload"), "not_recorded", rec.left)
			}
			continue
		}
		// The drain was cut short: say how many frames the file lacks.
		what := fmt.Sprintf("recorder %s: its drain of ring %s was cut short %%s: %d frames in the ring (from frame %d) were not recorded", sk.cfg.Name, sk.cfg.Ring, rec.left, rec.leftFrom)
		switch {
		case !drainBy.IsZero():
			rt.log.Warn(fmt.Sprintf(what, "by shutdown_timeout")+"; the next run starts at the newest frame", "not_recorded", rec.left)
		case handover:
			rt.log.Info(fmt.Sprintf(what, fmt.Sprintf("after %v (a reload's bound)", reloadDrain))+" into the old file; the new one starts at them, and counts those the ring no longer holds in its first record's lost", "not_recorded", rec.left)
		default:
			rt.log.Warn(fmt.Sprintf(what, fmt.Sprintf("after %v (a reload's bound)", reloadDrain)), "not_recorded", rec.left)
		}
	}
	rt.mu.Unlock()

	// 3. Close removed and changed rings; recreate changed ones, and try
	// pending ones again.
	rt.mu.Lock()
	for _, n := range removed {
		delete(rt.pending, n)
		if rs := rt.rings[n]; rs != nil {
			if why := rs.close(rs.cfg.RemoveOnExit); why != "" {
				rt.log.Warn(fmt.Sprintf("ring %s: remove_on_exit: segment left in place: %s", n, why))
			}
			delete(rt.rings, n)
		}
	}
	rt.mu.Unlock()
	var missing []string
	for _, n := range changed {
		rt.mu.Lock()
		rs := rt.rings[n]
		delete(rt.rings, n)
		rt.mu.Unlock()
		if rs != nil {
			rs.close(true)
			if !rt.lostSegment[n] { // recreateLostRings said why
				rt.log.Info(fmt.Sprintf("ring %s: geometry or permissions changed; recreating it", n))
			}
		}
		nrs, err := rt.openRing(nc.Rings[n], rt.shmDir)
		if err != nil {
			p := &pendingRing{cfg: nc.Rings[n], since: time.Now(), bo: backoff{min: ringRetryMin, max: ringRetryMax}}
			d := p.failed(err)
			rt.mu.Lock()
			rt.pending[n] = p
			rt.mu.Unlock()
			rt.log.Error(fmt.Sprintf("ring %s: its old segment is removed but the new one could not be created; trying again in %v (its sources and sinks start once it exists)", n, d), "err", err)
			missing = append(missing, n)
			continue
		}
		made = append(made, nrs)
	}
	for _, n := range retry {
		rt.mu.Lock()
		p := rt.pending[n]
		p.cfg = nc.Rings[n]
		rt.mu.Unlock()
		nrs, err := rt.openRing(p.cfg, rt.shmDir)
		if err != nil {
			rt.mu.Lock()
			d := p.failed(err)
			rt.mu.Unlock()
			rt.log.Error(fmt.Sprintf("ring %s: still cannot be created (attempt %d); trying again in %v", n, p.attempts, d), "err", err)
			missing = append(missing, n)
			continue
		}
		rt.mu.Lock()
		delete(rt.pending, n)
		rt.mu.Unlock()
		made = append(made, nrs)
	}
	rt.mu.Lock()
	for _, rs := range made {
		rt.rings[rs.cfg.Name] = rs
	}
	own := ownWriters(nc)
	for n, rs := range rt.rings {
		rs.cfg = nc.Rings[n] // take non-geometry changes (remove_on_exit, stats)
		rs.mu.Lock()
		rs.ownWriter = own[n] // whose bytes count (ringState.seenBytes)
		rs.mu.Unlock()
	}
	rt.cfg = nc
	rt.held, rt.carry = held, carry
	rt.mu.Unlock()

	// 4. Start sinks first (so readers see the first frames), then sources.
	rt.startWanted(nc)
	rt.mu.Lock()
	left, leftCarry := rt.held, rt.carry // FIFOs whose new source does not start
	rt.held, rt.carry = nil, nil
	// The source of the FIFO counts what a rest in leftCarry held.
	byPath := map[string]*sourceState{}
	for _, ss := range rt.sources {
		if ss.cfg.Kind == KindFIFO {
			byPath[ss.cfg.Path] = ss
		}
	}
	rt.mu.Unlock()
	for _, h := range left {
		h.Close()
	}
	for path, p := range leftCarry {
		switch ss := byPath[path]; {
		case p.rest == nil:
		case ss != nil:
			ss.dropRest(p.rest, "when a reload replaced the source by one that does not start")
		default:
			p.rest.f.Close()
		}
	}
	if len(missing) > 0 {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		e := &ringsPendingError{}
		for _, n := range missing {
			e.rings = append(e.rings, n)
			e.errs = append(e.errs, rt.pending[n].err)
		}
		return e
	}
	return nil
}

// ringsPendingError is apply's error when it has applied the new
// configuration except for rings it could not create (see apply).
type ringsPendingError struct {
	rings []string
	errs  []error
}

func (e *ringsPendingError) Error() string {
	var b strings.Builder
	for i, n := range e.rings {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "ring %s could not be created (%v)", n, e.errs[i])
	}
	b.WriteString(": the runtime tries again with backoff (edgeipc ctl rings shows it as missing, and why), and starts its sources and sinks once it exists")
	return b.String()
}

// ownWriters reports, per ring of c, whether a source of the runtime
// writes it (rather than a child with write = "child", or another
// process).
func ownWriters(c *Config) map[string]bool {
	own := map[string]bool{}
	for _, sc := range c.Sources {
		own[sc.Ring] = own[sc.Ring] || !(sc.Kind == KindExec && sc.Write == "child")
	}
	return own
}

// testHookStarted, if set, runs once apply or retryRings has made new
// sources visible to the control plane and started them.
var testHookStarted func()

// startWanted starts the sinks and sources of c that do not run yet and
// whose ring exists: sinks first (so readers see the first frames), then
// sources. A source whose ring is pending gets a waiting entry (so that
// edgeipc ctl sources shows it, and why it waits); once the ring exists,
// that entry is replaced by one that runs. Everything is started before
// the lock is released: a control request that finds a new source finds
// it started (a stop then stops it).
func (rt *Runtime) startWanted(c *Config) {
	rt.mu.Lock()
	defer func() {
		rt.mu.Unlock()
		if testHookStarted != nil {
			testHookStarted()
		}
	}()
	for _, sc := range c.Sinks {
		if _, ok := rt.sinks[sc.Name]; ok {
			continue
		}
		rs := rt.rings[sc.Ring]
		if rs == nil {
			continue
		}
		sk := newSink(rt, sc, rs, false)
		rt.sinks[sc.Name] = sk
		if sk.stats != nil {
			rs.stats.Store(sk.stats)
		}
		if at, ok := rt.handover[sc.Name]; ok {
			rec := sk.sink.(*Recorder)
			rec.resume, rec.resumeAt = true, at
		}
		sk.start()
	}
	rt.handover = nil
	for n, r := range c.Rings {
		name := "stats:" + n
		if _, ok := rt.sinks[name]; ok || !r.statsEnabled() || hasExplicitStats(c, n) || rt.rings[n] == nil {
			continue
		}
		sk := newSink(rt, &SinkConfig{Name: name, Kind: SinkStats, Ring: n}, rt.rings[n], true)
		rt.sinks[name] = sk
		rt.rings[n].stats.Store(sk.stats)
		sk.start()
	}
	for _, sc := range c.Sources {
		rs := rt.rings[sc.Ring]
		if ss, ok := rt.sources[sc.Name]; ok {
			if !ss.waiting() {
				continue
			}
			if rs == nil {
				ss.waitFor(rt.pending[sc.Ring])
				continue
			}
			ss.remove() // its ring exists now: replaced by one that runs
		}
		ss := newSource(rt, sc, rs)
		rt.sources[sc.Name] = ss
		if rs == nil {
			ss.waitFor(rt.pending[sc.Ring])
			continue
		}
		if !sc.Disabled {
			if h := rt.held[sc.Path]; h != nil && sc.Kind == KindFIFO {
				ss.held = h
				delete(rt.held, sc.Path)
			}
			if p, ok := rt.carry[sc.Path]; ok && sc.Kind == KindFIFO {
				delete(rt.carry, sc.Path)
				ss.takeCarry(p)
			}
			ss.start()
		}
	}
}

// pendingRing is a ring of the running configuration that the runtime
// does not have: a reload removed its old segment to recreate it, and the
// new one could not be created. The main loop tries again (retryRings).
type pendingRing struct {
	cfg      *RingConfig
	err      error     // why the last attempt failed
	attempts int       // attempts so far
	since    time.Time // when the ring went missing
	next     time.Time // when the next attempt is due
	bo       backoff
}

// The delay between attempts to create a pending ring doubles from
// ringRetryMin to ringRetryMax.
const (
	ringRetryMin = time.Second
	ringRetryMax = 30 * time.Second
)

// failed records a failed attempt and returns the delay until the next.
func (p *pendingRing) failed(err error) time.Duration {
	p.attempts++
	p.err = err
	d := p.bo.next()
	p.next = time.Now().Add(d)
	return d
}

// nextRingRetry is when retryRings is next due (ok false: no ring is
// pending).
func (rt *Runtime) nextRingRetry() (at time.Time, ok bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, p := range rt.pending {
		if !ok || p.next.Before(at) {
			at, ok = p.next, true
		}
	}
	return at, ok
}

// retryRings runs on the main loop: it tries again to create each pending
// ring that is due, and starts the sinks and sources of those it created.
func (rt *Runtime) retryRings() {
	now := time.Now()
	rt.mu.Lock()
	var due []string
	for n, p := range rt.pending {
		if !now.Before(p.next) {
			due = append(due, n)
		}
	}
	cfg := rt.cfg
	rt.mu.Unlock()
	sort.Strings(due)
	created := false
	for _, n := range due {
		rt.mu.Lock()
		p := rt.pending[n]
		rt.mu.Unlock()
		rs, err := rt.openRing(p.cfg, rt.shmDir)
		rt.mu.Lock()
		if err != nil {
			d := p.failed(err)
			for _, ss := range rt.sources {
				if ss.cfg.Ring == n && ss.waiting() {
					ss.waitFor(p)
				}
			}
			rt.mu.Unlock()
			rt.log.Warn(fmt.Sprintf("ring %s: still cannot be created (attempt %d); trying again in %v", n, p.attempts, d), "err", err)
			continue
		}
		delete(rt.pending, n)
		rt.rings[n] = rs
		rs.mu.Lock()
		rs.ownWriter = ownWriters(cfg)[n]
		rs.mu.Unlock()
		rt.mu.Unlock()
		rt.log.Info(fmt.Sprintf("ring %s: created on attempt %d, %v after its old segment was removed; starting its sinks and sources", n, p.attempts+1, time.Since(p.since).Round(time.Millisecond)))
		created = true
	}
	if created {
		rt.startWanted(cfg)
	}
}

// recreateLostRings runs on the main loop, every rateWindow: a ring this
// runtime manages whose segment was removed behind it (edgeipc ring rm
// --force) or replaced by another file is created again, and its sources
// and sinks restarted on it, as a reload that changed the ring would.
// Before, the runtime went on with the unlinked segment for as long as it
// ran: its sources wrote frames no new reader could reach, and readers
// that opened the name found nothing or another ring.
func (rt *Runtime) recreateLostRings() {
	rt.mu.Lock()
	var lost []string
	for n, rs := range rt.rings {
		if rs.segmentLost() {
			lost = append(lost, n)
		}
	}
	cfg := rt.cfg
	rt.mu.Unlock()
	if len(lost) == 0 || time.Now().Before(rt.lostRetryAt) {
		return
	}
	sort.Strings(lost)
	rt.lostSegment = map[string]bool{}
	defer func() { rt.lostSegment = nil }()
	for _, n := range lost {
		rt.lostSegment[n] = true
		rt.log.Warn(fmt.Sprintf("ring %s: its segment was removed or replaced behind the runtime (edgeipc ring rm --force?); creating it again and restarting its sources and sinks on it (to remove a ring for good, take it out of the configuration and reload)", n))
	}
	rt.setBusy(rt.maxStopTimeout() + busyMargin)
	defer rt.setBusy(0)
	var pending *ringsPendingError
	if err := rt.apply(cfg, cfg, time.Time{}); err != nil && !errors.As(err, &pending) {
		rt.lostRetryAt = time.Now().Add(lostRetry)
		rt.log.Error(fmt.Sprintf("ring %s: cannot be created again; trying again in %v", strings.Join(lost, ", "), lostRetry), "err", err)
	}
}

// lostRetry is how long recreateLostRings waits after a failure.
const lostRetry = 30 * time.Second

func hasExplicitStats(c *Config, ring string) bool {
	for _, s := range c.Sinks {
		if s.Kind == SinkStats && s.Ring == ring {
			return true
		}
	}
	return false
}

func (rt *Runtime) sampleRings() {
	rt.mu.Lock()
	rings := make([]*ringState, 0, len(rt.rings))
	for _, r := range rt.rings {
		rings = append(rings, r)
	}
	rt.mu.Unlock()
	for _, r := range rings {
		r.sample()
	}
}

// logStats logs one line per ring and per source.
func (rt *Runtime) logStats(what string) { rt.logStatsWindow(what, true) }

// logStatsWindow logs the stats lines; roll closes each ring's latency and
// loss window (the periodic line), else the window so far is shown and
// stays open (a SIGUSR1 snapshot).
func (rt *Runtime) logStatsWindow(what string, roll bool) {
	rt.mu.Lock()
	rings := make([]*ringState, 0, len(rt.rings))
	for _, r := range rt.rings {
		rings = append(rings, r)
	}
	missing := map[string]string{} // pending ring -> why
	for n, p := range rt.pending {
		missing[n] = p.why()
	}
	srcs := make([]*sourceState, 0, len(rt.sources))
	for _, s := range rt.sources {
		srcs = append(srcs, s)
	}
	var stats, declared []*sinkState
	for _, s := range rt.sinks {
		if s.stats != nil {
			stats = append(stats, s)
		}
		if !s.implicit {
			declared = append(declared, s)
		}
	}
	rt.mu.Unlock()
	sort.Slice(declared, func(i, j int) bool { return declared[i].cfg.Name < declared[j].cfg.Name })
	sort.Slice(rings, func(i, j int) bool { return rings[i].name < rings[j].name })
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].cfg.Name < srcs[j].cfg.Name })
	for _, n := range slices.Sorted(maps.Keys(missing)) {
		rt.log.Warn(fmt.Sprintf("ring %-10s missing: %s", n, missing[n]),
			slog.Group("data", "kind", what, "ring", n, "state", RingMissing, "last_error", missing[n]))
	}
	for _, r := range rings {
		var w window
		for _, s := range stats {
			if s.cfg.Ring == r.name {
				if roll {
					w, _ = s.stats.roll()
				} else {
					w = s.stats.peek()
				}
				break
			}
		}
		st := r.stat()
		torn := ""
		if w.torn > 0 {
			torn = fmt.Sprintf("  torn %d", w.torn)
		}
		rt.log.Info(fmt.Sprintf("ring %-10s %8.1f fr/s %10s/s  latency mean %7s p99 %7s  lost %d  readers %d%s",
			r.name, st.RateHz, units.BytesCompact(st.BytesPerS), fmtDur(w.lat.mean()), fmtDur(w.lat.quantile(0.99)), w.lost, st.Readers, torn),
			slog.Group("data", "kind", what, "ring", r.name, "rate_hz", st.RateHz, "bytes_per_s", st.BytesPerS,
				"lat_mean_ns", int64(w.lat.mean()), "lat_p99_ns", int64(w.lat.quantile(0.99)), "lat_max_ns", w.lat.max,
				"lost", w.lost, "torn", w.torn, "readers", st.Readers, "frames", st.Frames))
	}
	for _, s := range srcs {
		st := s.stat()
		extra := ""
		if st.PID != 0 {
			extra += fmt.Sprintf(" pid %d", st.PID)
		}
		if st.Restarts > 0 {
			extra += fmt.Sprintf(" restarts %d", st.Restarts)
		}
		if st.LastExit != "" {
			extra += " last exit: " + st.LastExit
		}
		if st.Dropped > 0 {
			extra += fmt.Sprintf(" dropped %d B", st.Dropped)
		}
		if st.LogDropped > 0 {
			extra += fmt.Sprintf(" log lines not logged %d", st.LogDropped)
		}
		if st.LastError != "" {
			extra += " error: " + st.LastError
		}
		rt.log.Info(fmt.Sprintf("source %-8s %-9s %-8s frames %d bad %d%s", st.Name, st.Kind, st.State, st.Frames, st.Bad, extra),
			slog.Group("data", "kind", what, "source", st.Name, "source_kind", st.Kind, "state", st.State, "pid", st.PID,
				"restarts", st.Restarts, "frames", st.Frames, "bytes", st.Bytes, "bad", st.Bad, "dropped_bytes", st.Dropped,
				"log_dropped", st.LogDropped, "last_exit", st.LastExit, "last_error", st.LastError))
	}
	// The sinks the config declares (a ring's own stats reader is in its
	// ring line): a recorder that keeps failing shows here, not only in
	// its error lines.
	for _, s := range declared {
		st := s.stat()
		extra := ""
		if st.Skipped > 0 {
			extra += fmt.Sprintf(" skipped %d", st.Skipped)
		}
		if st.Restarts > 0 {
			extra += fmt.Sprintf(" restarts %d", st.Restarts)
		}
		if st.LastError != "" {
			extra += " error: " + st.LastError
		}
		rt.log.Info(fmt.Sprintf("sink   %-8s %-9s %-8s frames %d lost %d%s", st.Name, st.Kind, st.State, st.Frames, st.Lost, extra),
			slog.Group("data", "kind", what, "sink", st.Name, "sink_kind", st.Kind, "ring", st.Ring, "state", st.State,
				"frames", st.Frames, "bytes", st.Bytes, "lost", st.Lost, "skipped", st.Skipped,
				"restarts", st.Restarts, "last_error", st.LastError))
	}
}

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
