package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
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
	os.Exit(m.Run())
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
			if r.Case != "mq" || !strings.Contains(r.Skipped, "msgsize") {
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
			if r.RatioToC <= 0 && !strings.Contains(r.Note, "no C compiler") {
				t.Errorf("%s %d: no ratio to C and no reason: %+v", r.Case, r.Size, r)
			}
			if r.CLikeCase != c.cLike || (c.cLike != "" && r.RatioToC > 0 && r.RatioToCLike <= 0) {
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
