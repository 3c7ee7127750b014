package cli

import (
	"strings"
	"testing"
)

// TestBenchUsageErrors checks that every bad bench flag is refused with
// exit 2 and a message that names the fix, before anything is measured.
func TestBenchUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "extra"}, "takes no arguments"},
		{[]string{"bench", "--case", "ring-fast"}, "valid cases: "},
		{[]string{"bench", "--size", "0"}, "up to 64m"},
		{[]string{"bench", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"bench", "--iters", "-1"}, "--iters must not be negative"},
		{[]string{"bench", "--repeat", "0"}, "--repeat must be at least 1"},
		{[]string{"bench", "--cpu", "one"}, "want A or A,B"},
		{[]string{"bench", "--cpu", "0,1,2"}, "at most two CPUs"},
	} {
		r := runCLI(t, "", c.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("edgeipc %s: exit %d stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}
