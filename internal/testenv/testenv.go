// Package testenv finds the host tools some tests need (a C compiler,
// python3). Where one is missing a test skips, saying what to install —
// unless EDGEIPC_REQUIRE_TOOLS=1, which `make test` (and so CI) sets:
// there a missing tool fails the test, so that a machine set up wrong can
// never pass the suite by skipping what it cannot run.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of name on $PATH. If it is missing, t skips with
// hint, or fails with it when EDGEIPC_REQUIRE_TOOLS=1.
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("EDGEIPC_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found on PATH, and EDGEIPC_REQUIRE_TOOLS=1 (make test): %s", name, hint)
	}
	t.Skipf("%s not found on PATH: %s", name, hint)
	return ""
}
