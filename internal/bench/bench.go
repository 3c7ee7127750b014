package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// Kinds of case.
const (
	PingPong = "pingpong"
	Stream   = "stream"
)

// DefaultSizes are the payload sizes measured when Options.Sizes is empty.
var DefaultSizes = []int{64, 4 << 10, 64 << 10, 1 << 20}

// DefaultDuration is how long each case measures when neither Iters nor
// Duration is set.
const DefaultDuration = time.Second

// maxSamples bounds the round trips recorded per ping-pong case in
// duration mode (8 MiB of samples); a variable for the tests.
var maxSamples = 1 << 20

// maxRoundTrips bounds a ping-pong case in duration mode: go-spin and the
// C baselines number round trips with 32 bits, 0xffffffff meaning stop.
const maxRoundTrips = 1<<32 - 2

// Options selects what Run measures.
type Options struct {
	Cases    []string      // case names (see CaseNames); empty = every case
	Sizes    []int         // payload sizes in bytes; empty = DefaultSizes
	Iters    int           // > 0: measured round trips or streamed frames per case
	Duration time.Duration // used when Iters == 0 (0 = DefaultDuration)
	// CPUs optionally pins the measuring process to CPUs[0] and the peer to
	// CPUs[1] (or CPUs[0] if only one is given).
	CPUs []int
	// NoC skips the C baselines.
	NoC bool
	// Repeat > 1 measures the whole selection that many times, in rounds
	// (each Go case right after its C baselines, in every round, so a
	// machine that drifts between fast and slow states moves both sides
	// of a ratio alike), and then emits one summary per case and size:
	// the medians over the rounds.
	Repeat int
	// Exe and ChildArgs are how the peer is started: Exe ChildArgs... FLAGS.
	// Defaults: os.Executable() and ["bench-child"].
	Exe       string
	ChildArgs []string
	// Stderr receives the peers' diagnostics and progress notes.
	Stderr io.Writer
}

// Result is one measured (or skipped) case at one size. It is printed as
// one JSON object per line by `edgeipc bench --json`.
type Result struct {
	Case   string `json:"case"`
	Size   int    `json:"size"`
	Kind   string `json:"kind"`
	Impl   string `json:"impl"` // "go" or "c"
	Policy string `json:"policy,omitempty"`
	Wake   string `json:"wake,omitempty"`

	Iters  int64 `json:"iters,omitempty"`
	RTTP50 int64 `json:"rtt_p50_ns,omitempty"`
	RTTP99 int64 `json:"rtt_p99_ns,omitempty"`
	RTTMin int64 `json:"rtt_min_ns,omitempty"`

	Frames     int64   `json:"frames,omitempty"`
	FramesPerS float64 `json:"frames_per_s,omitempty"`
	BytesPerS  float64 `json:"bytes_per_s,omitempty"`
	Lost       *int64  `json:"lost,omitempty"`

	CCase    string  `json:"c_case,omitempty"`
	RatioToC float64 `json:"ratio_to_c,omitempty"`
	// CLikeCase is the C baseline that also does the per-frame work the
	// ring ABI requires (a CLOCK_MONOTONIC read per commit); RatioToCLike
	// is Go/C against it, for information beside RatioToC.
	CLikeCase    string  `json:"c_like_case,omitempty"`
	RatioToCLike float64 `json:"ratio_to_c_like,omitempty"`

	// Round numbers the results of a run with Options.Repeat > 1 (1, 2,
	// ...). Summary marks the line emitted after the last round: its
	// figures are medians over the Rounds rounds that produced one, its
	// ratio_to_c the median of the rounds' ratios, with their range in
	// RatioToCMin and RatioToCMax; Lost is the total.
	Round       int     `json:"round,omitempty"`
	Summary     bool    `json:"summary,omitempty"`
	Rounds      int     `json:"rounds,omitempty"`
	RatioToCMin float64 `json:"ratio_to_c_min,omitempty"`
	RatioToCMax float64 `json:"ratio_to_c_max,omitempty"`

	Note    string `json:"note,omitempty"`
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// JSON returns r as one line of JSON.
func (r Result) JSON() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// caseDef describes one case: the measuring side (run) and the peer (child).
type caseDef struct {
	name  string
	kind  string
	desc  string
	c     string // C counterpart
	cLike string // C counterpart that also timestamps each frame
	impl  string
	run   func(ctx context.Context, h *harness, size int) (Result, error)
	child func(ctx context.Context, c *childCfg) error
}

var cases []*caseDef

func findCase(name string) *caseDef {
	for _, c := range cases {
		if c.name == name {
			return c
		}
	}
	return nil
}

// CaseNames lists the valid case names in run order.
func CaseNames() []string {
	n := make([]string, len(cases))
	for i, c := range cases {
		n[i] = c.name
	}
	return n
}

// CaseHelp describes every case, one per line.
func CaseHelp() string {
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "  %-12s %-8s %s\n", c.name, c.kind, c.desc)
	}
	return b.String()
}

// UnknownCaseError names a case that does not exist.
type UnknownCaseError struct{ Name string }

func (e *UnknownCaseError) Error() string {
	return fmt.Sprintf("unknown case %q; valid cases: %s", e.Name, strings.Join(CaseNames(), ", "))
}

// ParseCases splits a comma-separated case list and checks every name.
func ParseCases(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f == "all" {
			return nil, nil
		}
		if findCase(f) == nil {
			return nil, &UnknownCaseError{f}
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		// nil would mean every case: an empty --case (a script's unset
		// variable) must not start the longest run there is.
		return nil, errors.New("empty case list: name the cases, e.g. ring-spin,pipe, or all")
	}
	return out, nil
}

// ParseSizes parses a comma-separated list of sizes such as "64,4k,64k,1m"
// (suffixes k and m are powers of 1024).
func ParseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		arg := strings.TrimSpace(f)
		f = strings.ToLower(arg)
		if f == "" {
			continue
		}
		mul := 1
		switch {
		case strings.HasSuffix(f, "kib"), strings.HasSuffix(f, "k"):
			mul, f = 1<<10, strings.TrimSuffix(strings.TrimSuffix(f, "kib"), "k")
		case strings.HasSuffix(f, "mib"), strings.HasSuffix(f, "m"):
			mul, f = 1<<20, strings.TrimSuffix(strings.TrimSuffix(f, "mib"), "m")
		case strings.HasSuffix(f, "b"):
			f = strings.TrimSuffix(f, "b")
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || n > 64<<20/mul {
			return nil, fmt.Errorf("bad size %q: want a positive number of bytes up to 64m, e.g. 64,4k,64k,1m", arg)
		}
		out = append(out, n*mul)
	}
	if len(out) == 0 {
		return nil, errors.New("empty size list")
	}
	return out, nil
}

// FormatSize prints a size the way ParseSizes reads it.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dm", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dk", n>>10)
	}
	return strconv.Itoa(n)
}

// harness is what the measuring side of a case works with.
type harness struct {
	opts      Options
	dir       string // segment directory (under /dev/shm) and scratch
	exe       string
	childArgs []string
	stderr    io.Writer
	cc        *cBuild
	seq       atomic.Int32
}

// name returns a fresh object name for this run.
func (h *harness) name(what string) string {
	return fmt.Sprintf("bench-%d-%d-%s", os.Getpid(), h.seq.Add(1), what)
}

// timeout is the hang guard for one case: generous, never a speed limit.
func (h *harness) timeout() time.Duration {
	if h.opts.Iters > 0 {
		return 60*time.Second + time.Duration(h.opts.Iters)*time.Millisecond
	}
	return 3*h.opts.Duration + 30*time.Second
}

func (h *harness) childCPU() int {
	switch len(h.opts.CPUs) {
	case 0:
		return -1
	case 1:
		return h.opts.CPUs[0]
	}
	return h.opts.CPUs[1]
}

func (h *harness) parentCPU() int {
	if len(h.opts.CPUs) == 0 {
		return -1
	}
	return h.opts.CPUs[0]
}

// peer is a started child process.
type peer struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start re-executes the binary as the peer of case c. extra become fds 3,
// 4, ... in the child; the caller closes its copies after start returns.
// abort, if not nil, is called when the child fails (so a measuring side
// blocked on it can give up at once).
func (h *harness) start(ctx context.Context, c string, size int, extra []*os.File, abort func(), kv ...string) (*peer, error) {
	args := append([]string{}, h.childArgs...)
	args = append(args, "-case", c, "-size", strconv.Itoa(size), "-dir", h.dir,
		"-iters", strconv.Itoa(h.opts.Iters), "-duration", h.opts.Duration.String(),
		"-timeout", h.timeout().String(), "-cpu", strconv.Itoa(h.childCPU()))
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, "-"+kv[i], kv[i+1])
	}
	cmd := exec.CommandContext(ctx, h.exe, args...)
	cmd.ExtraFiles = extra
	cmd.Stdout = h.stderr
	cmd.Stderr = h.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := startPeer(cmd); err != nil {
		return nil, fmt.Errorf("start peer: %w", err)
	}
	p := &peer{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if err != nil {
			p.err = fmt.Errorf("peer %s: %w", c, err)
			if abort != nil {
				abort()
			}
		}
		close(p.done)
	}()
	return p, nil
}

// wait waits for the peer to exit (it should be on its way out).
func (p *peer) wait(limit time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("peer did not exit within %v; killed", limit)
	}
}

// kill ends a peer after a failure on the measuring side.
func (p *peer) kill() {
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// pingPong runs rt repeatedly (warm-up first) and returns the sorted
// round-trip times.
func (h *harness) pingPong(rt func() error) ([]int64, error) {
	var samples []int64
	if n := h.opts.Iters; n > 0 {
		for i := 0; i < n/10+10; i++ {
			if err := rt(); err != nil {
				return nil, err
			}
		}
		samples = make([]int64, n)
		for i := range samples {
			t0 := shm.Now()
			if err := rt(); err != nil {
				return nil, err
			}
			samples[i] = shm.Now() - t0
		}
	} else {
		d := int64(h.opts.Duration)
		start := shm.Now()
		warm := start + d/10
		calls := int64(0)
		for shm.Now() < warm && calls < maxRoundTrips {
			if err := rt(); err != nil {
				return nil, err
			}
			calls++
		}
		// Measure for the whole duration: once maxSamples are recorded,
		// each further round trip replaces a random one (reservoir
		// sampling), so the percentiles cover the run. The loop used to
		// stop at maxSamples, after about 0.3 s of a fast case, whatever
		// --duration said. common.h does the same.
		samples = make([]int64, 0, maxSamples)
		end := shm.Now() + d
		for seen := int64(1); ; seen++ {
			t0 := shm.Now()
			if err := rt(); err != nil {
				return nil, err
			}
			t1 := shm.Now()
			calls++
			if len(samples) < maxSamples {
				samples = append(samples, t1-t0)
			} else if j := rand.Int64N(seen); j < int64(maxSamples) {
				samples[j] = t1 - t0
			}
			if t1 >= end || calls >= maxRoundTrips {
				break
			}
		}
	}
	slices.Sort(samples)
	return samples, nil
}

// p99Index is the index of the 99th percentile in n sorted samples, by
// nearest rank: the ceil(0.99 n)-th smallest. n*99/100 was one past it
// (of 100 samples, the largest). common.h's p99_index is the same.
func p99Index(n int) int {
	return (n*99+99)/100 - 1
}

func fillRTT(r *Result, s []int64) {
	n := len(s)
	if n == 0 {
		return
	}
	r.Iters = int64(n)
	r.RTTP50 = s[n/2]
	r.RTTP99 = s[p99Index(n)]
	r.RTTMin = s[0]
}

func tooFewFrames(n int64) error {
	return skipf("%d frame(s) streamed: a rate needs 2 or more (raise --iters or --duration)", n)
}

// fillRate sets the rate of a stream whose consumer received frames
// frames, the first ns before the end. The clock starts when the first
// frame has arrived, so frames-1 of them arrived in ns: counting all of
// them overstated the rate by frames/(frames-1) (1.5x for --iters 3), and
// a single frame (--iters 1, or 64m frames for a short --duration) gave
// an absurd rate. Fewer than two frames is a skip that says so. c/ring.c
// counts the same way.
func fillRate(r *Result, frames int64, ns int64, size int) error {
	r.Frames = frames
	if frames < 2 {
		return tooFewFrames(frames)
	}
	if ns <= 0 {
		ns = 1
	}
	secs := float64(ns) / 1e9
	r.FramesPerS = float64(frames-1) / secs
	r.BytesPerS = float64(frames-1) * float64(size) / secs
	return nil
}

// segmentBase is where the temporary segment directory goes: real shared
// memory unless EDGEIPC_SHM_DIR says otherwise.
func segmentBase() (string, string) {
	if d := os.Getenv("EDGEIPC_SHM_DIR"); d != "" {
		return d, ""
	}
	if st, err := os.Stat(shm.DefaultDir); err == nil && st.IsDir() {
		return shm.DefaultDir, ""
	}
	return os.TempDir(), shm.DefaultDir + " is missing: segments are in " + os.TempDir() + ", which may not be tmpfs"
}

// Run measures the selected cases at the selected sizes and calls emit
// with each result as soon as it is known (C baselines are emitted just
// before the first Go case that needs them). It returns an error only if
// the bench could not run at all; failed cases are results with Error set.
func Run(ctx context.Context, opts Options, emit func(Result)) error {
	if len(opts.Sizes) == 0 {
		opts.Sizes = DefaultSizes
	}
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	var sel []*caseDef
	if len(opts.Cases) == 0 {
		sel = cases
	} else {
		for _, n := range opts.Cases {
			c := findCase(n)
			if c == nil {
				return &UnknownCaseError{n}
			}
			sel = append(sel, c)
		}
	}
	h := &harness{opts: opts, exe: opts.Exe, childArgs: opts.ChildArgs, stderr: opts.Stderr}
	if h.exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: cannot find own executable to start peers: %w", err)
		}
		h.exe = exe
	}
	if h.childArgs == nil {
		h.childArgs = []string{"bench-child"}
	}
	base, note := segmentBase()
	dir, lock, err := makeSegDir(base, opts.Stderr)
	if err != nil {
		return fmt.Errorf("bench: segment directory: %w", err)
	}
	defer lock.Close() // after the removal: see segdir.go
	defer os.RemoveAll(dir)
	h.dir = dir
	if note != "" {
		fmt.Fprintln(opts.Stderr, "bench: note:", note)
	}
	removeStale(base, opts.Stderr) // what benches that died left
	if cpu := h.parentCPU(); cpu >= 0 {
		if err := pinProcess(cpu); err != nil {
			return fmt.Errorf("bench: pin to CPU %d: %w", cpu, err)
		}
	}

	needC := false
	for _, c := range sel {
		if c.c != "" || c.impl == "c" {
			needC = true
		}
	}
	if needC && !opts.NoC {
		h.cc = buildC(ctx, filepath.Join(dir, "c"))
		if h.cc.err != nil {
			fmt.Fprintln(opts.Stderr, "bench: C baselines:", h.cc.err)
		}
	}
	rounds := max(opts.Repeat, 1)
	var all []Result // every result of every round, for the summaries
	for round := 1; round <= rounds; round++ {
		err := h.round(ctx, sel, func(r Result) {
			if rounds > 1 {
				r.Round = round
				all = append(all, r)
			}
			emit(r)
		})
		if err != nil {
			return err
		}
	}
	for _, r := range summarize(all, rounds) {
		emit(r)
	}
	return nil
}

// round measures every selected case at every size once.
func (h *harness) round(ctx context.Context, sel []*caseDef, emit func(Result)) error {
	opts := h.opts
	cres := map[string]Result{} // "c-spin/64" -> result
	runC := func(name string, size int) Result {
		key := name + "/" + strconv.Itoa(size)
		if r, ok := cres[key]; ok {
			return r
		}
		r := h.runOne(ctx, findCase(name), size)
		cres[key] = r
		emit(r)
		return r
	}
	for _, c := range sel {
		for _, size := range opts.Sizes {
			if err := ctx.Err(); err != nil {
				return err
			}
			if c.impl == "c" {
				runC(c.name, size)
				continue
			}
			var cr, cl *Result
			if c.c != "" && !opts.NoC && h.cc.err == nil {
				r := runC(c.c, size)
				cr = &r
				if c.cLike != "" {
					r := runC(c.cLike, size)
					cl = &r
				}
			}
			r := h.runOne(ctx, c, size)
			if cl != nil && r.Error == "" && r.Skipped == "" {
				r.CLikeCase = c.cLike
				r.RatioToCLike = ratio(c.kind, &r, cl)
			}
			if c.c != "" {
				r.CCase = c.c
				switch {
				case opts.NoC:
					r.Note = join(r.Note, "C baseline not run (--no-c)")
				case h.cc.err != nil:
					r.Note = join(r.Note, h.cc.err.Error())
				case cr.Error != "" || cr.Skipped != "":
					r.Note = join(r.Note, "C baseline failed: ratio unavailable")
				case r.Error == "" && r.Skipped == "":
					r.RatioToC = ratio(c.kind, &r, cr)
				}
			}
			emit(r)
		}
	}
	return nil
}

// ratio is Go/C: of the median round trips for ping-pong, of the frame
// rates for streaming; 0 if the C run has no figure.
func ratio(kind string, g, c *Result) float64 {
	switch {
	case c.Error != "" || c.Skipped != "":
	case kind == PingPong && c.RTTP50 > 0:
		return float64(g.RTTP50) / float64(c.RTTP50)
	case kind == Stream && c.FramesPerS > 0:
		return g.FramesPerS / c.FramesPerS
	}
	return 0
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func (h *harness) runOne(ctx context.Context, c *caseDef, size int) Result {
	ctx, cancel := context.WithTimeout(ctx, h.timeout())
	defer cancel()
	r, err := c.run(ctx, h, size)
	r.Case, r.Size, r.Kind = c.name, size, c.kind
	if r.Impl == "" {
		r.Impl = "go"
	}
	if err != nil {
		var sk *skipError
		if errors.As(err, &sk) {
			r.Skipped = sk.reason
		} else {
			r.Error = err.Error()
		}
	}
	return r
}

// skipError means a case cannot run at a size on this system (not a failure).
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

func skipf(format string, a ...any) error { return &skipError{fmt.Sprintf(format, a...)} }
