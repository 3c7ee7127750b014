package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// childEnv makes the test binary act as the bench peer (the "bench-child"
// subcommand) or as the idle reader of TestIdleReaderUsesNoCPU.
const childEnv = "EDGEIPC_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	switch os.Getenv(childEnv) {
	case "peer":
		fs := flag.NewFlagSet("bench-child", flag.ContinueOnError)
		DefineChildFlags(fs)
		if err := fs.Parse(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := RunChild(context.Background(), fs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "idle":
		if err := idleChild(); err != nil {
			fmt.Fprintln(os.Stderr, "idle child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testenv.Run(m)) // fails on leaked descriptors
}

func TestParseSizes(t *testing.T) {
	got, err := ParseSizes("64, 4k,64K,1m,100b,2KiB")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{64, 4096, 65536, 1 << 20, 100, 2048}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseSizes = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "0", "-1", "x", "65m", "4g"} {
		if _, err := ParseSizes(bad); err == nil {
			t.Errorf("ParseSizes(%q) succeeded", bad)
		}
	}
	for _, n := range want {
		back, err := ParseSizes(FormatSize(n))
		if err != nil || back[0] != n {
			t.Errorf("FormatSize(%d) = %q does not parse back (%v, %v)", n, FormatSize(n), back, err)
		}
	}
}

func TestParseCases(t *testing.T) {
	got, err := ParseCases("ring-wait, pipe,ring-wait")
	if err != nil || !slices.Equal(got, []string{"ring-wait", "pipe"}) {
		t.Fatalf("ParseCases = %v, %v", got, err)
	}
	if all, err := ParseCases("all"); err != nil || all != nil {
		t.Fatalf("ParseCases(all) = %v, %v; want nil (every case)", all, err)
	}
	_, err = ParseCases("pipe,nosuch")
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "ring-stream") {
		t.Fatalf("ParseCases(nosuch) error = %v; want it to name the case and list the valid ones", err)
	}
}

func TestStreamSlots(t *testing.T) {
	for _, c := range []struct{ size, slots int }{{64, 256}, {4096, 256}, {65536, 128}, {1 << 20, 8}} {
		if got := streamSlots(c.size); got != c.slots {
			t.Errorf("streamSlots(%d) = %d, want %d", c.size, got, c.slots)
		}
	}
}

// TestEveryCase runs every case, C baselines included, with a few
// iterations between two real processes and checks that each produced
// positive figures (or, for mq above the system's message size limit, a
// skip that names the limit). It asserts nothing about speed.
func TestEveryCase(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv(childEnv, "peer")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var results []Result
	err := Run(ctx, Options{Sizes: []int{64, 64 << 10}, Iters: 100, Exe: os.Args[0], ChildArgs: []string{}, Stderr: os.Stderr},
		func(r Result) { results = append(results, r) })
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range results {
		seen[r.Case]++
		t.Logf("%s", r.JSON())
		switch {
		case r.Error != "":
			t.Errorf("%s %d failed: %s", r.Case, r.Size, r.Error)
		case r.Skipped != "":
			// Under qemu-user cc builds for the host: no C baselines.
			foreignCC := r.Impl == "c" && strings.HasPrefix(r.Skipped, "no C compiler for "+runtime.GOARCH+":")
			if !foreignCC && (r.Case != "mq" || !strings.Contains(r.Skipped, "msgsize")) {
				t.Errorf("%s %d skipped: %s", r.Case, r.Size, r.Skipped)
			}
		case r.Kind == PingPong:
			if r.RTTP50 <= 0 || r.RTTP99 < r.RTTP50 || r.Iters != 100 {
				t.Errorf("%s %d: bad round-trip figures %+v", r.Case, r.Size, r)
			}
		case r.Kind == Stream:
			if r.Frames != 100 || r.FramesPerS <= 0 || r.BytesPerS <= 0 {
				t.Errorf("%s %d: bad streaming figures %+v", r.Case, r.Size, r)
			}
			if r.Lost != nil && *r.Lost != 0 {
				t.Errorf("%s %d lost %d frames", r.Case, r.Size, *r.Lost)
			}
		}
		if c := findCase(r.Case); c != nil && c.c != "" && r.Error == "" {
			if r.CCase != c.c {
				t.Errorf("%s: c_case = %q, want %q", r.Case, r.CCase, c.c)
			}
			if r.RatioToC <= 0 && r.Skipped == "" && !strings.Contains(r.Note, "no C compiler") {
				t.Errorf("%s %d: no ratio to C and no reason: %+v", r.Case, r.Size, r)
			}
			if r.RatioToC > 0 && (r.CLikeCase != c.cLike || (c.cLike != "" && r.RatioToCLike <= 0)) {
				t.Errorf("%s %d: like-for-like baseline %q ratio %v, want %q and a ratio", r.Case, r.Size, r.CLikeCase, r.RatioToCLike, c.cLike)
			}
		}
	}
	for _, n := range CaseNames() {
		if seen[n] != 2 {
			t.Errorf("case %s reported %d times, want 2 (one per size)", n, seen[n])
		}
	}
}

// TestRepeat runs two cases in three rounds between real processes and
// checks that every round measured each case after its C baseline and
// that the summaries are the medians of what the rounds reported.
func TestRepeat(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv(childEnv, "peer")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var results []Result
	opts := Options{Cases: []string{"ring-wait", "pipe"}, Sizes: []int{64}, Iters: 50, Repeat: 3,
		Exe: os.Args[0], ChildArgs: []string{}, Stderr: os.Stderr}
	if err := Run(ctx, opts, func(r Result) { results = append(results, r) }); err != nil {
		t.Fatal(err)
	}
	var order []string
	rounds := map[string][]Result{}
	summaries := map[string]Result{}
	for _, r := range results {
		t.Logf("%s", r.JSON())
		if r.Error != "" {
			t.Fatalf("%s failed: %s", r.Case, r.Error)
		}
		if r.Summary {
			if r.Round != 0 {
				t.Errorf("summary of %s carries round %d", r.Case, r.Round)
			}
			summaries[r.Case] = r
			continue
		}
		if len(summaries) > 0 {
			t.Errorf("%s round %d reported after a summary", r.Case, r.Round)
		}
		order = append(order, fmt.Sprintf("%d:%s", r.Round, r.Case))
		rounds[r.Case] = append(rounds[r.Case], r)
	}
	// c-futex is the baseline of ring-wait and pipe: measured again in
	// every round, just before the first of them.
	want := []string{"1:c-futex", "1:ring-wait", "1:pipe", "2:c-futex", "2:ring-wait", "2:pipe", "3:c-futex", "3:ring-wait", "3:pipe"}
	rw := rounds["ring-wait"]
	noC := len(rw) > 0 && strings.HasPrefix(rw[0].Note, "no C compiler for "+runtime.GOARCH+":")
	if noC { // qemu-user: cc builds for the host, no C baselines run
		want = slices.DeleteFunc(want, func(s string) bool { return strings.HasSuffix(s, "c-futex") })
	}
	if !slices.Equal(order, want) {
		t.Fatalf("rounds ran %v, want %v", order, want)
	}
	for name, rs := range rounds {
		s, ok := summaries[name]
		if !ok || s.Rounds != 3 {
			t.Fatalf("%s: summary %+v, want one over 3 rounds", name, s)
		}
		var p50 []int64
		var ratios []float64
		for _, r := range rs {
			p50 = append(p50, r.RTTP50)
			if r.RatioToC > 0 {
				ratios = append(ratios, r.RatioToC)
			}
		}
		slices.Sort(p50)
		if s.RTTP50 != p50[1] {
			t.Errorf("%s: summary p50 %d, want the median of %v", name, s.RTTP50, p50)
		}
		if name == "c-futex" {
			if s.RatioToC != 0 {
				t.Errorf("%s is a C baseline but has a summary ratio %v", name, s.RatioToC)
			}
			continue
		}
		slices.Sort(ratios)
		if noC {
			if s.RatioToC != 0 {
				t.Errorf("%s has a summary ratio %v without C baselines", name, s.RatioToC)
			}
			continue
		}
		if len(ratios) != 3 || s.RatioToC != ratios[1] || s.RatioToCMin != ratios[0] || s.RatioToCMax != ratios[2] {
			t.Errorf("%s: summary ratio %v [%v, %v], want the median and range of %v",
				name, s.RatioToC, s.RatioToCMin, s.RatioToCMax, ratios)
		}
	}
	if len(summaries) != 3 && !(noC && len(summaries) == 2) {
		t.Errorf("got %d summaries, want 3 (c-futex, ring-wait, pipe)", len(summaries))
	}
}

func TestSummarizeFailures(t *testing.T) {
	lost := func(n int64) *int64 { return &n }
	rs := []Result{
		{Case: "ring-stream", Size: 64, Kind: Stream, FramesPerS: 10, BytesPerS: 640, Lost: lost(0), RatioToC: 0.5},
		{Case: "ring-stream", Size: 64, Kind: Stream, Error: "peer died"},
		{Case: "ring-stream", Size: 64, Kind: Stream, FramesPerS: 30, BytesPerS: 1920, Lost: lost(2), RatioToC: 0.7},
		{Case: "mq", Size: 64, Kind: PingPong, Skipped: "msgsize_max"},
		{Case: "mq", Size: 64, Kind: PingPong, Skipped: "msgsize_max"},
	}
	got := summarize(rs, 3)
	if len(got) != 2 {
		t.Fatalf("summarize gave %d results, want 2: %+v", len(got), got)
	}
	s := got[0]
	if s.Rounds != 2 || s.FramesPerS != 20 || s.BytesPerS != 1280 || s.Lost == nil || *s.Lost != 2 ||
		s.RatioToC != 0.6 || s.RatioToCMin != 0.5 || s.RatioToCMax != 0.7 || s.Error != "" ||
		!strings.Contains(s.Note, "1 of 3 rounds") {
		t.Errorf("ring-stream summary %+v", s)
	}
	if m := got[1]; m.Rounds != 0 || m.Skipped != "msgsize_max" || !m.Summary {
		t.Errorf("mq summary %+v, want it skipped like its rounds", m)
	}
	if summarize(rs, 1) != nil {
		t.Error("a single round has a summary")
	}
}

// TestCCWithArguments runs a C baseline with $CC naming a compiler and an
// argument, as make's CC may ("ccache gcc", "gcc -m32"): such a CC was
// looked up whole on $PATH and reported as no compiler.
func TestCCWithArguments(t *testing.T) {
	testenv.Tool(t, "cc", "install gcc: the C baselines need it")
	t.Setenv("CC", "cc -Wall")
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rs []Result
	opts := Options{Cases: []string{"c-futex"}, Sizes: []int{64}, Iters: 20, Stderr: os.Stderr}
	if err := Run(ctx, opts, func(r Result) { rs = append(rs, r) }); err != nil {
		t.Fatal(err)
	}
	if len(rs) == 1 && strings.HasPrefix(rs[0].Skipped, "no C compiler for "+runtime.GOARCH+":") {
		t.Skipf("cc builds for another machine (qemu-user?): %s", rs[0].Skipped)
	}
	if len(rs) != 1 || rs[0].Error != "" || rs[0].Skipped != "" || rs[0].RTTP50 <= 0 {
		t.Fatalf("c-futex with CC=%q: %+v, want it measured", os.Getenv("CC"), rs)
	}
}

// TestCCForAnotherArch builds the C baselines with a compiler for another
// machine (cc -m32 on x86-64, as cc on the host is under qemu-user for an
// ARM edgeipc) and checks that the C cases are skipped saying so, and
// that the Go case carries no ratio: the C programs ran natively and the
// ratios compared the two machines.
func TestCCForAnotherArch(t *testing.T) {
	cc := testenv.Tool(t, "cc", "install gcc: the C baselines need it")
	if runtime.GOARCH != "amd64" {
		t.Skipf("needs an x86-64 edgeipc (it builds 32-bit x86 C programs with cc -m32); this one is %s", runtime.GOARCH)
	}
	src := filepath.Join(t.TempDir(), "t.c")
	if err := os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cc, "-m32", "-o", src+".out", src).CombinedOutput()
	testenv.CanBuild32(t, cc, err, out)
	t.Setenv("CC", "cc -m32")
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv(childEnv, "peer")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rs []Result
	opts := Options{Cases: []string{"c-futex", "pipe"}, Sizes: []int{64}, Iters: 20,
		Exe: os.Args[0], ChildArgs: []string{}, Stderr: os.Stderr}
	if err := Run(ctx, opts, func(r Result) { rs = append(rs, r) }); err != nil {
		t.Fatal(err)
	}
	const want = "no C compiler for amd64: cc -m32 builds 386 programs"
	if len(rs) != 2 || rs[0].Error != "" || !strings.Contains(rs[0].Skipped, want) ||
		rs[1].Error != "" || rs[1].RatioToC != 0 || !strings.Contains(rs[1].Note, want) {
		t.Fatalf("got %+v\nwant c-futex skipped and pipe without a ratio, both saying %q", rs, want)
	}
}

// TestP99 checks the 99th percentile of the Go cases and of the C
// baselines (a C program built from common.h, as the baselines are): by
// nearest rank, the ceil(0.99 n)-th smallest sample. Both took index
// n*99/100, one past it: of 100 round trips, "p99" was the slowest.
func TestP99(t *testing.T) {
	cases := []struct{ n, want int }{{1, 0}, {2, 1}, {99, 98}, {100, 98}, {101, 99}, {1000, 989}, {1 << 20, 1038090}}
	for _, c := range cases {
		s := make([]int64, c.n)
		for i := range s {
			s[i] = int64(i)
		}
		var r Result
		fillRTT(&r, s)
		if r.RTTP99 != int64(c.want) {
			t.Errorf("Go: p99 of %d samples is index %d, want %d", c.n, r.RTTP99, c.want)
		}
	}

	cc := testenv.Tool(t, "cc", "install gcc: the C baselines need it")
	dir := t.TempDir()
	hdr, err := cSources.ReadFile("c/common.h")
	if err != nil {
		t.Fatal(err)
	}
	prog := `#include "common.h"
int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++)
		printf("%ld\n", p99_index(atol(argv[i])));
	return 0;
}
`
	for name, data := range map[string][]byte{"common.h": hdr, "p99.c": []byte(prog)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(cc, "-O2", "-o", filepath.Join(dir, "p99"), filepath.Join(dir, "p99.c")).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	var args, want []string
	for _, c := range cases {
		args, want = append(args, fmt.Sprint(c.n)), append(want, fmt.Sprint(c.want))
	}
	out, err := exec.Command(filepath.Join(dir, "p99"), args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, want) {
		t.Errorf("C: p99 indexes of %v samples are %v, want %v", args, got, want)
	}
}

// TestStreamOneFrame streams a single frame through every kind of stream
// (ring, pipe, socket, FIFO, the C ring) and checks that each is skipped
// saying a rate needs two frames: the clock starts when the first frame
// is in, and counting that frame too gave one frame over next to no time,
// an absurd rate (and overstated every rate by frames/(frames-1)).
func TestStreamOneFrame(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv(childEnv, "peer")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rs []Result
	opts := Options{Cases: []string{"ring-stream", "pipe-stream", "unix-stream", "fifo"}, Sizes: []int{64}, Iters: 1,
		Exe: os.Args[0], ChildArgs: []string{}, Stderr: os.Stderr}
	if err := Run(ctx, opts, func(r Result) { rs = append(rs, r) }); err != nil {
		t.Fatal(err)
	}
	goCases := 0
	for _, r := range rs {
		if r.Impl == "go" {
			goCases++
		}
	}
	if goCases != 4 {
		t.Errorf("got %d Go results, want 4", goCases)
	}
	for _, r := range rs {
		t.Logf("%s", r.JSON())
		if r.Impl == "c" && strings.HasPrefix(r.Skipped, "no C compiler") {
			continue // no cc, or one for the host under qemu-user
		}
		if r.Error != "" || r.FramesPerS != 0 || !strings.Contains(r.Skipped, "1 frame(s) streamed: a rate needs 2 or more") {
			t.Errorf("%s with one frame: %+v, want it skipped saying a rate needs 2 frames", r.Case, r)
		}
	}
}

// TestDurationHonoured runs a Go and a C ping-pong for --duration 2s and
// checks that each measured for at least that long (a lower bound from
// the duration asked for, not a speed): both stopped once they had
// recorded their maximum of samples (1Mi; 64 here for the Go case), after
// a fraction of a second of a fast case, whatever --duration said.
func TestDurationHonoured(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv(childEnv, "peer")
	defer func(n int) { maxSamples = n }(maxSamples)
	maxSamples = 64
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const d = 2 * time.Second
	var rs []Result
	took := map[string]time.Duration{} // from the result before (or the start)
	opts := Options{Cases: []string{"ring-wait", "c-spin"}, Sizes: []int{64}, Duration: d,
		Exe: os.Args[0], ChildArgs: []string{}, Stderr: os.Stderr}
	prev := time.Now()
	err := Run(ctx, opts, func(r Result) {
		rs = append(rs, r)
		took[r.Case], prev = time.Since(prev), time.Now()
	})
	if err != nil {
		t.Fatal(err)
	}
	measured := 0
	for _, r := range rs {
		t.Logf("%s", r.JSON())
		if r.Impl == "c" && strings.HasPrefix(r.Skipped, "no C compiler") || r.Case == "c-futex" {
			continue // no C compiler for this machine; c-futex: ring-wait's baseline
		}
		if r.Error != "" || r.Skipped != "" {
			t.Errorf("%s: %+v", r.Case, r)
			continue
		}
		measured++
		if took[r.Case] < d {
			t.Errorf("%s took %v with --duration %v: it stopped measuring early", r.Case, took[r.Case], d)
		}
		if r.Case == "ring-wait" && r.Iters != 64 {
			t.Errorf("ring-wait recorded %d samples, want maxSamples (64)", r.Iters)
		}
	}
	if measured == 0 {
		t.Error("nothing measured")
	}
}
