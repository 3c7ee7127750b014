package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeipc/edgeipc/internal/bench"
)

func init() {
	Register(&Command{
		Name:  "bench",
		Usage: "bench [--case LIST] [--size LIST] [--duration D | --iters N] [--repeat N] [--cpu A[,B]] [--json] [--no-c]",
		Short: "measure rings against pipes, sockets, FIFOs and message queues (two processes)",
		Long: `bench runs each case between two processes: this binary re-executes itself
as the peer. Ping-pong cases report the round-trip time (p50 and p99 over
the measured iterations, after a warm-up of a tenth of the run; past
1Mi round trips, over a random 1Mi of them, the "iters" reported); streaming
cases report frames and bytes per second seen by the consumer, timed from
the arrival of the first frame (a run of one frame is skipped: no rate).

Cases:
` + bench.CaseHelp() + `
Every Go case is compared with a C program compiled here with ` + "`cc -O2`" + `
and run in the same invocation: ring-spin with c-spin, ring-wait with
c-futex, ring-stream with c-ring; the cases without a C twin with the
fastest C way to do their exchange (ring-eventfd, pipe, unix, tcp, mq with
c-futex; pipe-stream, unix-stream, fifo with c-ring). ratio_to_c is Go/C of the round-trip
p50 for ping-pong (lower is better, 1.0 = as fast as C) and of frames per
second for streaming (higher is better). ring-spin and ring-stream are
also compared with c-spin-ts and c-ring-ts, the same C programs plus one
CLOCK_MONOTONIC read per frame, the work every ring commit does to stamp
its frame: ratio_to_c_like, shown in brackets in the table. go-spin and
go-spin-ts are c-spin and c-spin-ts written in Go, without a ring: they
split ring-spin's distance from C into what Go costs here (go-spin against
c-spin) and what the ring adds (ring-spin against go-spin-ts). Without a C
compiler (cc, or the one $CC names) the results say "no C compiler:
ratios unavailable" and the C cases are skipped, as with --no-c; neither
is a failure. A compiler that builds for another machine (the host's cc
when an ARM edgeipc runs under qemu-user) counts as none: set CC to one
for this machine, e.g. CC='aarch64-linux-gnu-gcc -static'.

ring-stream uses the block policy, so nothing is lost (the "lost" field
proves it). mq message sizes are capped by /proc/sys/fs/mqueue/msgsize_max:
larger sizes are reported as skipped, with the limit to raise.

Rings live in a temporary directory under $EDGEIPC_SHM_DIR or /dev/shm.
A bench that is killed (even with SIGKILL) takes its peer processes with
it; the directory it leaves behind is removed by the next bench, which
says so on stderr (a live bench's is never touched).
The machine should be otherwise idle. One run is one sample: a virtual
machine in particular drifts between faster and slower states. --repeat N
measures everything N times in rounds, each Go case right after its C
baselines in every round, then prints the medians over the rounds, with
the range of the ratios ("summary": true in --json; each round's lines
carry "round"). Quote those medians.

Examples:
  edgeipc bench
  edgeipc bench --case ring-spin,ring-wait,pipe,unix --size 64 --duration 2s
  edgeipc bench --case go-spin,go-spin-ts,ring-spin --size 64
  edgeipc bench --case ring-stream --size 64,1m --json
  edgeipc bench --case ring-spin,ring-wait,ring-stream --size 64 --repeat 7
  go run ./cmd/edgeipc bench --cpu 0,1`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("case", "all", "comma-separated cases to run (see above), or all")
			fs.String("size", "64,4k,64k,1m", "comma-separated payload sizes (k, m = KiB, MiB)")
			fs.Duration("duration", bench.DefaultDuration, "measuring time per case and size (after warm-up)")
			fs.Int("iters", 0, "measured round trips (ping-pong) or frames (streaming) per case; overrides --duration")
			fs.Int("repeat", 1, "measure everything N times, interleaved with the C baselines, and print the medians")
			fs.String("cpu", "", "pin the measuring process to CPU A and the peer to CPU B (A,B; one value pins both)")
			fs.Bool("json", false, "print one JSON object per line instead of a table")
			fs.Bool("no-c", false, "do not build or run the C baselines")
		},
		Run: runBench,
	})
	Register(&Command{
		Name:   "bench-child",
		Usage:  "bench-child [flags]",
		Short:  "internal: the peer process of edgeipc bench",
		Hidden: true,
		Flags:  bench.DefineChildFlags,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 {
				return Usagef("bench-child takes no arguments")
			}
			return bench.RunChild(ctx, fs)
		},
	})
}

// Bounds of --duration and --iters (see runBench).
const (
	maxBenchDuration = 24 * time.Hour
	maxBenchIters    = 1 << 30
)

func runBench(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return Usagef("bench takes no arguments, got %q", args)
	}
	str := func(n string) string { return fs.Lookup(n).Value.String() }
	var opts bench.Options
	var err error
	if opts.Cases, err = bench.ParseCases(str("case")); err != nil {
		return Usagef("--case: %v", err)
	}
	if opts.Sizes, err = bench.ParseSizes(str("size")); err != nil {
		return Usagef("--size: %v", err)
	}
	opts.Duration = fs.Lookup("duration").Value.(flag.Getter).Get().(time.Duration)
	// Upper bounds: a case's hang guard is 3x --duration (or 1 ms per
	// iteration) plus 30 s, which overflowed past about 853,000 hours (or
	// 9.2e12 iterations) and failed every case at once with "context
	// deadline exceeded"; the C baselines and go-spin number round trips
	// with 32 bits, and ping-pong keeps every sample of an --iters run.
	if opts.Duration <= 0 {
		return Usagef("--duration must be positive")
	}
	if opts.Duration > maxBenchDuration {
		return Usagef("--duration must be at most %v per case and size, got %v", maxBenchDuration, opts.Duration)
	}
	opts.Iters = fs.Lookup("iters").Value.(flag.Getter).Get().(int)
	if opts.Iters < 0 {
		return Usagef("--iters must not be negative")
	}
	if opts.Iters > maxBenchIters {
		return Usagef("--iters must be at most %d (use --duration for longer runs), got %d", maxBenchIters, opts.Iters)
	}
	opts.Repeat = fs.Lookup("repeat").Value.(flag.Getter).Get().(int)
	if opts.Repeat < 1 {
		return Usagef("--repeat must be at least 1, got %d", opts.Repeat)
	}
	if s := str("cpu"); s != "" {
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return Usagef("--cpu: want A or A,B (CPU numbers), got %q", s)
			}
			opts.CPUs = append(opts.CPUs, n)
		}
		if len(opts.CPUs) > 2 {
			return Usagef("--cpu: at most two CPUs (measuring side, peer)")
		}
		// Refuse a CPU this process may not use before anything runs: a
		// peer that cannot pin itself fails every case, and a C baseline
		// whose child cannot pin spins until the case times out.
		if allowed, err := bench.AllowedCPUs(); err == nil {
			for _, n := range opts.CPUs {
				if !slices.Contains(allowed, n) {
					return Usagef("--cpu: CPU %d is not one this process may run on; use %s", n, cpuList(allowed))
				}
			}
		}
	}
	opts.NoC = str("no-c") == "true"
	opts.Stderr = env.Stderr
	asJSON := str("json") == "true"

	failures, summaries := 0, 0
	if !asJSON {
		printHeader(env.Stdout)
	}
	err = bench.Run(ctx, opts, func(r bench.Result) {
		if ctx.Err() != nil && (r.Error != "" || r.Summary) {
			// Cut short by the interrupt (its peer was killed), or a
			// median over an unfinished round: not a result.
			return
		}
		if r.Error != "" && !r.Summary {
			failures++
		}
		if r.Summary && !asJSON && summaries == 0 {
			fmt.Fprintf(env.Stdout, "-- medians over %d rounds --\n", opts.Repeat)
		}
		if r.Summary {
			summaries++
		}
		if asJSON {
			fmt.Fprintln(env.Stdout, r.JSON())
		} else {
			printRow(env.Stdout, r)
		}
	})
	if ctx.Err() != nil {
		return ctx.Err() // interrupted: exit 130, whatever the cases reported
	}
	if err != nil {
		var uc *bench.UnknownCaseError
		if errors.As(err, &uc) {
			return Usagef("--case: %v", err)
		}
		return err
	}
	if failures > 0 {
		return fmt.Errorf("%d case(s) failed (see the error column)", failures)
	}
	return nil
}

func printHeader(w io.Writer) {
	fmt.Fprintf(w, "%-12s %5s %10s %10s %12s %10s  %-16s %s\n",
		"case", "size", "rtt p50", "rtt p99", "frames/s", "MB/s", "vs C", "notes")
}

func printRow(w io.Writer, r bench.Result) {
	p50, p99, fps, mbs, vs := "-", "-", "-", "-", "-"
	if r.RTTP50 > 0 {
		p50, p99 = fmtNs(r.RTTP50), fmtNs(r.RTTP99)
	}
	if r.FramesPerS > 0 {
		fps = fmt.Sprintf("%.0f", r.FramesPerS)
		mbs = fmt.Sprintf("%.1f", r.BytesPerS/1e6)
	}
	if r.RatioToC > 0 {
		vs = fmt.Sprintf("%.2fx %s", r.RatioToC, r.CCase)
		if r.RatioToCLike > 0 {
			vs += fmt.Sprintf(" (%.2fx %s)", r.RatioToCLike, r.CLikeCase)
		}
	}
	var notes []string
	if r.Round > 0 {
		notes = append(notes, fmt.Sprintf("round %d", r.Round))
	}
	if r.Summary {
		notes = append(notes, fmt.Sprintf("%d rounds", r.Rounds))
		if r.RatioToCMax > 0 {
			notes = append(notes, fmt.Sprintf("ratio %.2f-%.2f", r.RatioToCMin, r.RatioToCMax))
		}
	}
	if r.Policy != "" {
		notes = append(notes, r.Policy)
	}
	if r.Wake != "" {
		notes = append(notes, "wake="+r.Wake)
	}
	if r.Lost != nil {
		notes = append(notes, fmt.Sprintf("lost=%d", *r.Lost))
	}
	for _, s := range []string{r.Note, prefix("skipped: ", r.Skipped), prefix("ERROR: ", r.Error)} {
		if s != "" {
			notes = append(notes, s)
		}
	}
	fmt.Fprintf(w, "%-12s %5s %10s %10s %12s %10s  %-16s %s\n",
		r.Case, bench.FormatSize(r.Size), p50, p99, fps, mbs, vs, strings.Join(notes, " "))
}

func prefix(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func fmtNs(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fus", float64(ns)/1e3)
	}
	return fmt.Sprintf("%.1fms", float64(ns)/1e6)
}

// cpuList names the CPUs of a sorted list for a message: "one of 0-3",
// "0, 2 or 5", "1".
func cpuList(cpus []int) string {
	if len(cpus) == 0 {
		return "none"
	}
	if cpus[len(cpus)-1]-cpus[0] == len(cpus)-1 && len(cpus) > 1 {
		return fmt.Sprintf("one of %d-%d", cpus[0], cpus[len(cpus)-1])
	}
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
