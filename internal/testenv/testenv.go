// Package testenv finds the host tools some tests need (a C compiler,
// python3). Where one is missing a test skips, saying what to install —
// unless EDGEIPC_REQUIRE_TOOLS=1, which `make test` (and so CI) sets:
// there a missing tool fails the test, so that a machine set up wrong can
// never pass the suite by skipping what it cannot run.
package testenv

import (
	"os"
	"os/exec"
	"strings"
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

// CanBuild32 reports whether cc can build 32-bit x86 programs (-m32). If it
// cannot on an x86-64 host, t skips saying to install gcc-multilib, or
// fails when EDGEIPC_REQUIRE_TOOLS=1; on other hosts (no -m32 to be had)
// it skips.
func CanBuild32(t testing.TB, cc string, buildErr error, out []byte) {
	t.Helper()
	if buildErr == nil {
		return
	}
	m, _ := exec.Command(cc, "-dumpmachine").Output()
	if strings.HasPrefix(string(m), "x86_64") && os.Getenv("EDGEIPC_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s cannot build -m32, and EDGEIPC_REQUIRE_TOOLS=1 (make test): install gcc-multilib: %v\n%s", cc, buildErr, out)
	}
	t.Skipf("%s cannot build -m32 (on x86-64: install gcc-multilib): %v\n%s", cc, buildErr, out)
}
