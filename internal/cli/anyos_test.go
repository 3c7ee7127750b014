package cli

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
)

// TestOtherOS: on a system other than Linux (goos set to one here; the real
// thing when the tests run on one) every command but version fails with
// exit 1 and says that it needs Linux, and help still works.
func TestOtherOS(t *testing.T) {
	defer func(g string) { goos = g }(goos)
	goos = "darwin"
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := MainEnv(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
		return code, out.String(), errb.String()
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		code, out, errs := run(n)
		if n == "version" {
			if code != ExitOK || !strings.HasPrefix(out, "edgeipc ") {
				t.Errorf("version: exit %d, stdout %q, stderr %q; want 0 and the version", code, out, errs)
			}
			continue
		}
		if want := "edgeipc " + n + ": needs Linux"; code != ExitFailure || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "this is darwin/") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1 and %q, naming the system", n, code, out, errs, want)
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "run"}, {"ring", "-h"}} {
		if code, out, errs := run(args...); code != ExitOK || out == "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and the help", strings.Join(args, " "), code, out, errs)
		}
	}
}
